//! Notifications on real parts: a private DBus session bus, an X server
//! (Xvfb) and dunst, all from Debian. Skipped, with a message, where they are
//! not installed; `.ci/run` installs them. Each test starts its own bus, so
//! tests never share a notification server.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::desktop::{Desktop, present, wait_until};
use crate::util::{self, Home};

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
        home.log().contains("notification not shown")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the watch must keep running"
    );
    assert_eq!(
        home.log().matches("notification not shown").count(),
        1,
        "{}",
        home.log()
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
        home.log().contains("did not answer within 3 s")
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
