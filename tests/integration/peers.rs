//! The simulated iPhone checked by clients no one here wrote: Debian's
//! libimobiledevice-utils (idevice_id, ideviceinfo, idevicebackup2). Skipped,
//! with a message, where the tools are not installed; CI installs them.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use unstuck::backup_folder::BackupState;
use unstuck::sim::{Sim, SimConfig, SimEvent};

use super::sim::{UDID, config};

fn tools_present(test: &str) -> bool {
    let present = ["idevice_id", "ideviceinfo", "idevicebackup2"]
        .iter()
        .all(|tool| {
            Command::new(tool)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        });
    if !present {
        eprintln!(
            "SKIPPED {test}: libimobiledevice-utils is not installed (apt-get install libimobiledevice-utils)"
        );
    }
    present
}

/// A simulator on its own runtime, so the tools can be run synchronously.
struct Running {
    sim: Sim,
    _runtime: tokio::runtime::Runtime,
}

fn start(config: SimConfig) -> Running {
    let (runtime, sim) = crate::util::sim_on_runtime(config);
    Running {
        sim,
        _runtime: runtime,
    }
}

/// Runs a tool against the simulator; a tool that hangs is killed after
/// `limit` (a real wait: these are real processes).
fn run(running: &Running, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .env("USBMUXD_SOCKET_ADDRESS", running.sim.usbmuxd_address())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `idevicebackup2 backup [--full] DIR` against the simulator; its stdout.
fn idevicebackup2(running: &Running, dir: &std::path::Path, full: bool, limit: Duration) -> String {
    let dir = dir.to_str().unwrap();
    let args: &[&str] = if full {
        &["idevicebackup2", "backup", "--full", dir]
    } else {
        &["idevicebackup2", "backup", dir]
    };
    stdout(&run(running, args, limit))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
}

#[test]
fn idevice_id_and_ideviceinfo_read_the_phone() {
    if !tools_present("idevice_id_and_ideviceinfo_read_the_phone") {
        return;
    }
    let _programs = crate::util::backup_programs_lock();
    let running = start(config());
    let ids = run(&running, &["idevice_id", "-l"], Duration::from_secs(20));
    assert_eq!(stdout(&ids).trim(), UDID);

    let info = run(&running, &["ideviceinfo"], Duration::from_secs(20));
    let text = stdout(&info);
    assert!(
        info.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert!(text.contains("ProductVersion: 18.1"), "{text}");
    assert!(text.contains(&format!("UniqueDeviceID: {UDID}")), "{text}");

    let disk = run(
        &running,
        &["ideviceinfo", "-q", "com.apple.disk_usage"],
        Duration::from_secs(20),
    );
    let text = stdout(&disk);
    assert!(text.contains("TotalDiskCapacity: 128000000000"), "{text}");
    assert!(text.contains("TotalDataAvailable: 114000000000"), "{text}");
    // libimobiledevice 1.3.0 presents the RootCertificate, and it is accepted.
    assert!(
        running
            .sim
            .events()
            .contains(&SimEvent::SessionStarted(Some(
                unstuck::sim::ClientCert::Root
            )))
    );
}

#[test]
fn idevicebackup2_makes_a_backup_unstuck_reads_as_complete() {
    if !tools_present("idevicebackup2_makes_a_backup_unstuck_reads_as_complete") {
        return;
    }
    let _programs = crate::util::backup_programs_lock();
    let running = start(config());
    let dir = tempfile::tempdir().unwrap();
    let text = idevicebackup2(&running, dir.path(), true, Duration::from_secs(60));
    assert!(text.contains("Backup Successful."), "{text}");
    let backup = crate::util::read(&dir.path().join(UDID));
    assert_eq!(backup.state, BackupState::Complete, "{backup:?}");
    assert_eq!(backup.file_count, Some(40));
    assert_eq!(backup.ios_version.as_deref(), Some("18.1"));

    // An incremental run on top of it: only the changed files travel.
    let text = idevicebackup2(&running, dir.path(), false, Duration::from_secs(60));
    assert!(text.contains("Backup Successful."), "{text}");
    assert!(text.contains("Received 9 files from device."), "{text}");
    assert_eq!(
        crate::util::read(&dir.path().join(UDID)).state,
        BackupState::Complete
    );
}

#[test]
fn idevicebackup2_reports_the_phones_error() {
    if !tools_present("idevicebackup2_reports_the_phones_error") {
        return;
    }
    let _programs = crate::util::backup_programs_lock();
    type Script = fn(&mut SimConfig);
    let cases: [(Script, &str); 3] = [
        (|c| c.claimed_backup_bytes = Some(1 << 50), "ErrorCode 105"),
        (
            |c| c.passcode_wait = Some(Duration::from_millis(200)),
            "ErrorCode 208",
        ),
        (
            |c| c.final_error = Some((207, "The backup password is not correct.".into())),
            "ErrorCode 207: The backup password is not correct.",
        ),
    ];
    for (script, expected) in cases {
        let mut c = config();
        script(&mut c);
        let running = start(c);
        let dir = tempfile::tempdir().unwrap();
        let text = idevicebackup2(&running, dir.path(), true, Duration::from_secs(60));
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        assert!(!text.contains("Backup Successful."), "{text}");
        assert!(!matches!(
            crate::util::read(&dir.path().join(UDID)).state,
            BackupState::Complete
        ));
    }
}

#[test]
fn idevicebackup2_never_reports_success_after_an_unplug() {
    if !tools_present("idevicebackup2_never_reports_success_after_an_unplug") {
        return;
    }
    let _programs = crate::util::backup_programs_lock();
    let mut c = config();
    c.unplug_at_percent = Some(60.0);
    let running = start(c);
    let dir = tempfile::tempdir().unwrap();
    // idevicebackup2 1.3.0 never notices the socket closing mid-file: it
    // loops waiting for "more time" until killed — exactly the silent hang
    // Unstuck's monitor is for. So it gets 5 s, then is killed.
    let text = idevicebackup2(&running, dir.path(), true, Duration::from_secs(5));
    assert!(!text.contains("Backup Successful."), "{text}");
    assert!(running.sim.events().contains(&SimEvent::Detached));
}

#[test]
fn idevicebackup2_reads_a_backup_unstuck_made() {
    if !tools_present("idevicebackup2_reads_a_backup_unstuck_made") {
        return;
    }
    let _programs = crate::util::backup_programs_lock();
    let running = start(config());
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let options = unstuck::engine::BackupOptions::new(dir.path().to_path_buf());
    let addr = unstuck::device::MuxAddress::Tcp(running.sim.addr());
    runtime
        .block_on(unstuck::engine::backup(&addr, &options, &tx))
        .unwrap();

    let d = dir.path().to_str().unwrap();
    let info = stdout(&run(
        &running,
        &["idevicebackup2", "info", d],
        Duration::from_secs(30),
    ));
    assert!(info.contains("<key>Target Identifier</key>"), "{info}");
    assert!(info.contains(UDID), "{info}");
    let list = stdout(&run(
        &running,
        &["idevicebackup2", "list", d],
        Duration::from_secs(30),
    ));
    let rows: Vec<&str> = list
        .lines()
        .filter(|l| l.contains("Library/Data/file-"))
        .collect();
    assert_eq!(rows.len(), 40, "{list}");
    assert!(rows.iter().all(|r| r.ends_with(",3000")), "{list}");
}
