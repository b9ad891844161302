//! Unstuck's backup engine against the simulated iPhone, over the real wire.

use std::path::Path;
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::mpsc;
use unstuck::backup_folder::BackupState;
use unstuck::device::{DeviceError, MuxAddress};
use unstuck::engine::{self, BackupEvent, BackupOptions, EngineError};
use unstuck::sim::{Sim, SimConfig, SimEvent, Stall};
use unstuck::stall::{Phase, StallThresholds};

use super::sim::{UDID, config};
use crate::util;

/// Options with short thresholds. Stalls here are real sockets going quiet,
/// so the watchdog's clock is real: 1 s thresholds keep the tests short and
/// stay well above a busy machine's hiccups (the scripted stalls last 3 s).
pub fn options(dest: &Path) -> BackupOptions {
    let mut o = BackupOptions::new(dest.to_path_buf());
    o.stall = StallThresholds {
        starting: SignedDuration::from_secs(1),
        passcode: SignedDuration::from_secs(1),
        copying: SignedDuration::from_secs(1),
        finishing: SignedDuration::from_secs(1),
    };
    o.tick = Duration::from_millis(50);
    o.restart_backoff = Duration::from_millis(50);
    o.reattach_wait = Duration::from_millis(800);
    o.max_restarts = 2;
    // Other tests run idevicebackup2 at the same time; the one test of this
    // check turns it back on.
    o.check_other_programs = false;
    o
}

fn addr(sim: &Sim) -> MuxAddress {
    MuxAddress::Tcp(sim.addr())
}

/// Runs a backup; `on_event` sees each event with the simulator, so a test
/// can change the phone's script when something happens.
pub async fn run(
    sim: &Sim,
    options: &BackupOptions,
    mut on_event: impl FnMut(&BackupEvent, &Sim),
) -> (Result<engine::BackupReport, EngineError>, Vec<BackupEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = addr(sim);
    let work = engine::backup(&addr, options, &tx);
    tokio::pin!(work);
    let mut seen = Vec::new();
    loop {
        tokio::select! {
            result = &mut work => {
                while let Ok(e) = rx.try_recv() {
                    seen.push(e);
                }
                return (result, seen);
            }
            Some(e) = rx.recv() => {
                on_event(&e, sim);
                seen.push(e);
            }
        }
    }
}

/// The folder holds the same files with the same bytes as `before`.
fn assert_unchanged(before: &util::Tree, folder: &Path) {
    let after = util::snapshot_tree(folder);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, was) in before {
        assert!(was.3 == after[path].3, "{} changed", path.display());
    }
}

fn content_of(folder: &Path, n: usize) -> Vec<u8> {
    let template = unstuck::synthetic::SyntheticBackup::new(UDID, jiff::Timestamp::now());
    let (domain, path) = template.file_name(n);
    let id = unstuck::synthetic::file_id(&domain, &path);
    std::fs::read(folder.join(&id[..2]).join(&id)).unwrap()
}

#[tokio::test]
async fn full_then_incremental() {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, events) = run(&sim, &options(dir.path()), |_, _| {}).await;
    let report = result.unwrap();
    assert_eq!(report.restarts, 0);
    // 40 content files, Status.plist twice, Manifest.db, Manifest.plist.
    assert_eq!(report.files, 44);
    assert!(matches!(
        &events[0],
        BackupEvent::Started {
            protected: false,
            ..
        }
    ));
    let folder = dir.path().join(UDID);
    let backup = util::read(&folder);
    assert_eq!(backup.state, BackupState::Complete);
    assert_eq!(backup.device_name.as_deref(), Some("Simulated iPhone"));
    assert_eq!(backup.file_count, Some(40));
    for n in [0, 17, 39] {
        assert!(content_of(&folder, n) == unstuck::synthetic::file_content(7, n as u64, 3000));
    }
    // Every date in Info.plist has whole seconds: readers built on Python's
    // plistlib reject fractions, and CoreFoundation wants the Z right after.
    let info = std::fs::read_to_string(folder.join("Info.plist")).unwrap();
    let dates: Vec<&str> = info
        .split("<date>")
        .skip(1)
        .filter_map(|d| d.split("</date>").next())
        .collect();
    assert!(!dates.is_empty(), "{info}");
    for d in dates {
        assert!(d.len() == 20 && d.ends_with('Z') && !d.contains('.'), "{d}");
    }
    // No part files, no lock, no snapshot left behind.
    let stray: Vec<_> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("unstuck"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    let (result, events) = run(&sim, &options(dir.path()), |_, _| {}).await;
    let report = result.unwrap();
    assert!(matches!(
        &events[0],
        BackupEvent::Started {
            protected: true,
            ..
        }
    ));
    assert_eq!(report.files, 5 + 4);
    assert_eq!(util::read(&folder).state, BackupState::Complete);
    // The changed files carry their new bytes; the others are untouched.
    assert!(content_of(&folder, 0) != unstuck::synthetic::file_content(7, 0, 3000));
    assert!(content_of(&folder, 39) == unstuck::synthetic::file_content(7, 39, 3000));
    assert!(!engine::snapshot::snapshot_path(&folder).exists());
}

/// A stall in `phase` is detected, the attempt restarted, and the backup
/// finishes; `fix` takes the fault away once the stall was seen.
async fn stall_then_recover(
    script: impl FnOnce(&mut SimConfig),
    fix: fn(&mut SimConfig),
    phase: Phase,
) {
    let mut c = config();
    script(&mut c);
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, events) = run(&sim, &options(dir.path()), |e, sim| {
        if matches!(e, BackupEvent::Stalled { .. }) {
            sim.update(fix);
        }
    })
    .await;
    let report = result.unwrap_or_else(|e| panic!("{e}\n{events:?}"));
    assert_eq!(report.restarts, 1);
    let stalled: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            BackupEvent::Stalled { phase, .. } => Some(*phase),
            _ => None,
        })
        .collect();
    assert_eq!(stalled, [phase]);
    assert_eq!(
        util::read(&dir.path().join(UDID)).state,
        BackupState::Complete
    );
}

#[tokio::test]
async fn stall_waiting_for_the_phone() {
    stall_then_recover(
        |c| c.first_message_delay = Duration::from_secs(3),
        |c| c.first_message_delay = Duration::ZERO,
        Phase::Starting,
    )
    .await;
}

#[tokio::test]
async fn stall_while_copying() {
    stall_then_recover(
        |c| {
            c.stall = Some(Stall {
                at_percent: 40.0,
                duration: Duration::from_secs(3),
            })
        },
        |c| c.stall = None,
        Phase::Copying,
    )
    .await;
}

#[tokio::test]
async fn stall_while_finishing() {
    stall_then_recover(
        |c| c.finish_delay = Duration::from_secs(3),
        |c| c.finish_delay = Duration::ZERO,
        Phase::Finishing,
    )
    .await;
}

#[tokio::test]
async fn a_stall_that_never_clears_gives_up_after_the_restarts() {
    let mut c = config();
    c.first_message_delay = Duration::from_secs(5);
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run(&sim, &options(dir.path()), |_, _| {}).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Stalled {
                phase: Phase::Starting,
                attempts: 3
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("waiting for the iPhone to start"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 5);
}

/// Makes a complete backup, then unplugs the phone at `percent` of the next
/// (full) run and never brings it back: the folder must be the previous
/// complete backup, byte for byte.
async fn unplug_keeps_the_last_backup(percent: f64) {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    run(&sim, &options(dir.path()), |_, _| {}).await.0.unwrap();
    let folder = dir.path().join(UDID);
    let before = util::snapshot_tree(&folder);

    sim.update(|c| c.unplug_at_percent = Some(percent));
    let mut o = options(dir.path());
    o.full = true;
    let (result, events) = run(&sim, &o, |_, _| {}).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, EngineError::Device(DeviceError::NoDevice { .. })),
        "{err}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, BackupEvent::WaitingForPhone { .. }))
    );
    assert!(
        sim.events()
            .iter()
            .any(|e| matches!(e, SimEvent::Unplugged { .. }))
    );

    assert_unchanged(&before, &folder);
    assert_eq!(util::read(&folder).state, BackupState::Complete);
    assert!(!engine::snapshot::snapshot_path(&folder).exists());
}

#[tokio::test]
async fn unplug_at_10_percent() {
    unplug_keeps_the_last_backup(10.0).await;
}

#[tokio::test]
async fn unplug_at_50_percent() {
    unplug_keeps_the_last_backup(50.0).await;
}

#[tokio::test]
async fn unplug_at_99_percent() {
    unplug_keeps_the_last_backup(99.0).await;
}

#[tokio::test]
async fn a_phone_that_comes_back_is_backed_up() {
    let mut c = config();
    c.unplug_at_percent = Some(50.0);
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run(&sim, &options(dir.path()), |e, sim| {
        if matches!(e, BackupEvent::WaitingForPhone { .. }) {
            sim.update(|c| c.unplug_at_percent = None);
            sim.attach();
        }
    })
    .await;
    let report = result.unwrap();
    assert_eq!(report.restarts, 1);
    assert_eq!(
        util::read(&dir.path().join(UDID)).state,
        BackupState::Complete
    );
}

#[tokio::test]
async fn every_error_code_has_its_message_and_exit_code() {
    for (code, expected, exit) in [
        (1, "unknown error", 11),
        (3, "bad state", 11),
        (102, "properties", 16),
        (105, "too little free space", 12),
        (205, "leftovers", 15),
        (207, "password", 13),
        (208, "passcode", 14),
        (211, "Find My", 17),
        (212, "setup", 17),
    ] {
        let mut c = config();
        c.final_error = Some((code, format!("MBErrorDomain/{code}")));
        let sim = Sim::start(c).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (result, _) = run(&sim, &options(dir.path()), |_, _| {}).await;
        let err = result.unwrap_err();
        assert!(
            matches!(err, EngineError::Phone { code: c, .. } if c == code),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains(expected), "{code}: {text}");
        assert!(text.contains(&format!("MBErrorDomain/{code}")), "{text}");
        assert_eq!(err.exit_code(), exit, "{code}");
    }
}

#[tokio::test]
async fn host_disk_full_is_refused_before_the_transfer() {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.free_space_override = Some(10_000_000);
    let (result, _) = run(&sim, &o, |_, _| {}).await;
    let err = result.unwrap_err();
    assert!(matches!(err, EngineError::Preflight { .. }), "{err}");
    assert!(err.to_string().contains("--dest"), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert!(
        !sim.events()
            .iter()
            .any(|e| matches!(e, SimEvent::BackupStarted { .. }))
    );
    assert!(!dir.path().join(UDID).exists());
}

#[tokio::test]
async fn the_phone_saying_the_host_is_full_is_error_105() {
    let mut c = config();
    c.claimed_backup_bytes = Some(1 << 50);
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run(&sim, &options(dir.path()), |_, _| {}).await;
    let err = result.unwrap_err();
    assert!(matches!(err, EngineError::Phone { code: 105, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("backup disk has too little free space for this backup"),
        "{err}"
    );
    // Sizes in words, not a 16-digit count of bytes.
    assert!(!err.to_string().contains("1125899906842624"), "{err}");
}

#[tokio::test]
async fn leftovers_that_make_the_phone_fail_are_refused() {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut leftover = unstuck::synthetic::SyntheticBackup::new(UDID, util::days_ago(3));
    leftover.finish = unstuck::synthetic::Finish::EmptyManifestPlist;
    leftover.write(dir.path()).unwrap();
    let (result, _) = run(&sim, &options(dir.path()), |_, _| {}).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("error 205"), "{err}");
}

#[tokio::test]
async fn a_second_backup_of_the_same_phone_is_refused() {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A lock held by a running backup (here, this process holds it).
    let held = engine::BackupLock::acquire(dir.path(), UDID)
        .unwrap()
        .unwrap();
    let (result, _) = run(&sim, &options(dir.path()), |_, _| {}).await;
    let me = std::process::id();
    assert!(matches!(result.unwrap_err(), EngineError::Busy { pid } if pid == me));
    drop(held);
    // A lock file that no one holds was left by a run that was killed,
    // whatever it names (an old lock's bare PID of a live process, this
    // version's record of a live process, a process that is gone): taken
    // over.
    let lock = dir.path().join(format!(".unstuck-{UDID}.lock"));
    let parent = std::os::unix::process::parent_id();
    let live = unstuck::process::look(parent).unwrap();
    for text in [
        parent.to_string(),
        serde_json::to_string(&live).unwrap(),
        "999999999".to_owned(),
    ] {
        std::fs::write(&lock, text).unwrap();
        run(&sim, &options(dir.path()), |_, _| {}).await.0.unwrap();
        assert!(!lock.exists());
    }
}

/// A real idevicebackup2 process backing up the same phone (held at the
/// phone's first message) makes Unstuck refuse to start.
// The lock keeps other tests' backup programs out for the whole test; this
// test's runtime has one thread, so holding it across awaits blocks nothing.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn a_running_idevicebackup2_is_refused() {
    if std::process::Command::new("idevicebackup2")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED a_running_idevicebackup2_is_refused: idevicebackup2 is not installed");
        return;
    }
    let _programs = util::backup_programs_lock();
    let mut c = config();
    c.first_message_delay = Duration::from_secs(30);
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut other = tokio::process::Command::new("idevicebackup2")
        .args(["-u", UDID, "backup"])
        .arg(dir.path())
        .env("USBMUXD_SOCKET_ADDRESS", sim.usbmuxd_address())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait until it has asked the phone for a backup.
    for _ in 0..100 {
        if sim
            .events()
            .iter()
            .any(|e| matches!(e, SimEvent::BackupStarted { .. }))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut o = options(dir.path());
    o.check_other_programs = true;
    let (result, _) = run(&sim, &o, |_, _| {}).await;
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("idevicebackup2, process"), "{text}");
    // Its threads are not more programs (they have PIDs of their own).
    assert_eq!(text.matches("idevicebackup2, process").count(), 1, "{text}");
    other.kill().await.unwrap();
}

#[tokio::test]
async fn encryption_with_right_and_wrong_passwords() {
    let sim = Sim::start(config()).await.unwrap();
    let a = addr(&sim);
    let d = unstuck::device::DEADLINE;
    engine::change_password(&a, None, None, Some("first"), d)
        .await
        .unwrap();
    assert!(sim.config().will_encrypt);
    let err = engine::change_password(&a, None, Some("wrong"), Some("x"), d)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Phone { code: 207, .. }), "{err}");
    assert!(err.to_string().contains("password is not correct"), "{err}");
    engine::change_password(&a, None, Some("first"), Some("second"), d)
        .await
        .unwrap();
    assert_eq!(sim.config().password.as_deref(), Some("second"));
    engine::change_password(&a, None, Some("second"), None, d)
        .await
        .unwrap();
    assert!(!sim.config().will_encrypt);
}

#[test]
fn the_backup_and_encryption_commands() {
    let _programs = util::backup_programs_lock();
    let (_runtime, sim) = crate::util::sim_on_runtime(config());
    let home = util::Home::new();
    let dest = tempfile::tempdir().unwrap();
    let usbmuxd = sim.usbmuxd_address();
    let run = |args: &[&str], stdin: &str| home.run_with_input(&usbmuxd, args, stdin);
    let d = dest.path().to_str().unwrap();
    let out = run(&["backup", "--dest", d], "");
    out.success();
    assert!(
        out.stdout().contains("Backup complete: 44 files"),
        "{}",
        out.stdout()
    );
    assert_eq!(
        util::read(&dest.path().join(UDID)).state,
        BackupState::Complete
    );

    let json = run(&["backup", "--dest", d, "--json"], "");
    json.success();
    let last = json.stdout().lines().last().unwrap().to_owned();
    let last: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["report"]["files"], 9);

    // Not encrypted yet: there is no password to turn off or change, and no
    // word of resetting the phone's settings.
    for action in ["off", "change"] {
        let none = run(&["encryption", action, "--password-stdin"], "x\ny\n");
        assert_eq!(none.code(), Some(1), "{}", none.stderr());
        assert!(
            none.stderr().contains("are not encrypted"),
            "{}",
            none.stderr()
        );
        assert!(
            !none.stderr().contains("Reset All Settings"),
            "{}",
            none.stderr()
        );
    }
    let on = run(&["encryption", "on", "--password-stdin"], "secret\n");
    on.success();
    assert!(sim.config().will_encrypt);
    let wrong = run(&["encryption", "off", "--password-stdin"], "nope\n");
    assert_eq!(wrong.code(), Some(13));
    assert!(
        wrong.stderr().contains("Reset All Settings"),
        "{}",
        wrong.stderr()
    );
    let status = run(&["encryption", "status"], "");
    assert!(
        status.stdout().contains("are encrypted"),
        "{}",
        status.stdout()
    );
    // The password appears in no log.
    let log =
        std::fs::read_to_string(home.path().join("data/unstuck/unstuck.log")).unwrap_or_default();
    assert!(!log.contains("secret"));

    let refused = run(&["backup", "--dest", "/proc/unwritable"], "");
    assert_eq!(refused.code(), Some(7), "{}", refused.stderr());
    // A file where the backup folder should be: exit 7, and the fix.
    let file = dest.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let refused = run(&["backup", "--dest", file.to_str().unwrap()], "");
    assert_eq!(refused.code(), Some(7), "{}", refused.stderr());
    assert!(
        refused
            .stderr()
            .contains("choose a folder (`unstuck backup --dest DIR`)"),
        "{}",
        refused.stderr()
    );
}

/// A small tmpfs, unmounted when dropped; `None` where this process may not
/// mount (not root, or no mount namespace to do it in).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// The backup disk fills up in the middle of the transfer: the engine stops
/// at the first file it cannot write, names the disk (not the phone), exits
/// 7, and the last complete backup is back byte for byte.
#[tokio::test]
async fn a_disk_that_fills_mid_backup_stops_it_and_keeps_the_last_one() {
    let Some(disk) = SmallDisk::mount(600) else {
        eprintln!("skipped: cannot mount a small tmpfs here (CI runs as root and can)");
        return;
    };
    let sim = Sim::start(config()).await.unwrap();
    let mut o = options(disk.dir.path());
    // Pre-flight wants room for the phone's whole used space plus a margin;
    // this test is about a disk that fills after it.
    o.free_space_override = Some(10_000_000_000);
    run(&sim, &o, |_, _| {}).await.0.unwrap();
    let folder = disk.dir.path().join(UDID);
    let before = util::snapshot_tree(&folder);

    // Four times the content, all of it new: more than the disk holds. The
    // phone is told there is room, as a disk that fills up from elsewhere
    // would have said a moment before.
    sim.update(|c| {
        c.content.files = 160;
        c.content.changed_files = 160;
    });
    o.full = true;
    let (result, _) = run(&sim, &o, |_, _| {}).await;
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 7, "{err}");
    assert!(err.to_string().contains("backup disk is full"), "{err}");

    assert_unchanged(&before, &folder);
    assert_eq!(util::read(&folder).state, BackupState::Complete);
    assert!(!engine::snapshot::snapshot_path(&folder).exists());
}

/// The tray's Quit drops a running backup's future: the last complete
/// backup is put back then, and the lock released, as on a signal.
#[tokio::test]
async fn a_backup_dropped_mid_run_puts_the_last_one_back() {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path());
    run(&sim, &o, |_, _| {}).await.0.unwrap();
    let folder = dir.path().join(UDID);
    let before = util::snapshot_tree(&folder);

    sim.update(|c| {
        c.content.changed_files = c.content.files;
        c.stall = Some(Stall {
            at_percent: 50.0,
            duration: Duration::from_secs(60),
        });
    });
    let mut o = o;
    o.stall.copying = SignedDuration::from_secs(60);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = addr(&sim);
    {
        let work = engine::backup(&addr, &o, &tx);
        tokio::pin!(work);
        // Until the transfer is under way and has written into the folder.
        loop {
            tokio::select! {
                _ = &mut work => panic!("the backup ended by itself"),
                Some(e) = rx.recv() => if matches!(e, BackupEvent::Progress { files, .. } if files > 0) { break },
            }
        }
        assert!(engine::snapshot::snapshot_path(&folder).exists());
    }
    assert_unchanged(&before, &folder);
    assert!(!engine::snapshot::snapshot_path(&folder).exists());
    assert!(engine::lock_holder(dir.path(), UDID).is_none());
    // The lock file itself is gone, so the next run starts at once.
    assert!(!dir.path().join(format!(".unstuck-{UDID}.lock")).exists());
}

/// A phone with almost no free space cannot make the snapshot a backup
/// needs: refused before anything is written, with the fix.
#[tokio::test]
async fn a_phone_short_of_space_is_refused_before_the_transfer() {
    let mut c = config();
    c.disk_free = 100_000_000;
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run(&sim, &options(dir.path()), |_, _| {}).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, EngineError::Preflight { problems } if problems.iter().any(|p| matches!(p, engine::preflight::Problem::PhoneSpace { .. }))),
        "{err}"
    );
    assert_eq!(err.exit_code(), 3);
    assert!(!dir.path().join(UDID).exists());
}

/// What the tray does first when it starts: the copy a killed run left is
/// put back, unless a run of that phone holds the lock now.
#[tokio::test]
async fn a_stopped_runs_copy_is_put_back_unless_a_run_holds_the_lock() {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    run(&sim, &options(dir.path()), |_, _| {}).await.0.unwrap();
    let folder = dir.path().join(UDID);
    let before = util::snapshot_tree(&folder);
    // A run killed after it took its snapshot and wrote into the folder.
    std::mem::forget(engine::snapshot::Snapshot::take(&folder).unwrap());
    std::fs::write(folder.join("Status.plist.new"), b"half").unwrap();
    std::fs::rename(folder.join("Status.plist.new"), folder.join("Status.plist")).unwrap();

    let held = engine::BackupLock::acquire(dir.path(), UDID)
        .unwrap()
        .unwrap();
    assert!(engine::recover_stopped_runs(dir.path()).is_empty());
    drop(held);

    let recovered = engine::recover_stopped_runs(dir.path());
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(recovered[0].1.is_ok(), "{recovered:?}");
    assert_unchanged(&before, &folder);
    assert!(!engine::snapshot::snapshot_path(&folder).exists());
    assert!(!dir.path().join(format!(".unstuck-{UDID}.lock")).exists());
}

/// iOS 16.1 and later wait for the passcode before a backup: `unstuck
/// backup` says so at once, and a wait that runs out is error 208 (exit 14).
#[test]
fn the_passcode_wait_is_announced() {
    let _programs = util::backup_programs_lock();
    let mut c = config();
    c.passcode_wait = Some(Duration::from_secs(1));
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = util::Home::new();
    let dest = tempfile::tempdir().unwrap();
    let run = home.run_on(
        &sim.usbmuxd_address(),
        &["backup", "--dest", dest.path().to_str().unwrap()],
    );
    assert_eq!(run.code(), Some(14), "{}{}", run.stdout(), run.stderr());
    // Progress goes to standard error, as the rest of the run's story.
    assert!(
        run.stderr()
            .contains("Enter the passcode on the iPhone now"),
        "{}",
        run.stderr()
    );
}
