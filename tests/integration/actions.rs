//! The one-click fixes against the simulated iPhone and synthetic backups.

use std::process::{Command, Stdio};
use std::time::Duration;

use unstuck::actions::{Scripted, restart};
use unstuck::backup_folder::BackupState;
use unstuck::device::MuxAddress;
use unstuck::engine::BackupOptions;
use unstuck::sim::SimEvent;

use super::sim::{UDID, config};
use crate::util::{self, Home};

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

    let mut no = Scripted::new(&[false]);
    let refused = runtime.block_on(restart::restart_backup(&addr, &options, &mut no, &tx));
    assert!(
        matches!(refused, Err(restart::RestartError::Declined)),
        "{refused:?}"
    );
    assert!(
        no.asked[0].contains("idevicebackup2 (process"),
        "{:?}",
        no.asked
    );
    assert!(stuck.try_wait().unwrap().is_none(), "stopped without a yes");

    // The phone is ready now; a yes stops the program and backs up.
    sim.update(|c| c.first_message_delay = Duration::ZERO);
    let mut yes = Scripted::new(&[true, true, true]);
    let report = runtime
        .block_on(restart::restart_backup(&addr, &options, &mut yes, &tx))
        .unwrap();
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

/// Clean-up goes to the trash (XDG_DATA_HOME points into a temporary home)
/// and the newest complete backup needs the second, explicit yes.
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
    assert!(text.contains("  1. "), "{text}");
    assert!(
        text.contains("the newest complete backup of this phone"),
        "{text}"
    );
    let line_of = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.trim_start().split('.').next())
            .unwrap()
            .to_owned()
    };
    let newest_n = line_of("the newest complete backup");
    let empty_n = line_of("empty Manifest.plist");

    // --yes answers the first question only: the newest backup stays.
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &newest_n,
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

    // The leftover goes to the trash with one yes.
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &empty_n,
        "--yes",
    ]);
    out.success();
    assert!(!broken_folder.join("Manifest.plist").exists());
    let trashed = home.path().join("data/Trash/files/Manifest.plist");
    assert!(trashed.exists(), "not in the trash: {}", out.stdout());
    assert!(broken_folder.exists(), "only the leftover moves");

    // With the second, explicit yes the newest backup moves too — to the trash.
    let list = home.run(&["fix", "storage", "--backup-root", r]);
    let text = list.stdout();
    let newest_n = text
        .lines()
        .find(|l| l.contains("the newest complete backup"))
        .and_then(|l| l.trim_start().split('.').next())
        .unwrap()
        .to_owned();
    let out = home.run(&[
        "fix",
        "storage",
        "--backup-root",
        r,
        "--trash",
        &newest_n,
        "--yes",
        "--yes-newest",
    ]);
    out.success();
    assert!(!folder.exists());
    assert!(home.path().join("data/Trash/files").join(UDID).exists());
    assert!(out.stdout().contains("Freed"), "{}", out.stdout());
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
    while !lock.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the first backup never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
