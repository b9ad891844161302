//! `unstuck watch` end to end: the simulated iPhone, a backup made by
//! Debian's idevicebackup2 (a program no one here wrote), and the real
//! binary watching it. Real time: the stall threshold is 2 s and the phone
//! sends about 1 MB/s, so each test takes a few seconds.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use unstuck::sim::{Sim, SimConfig, SimEvent, Stall};

use super::sim::{UDID, config};
use crate::util::{self, Home, KillOnDrop};

fn idevicebackup2_present(test: &str) -> bool {
    let present = Command::new("idevicebackup2")
        .arg("--help")
        .output()
        .is_ok();
    if !present {
        eprintln!("SKIPPED {test}: idevicebackup2 is not installed");
    }
    present
}

/// A phone whose backup takes a few seconds.
fn slow_config() -> SimConfig {
    let mut c = config();
    c.content.files = 60;
    c.content.file_size = 64 * 1024;
    c.throughput = Some(1_000_000);
    c.fit_storage_to_content();
    c
}

/// A child process that is killed when the test ends, passed or failed: an
/// idevicebackup2 left running would be seen by the next test's watch.
struct Watching {
    _child: KillOnDrop,
    lines: mpsc::Receiver<(Instant, serde_json::Value)>,
}

/// Starts `unstuck watch --json` on `root` with short thresholds.
fn watch(home: &Home, sim: &Sim, root: &std::path::Path) -> Watching {
    home.write_config("[monitor]\npoll_seconds_busy = 1\npoll_seconds_idle = 1\ncopying_stall_seconds = 2\nstarting_stall_seconds = 5\n");
    let mut child = home
        .command(&[
            "watch",
            "--json",
            "--no-notify",
            "--backup-root",
            root.to_str().unwrap(),
        ])
        .env("USBMUXD_SOCKET_ADDRESS", sim.usbmuxd_address())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send((Instant::now(), v));
            }
        }
    });
    Watching {
        _child: KillOnDrop(child),
        lines: rx,
    }
}

impl Watching {
    /// The first state change to `state` within `limit`.
    fn wait_for(&self, state: &str, limit: Duration) -> (Instant, serde_json::Value) {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let (at, v) = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {state:?} within {limit:?}"));
            if v["effect"] == "state_changed" && v["state"]["state"] == state {
                return (at, v);
            }
        }
    }
}

fn backup(sim: &Sim, dir: &std::path::Path) -> KillOnDrop {
    let child = Command::new("idevicebackup2")
        .args(["backup", "--full"])
        .arg(dir)
        .env("USBMUXD_SOCKET_ADDRESS", sim.usbmuxd_address())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

fn causes(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["cause"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_stalled_idevicebackup2_is_reported_within_the_threshold() {
    if !idevicebackup2_present("a_stalled_idevicebackup2_is_reported_within_the_threshold") {
        return;
    }
    let _programs = util::backup_programs_lock();
    let mut c = slow_config();
    c.stall = Some(Stall {
        at_percent: 40.0,
        duration: Duration::from_secs(60),
    });
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let watching = watch(&home, &sim, dir.path());
    let _tool = backup(&sim, dir.path());
    let (_, running) = watching.wait_for("running", Duration::from_secs(20));
    assert_eq!(running["state"]["tool"], "idevicebackup2");
    let (stalled_at, stalled) = watching.wait_for("stalled", Duration::from_secs(30));
    let (phone_stalled_at, _) = sim
        .events_at()
        .into_iter()
        .find(|(_, e)| matches!(e, SimEvent::Stalled { .. }))
        .expect("the phone stalled");
    assert_eq!(stalled["state"]["phase"], "copying");
    assert_eq!(causes(&stalled)[0], "process_hung", "{stalled:#}");
    // Within the threshold (2 s) + 2 s of the phone going quiet.
    let after = stalled_at.duration_since(phone_stalled_at);
    assert!(
        after <= Duration::from_secs(4),
        "stalled reported {after:?} after the phone went quiet"
    );
}

#[test]
fn an_unplug_is_a_stall_that_names_the_cable() {
    if !idevicebackup2_present("an_unplug_is_a_stall_that_names_the_cable") {
        return;
    }
    let _programs = util::backup_programs_lock();
    let mut c = slow_config();
    c.unplug_at_percent = Some(70.0);
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let watching = watch(&home, &sim, dir.path());
    let _tool = backup(&sim, dir.path());
    watching.wait_for("running", Duration::from_secs(20));
    let (_, stalled) = watching.wait_for("stalled", Duration::from_secs(30));
    assert!(sim.events().contains(&SimEvent::Detached));
    let causes = causes(&stalled);
    assert_eq!(causes[0], "detached", "{stalled:#}");
}

#[test]
fn a_full_backup_disk_is_named_when_the_backup_fails() {
    if !idevicebackup2_present("a_full_backup_disk_is_named_when_the_backup_fails") {
        return;
    }
    let _programs = util::backup_programs_lock();
    let mut c = slow_config();
    // A phone with far more data than this computer has room for.
    c.disk_capacity = 2_000_000_000_000;
    c.disk_free = 1_000_000_000;
    c.claimed_backup_bytes = Some(1 << 50);
    c.first_message_delay = Duration::from_secs(2);
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let watching = watch(&home, &sim, dir.path());
    // Let the watcher read the phone's facts first.
    std::thread::sleep(Duration::from_secs(1));
    let mut tool = backup(&sim, dir.path());
    watching.wait_for("running", Duration::from_secs(20));
    let (_, failed) = watching.wait_for("failed", Duration::from_secs(30));
    assert!(
        causes(&failed).contains(&"host_disk_full".to_owned()),
        "{failed:#}"
    );
    let _ = tool.0.wait();
    // The run the watch saw is in the history, as another program's; the
    // write goes out on a blocking task after the poll (a few seconds).
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let run = loop {
        let doc = home.run(&["history", "--json"]);
        let first = serde_json::from_slice::<serde_json::Value>(&doc.0.stdout)
            .ok()
            .and_then(|d| d["runs"].as_array().and_then(|r| r.first().cloned()));
        if let Some(run) = first {
            break run;
        }
        assert!(
            std::time::Instant::now() < until,
            "no run in the history: {}{}",
            doc.stdout(),
            doc.stderr()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(run["program"], "idevicebackup2", "{run:#}");
    assert_eq!(run["outcome"], "failed", "{run:#}");
    assert_eq!(run["cause"], "host_disk_full", "{run:#}");
}

#[test]
fn watch_once_says_how_things_stand_in_its_exit_code() {
    let _programs = util::backup_programs_lock();
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let ok = unstuck::synthetic::SyntheticBackup::new(UDID, util::days_ago(1));
    ok.write(root.path()).unwrap();
    let run = home.run(&[
        "watch",
        "--once",
        "--no-notify",
        "--backup-root",
        root.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());

    let broken = tempfile::tempdir().unwrap();
    let mut b = unstuck::synthetic::SyntheticBackup::new(UDID, util::days_ago(1));
    b.finish = unstuck::synthetic::Finish::EmptyManifestPlist;
    b.write(broken.path()).unwrap();
    let run = home.run(&[
        "watch",
        "--once",
        "--no-notify",
        "--backup-root",
        broken.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(3), "{}{}", run.stdout(), run.stderr());
    assert!(run.stdout().contains("did not finish"), "{}", run.stdout());
}

/// `unstuck backup` in another process: the watch sees its exact progress
/// through its run record, and its ErrorCode names the cause.
#[test]
fn unstucks_own_backup_is_seen_exactly() {
    let _programs = util::backup_programs_lock();
    let mut c = slow_config();
    c.final_error = Some((207, "The backup password is not correct.".into()));
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let watching = watch(&home, &sim, dir.path());
    let mut own = home
        .command(&["backup", "--dest", dir.path().to_str().unwrap()])
        .env("USBMUXD_SOCKET_ADDRESS", sim.usbmuxd_address())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reaper = std::thread::spawn(move || own.wait());
    let (_, running) = watching.wait_for("running", Duration::from_secs(20));
    assert_eq!(running["state"]["tool"], "unstuck", "{running:#}");
    let (_, failed) = watching.wait_for("failed", Duration::from_secs(30));
    assert_eq!(failed["state"]["code"], 207, "{failed:#}");
    assert_eq!(causes(&failed)[0], "wrong_password", "{failed:#}");
    let _ = reaper.join();
}

/// `watch --once` after Unstuck's own backup failed says so, with the
/// cause from the phone's error code, and exits 3; with no usbmuxd it says
/// why no phone can be seen, in text and in JSON.
#[test]
fn watch_once_names_a_failed_run_and_a_missing_usbmuxd() {
    let _programs = util::backup_programs_lock();
    let mut c = super::sim::config();
    c.final_error = Some((105, "Not enough free disk space on the computer.".into()));
    let (_runtime, sim) = crate::util::sim_on_runtime(c);
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let failed = home.run_on(&sim.usbmuxd_address(), &["backup", "--dest", d]);
    assert_eq!(failed.code(), Some(12), "{}", failed.stderr());
    let once = home.run_on(
        &sim.usbmuxd_address(),
        &["watch", "--once", "--no-notify", "--backup-root", d],
    );
    assert_eq!(once.code(), Some(3), "{}{}", once.stdout(), once.stderr());
    assert!(once.stdout().contains("error 105"), "{}", once.stdout());
    assert!(once.stdout().contains("backup disk"), "{}", once.stdout());
    // A terminal is told the command, not the tray's label.
    assert!(
        once.stdout().contains("fix: unstuck fix storage"),
        "{}",
        once.stdout()
    );

    // Nothing listens here: no usbmuxd.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().to_str().unwrap();
    let text = home.run_on(
        &port,
        &["watch", "--once", "--no-notify", "--backup-root", e],
    );
    assert!(
        text.stdout()
            .contains("No phone can be seen: usbmuxd is not running"),
        "{}",
        text.stdout()
    );
    let json = home.run_on(
        &port,
        &[
            "watch",
            "--once",
            "--json",
            "--no-notify",
            "--backup-root",
            e,
        ],
    );
    let lines: Vec<serde_json::Value> = json
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["effect"], "usbmuxd_unavailable", "{lines:?}");
    assert_eq!(lines[1]["effect"], "nothing_found", "{lines:?}");
}
