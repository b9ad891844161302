//! Notifications on real parts: a private DBus session bus, an X server
//! (Xvfb) and dunst, all from Debian. Skipped, with a message, where they are
//! not installed; `.ci/run` installs them. Each test starts its own bus, so
//! tests never share a notification server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Home};

const TOOLS: [&str; 4] = ["Xvfb", "dbus-daemon", "dunst", "dunstctl"];

fn present(test: &str) -> bool {
    let ok = TOOLS.iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        eprintln!(
            "SKIPPED {test}: needs {} (apt-get install xvfb dbus dunst)",
            TOOLS.join(", ")
        );
    }
    ok
}

/// A private session bus (no D-Bus activation, so "no server" stays no
/// server), and on request an X display with dunst serving notifications.
struct Desktop {
    dir: tempfile::TempDir,
    bus: String,
    children: Vec<Child>,
    display: Option<String>,
    dunst: Option<u32>,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for child in &mut self.children {
            // A stopped dunst must be continued to be killed cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `ready` every 50 ms for up to 10 s (starting real servers takes
/// real time).
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < until, "{what} did not start within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Desktop {
    fn bus_only() -> Desktop {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>"#,
                dir.path().display()
            ),
        )
        .unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address=1", "--nofork"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Desktop {
            dir,
            bus: line.trim().to_owned(),
            children: vec![bus],
            display: None,
            dunst: None,
        }
    }

    fn with_dunst() -> Desktop {
        let mut d = Desktop::bus_only();
        let n = (100..200)
            .find(|n| {
                !PathBuf::from(format!("/tmp/.X11-unix/X{n}")).exists()
                    && !PathBuf::from(format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free display number");
        let display = format!(":{n}");
        let xvfb = Command::new("Xvfb")
            .args([&display, "-screen", "0", "640x480x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        d.children.push(xvfb);
        wait_until("Xvfb", || {
            PathBuf::from(format!("/tmp/.X11-unix/X{n}")).exists()
        });
        let dunst = Command::new("dunst")
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &d.bus)
            .env("HOME", d.dir.path())
            .env("XDG_CONFIG_HOME", d.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        d.dunst = Some(dunst.id());
        d.children.push(dunst);
        d.display = Some(display);
        let bus = d.bus.clone();
        wait_until("dunst", || {
            Command::new("dunstctl")
                .arg("count")
                .env("DBUS_SESSION_BUS_ADDRESS", &bus)
                .output()
                .is_ok_and(|o| o.status.success())
        });
        d
    }

    /// What dunst has shown: shown notifications move to the history when
    /// closed, so all are closed first.
    fn history(&self) -> String {
        let _ = Command::new("dunstctl")
            .arg("close-all")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .status();
        let out = Command::new("dunstctl")
            .arg("history")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `unstuck watch` on a folder whose only backup is a month old: its first
/// look brings an overdue notification.
fn watch_overdue(home: &Home, desktop: &Desktop) -> (Child, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let mut b =
        unstuck::synthetic::SyntheticBackup::new("00008030-0016354E1A2B3C4D", util::days_ago(30));
    b.device_name = "Ben's iPhone".into();
    b.write(root.path()).unwrap();
    let child = home
        .command(&[
            "watch",
            "--json",
            "--backup-root",
            root.path().to_str().unwrap(),
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus)
        .env_remove("USBMUXD_SOCKET_ADDRESS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, root)
}

fn log(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("data/unstuck/unstuck.log")).unwrap_or_default()
}

#[test]
fn a_notification_reaches_a_real_server() {
    if !present("a_notification_reaches_a_real_server") {
        return;
    }
    let desktop = Desktop::with_dunst();
    let home = Home::new();
    let (mut child, _root) = watch_overdue(&home, &desktop);
    wait_until("the notification", || {
        desktop.history().contains("back up soon")
    });
    let history = desktop.history();
    assert!(history.contains("Ben's iPhone: back up soon"), "{history}");
    assert!(
        history.contains("The last complete backup was 30 days ago"),
        "{history}"
    );
    assert!(history.contains("Unstuck"), "{history}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn no_notification_server_is_logged_once_and_the_watch_goes_on() {
    if !present("no_notification_server_is_logged_once_and_the_watch_goes_on") {
        return;
    }
    let desktop = Desktop::bus_only();
    let home = Home::new();
    let (mut child, _root) = watch_overdue(&home, &desktop);
    wait_until("the log line", || {
        log(&home).contains("notification not shown")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the watch must keep running"
    );
    assert_eq!(
        log(&home).matches("notification not shown").count(),
        1,
        "{}",
        log(&home)
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A server that owns the name but never answers (dunst, stopped): the
/// notification gives up after its time-out (3 s, a real wait) and the
/// watch keeps running.
#[test]
fn a_server_that_never_answers_times_out() {
    if !present("a_server_that_never_answers_times_out") {
        return;
    }
    let desktop = Desktop::with_dunst();
    let dunst = desktop.dunst.unwrap();
    Command::new("kill")
        .args(["-STOP", &dunst.to_string()])
        .status()
        .unwrap();
    let home = Home::new();
    let started = Instant::now();
    let (mut child, _root) = watch_overdue(&home, &desktop);
    wait_until("the time-out", || {
        log(&home).contains("did not answer within 3 s")
    });
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the watch must keep running"
    );
    let _ = child.kill();
    let _ = child.wait();
}
