//! Stopping `unstuck backup` from outside: Ctrl-C, SIGTERM and SIGHUP in
//! each phase put the last complete backup back byte for byte, release the
//! lock and exit with code 8 within seconds; after SIGKILL the next run puts
//! it back before anything else. No `.unstuck-*` is left by any run that ends.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use unstuck::backup_folder::BackupState;
use unstuck::sim::{SimConfig, Stall};

use super::sim::{UDID, config};
use crate::util::{self, Home, KillOnDrop};

/// The phases a signal is sent in, each with the phone's script that holds
/// the backup there for a while (long enough that only the signal ends it).
fn hold_in(phase: &str) -> impl FnOnce(&mut SimConfig) {
    let phase = phase.to_owned();
    move |c: &mut SimConfig| {
        let long = Duration::from_secs(60);
        match phase.as_str() {
            "waiting_for_phone" => c.first_message_delay = long,
            "transferring" => {
                c.stall = Some(Stall {
                    at_percent: 50.0,
                    duration: long,
                })
            }
            "finishing" => c.finish_delay = long,
            other => panic!("{other}"),
        }
    }
}

/// `unstuck backup --json` running, and its output lines as they come.
struct Running {
    child: KillOnDrop,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Running {
    fn start(home: &Home, usbmuxd: &str, dest: &Path) -> Running {
        let mut child: Child = home
            .command(&["backup", "--json", "--dest", dest.to_str().unwrap()])
            .env("USBMUXD_SOCKET_ADDRESS", usbmuxd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Running {
            child: KillOnDrop(child),
            lines,
        }
    }

    /// Waits (30 s at most: a loaded machine) until the engine reports `phase`.
    fn wait_for_phase(&self, phase: &str) {
        let until = Instant::now() + Duration::from_secs(30);
        while let Ok(line) = self
            .lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            if line["event"] == "progress" && line["phase"] == phase {
                // One more tick: the phase is reached, not just begun.
                std::thread::sleep(Duration::from_millis(300));
                return;
            }
        }
        panic!("the backup never reached {phase}");
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the child this test started and has not reaped.
        let r = unsafe { libc::kill(self.child.0.id() as i32, signal) };
        assert_eq!(r, 0);
    }

    /// The exit code, waiting `limit` at most.
    fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < until, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Files and their bytes under `folder`.
fn contents(folder: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    util::snapshot_tree(folder)
        .into_iter()
        .filter(|(_, (dir, ..))| !dir)
        .map(|(p, (.., bytes))| (p, bytes))
        .collect()
}

fn unstuck_leftovers(dest: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dest)
        .into_iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".unstuck-") || n.contains("unstuck-part"))
        .collect()
}

/// A simulated phone backed up once with the real binary, and what its
/// folder held then.
struct Scene {
    _runtime: tokio::runtime::Runtime,
    sim: unstuck::sim::Sim,
    home: Home,
    dest: tempfile::TempDir,
    folder: PathBuf,
    before: Vec<(PathBuf, Vec<u8>)>,
}

impl Scene {
    fn backed_up_once() -> Scene {
        let (runtime, sim) = util::sim_on_runtime(config());
        let home = Home::new();
        let dest = tempfile::tempdir().unwrap();
        let d = dest.path().to_str().unwrap();
        home.run_on(&sim.usbmuxd_address(), &["backup", "--dest", d])
            .success();
        let folder = dest.path().join(UDID);
        let before = contents(&folder);
        Scene {
            _runtime: runtime,
            sim,
            home,
            dest,
            folder,
            before,
        }
    }
}

#[test]
fn a_signal_in_any_phase_puts_the_last_backup_back() {
    let _programs = util::backup_programs_lock();
    let Scene {
        _runtime,
        sim,
        home,
        dest,
        folder,
        before,
    } = Scene::backed_up_once();
    let d = dest.path().to_str().unwrap();

    for phase in ["waiting_for_phone", "transferring", "finishing"] {
        for (signal, name) in [
            (libc::SIGINT, "SIGINT"),
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGHUP, "SIGHUP"),
        ] {
            let healthy = config();
            sim.update(|c| {
                *c = healthy.clone();
                // A full backup: every file is written again.
                c.content.changed_files = c.content.files;
            });
            sim.update(hold_in(phase));
            let mut run = Running::start(&home, &sim.usbmuxd_address(), dest.path());
            run.wait_for_phase(phase);
            let sent = Instant::now();
            run.signal(signal);
            let code = run.exit_within(Duration::from_secs(10));
            assert_eq!(code, Some(8), "{name} while {phase}");
            assert!(sent.elapsed() < Duration::from_secs(10));
            assert_eq!(contents(&folder), before, "{name} while {phase}");
            assert!(
                unstuck_leftovers(dest.path()).is_empty(),
                "{name} while {phase}: {:?}",
                unstuck_leftovers(dest.path())
            );
            let status = home.status_json(d);
            let row = util::backup_named(&status, UDID);
            assert_eq!(row["state"], "complete", "{name} while {phase}: {row}");
        }
    }
}

#[test]
fn after_sigkill_the_next_run_puts_the_last_backup_back_first() {
    let _programs = util::backup_programs_lock();
    let Scene {
        _runtime,
        sim,
        home,
        dest,
        folder,
        before,
    } = Scene::backed_up_once();
    let d = dest.path().to_str().unwrap();

    sim.update(|c| c.content.changed_files = c.content.files);
    sim.update(hold_in("transferring"));
    let mut run = Running::start(&home, &sim.usbmuxd_address(), dest.path());
    run.wait_for_phase("transferring");
    run.signal(libc::SIGKILL);
    run.exit_within(Duration::from_secs(10));
    assert!(unstuck::engine::snapshot::snapshot_path(&folder).exists());

    // status still knows when the last complete backup was, and says where
    // it is kept.
    let status = home.status_json(d);
    let row = util::backup_named(&status, UDID);
    assert!(row["last_complete"].is_string(), "{row}");
    assert!(
        row["kept_by_unstuck"]
            .as_str()
            .is_some_and(|p| p.contains(".unstuck-snapshot-")),
        "{row}"
    );
    let table = home.run(&["status", "--backup-root", d]);
    assert!(
        table.stdout().contains("puts it back first"),
        "{}",
        table.stdout()
    );

    // The next run finds the snapshot and puts it back before it starts; a
    // run that fails at once then leaves the folder as it was.
    sim.update(|c| {
        c.stall = None;
        c.final_error = Some((1, "the phone gave up".into()));
    });
    let failed = home.run_on(&sim.usbmuxd_address(), &["backup", "--dest", d]);
    assert_eq!(failed.code(), Some(11), "{}", failed.stderr());
    assert_eq!(contents(&folder), before);
    assert!(
        unstuck_leftovers(dest.path()).is_empty(),
        "{:?}",
        unstuck_leftovers(dest.path())
    );

    sim.update(|c| c.final_error = None);
    home.run_on(&sim.usbmuxd_address(), &["backup", "--dest", d])
        .success();
    assert!(
        unstuck_leftovers(dest.path()).is_empty(),
        "{:?}",
        unstuck_leftovers(dest.path())
    );
    assert_eq!(util::read(&folder).state, BackupState::Complete);
}
