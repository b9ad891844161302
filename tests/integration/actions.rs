//! The one-click fixes against the simulated iPhone and synthetic backups.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use unstuck::actions::{Confirm, restart};
use unstuck::backup_folder::BackupState;
use unstuck::device::MuxAddress;
use unstuck::engine::BackupOptions;
use unstuck::sim::SimEvent;

use super::sim::{UDID, config};
use crate::util::{self, Home};

/// Answers from a fixed list, in order, then no; records what was asked.
#[derive(Debug, Default)]
struct Scripted {
    answers: Vec<bool>,
    asked: Vec<String>,
}

impl Scripted {
    fn new(answers: &[bool]) -> Scripted {
        Scripted {
            answers: answers.to_vec(),
            asked: Vec::new(),
        }
    }
}

impl Confirm for Scripted {
    fn confirm(&mut self, question: &str) -> bool {
        self.asked.push(question.to_owned());
        if self.answers.is_empty() {
            false
        } else {
            self.answers.remove(0)
        }
    }
}

/// A stuck idevicebackup2 (a real process, held by a phone that never sends
/// its first message) is stopped only after a yes; then Unstuck backs up.
#[test]
fn restart_stops_a_stuck_program_only_when_told() {
    if Command::new("idevicebackup2")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED restart_stops_a_stuck_program_only_when_told: idevicebackup2 is not installed"
        );
        return;
    }
    let _programs = util::backup_programs_lock();
    let mut c = config();
    c.first_message_delay = Duration::from_secs(3600);
    let (runtime, sim) = crate::util::sim_on_runtime(c);
    let dir = tempfile::tempdir().unwrap();
    let mut stuck = Command::new("idevicebackup2")
        .args(["backup", "--full"])
        .arg(dir.path())
        .env("USBMUXD_SOCKET_ADDRESS", sim.usbmuxd_address())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let asked =
        |e: &SimEvent| matches!(e, SimEvent::ServiceStarted(s) if s == "com.apple.mobilebackup2");
    while !sim.events().iter().any(asked) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "idevicebackup2 never asked for a backup"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr = MuxAddress::Tcp(sim.addr());
    let mut options = BackupOptions::new(dir.path().to_path_buf());
    options.restart_backoff = Duration::from_millis(10);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();

    let patience = jiff::SignedDuration::from_mins(10);
    let mut no = Scripted::new(&[false]);
    let refused = runtime.block_on(restart::restart(
        &addr, &options, patience, None, &mut no, &tx,
    ));
    assert!(
        matches!(refused, Err(restart::RestartError::Declined)),
        "{refused:?}"
    );
    // It names no phone, but it is the only backup program and the only
    // phone; it has not been quiet long enough to be called stuck.
    assert!(
        no.asked[0].contains("idevicebackup2 (process")
            && no.asked[0].contains("not sure it should be stopped"),
        "{:?}",
        no.asked
    );
    assert!(stuck.try_wait().unwrap().is_none(), "stopped without a yes");

    // The phone is ready now; a yes stops the program and backs up.
    sim.update(|c| c.first_message_delay = Duration::ZERO);
    let mut yes = Scripted::new(&[true, true, true]);
    let Ok(restart::Restarted::Backup(report)) = runtime.block_on(restart::restart(
        &addr, &options, patience, None, &mut yes, &tx,
    )) else {
        panic!("no backup after a yes")
    };
    assert_eq!(report.udid, UDID);
    assert!(
        stuck.try_wait().unwrap().is_some(),
        "still running after a yes"
    );
    assert_eq!(
        util::read(&dir.path().join(UDID)).state,
        BackupState::Complete
    );
}

#[test]
fn restart_the_iphone_after_a_yes() {
    let mut c = config();
    c.reboot_time = Duration::from_millis(300);
    let (runtime, sim) = crate::util::sim_on_runtime(c);
    let addr = MuxAddress::Tcp(sim.addr());
    let mut no = Scripted::new(&[false]);
    assert!(
        runtime
            .block_on(restart::restart_phone(&addr, None, &mut no))
            .is_err()
    );
    assert!(!sim.events().contains(&SimEvent::Rebooted));
    let mut yes = Scripted::new(&[true]);
    runtime
        .block_on(restart::restart_phone(&addr, None, &mut yes))
        .unwrap();
    // It goes away and comes back (a real wait: the simulated restart
    // takes 300 ms).
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = sim.events();
        if events.contains(&SimEvent::Rebooted)
            && events.iter().filter(|e| **e == SimEvent::Attached).count() == 2
        {
            break;
        }
        assert!(std::time::Instant::now() < until, "{events:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_wifi_sync_switch_from_the_command_line() {
    let (_runtime, sim) = crate::util::sim_on_runtime(config());
    let home = Home::new();
    let out = home.run_on(
        &sim.usbmuxd_address(),
        &["fix", "network", "--wifi-sync", "on", "--yes"],
    );
    out.success();
    assert!(sim.config().wifi_sync);
    assert!(out.stdout().contains("1. "), "{}", out.stdout());
    assert!(
        out.stdout().contains("Wi-Fi sync is now on"),
        "{}",
        out.stdout()
    );
}

/// The id at the start of the line of `text` that contains `needle`.
fn id_of_line(text: &str, needle: &str) -> String {
    text.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no line with {needle:?} in {text}"))
        .to_owned()
}

/// Clean-up goes to the trash (XDG_DATA_HOME points into a temporary home)
/// and the newest complete backup needs the second, explicit yes. Items are
/// named by an id that does not change when the list does.
#[test]
fn storage_cleanup_moves_to_the_trash_and_guards_the_newest_backup() {
    let home = Home::new();
    let root = home.path().join("Backups");
    let mut newest = unstuck::synthetic::SyntheticBackup::new(UDID, util::days_ago(1));
    newest.files = 30;
    let folder = newest.write(&root).unwrap();
    let mut broken =
        unstuck::synthetic::SyntheticBackup::new("00008030-0016354E1A2B3C4D", util::days_ago(2));
    broken.finish = unstuck::synthetic::Finish::EmptyManifestPlist;
    broken.files = 2;
    let broken_folder = broken.write(&root).unwrap();
    let r = root.to_str().unwrap();

    let list = home.run(&["fix", "storage", "--backup-root", r]);
    list.success();
    let text = list.stdout();
    assert!(
        text.contains("the newest complete backup of this phone"),
        "{text}"
    );
    let newest_id = id_of_line(&text, "the newest complete backup");
    let empty_id = id_of_line(&text, "empty Manifest.plist:");
    assert_eq!(newest_id, unstuck::actions::storage::id_of(&folder));

    // A position is not a name.
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        "1",
        "--yes",
    ]);
    assert!(
        !out.stderr().is_empty() && out.code() != Some(0),
        "{}",
        out.stdout()
    );
    assert!(folder.exists() && broken_folder.join("Manifest.plist").exists());

    // --yes answers the first question only: the newest backup stays.
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &newest_id,
        "--yes",
    ]);
    out.success();
    assert!(folder.exists(), "{}{}", out.stdout(), out.stderr());
    assert!(
        out.stderr()
            .contains("newest complete backup of Test iPhone"),
        "{}",
        out.stderr()
    );

    // The leftover goes to the trash with one yes, named by its path.
    let manifest = broken_folder.join("Manifest.plist");
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        manifest.to_str().unwrap(),
        "--yes",
    ]);
    out.success();
    assert!(!manifest.exists(), "{}{}", out.stdout(), out.stderr());
    let trashed = home.path().join("data/Trash/files/Manifest.plist");
    assert!(trashed.exists(), "not in the trash: {}", out.stdout());
    assert!(broken_folder.exists(), "only the leftover moves");

    // The list changed; the id still names the same backup. With the
    // second, explicit yes it moves too — to the trash.
    let text = home.run(&["fix", "storage", "--backup-root", r]).stdout();
    assert!(!text.contains(&empty_id), "{text}");
    assert_eq!(id_of_line(&text, "the newest complete backup"), newest_id);
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &newest_id,
        "--yes",
        "--yes-newest",
    ]);
    out.success();
    assert!(!folder.exists());
    assert!(home.path().join("data/Trash/files").join(UDID).exists());
    assert!(out.stdout().contains("Freed"), "{}", out.stdout());
}

/// A finished backup with a stray, empty Snapshot/ holds the phone's newest
/// data: `--yes` alone does not move it.
#[test]
fn a_finished_backup_with_a_stray_snapshot_needs_the_second_yes() {
    let home = Home::new();
    let root = home.path().join("Backups");
    let mut b = unstuck::synthetic::SyntheticBackup::new(UDID, util::days_ago(1));
    b.files = 5;
    let folder = b.write(&root).unwrap();
    std::fs::create_dir(folder.join("Snapshot")).unwrap();
    let r = root.to_str().unwrap();

    let text = home.run(&["fix", "storage", "--backup-root", r]).stdout();
    let id = id_of_line(&text, "a finished backup with a leftover Snapshot/ folder");
    assert!(!text.contains("never finished"), "{text}");
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &id,
        "--yes",
    ]);
    out.success();
    assert!(folder.join("Info.plist").exists(), "{}", out.stdout());
    assert!(
        out.stderr().contains("may hold the newest copy"),
        "{}",
        out.stderr()
    );
    assert!(!out.stdout().contains("Freed"), "{}", out.stdout());

    // Only the Snapshot/ inside it is a one-yes leftover.
    let snapshot_id = id_of_line(&text, "a Snapshot/ folder left inside a finished backup");
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &snapshot_id,
        "--yes",
    ]);
    out.success();
    assert!(!folder.join("Snapshot").exists());
    assert!(folder.join("Info.plist").exists());
}

/// What the tray's one click moves, over every kind of folder there is:
/// never a backup folder, nor anything that holds one.
#[test]
fn the_one_click_leftovers_are_never_a_backup_folder() {
    use unstuck::actions::storage;
    use unstuck::synthetic::{Finish, SyntheticBackup};
    let root = tempfile::tempdir().unwrap();
    let write = |udid: &str, days: i64, finish: Option<Finish>| {
        let mut b = SyntheticBackup::new(udid, util::days_ago(days));
        b.files = 3;
        if let Some(f) = finish {
            b.finish = f;
        }
        b.write(root.path()).unwrap()
    };
    let folders = [
        write(UDID, 1, None),
        write(
            "00008030-0016354E1A2B3C4D",
            2,
            Some(Finish::EmptyManifestPlist),
        ),
        write("00008101-000A1B2C3D4E5F60", 3, Some(Finish::Uploading)),
        write("3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a", 400, None),
    ];
    std::fs::create_dir(folders[0].join("Snapshot")).unwrap();
    for name in [
        format!(".unstuck-snapshot-{UDID}"),
        format!(".unstuck-failed-{UDID}"),
    ] {
        std::fs::create_dir(root.path().join(name)).unwrap();
    }
    let items = storage::survey(
        &[root.path().to_path_buf()],
        jiff::Timestamp::now(),
        jiff::SignedDuration::from_hours(24 * 180),
    );
    let one_click = storage::leftovers(&items);
    assert!(!one_click.is_empty(), "{items:?}");
    for item in &one_click {
        assert!(
            !folders.contains(&item.path)
                && !item.path.ends_with(format!(".unstuck-snapshot-{UDID}")),
            "{item:?} is a backup"
        );
        assert!(!item.newest, "{item:?}");
    }
    // Every folder is listed, as a backup that needs the second yes (each is
    // its phone's only copy), the interrupted one too.
    for folder in &folders {
        let item = items.iter().find(|i| i.path == *folder);
        assert!(item.is_some_and(|i| i.newest), "{folder:?}: {items:?}");
    }

    // The list was shown; then a backup of that phone started. The click
    // moves nothing the running backup uses.
    let snapshot = folders[0].join("Snapshot");
    let shown: Vec<_> = one_click
        .iter()
        .filter(|i| i.path == snapshot)
        .cloned()
        .collect();
    assert_eq!(shown.len(), 1, "{one_click:?}");
    let running = unstuck::engine::BackupLock::acquire(root.path(), UDID)
        .unwrap()
        .unwrap();
    let (freed, errors) = storage::move_leftovers(&shown, &[root.path().to_path_buf()]);
    assert_eq!((freed, errors.len()), (0, 0));
    assert!(snapshot.exists());
    drop(running);
}

/// A lock naming `child`, as `unstuck backup` writes it, with its start
/// time moved by `shift` seconds (0: the child itself).
fn lock_naming(dest: &std::path::Path, child: &std::process::Child, shift: i64) -> PathBuf {
    let mut identity = unstuck::process::look(child.id()).expect("the child runs");
    identity.start = identity.start.saturating_add_signed(shift);
    let lock = dest.join(format!(".unstuck-{UDID}.lock"));
    std::fs::write(&lock, serde_json::to_string(&identity).unwrap()).unwrap();
    lock
}

/// The hard-link copy of a running Unstuck backup is not offered while the
/// process holding the lock lives, and is once it is gone.
#[test]
fn a_live_runs_snapshot_is_not_offered() {
    let home = Home::new();
    let root = home.path().join("Backups");
    let folder = unstuck::synthetic::SyntheticBackup::new(UDID, util::days_ago(1))
        .write(&root)
        .unwrap();
    let copy = root.join(format!(".unstuck-snapshot-{UDID}"));
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("Info.plist"), b"x").unwrap();
    // The run's lock, held by this process as a running backup holds it.
    let held = unstuck::engine::BackupLock::acquire(&root, UDID)
        .unwrap()
        .unwrap();
    let r = root.to_str().unwrap();

    let text = home.run(&["fix", "storage", "--backup-root", r]).stdout();
    assert!(!text.contains(".unstuck-snapshot-"), "{text}");
    assert!(!text.contains(folder.to_str().unwrap()), "{text}");
    let id = unstuck::actions::storage::id_of(&copy);
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &id,
        "--yes",
        "--yes-newest",
    ]);
    assert!(copy.exists(), "{}{}", out.stdout(), out.stderr());

    drop(held);
    let text = home.run(&["fix", "storage", "--backup-root", r]).stdout();
    assert!(text.contains(".unstuck-snapshot-"), "{text}");
}

/// A stale lock whose PID now belongs to an unrelated live process (another
/// start time) is taken over, and that process is never signalled.
#[test]
fn a_stale_lock_never_gets_an_unrelated_process_stopped() {
    let _programs = util::no_foreign_backup_programs();
    let (_runtime, sim) = crate::util::sim_on_runtime(config());
    let home = Home::new();
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let mut bystander = util::KillOnDrop(Command::new("sleep").arg("60").spawn().unwrap());
    lock_naming(dest.path(), &bystander.0, -1000);

    let out = home.run_on(
        &sim.usbmuxd_address(),
        &["fix", "restart", "--yes", "--dest", d],
    );
    out.success();
    assert!(!out.stderr().contains("process"), "{}", out.stderr());
    assert!(out.stdout().contains("Backup complete"), "{}", out.stdout());
    assert!(
        bystander.0.try_wait().unwrap().is_none(),
        "the bystander was stopped"
    );

    // An old lock records only the PID, and no one holds it: taken over,
    // and the bystander is left alone.
    std::fs::write(
        dest.path().join(format!(".unstuck-{UDID}.lock")),
        bystander.0.id().to_string(),
    )
    .unwrap();
    let out = home.run_on(
        &sim.usbmuxd_address(),
        &["fix", "restart", "--yes", "--dest", d],
    );
    out.success();
    assert!(
        bystander.0.try_wait().unwrap().is_none(),
        "the bystander was stopped"
    );
}

#[test]
fn encryption_guidance() {
    let mut c = config();
    c.will_encrypt = true;
    c.password = Some("pw".into());
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    let out = home.run_on(&sim.usbmuxd_address(), &["fix", "encryption"]);
    out.success();
    assert!(out.stdout().contains("are encrypted"), "{}", out.stdout());
    assert!(
        out.stdout().contains("Reset All Settings"),
        "{}",
        out.stdout()
    );
}

#[test]
fn restart_can_use_the_platform_tool_from_the_config() {
    let (_runtime, sim) = crate::util::sim_on_runtime(config());
    let home = Home::new();
    home.write_config(
        "[backup]\nplatform_command = [\"sh\", \"-c\", \"echo {udid} > '{dest}/ran'\"]\n",
    );
    let dest = tempfile::tempdir().unwrap();
    let out = home.run_on(
        &sim.usbmuxd_address(),
        &[
            "fix",
            "restart",
            "--yes",
            "--dest",
            dest.path().to_str().unwrap(),
        ],
    );
    out.success();
    let ran = std::fs::read_to_string(dest.path().join("ran")).unwrap();
    assert_eq!(ran.trim(), UDID);
    assert!(
        !sim.events()
            .iter()
            .any(|e| matches!(e, SimEvent::BackupStarted { .. }))
    );
}

/// Unstuck's own backup, stuck in another process, is stopped after a yes
/// and the backup made again.
#[test]
fn restart_replaces_a_stuck_unstuck_backup() {
    let _programs = util::backup_programs_lock();
    let mut c = config();
    c.first_message_delay = Duration::from_secs(3600);
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    // A backup counts as stuck after 1 s without a write here.
    home.write_config(
        "[monitor]\nstarting_stall_seconds = 1\npasscode_stall_seconds = 1\ncopying_stall_seconds = 1\nfinishing_stall_seconds = 1\n",
    );
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let mut stuck = home
        .command(&["backup", "--dest", d])
        .env("USBMUXD_SOCKET_ADDRESS", sim.usbmuxd_address())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dest.path().join(format!(".unstuck-{UDID}.lock"));
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let info = dest.path().join(UDID).join("Info.plist");
    while !lock.exists() || !info.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the first backup never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Quiet for longer than the limit: evidence that it is stuck.
    std::thread::sleep(Duration::from_millis(2500));
    sim.update(|c| c.first_message_delay = Duration::ZERO);
    let out = home.run_on(
        &sim.usbmuxd_address(),
        &["fix", "restart", "--yes", "--dest", d],
    );
    out.success();
    assert!(
        out.stderr()
            .contains("Unstuck is already backing up this iPhone"),
        "{}",
        out.stderr()
    );
    assert!(out.stdout().contains("Backup complete"), "{}", out.stdout());
    assert!(stuck.wait().is_ok());
    assert_eq!(
        util::read(&dest.path().join(UDID)).state,
        BackupState::Complete
    );
}

/// The same stall ends `fix restart` as it ends `unstuck backup`: exit 5,
/// and no "starting again" after the last attempt.
#[test]
fn a_restart_that_stalls_exits_as_a_backup_does() {
    let _programs = util::no_foreign_backup_programs();
    let mut c = config();
    c.stall = Some(unstuck::sim::Stall {
        at_percent: 50.0,
        duration: std::time::Duration::from_secs(30),
    });
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    home.write_config("[backup]\nmax_restarts = 0\n[stall]\ncopying_seconds = 1\n");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let restart = home.run_on(
        &sim.usbmuxd_address(),
        &["fix", "restart", "--yes", "--dest", d],
    );
    let backup = home.run_on(&sim.usbmuxd_address(), &["backup", "--dest", d]);
    assert_eq!(backup.code(), Some(5), "{}", backup.stderr());
    assert_eq!(restart.code(), Some(5), "{}", restart.stderr());
    assert!(
        restart.stderr().contains("stalled while copying"),
        "{}",
        restart.stderr()
    );
    assert!(
        !restart.stderr().contains("starting again"),
        "{}",
        restart.stderr()
    );
}
