//! Restart the backup and restart the iPhone. A backup program is stopped
//! only with evidence that it serves this phone and that its backup is
//! stuck, after a yes; without that evidence the question says why Unstuck
//! is unsure and only an explicit yes answers it. Leftovers that would make
//! the next run fail go to the trash; then Unstuck's own engine backs up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
use thiserror::Error;
use tokio::sync::mpsc;

use super::Confirm;
use super::storage;
use crate::device::{self, DeviceError, MuxAddress};
use crate::engine::{self, BackupEvent, BackupOptions, BackupReport, EngineError};
use crate::humanize;
use crate::monitor::MonitorConfig;
use crate::process::{self, Holder, Identity, Stopped};

#[derive(Debug, Error)]
pub enum RestartError {
    #[error("nothing was changed: the question was not answered yes")]
    Declined,
    #[error("{name} (process {pid}) did not stop: stop it yourself, then try again")]
    StillRunning { name: String, pid: u32 },
    #[error(
        "process {pid} is no longer the {name} you were asked about (its number now belongs to another program), so nothing was stopped: run the restart again to look afresh"
    )]
    Changed { name: String, pid: u32 },
    #[error(transparent)]
    Cleanup(#[from] storage::CleanupError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The platform's own backup tool could not be started.
    #[error("cannot run platform_command {program:?}: {source}")]
    Command {
        program: String,
        source: std::io::Error,
    },
}

/// How long a backup folder may go unwritten before its backup counts as
/// stuck: the longest any phase of a healthy backup may stay quiet.
pub fn stuck_after(config: &MonitorConfig) -> SignedDuration {
    config.stall.longest()
}

/// How a restart ended.
#[derive(Debug)]
pub enum Restarted {
    /// Unstuck's engine made the backup.
    Backup(BackupReport),
    /// The platform's own tool ran instead (`[backup] platform_command`)
    /// and ended so.
    Command {
        program: String,
        status: std::process::ExitStatus,
    },
}

/// The restart, end to end, as the menu, a notification button and
/// `unstuck fix restart` run it: reads the phone's facts once, stops other
/// backup programs working for it (after a yes each), moves the leftovers
/// that make the phone fail to the trash, and backs up with Unstuck's engine
/// — or runs `platform_command` when the config names one. `stuck_after`:
/// see [`stuck_after`].
pub async fn restart(
    addr: &MuxAddress,
    options: &BackupOptions,
    stuck_after: SignedDuration,
    platform_command: Option<&[String]>,
    confirm: &mut dyn Confirm,
    events: &mpsc::UnboundedSender<BackupEvent>,
) -> Result<Restarted, RestartError> {
    let facts = prepare(addr, options, stuck_after, confirm).await?;
    if let Some(command) = platform_command {
        let program = command.first().cloned().unwrap_or_default();
        let status = run_platform_command(command, &facts.udid, &options.dest)
            .await
            .map_err(|source| RestartError::Command {
                program: program.clone(),
                source,
            })?;
        return Ok(Restarted::Command { program, status });
    }
    let mut options = options.clone();
    options.udid = Some(facts.udid.clone());
    Ok(Restarted::Backup(
        engine::backup_of(addr, &options, facts, events).await?,
    ))
}

/// A backup program that may be the stuck one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspect {
    /// Unstuck's own backup in another process, holding this phone's lock.
    Locked(Holder),
    /// Another tool's program; `named` is the phone its command line names.
    Program {
        name: String,
        identity: Identity,
        named: Option<String>,
    },
}

/// What is known around the suspects.
#[derive(Debug, Clone)]
pub struct Scene<'a> {
    /// The phone being restarted.
    pub udid: &'a str,
    /// Its backup folder in the destination.
    pub folder: &'a Path,
    /// Phones attached now (0 when they could not be listed).
    pub phones: usize,
    /// Backup programs of other tools running now, for any phone.
    pub programs: usize,
    /// How long the folder has gone unwritten; `None` when there is none.
    pub quiet: Option<SignedDuration>,
    pub stuck_after: SignedDuration,
}

/// Whether to stop a suspect, and what to ask first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It names another phone: left alone, nothing asked.
    NotOurs,
    /// It serves this phone and its backup is stuck: an ordinary yes.
    Stuck(String),
    /// The evidence falls short; the question says how, and only an
    /// explicit yes ([`Confirm::confirm_unsure`]) stops it.
    Unsure(String),
}

/// Decides about one suspect from the scene alone.
pub fn judge(suspect: &Suspect, scene: &Scene) -> Verdict {
    let mut doubts = Vec::new();
    let (who, pid) = match suspect {
        Suspect::Locked(holder) => {
            if let Holder::Unknown(_) = holder {
                doubts.push(
                    "its lock was written by an older Unstuck and records only a process number, which the system may have given to another program since"
                        .to_owned(),
                );
            }
            ("Unstuck".to_owned(), holder.pid())
        }
        Suspect::Program {
            name,
            identity,
            named,
        } => {
            match named {
                Some(u) if u != scene.udid => return Verdict::NotOurs,
                Some(_) => {}
                None if scene.programs == 1 && scene.phones == 1 => {}
                None if scene.phones == 0 => doubts.push(
                    "its command line names no phone, and the attached phones could not be listed"
                        .to_owned(),
                ),
                None if scene.phones > 1 => doubts.push(format!(
                    "its command line names no phone, and {} phones are attached",
                    scene.phones
                )),
                None => doubts.push(format!(
                    "its command line names no phone, and {} backup programs are running",
                    scene.programs
                )),
            }
            (name.clone(), identity.pid)
        }
    };
    match scene.quiet {
        None => doubts.push(format!(
            "there is no backup of this iPhone at {} to show whether it is still writing",
            scene.folder.display()
        )),
        Some(quiet) if quiet < scene.stuck_after => doubts.push(format!(
            "its backup folder changed {} ago, and a backup counts as stuck only after {} without a write",
            humanize::duration(quiet),
            humanize::duration(scene.stuck_after)
        )),
        Some(_) => {}
    }
    let own = matches!(suspect, Suspect::Locked(_));
    if doubts.is_empty() {
        let quiet = humanize::duration(scene.quiet.unwrap_or_default());
        Verdict::Stuck(if own {
            format!(
                "Unstuck is already backing up this iPhone (process {pid}) and has written nothing to {} for {quiet}. Stop that backup and start again?",
                scene.folder.display()
            )
        } else {
            format!(
                "{who} (process {pid}) is backing up this iPhone and has written nothing to {} for {quiet}. Stop it and start again with Unstuck?",
                scene.folder.display()
            )
        })
    } else {
        let doubts = doubts.join("; ");
        Verdict::Unsure(if own {
            format!(
                "Unstuck may already be backing up this iPhone (process {pid}), but it is not sure that process should be stopped: {doubts}. Stop process {pid} anyway?"
            )
        } else {
            format!(
                "{who} (process {pid}) may be backing up this iPhone, but Unstuck is not sure it should be stopped: {doubts}. Stop it anyway?"
            )
        })
    }
}

/// What every restart does first: stop what is stuck (after a yes) and clear
/// the leftovers that make the phone fail. Returns the phone's facts.
async fn prepare(
    addr: &MuxAddress,
    options: &BackupOptions,
    stuck_after: SignedDuration,
    confirm: &mut dyn Confirm,
) -> Result<device::DeviceFacts, RestartError> {
    let facts = device::facts(addr, options.udid.as_deref(), options.deadline).await?;
    let udid = facts.udid.clone();
    let phones = match device::list(addr, options.deadline).await {
        Ok(list) => {
            let mut udids: Vec<String> = list.into_iter().map(|d| d.udid).collect();
            udids.sort();
            udids.dedup();
            udids.len()
        }
        Err(_) => 0,
    };
    let folder = options.dest.join(&udid);
    let programs = running_programs();
    let mut suspects: Vec<Suspect> = engine::lock_holder(&options.dest, &udid)
        .filter(|h| h.pid() != std::process::id())
        .map(Suspect::Locked)
        .into_iter()
        .collect();
    suspects.extend(programs.iter().cloned());
    for suspect in suspects {
        let scene = Scene {
            udid: &udid,
            folder: &folder,
            phones,
            programs: programs.len(),
            quiet: crate::backup_folder::last_written(&folder)
                .map(|t| Timestamp::now().duration_since(t)),
            stuck_after,
        };
        // The identity asked about, read before the question (which can
        // wait minutes) and checked again right before the signal.
        let (name, identity) = match &suspect {
            Suspect::Locked(Holder::Alive(identity)) => ("unstuck".to_owned(), identity.clone()),
            Suspect::Locked(Holder::Unknown(pid)) => match process::look(*pid) {
                Some(identity) => ("unstuck".to_owned(), identity),
                None => continue,
            },
            Suspect::Program { name, identity, .. } => (name.clone(), identity.clone()),
        };
        let yes = match judge(&suspect, &scene) {
            Verdict::NotOurs => continue,
            Verdict::Stuck(question) => confirm.confirm(&question),
            Verdict::Unsure(question) => confirm.confirm_unsure(&question),
        };
        if !yes {
            return Err(RestartError::Declined);
        }
        let pid = identity.pid;
        match process::stop(&identity, Duration::from_secs(5)).await {
            Stopped::Gone => {}
            Stopped::Changed => return Err(RestartError::Changed { name, pid }),
            Stopped::StillRunning => return Err(RestartError::StillRunning { name, pid }),
        }
    }
    // Only this phone's folder: it is where the next backup writes, and
    // what the phone refuses while a leftover sits in it.
    for item in &storage::refusals(&options.dest, &udid, Timestamp::now()) {
        storage::move_to_trash(item, confirm)?;
    }
    Ok(facts)
}

/// Other tools' backup programs running now, with who they are.
fn running_programs() -> Vec<Suspect> {
    let Ok(mut system) = System::new() else {
        tracing::warn!("cannot list processes; not looking for stuck backup programs");
        return Vec::new();
    };
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing()
            .with_cmd(UpdateKind::Always)
            .with_exe(UpdateKind::Always),
    );
    let me = std::process::id();
    let mut found: Vec<&sysinfo::Process> = system
        .processes()
        .values()
        .filter(|p| p.pid().as_u32() != me)
        .collect();
    found.sort_by_key(|p| p.pid());
    found
        .into_iter()
        .filter_map(|p| {
            let program = engine::backup_program(p)?;
            Some(Suspect::Program {
                name: program.name.to_owned(),
                identity: Identity {
                    pid: p.pid().as_u32(),
                    start: p.start_time(),
                    exe: p.exe().map(PathBuf::from),
                },
                named: program.udid,
            })
        })
        .collect()
}

/// Runs the platform's own backup tool instead of Unstuck's engine: the
/// command from the config file (`[backup] platform_command`), with
/// `{udid}` and `{dest}` filled in. Its flags are configuration, not
/// something Unstuck knows for certain.
async fn run_platform_command(
    command: &[String],
    udid: &str,
    dest: &std::path::Path,
) -> Result<std::process::ExitStatus, std::io::Error> {
    let fill = |a: &String| {
        a.replace("{udid}", udid)
            .replace("{dest}", &dest.to_string_lossy())
    };
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("platform_command is empty"))?;
    tokio::process::Command::new(fill(program))
        .args(args.iter().map(fill))
        .status()
        .await
}

/// A restart of the iPhone, asked about but not yet done: the question is
/// a value, so the tray asks it as a notification and the CLI at a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRestart {
    pub udid: String,
    pub question: String,
}

/// Reads the phone's facts and words the question for restarting it.
pub async fn plan_phone_restart(
    addr: &MuxAddress,
    udid: Option<&str>,
) -> Result<PhoneRestart, RestartError> {
    let facts = device::facts(addr, udid, device::DEADLINE).await?;
    let name = facts.name.unwrap_or_else(|| "the iPhone".into());
    Ok(PhoneRestart {
        udid: facts.udid,
        question: format!("Restart {name} now? It will be away for a minute."),
    })
}

/// Restarts the phone `plan` names; the yes was given to its question.
pub async fn carry_out(addr: &MuxAddress, plan: &PhoneRestart) -> Result<(), RestartError> {
    device::restart_phone(addr, Some(&plan.udid), device::DEADLINE).await?;
    Ok(())
}

/// Restarts the iPhone (the fix for error 3, and often for a phone that
/// stopped answering), after a yes.
pub async fn restart_phone(
    addr: &MuxAddress,
    udid: Option<&str>,
    confirm: &mut dyn Confirm,
) -> Result<(), RestartError> {
    let plan = plan_phone_restart(addr, udid).await?;
    if !confirm.confirm(&plan.question) {
        return Err(RestartError::Declined);
    }
    carry_out(addr, &plan).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: &str = "00008120-001A2B3C4D5E6F70";
    const BOB: &str = "00008030-0016354E1A2B3C4D";

    fn program(named: Option<&str>) -> Suspect {
        Suspect::Program {
            name: "idevicebackup2".into(),
            identity: Identity {
                pid: 7,
                start: 100,
                exe: Some("/usr/bin/idevicebackup2".into()),
            },
            named: named.map(str::to_owned),
        }
    }

    fn own(holder: Holder) -> Suspect {
        Suspect::Locked(holder)
    }

    /// `quiet` in minutes (`None`: no folder); the limit is 10 minutes.
    fn check(suspect: Suspect, phones: usize, programs: usize, quiet: Option<i64>, expect: &str) {
        let folder = PathBuf::from("/b").join(ANN);
        let scene = Scene {
            udid: ANN,
            folder: &folder,
            phones,
            programs,
            quiet: quiet.map(SignedDuration::from_mins),
            stuck_after: SignedDuration::from_mins(10),
        };
        let got = match judge(&suspect, &scene) {
            Verdict::NotOurs => "not ours".to_owned(),
            Verdict::Stuck(q) => format!("stuck: {q}"),
            Verdict::Unsure(q) => format!("unsure: {q}"),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn a_program_is_stopped_only_with_evidence() {
        check(
            program(Some(ANN)),
            2,
            3,
            Some(15),
            "stuck: idevicebackup2 (process 7) is backing up this iPhone and has written nothing to /b/00008120-001A2B3C4D5E6F70 for 15 min. Stop it and start again with Unstuck?",
        );
        check(program(Some(BOB)), 1, 1, Some(15), "not ours");
        // Names no phone, but is the only program and this the only phone.
        assert!(matches!(
            judge(
                &program(None),
                &Scene {
                    udid: ANN,
                    folder: Path::new("/b"),
                    phones: 1,
                    programs: 1,
                    quiet: Some(SignedDuration::from_mins(11)),
                    stuck_after: SignedDuration::from_mins(10),
                }
            ),
            Verdict::Stuck(_)
        ));
        check(
            program(None),
            2,
            1,
            Some(15),
            "unsure: idevicebackup2 (process 7) may be backing up this iPhone, but Unstuck is not sure it should be stopped: its command line names no phone, and 2 phones are attached. Stop it anyway?",
        );
        check(
            program(None),
            1,
            2,
            Some(15),
            "unsure: idevicebackup2 (process 7) may be backing up this iPhone, but Unstuck is not sure it should be stopped: its command line names no phone, and 2 backup programs are running. Stop it anyway?",
        );
        check(
            program(Some(ANN)),
            1,
            1,
            Some(3),
            "unsure: idevicebackup2 (process 7) may be backing up this iPhone, but Unstuck is not sure it should be stopped: its backup folder changed 3 min ago, and a backup counts as stuck only after 10 min without a write. Stop it anyway?",
        );
        check(
            program(Some(ANN)),
            1,
            1,
            None,
            "unsure: idevicebackup2 (process 7) may be backing up this iPhone, but Unstuck is not sure it should be stopped: there is no backup of this iPhone at /b/00008120-001A2B3C4D5E6F70 to show whether it is still writing. Stop it anyway?",
        );
    }

    #[test]
    fn unstucks_own_run_needs_a_lock_that_says_who_holds_it() {
        let alive = Holder::Alive(Identity {
            pid: 9,
            start: 5,
            exe: Some("/usr/bin/unstuck".into()),
        });
        check(
            own(alive.clone()),
            3,
            0,
            Some(20),
            "stuck: Unstuck is already backing up this iPhone (process 9) and has written nothing to /b/00008120-001A2B3C4D5E6F70 for 20 min. Stop that backup and start again?",
        );
        check(
            own(Holder::Unknown(9)),
            1,
            0,
            Some(20),
            "unsure: Unstuck may already be backing up this iPhone (process 9), but it is not sure that process should be stopped: its lock was written by an older Unstuck and records only a process number, which the system may have given to another program since. Stop process 9 anyway?",
        );
        assert!(matches!(
            judge(
                &own(alive),
                &Scene {
                    udid: ANN,
                    folder: Path::new("/b"),
                    phones: 1,
                    programs: 0,
                    quiet: Some(SignedDuration::from_mins(1)),
                    stuck_after: SignedDuration::from_mins(10),
                }
            ),
            Verdict::Unsure(_)
        ));
    }

    #[test]
    fn stuck_means_quieter_than_any_phase_may_be() {
        assert_eq!(
            stuck_after(&MonitorConfig::default()),
            SignedDuration::from_secs(600)
        );
    }
}
