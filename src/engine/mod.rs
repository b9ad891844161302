//! Unstuck's own backups, made through mobilebackup2: `idevice` reaches the
//! service, and `link` speaks DeviceLink with the phone, every path confined
//! by `folder` to the phone's own folder. Around the transfer:
//! pre-flight checks before any byte moves, a watchdog that restarts a
//! stalled attempt a bounded number of times, a wait for a phone that was
//! unplugged, and a hard-link snapshot that puts the last complete backup
//! back if the run does not finish. Success means ErrorCode 0 *and* a
//! Status.plist that says finished.

pub mod codes;
mod folder;
mod host;
mod link;
pub mod preflight;
pub mod record;
pub mod snapshot;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::future::Future;

use plist::{Dictionary, Value};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Free space for backups: what pre-flight weighs, and what the storage fix
/// shows per backup root.
use crate::backup_folder::free_space;
use crate::backup_folder::{
    self, BackupState, LeftoverKind, MeasureCache, ReadOptions, SnapshotState,
};
use crate::cause::Cause;
use crate::device::{self, DeviceError, MuxAddress};
use crate::lock;
use crate::stall::{Phase, StallThresholds};
use folder::PhoneFolder;
pub use folder::Refused;
pub use host::{BackupLock, lock_holder, other_backups};
pub(crate) use host::{backup_program, backup_program_named, is_program, named_udid};
pub use link::Observed;
use link::{Link, LinkError};
use preflight::Problem;
use snapshot::Snapshot;
pub use watchdog::Stall;

/// What to back up, where, and how patiently.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The phone; the only attached one when `None`.
    pub udid: Option<String>,
    /// The backup root; the backup goes to `<dest>/<UDID>/`.
    pub dest: PathBuf,
    /// Ask the phone for a full backup even when an earlier one is there.
    pub full: bool,
    /// Per request to the phone.
    pub deadline: Duration,
    /// How long each phase may stay quiet before the attempt is stopped.
    pub stall: StallThresholds,
    /// Attempts after the first, on a stall or an unplug.
    pub max_restarts: u32,
    /// Wait before restart n: n times this.
    pub restart_backoff: Duration,
    /// How long to wait for an unplugged phone to come back.
    pub reattach_wait: Duration,
    /// How often progress is looked at.
    pub tick: Duration,
    /// Report this instead of the real free space (tests).
    pub free_space_override: Option<u64>,
    /// Look for other backup programs before starting. Tests that run
    /// backup programs side by side turn it off.
    pub check_other_programs: bool,
}

impl BackupOptions {
    pub fn new(dest: PathBuf) -> BackupOptions {
        BackupOptions {
            udid: None,
            dest,
            full: false,
            deadline: device::DEADLINE,
            stall: StallThresholds::default(),
            max_restarts: 3,
            restart_backoff: Duration::from_secs(10),
            reattach_wait: Duration::from_secs(300),
            tick: Duration::from_millis(500),
            free_space_override: None,
            check_other_programs: true,
        }
    }
}

/// What the engine reports while it works.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BackupEvent {
    Started {
        udid: String,
        device_name: Option<String>,
        folder: PathBuf,
        /// A complete backup is there and is kept safe during the run.
        protected: bool,
        /// The phone asks for its passcode before a backup (iOS 16.1 and
        /// later): the user must enter it on the phone.
        asks_for_passcode: bool,
    },
    Progress {
        #[serde(with = "crate::stall::backup_names")]
        phase: Phase,
        bytes: u64,
        files: u64,
        percent: Option<f64>,
    },
    Stalled {
        #[serde(with = "crate::stall::backup_names")]
        phase: Phase,
        quiet_secs: u64,
    },
    /// The phone went away; waiting up to `wait_secs` for it to come back.
    WaitingForPhone {
        wait_secs: u64,
    },
    Restarting {
        attempt: u32,
        of: u32,
    },
}

/// A finished backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupReport {
    pub udid: String,
    pub folder: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub restarts: u32,
    pub seconds: f64,
}

/// Why a backup did not finish. The last complete backup, if any, is back
/// in place whenever one of these is returned.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A check before the transfer failed; nothing was written.
    #[error("not started: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Preflight { problems: Vec<Problem> },
    /// Another Unstuck process is backing up this phone into this folder.
    #[error(
        "another Unstuck backup of this iPhone is running (process {pid}): wait for it to finish"
    )]
    Busy { pid: u32 },
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The phone ended the backup with a non-zero ErrorCode.
    #[error("the iPhone stopped the backup with error {code}: {}. {}{}", codes::meaning(*code).cause, crate::humanize::upper_first(codes::meaning(*code).action), description.as_deref().map(|d| format!(" (the iPhone said: {d})")).unwrap_or_default())]
    Phone {
        code: u64,
        description: Option<String>,
    },
    /// Every attempt stalled.
    #[error(
        "the backup stalled while {phase} in {attempts} attempts: unplug the iPhone, plug it back in, unlock it and back up again; if it stalls again, restart the iPhone (`unstuck fix restart-iphone`)"
    )]
    Stalled { phase: Phase, attempts: u32 },
    /// ErrorCode 0, but Status.plist does not say finished.
    #[error(
        "the iPhone reported success but the backup's Status.plist does not say finished: back up again"
    )]
    NotFinished,
    #[error("cannot write {}: {}{}", path.display(), crate::humanize::io_error(source), io_hint(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The phone named a path outside its own folder (or an impossible
    /// UDID). Real phones do not; the backup is stopped.
    #[error("{0}. Unplug the iPhone; if it happens again, do not back it up to this computer")]
    Refused(Refused),
    /// Ctrl-C, SIGTERM, SIGHUP, a closed console, or the tray's Quit.
    #[error("stopped ({0})")]
    Interrupted(&'static str),
}

/// What to do about a write that failed, where there is something to do.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            ". The backup disk is full: free some space (`unstuck fix storage` lists what takes it) and back up again"
        }
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            ". Choose a folder you can write to (`unstuck backup --dest DIR`), or give yourself write permission on it"
        }
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => {
            ". A file stands where a folder should be: choose a folder (`unstuck backup --dest DIR`)"
        }
        _ => "",
    }
}

impl EngineError {
    /// The phone's ErrorCode, when the phone ended the backup with one.
    pub fn phone_code(&self) -> Option<u64> {
        match self {
            EngineError::Phone { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The likely cause, as the monitor names causes (`Unknown` where the
    /// message says more than a cause can).
    pub fn cause(&self) -> Cause {
        match self {
            EngineError::Preflight { problems } => match problems.first() {
                Some(Problem::HostSpace { .. }) => Cause::HostDiskFull,
                Some(Problem::EmptyManifestPlist | Problem::StaleSnapshot) => Cause::Leftovers,
                Some(Problem::PhoneSpace { .. }) => Cause::PhoneStorageLow,
                _ => Cause::Unknown,
            },
            EngineError::Device(DeviceError::Detached | DeviceError::NoDevice { .. }) => {
                Cause::Detached
            }
            EngineError::Phone { code, .. } => codes::meaning(*code).finding,
            EngineError::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                Cause::HostDiskFull
            }
            _ => Cause::Unknown,
        }
    }

    /// The process exit code for `unstuck backup`.
    pub fn exit_code(&self) -> u8 {
        match self {
            EngineError::Preflight { .. } | EngineError::Busy { .. } => 3,
            EngineError::Device(_) => 4,
            EngineError::Phone { code, .. } => codes::meaning(*code).exit_code,
            EngineError::Stalled { .. } => 5,
            EngineError::NotFinished => 6,
            EngineError::Io { .. } => 7,
            EngineError::Interrupted(_) => 8,
            EngineError::Refused(_) => 9,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes one backup of a phone, restarting stalled or unplugged attempts,
/// and reports through `events`.
pub async fn backup(
    addr: &MuxAddress,
    options: &BackupOptions,
    events: &mpsc::UnboundedSender<BackupEvent>,
) -> Result<BackupReport, EngineError> {
    backup_until(addr, options, events, std::future::pending()).await
}

/// [`backup`] of the phone whose `facts` the caller has just read.
pub async fn backup_of(
    addr: &MuxAddress,
    options: &BackupOptions,
    facts: device::DeviceFacts,
    events: &mpsc::UnboundedSender<BackupEvent>,
) -> Result<BackupReport, EngineError> {
    backup_run(addr, options, Some(facts), events, std::future::pending()).await
}

/// [`backup`], stopped when `stop` completes (with what stopped it: a
/// signal's name, "Quit"). However it ends, the last complete backup is back
/// in place, the lock is released and no `.unstuck-*` file is left.
pub async fn backup_until(
    addr: &MuxAddress,
    options: &BackupOptions,
    events: &mpsc::UnboundedSender<BackupEvent>,
    stop: impl Future<Output = &'static str>,
) -> Result<BackupReport, EngineError> {
    backup_run(addr, options, None, events, stop).await
}

async fn backup_run(
    addr: &MuxAddress,
    options: &BackupOptions,
    known: Option<device::DeviceFacts>,
    events: &mpsc::UnboundedSender<BackupEvent>,
    stop: impl Future<Output = &'static str>,
) -> Result<BackupReport, EngineError> {
    tokio::pin!(stop);
    let started = Instant::now();
    let run = tokio::select! {
        run = prepare(addr, options, known) => run?,
        what = &mut stop => return Err(EngineError::Interrupted(what)),
    };
    // `run` lives to the end: dropped early (a cancelled future), its
    // snapshot puts the last complete backup back before its lock goes.
    let mut run = run;
    let (udid, folder) = (run.facts.udid.clone(), run.folder.clone());
    let passcode = crate::stall::asks_for_passcode(run.facts.ios_version.as_deref());
    let _ = events.send(BackupEvent::Started {
        udid: udid.clone(),
        device_name: run.facts.name.clone(),
        folder: folder.clone(),
        protected: run.snapshot.is_some(),
        asks_for_passcode: passcode,
    });
    let work = async {
        // The apps are Info.plist's; a phone that will not list them still
        // gets its backup.
        let apps = device::apps(addr, Some(&udid), APPS_DEADLINE)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the phone's apps could not be listed for Info.plist");
                Vec::new()
            });
        write_info_plist(&options.dest, &run.facts, &apps).map_err(io_at(&folder))?;
        attempts(addr, &udid, options, passcode, events).await
    };
    let result = tokio::select! {
        result = work => result,
        what = &mut stop => Err(EngineError::Interrupted(what)),
    };
    let snapshot = run.snapshot.take();
    match result {
        Ok((observed, restarts)) => {
            if let Some(s) = snapshot {
                s.discard().map_err(io_at(&folder))?;
            }
            Ok(BackupReport {
                udid,
                folder,
                files: observed.files,
                bytes: observed.bytes,
                restarts,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            if let Some(s) = snapshot
                && let Err(restore) = s.restore()
            {
                tracing::error!(error = %restore, "could not put the last complete backup back");
                return Err(EngineError::Io {
                    path: folder,
                    source: restore,
                });
            }
            Err(e)
        }
    }
}

/// A run that passed its checks and may write. Fields drop in order: the
/// snapshot is put back before the lock is released.
struct Prepared {
    /// The last complete backup, kept while the run writes.
    snapshot: Option<Snapshot>,
    _lock: BackupLock,
    folder: PathBuf,
    facts: device::DeviceFacts,
}

/// Everything before the first byte moves: the phone's facts, the lock, a
/// snapshot a killed run left put back, pre-flight, the new snapshot.
/// `known`: the phone's facts when the caller has just read them (a
/// restart reads them to find what is stuck), so they are not read twice.
async fn prepare(
    addr: &MuxAddress,
    options: &BackupOptions,
    known: Option<device::DeviceFacts>,
) -> Result<Prepared, EngineError> {
    let facts = match known {
        Some(facts) => facts,
        None => device::facts(addr, options.udid.as_deref(), options.deadline).await?,
    };
    let udid = facts.udid.clone();
    if !device::valid_udid(&udid) {
        return Err(EngineError::Refused(Refused {
            action: "be backed up as",
            path: udid.chars().take(200).collect(),
            why: "is not a UDID (hex digits and -)",
        }));
    }
    std::fs::create_dir_all(&options.dest).map_err(io_at(&options.dest))?;
    let folder = options.dest.join(&udid);
    let lock = match BackupLock::acquire(&options.dest, &udid).map_err(io_at(&options.dest))? {
        Ok(lock) => lock,
        Err(pid) => return Err(EngineError::Busy { pid }),
    };
    // A run that was killed left the last complete backup beside the folder.
    snapshot::recover(&folder).map_err(io_at(&folder))?;

    let existing = folder.exists().then(|| {
        backup_folder::read_backup(
            &folder,
            ReadOptions {
                now: jiff::Timestamp::now(),
                active_window: jiff::SignedDuration::from_mins(10),
            },
            &mut MeasureCache::in_memory(),
        )
    });
    let complete = existing
        .as_ref()
        .is_some_and(|b| b.state == BackupState::Complete);
    let leftover = |kind| {
        existing
            .as_ref()
            .is_some_and(|b| b.leftovers.iter().any(|l| l.kind == kind))
    };
    let inputs = preflight::Inputs {
        host_free: options
            .free_space_override
            .unwrap_or_else(|| free_space(&options.dest)),
        last_backup_bytes: existing
            .as_ref()
            .filter(|_| complete)
            .and_then(|b| b.size_bytes),
        phone_used: facts.storage.map(|s| s.used()),
        phone_free: facts.storage.map(|s| s.free),
        empty_manifest_plist: leftover(LeftoverKind::EmptyManifestPlist),
        stale_snapshot_folder: leftover(LeftoverKind::SnapshotFolder),
        other_backups: if options.check_other_programs {
            other_backups(&udid)
        } else {
            Vec::new()
        },
    };
    let problems = preflight::check(&inputs);
    if !problems.is_empty() {
        return Err(EngineError::Preflight { problems });
    }
    if existing.is_some() && !complete {
        // Part files of a run that was killed before it finished.
        snapshot::remove_part_files(&folder);
    }
    let snapshot = if complete {
        Some(Snapshot::take(&folder).map_err(io_at(&folder))?)
    } else {
        None
    };
    Ok(Prepared {
        snapshot,
        _lock: lock,
        folder,
        facts,
    })
}

/// Puts back, in every backup folder of `root`, the last complete backup
/// that an Unstuck backup killed mid-run left beside it, unless a run holds
/// that phone's lock now. Returns the folders put back, and the ones that
/// could not be, with why.
pub fn recover_stopped_runs(root: &Path) -> Vec<(PathBuf, Result<(), String>)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(udid) = name.strip_prefix(".unstuck-snapshot-") else {
            continue;
        };
        if !device::valid_udid(udid) {
            continue;
        }
        let folder = root.join(udid);
        // Holding the lock proves no run of this phone is writing here.
        let Ok(Ok(_lock)) = BackupLock::acquire(root, udid) else {
            continue;
        };
        match snapshot::recover(&folder) {
            Ok(true) => out.push((folder, Ok(()))),
            Ok(false) => {}
            Err(e) => out.push((folder, Err(e.to_string()))),
        }
    }
    out
}

/// The most the list of apps for Info.plist may take before a backup
/// (Finder and idevicebackup2 gather the same before theirs).
const APPS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes the folder's Info.plist the way every file of a backup is written:
/// through the phone's folder, to a part file renamed into place.
fn write_info_plist(
    dest: &Path,
    facts: &device::DeviceFacts,
    apps: &[device::AppRecord],
) -> std::io::Result<()> {
    let mut folder = PhoneFolder::new(dest, &facts.udid);
    let path = folder
        .resolve(&format!("{}/Info.plist", facts.udid), folder::Use::Write)
        .map_err(|r| std::io::Error::new(std::io::ErrorKind::InvalidInput, r.to_string()))?;
    let mut part = folder.create(&path)?;
    host::info_plist(facts, apps, jiff::Timestamp::now())
        .to_writer_xml(&mut part)
        .map_err(std::io::Error::other)?;
    part.commit()
}

/// How one attempt ended.
enum Attempt {
    Reply(Dictionary),
    Stalled(Stall),
    Failed(DeviceError),
    /// The phone named a path outside its folder: no new attempt.
    Refused(Refused),
    /// A file could not be written: no new attempt.
    Unwritable(PathBuf, std::io::Error),
}

async fn attempts(
    addr: &MuxAddress,
    udid: &str,
    options: &BackupOptions,
    passcode: bool,
    events: &mpsc::UnboundedSender<BackupEvent>,
) -> Result<(Observed, u32), EngineError> {
    let mut last_stall = None;
    for attempt in 0..=options.max_restarts {
        if attempt > 0 {
            let _ = events.send(BackupEvent::Restarting {
                attempt,
                of: options.max_restarts,
            });
            tokio::time::sleep(options.restart_backoff * attempt).await;
        }
        let (outcome, observed) = one_attempt(addr, udid, options, passcode, events).await;
        match outcome {
            Attempt::Reply(reply) => {
                phone_error(&reply)?;
                if !finished(&options.dest.join(udid)) {
                    return Err(EngineError::NotFinished);
                }
                return Ok((observed, attempt));
            }
            Attempt::Stalled(stall) => {
                let _ = events.send(BackupEvent::Stalled {
                    phase: stall.phase,
                    quiet_secs: stall.quiet.as_secs(),
                });
                last_stall = Some(stall.phase);
            }
            Attempt::Failed(DeviceError::Detached | DeviceError::NoDevice { .. }) => {
                let _ = events.send(BackupEvent::WaitingForPhone {
                    wait_secs: options.reattach_wait.as_secs(),
                });
                if !wait_for_phone(addr, udid, options).await {
                    return Err(DeviceError::NoDevice {
                        udid: Some(udid.to_owned()),
                    }
                    .into());
                }
            }
            Attempt::Failed(e) => return Err(e.into()),
            Attempt::Refused(r) => return Err(EngineError::Refused(r)),
            Attempt::Unwritable(path, source) => return Err(EngineError::Io { path, source }),
        }
    }
    Err(EngineError::Stalled {
        phase: last_stall.unwrap_or(Phase::Starting),
        attempts: options.max_restarts + 1,
    })
}

async fn one_attempt(
    addr: &MuxAddress,
    udid: &str,
    options: &BackupOptions,
    passcode: bool,
    events: &mpsc::UnboundedSender<BackupEvent>,
) -> (Attempt, Observed) {
    let observed = Observed::shared();
    let snapshot = |observed: &std::sync::Mutex<Observed>| lock(observed).clone();
    let mut link = match connect(addr, Some(udid), options.deadline).await {
        Ok((link, _)) => link,
        Err(e) => return (Attempt::Failed(e), snapshot(&observed)),
    };
    let mut body = Dictionary::new();
    body.insert("TargetIdentifier".into(), udid.into());
    body.insert("SourceIdentifier".into(), udid.into());
    if options.full {
        let mut o = Dictionary::new();
        o.insert("ForceFullBackup".into(), true.into());
        body.insert("Options".into(), Value::Dictionary(o));
    }
    if let Err(e) = link.request("Backup", body).await {
        return (
            Attempt::Failed(link_error(LinkError::Io(e))),
            snapshot(&observed),
        );
    }
    let mut folder = PhoneFolder::new(&options.dest, udid);
    let dest = options.dest.clone();
    let free = options.free_space_override;
    let mut dog = watchdog::Watchdog::new(options.stall, passcode, Instant::now());
    let run = link.serve(
        &mut folder,
        move || free.unwrap_or_else(|| free_space(&dest)),
        &observed,
    );
    tokio::pin!(run);
    let mut ticker = tokio::time::interval(options.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = &mut run => {
                let outcome = match result {
                    Ok(Some(reply)) => Attempt::Reply(reply),
                    // The phone hung up without a final answer.
                    Ok(None) => Attempt::Failed(DeviceError::Detached),
                    Err(LinkError::Refused(r)) => Attempt::Refused(r),
                    Err(LinkError::Write { path, source }) => Attempt::Unwritable(path, source),
                    Err(e) => Attempt::Failed(link_error(e)),
                };
                return (outcome, snapshot(&observed));
            }
            _ = ticker.tick() => {
                let now = snapshot(&observed);
                dog.progress(now.phase, now.last_progress);
                let _ = events.send(BackupEvent::Progress {
                    phase: dog.phase(),
                    bytes: now.bytes,
                    files: now.files,
                    percent: now.percent,
                });
                if let Some(stall) = dog.check(Instant::now()) {
                    return (Attempt::Stalled(stall), now);
                }
            }
        }
    }
}

/// Connects to mobilebackup2 and says hello, all under the deadline.
async fn connect(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<(Link<Box<dyn idevice::ReadWrite>>, String), DeviceError> {
    let (stream, udid) = device::mobilebackup2_stream(addr, udid, deadline).await?;
    let mut link = Link::new(stream);
    match tokio::time::timeout(deadline, link.handshake()).await {
        Ok(Ok(())) => Ok((link, udid)),
        Ok(Err(e)) => Err(link_error(e)),
        Err(_) => Err(DeviceError::Timeout {
            what: "the mobilebackup2 handshake",
            after: deadline,
        }),
    }
}

/// What a broken conversation means for the user: a connection that ended
/// is an unplug; anything else is the protocol's fault.
fn link_error(e: LinkError) -> DeviceError {
    match e {
        LinkError::Io(e) => device::translate(idevice::IdeviceError::Socket(e)),
        LinkError::Protocol(why) => DeviceError::Protocol(why),
        LinkError::Refused(r) => DeviceError::Protocol(r.to_string()),
        LinkError::Write { path, source } => DeviceError::Protocol(format!(
            "cannot write {}: {}",
            path.display(),
            crate::humanize::io_error(&source)
        )),
    }
}

/// Whether the folder's Status.plist says finished.
fn finished(folder: &Path) -> bool {
    backup_folder::plists::read_status(&folder.join("Status.plist"))
        .is_ok_and(|s| s.snapshot_state == Some(SnapshotState::Finished))
}

/// Waits for the phone to be attached again, up to `reattach_wait`.
async fn wait_for_phone(addr: &MuxAddress, udid: &str, options: &BackupOptions) -> bool {
    let until = Instant::now() + options.reattach_wait;
    loop {
        if let Ok(list) = device::list(addr, options.deadline).await
            && list.iter().any(|d| d.udid == udid)
        {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(options.tick.max(Duration::from_millis(200))).await;
    }
}

/// Sends ChangePassword and returns when the phone answers: `new` only turns
/// encryption on, `old` only turns it off, both change the password. The
/// phone checks the old password (error 207 when wrong). Passwords are
/// neither logged nor kept.
pub async fn change_password(
    addr: &MuxAddress,
    udid: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
    deadline: Duration,
) -> Result<(), EngineError> {
    let (mut link, target) = connect(addr, udid, deadline).await?;
    let mut body = Dictionary::new();
    body.insert("TargetIdentifier".into(), target.into());
    if let Some(old) = old {
        body.insert("OldPassword".into(), old.into());
    }
    if let Some(new) = new {
        body.insert("NewPassword".into(), new.into());
    }
    body.insert("MessageName".into(), "ChangePassword".into());
    let mut message = Value::Array(vec![
        "DLMessageProcessMessage".into(),
        Value::Dictionary(body),
    ]);
    // The frame and the message hold the passwords: both are wiped once sent.
    let frame = zeroize::Zeroizing::new(crate::wire::plist_frame(&message, true));
    wipe_strings(&mut message);
    link.send_frame(&frame)
        .await
        .map_err(|e| link_error(LinkError::Io(e)))?;
    drop(frame);
    loop {
        // The phone may take a while: it re-keys its backup settings.
        let (tag, reply) = tokio::time::timeout(deadline * 6, link.receive())
            .await
            .map_err(|_| DeviceError::Timeout {
                what: "ChangePassword",
                after: deadline * 6,
            })?
            .map_err(link_error)?;
        if tag != "DLMessageProcessMessage" {
            // Nothing else is expected; say so rather than leave it waiting.
            link.status(-1, Some("Operation not supported"), None)
                .await
                .map_err(|e| link_error(LinkError::Io(e)))?;
            continue;
        }
        let reply = reply
            .get(1)
            .and_then(Value::as_dictionary)
            .cloned()
            .unwrap_or_default();
        return phone_error(&reply);
    }
}

/// The phone's final answer: ErrorCode 0 (or none) is success; any other
/// code is its error, with the description it sent.
fn phone_error(reply: &Dictionary) -> Result<(), EngineError> {
    let code = reply
        .get("ErrorCode")
        .and_then(Value::as_unsigned_integer)
        .unwrap_or(0);
    match code {
        0 => Ok(()),
        code => Err(EngineError::Phone {
            code,
            description: reply
                .get("ErrorDescription")
                .and_then(Value::as_string)
                .map(str::to_owned),
        }),
    }
}

/// Overwrites every string in `value` with zeros before it is freed.
fn wipe_strings(value: &mut Value) {
    use zeroize::Zeroize;
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe_strings),
        Value::Dictionary(d) => {
            for (_, v) in d.iter_mut() {
                wipe_strings(v);
            }
        }
        _ => {}
    }
}
