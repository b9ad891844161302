//! The tray app on real parts: a private bus and X display, xfce4-panel as
//! the tray host, dunst as the notification server, and `unstuck demo` —
//! the simulated iPhone whose backup stalls at 40 % until Restart Backup.
//! The tray is read and clicked over DBus as the panel does; one test also
//! clicks it with the mouse and keeps a screenshot in target/.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::desktop::{Desktop, present_all, present_for_tray, wait_for, wait_until};
use crate::util::{Home, KillOnDrop, no_foreign_backup_programs};

/// The running tray, and its item on the bus once it appeared; no other
/// test runs a backup program meanwhile.
struct Tray {
    child: KillOnDrop,
    item: String,
    _quiet: std::sync::RwLockReadGuard<'static, ()>,
}

/// Starts `unstuck ARGS` in `home` on `desktop` and waits for its tray item.
fn start(home: &Home, desktop: &Desktop, args: &[&str]) -> Tray {
    start_with(home, desktop, args, &[])
}

/// [`start`] with more environment variables.
fn start_with(home: &Home, desktop: &Desktop, args: &[&str], env: &[(&str, &str)]) -> Tray {
    let quiet = no_foreign_backup_programs();
    let mut cmd = home.command(args);
    desktop.apply(&mut cmd);
    cmd.envs(env.iter().copied());
    let child: Child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Tray::appear(child, desktop, quiet)
}

/// `unstuck demo` (its phone holds still at 40 %) on `desktop`, once the
/// tray shows the stall.
fn stalled_demo(desktop: &Desktop) -> (Home, Tray) {
    let home = Home::new();
    let tray = start(&home, desktop, &["demo"]);
    tray.wait_stalled(desktop);
    (home, tray)
}

/// `unstuck demo --scenario healthy` on `desktop`, and the temporary
/// folder it backs up into (its first line names it).
fn healthy_demo(home: &Home, desktop: &Desktop) -> (Tray, std::path::PathBuf) {
    let quiet = no_foreign_backup_programs();
    let mut cmd = home.command(&["demo", "--scenario", "healthy"]);
    desktop.apply(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let folder = line
        .split(" into ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no folder in {line:?}"));
    (Tray::appear(child, desktop, quiet), folder)
}

impl Tray {
    /// Waits for `child`'s tray item on the bus.
    fn appear(
        child: Child,
        desktop: &Desktop,
        quiet: std::sync::RwLockReadGuard<'static, ()>,
    ) -> Tray {
        let pid = child.id();
        let child = KillOnDrop(child);
        let mut item = None;
        wait_until("the tray item", || {
            item = desktop.tray_item(pid);
            item.is_some()
        });
        Tray {
            child,
            item: item.unwrap(),
            _quiet: quiet,
        }
    }

    fn title(&self, d: &Desktop) -> String {
        d.tray_property(&self.item, "Title")
    }

    /// Waits for the stall (real time: the phone sends at 2 MB/s, holds
    /// still at 40 %, and the demo calls 6 s of nothing a stall).
    fn wait_stalled(&self, d: &Desktop) {
        wait_for("the stall", 60, || self.title(d).contains("stalled"));
    }

    fn labels(&self, d: &Desktop) -> Vec<(String, bool)> {
        d.menu(&self.item)
            .into_iter()
            .map(|(_, l, e)| (l, e))
            .collect()
    }

    fn running(&mut self) -> bool {
        self.child.0.try_wait().unwrap().is_none()
    }
}

/// The demo's whole story, read and clicked over DBus: backing up, stalled
/// with the reason, Restart Backup, complete; then Quit ends the app.
#[test]
fn the_tray_follows_a_stall_and_its_restart() {
    if !present_for_tray("the_tray_follows_a_stall_and_its_restart") {
        return;
    }
    let desktop = Desktop::with_panel();
    let home = Home::new();
    let mut tray = start(&home, &desktop, &["demo"]);

    // Real time: the simulated phone sends at 2 MB/s and holds still at
    // 40 %; the demo's monitor calls 6 s of nothing a stall.
    wait_for("backing up", 20, || tray.title(&desktop).contains(" %"));
    let labels = tray.labels(&desktop);
    assert!(
        labels
            .iter()
            .any(|(l, e)| l.starts_with("Back Up Now (backing up") && !e),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|(l, _)| l.starts_with("Demo iPhone: backing up")),
        "{labels:?}"
    );
    tray.wait_stalled(&desktop);
    let labels = tray.labels(&desktop);
    assert!(
        labels
            .iter()
            .any(|(l, _)| l.starts_with("Demo iPhone: stalled while copying files")),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|(l, _)| l == "    Why: the backup program is waiting and writing nothing"),
        "{labels:?}"
    );
    assert!(
        labels.contains(&("Restart Backup".into(), true)),
        "{labels:?}"
    );
    let tooltip = desktop.tray_property(&tray.item, "ToolTip");
    assert!(tooltip.contains("Demo iPhone: stalled"), "{tooltip}");
    assert!(
        desktop
            .tray_property(&tray.item, "Status")
            .contains("Active")
    );

    desktop.click(&tray.item, "Restart Backup");
    wait_for("the backup to complete", 60, || {
        tray.title(&desktop).contains("backed up")
    });
    let labels = tray.labels(&desktop);
    assert!(labels.contains(&("Back Up Now".into(), true)), "{labels:?}");
    let history = desktop.history();
    assert!(history.contains("Demo iPhone: backup stalled"), "{history}");
    assert!(
        history.contains("Demo iPhone: backup complete"),
        "{history}"
    );

    desktop.click(&tray.item, "Quit");
    wait_until("the app to quit", || !tray.running());
    assert_eq!(tray.child.0.wait().unwrap().code(), Some(0));
}

/// The stall notification's Restart Backup button, picked in dunst's own
/// menu, restarts the backup as the menu item does.
#[test]
fn a_notification_button_restarts_the_backup() {
    if !present_for_tray("a_notification_button_restarts_the_backup") {
        return;
    }
    let desktop = Desktop::with_panel();
    let (home, tray) = stalled_demo(&desktop);
    wait_until("the stall notification", || desktop.displayed() > 0);
    desktop.pick("Restart Backup");
    // dunst runs its menu program after `dunstctl context` returns.
    wait_until("dunst's menu", || !desktop.offered().is_empty());
    let offered = desktop.offered();
    assert!(
        offered.contains("Restart Backup (Demo iPhone: backup stalled)"),
        "{offered}"
    );
    assert!(offered.contains("Details"), "{offered}");
    wait_for("the backup to complete", 60, || {
        tray.title(&desktop).contains("backed up")
    });
    assert!(
        home.log()
            .contains("notification button button=\"restart-backup\"")
    );
}

/// Network Advice… answers with a notification that gives the advice.
#[test]
fn network_advice_is_a_notification() {
    if !present_for_tray("network_advice_is_a_notification") {
        return;
    }
    let desktop = Desktop::with_panel();
    let home = Home::new();
    let tray = start(&home, &desktop, &["demo", "--scenario", "healthy"]);
    wait_for("the phone", 20, || {
        tray.title(&desktop).contains("Demo iPhone")
    });
    desktop.click(&tray.item, "Network Advice");
    wait_until("the advice", || {
        desktop.history().contains("Network advice for Demo iPhone")
    });
    let history = desktop.history();
    assert!(history.contains("1. "), "{history}");
}

/// Under Xvfb with the panel: the icon is drawn, a right click opens the
/// menu; the screenshot is kept as target/tray-menu.png.
#[test]
fn screenshot_of_the_open_menu() {
    if !present_for_tray("screenshot_of_the_open_menu")
        || !present_all("screenshot_of_the_open_menu", &["import", "xdotool"])
    {
        return;
    }
    let desktop = Desktop::with_panel();
    let (_home, _tray) = stalled_demo(&desktop);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).unwrap();
    let closed = dir.join("tray-icon.png");
    desktop.screenshot(&closed);
    // The panel is 32 px high along the top; the tray area ends at the
    // right edge, so the icon is the last 32 px square.
    let icon = pixels(&closed, "32x32+768+0");
    let panel_colour = icon[0];
    let drawn = icon.iter().filter(|p| **p != panel_colour).count();
    assert!(
        drawn > 100,
        "the icon area is nearly empty ({drawn} pixels drawn)"
    );

    desktop.mouse(784, 16, 3);
    let open = dir.join("tray-menu.png");
    let started = Instant::now();
    loop {
        desktop.screenshot(&open);
        // The menu drops below the panel, at the right.
        let below = pixels(&open, "300x200+500+40");
        let lit = below
            .iter()
            .filter(|p| **p != below[below.len() - 1])
            .count();
        if lit > 2000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the menu did not open"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("screenshot: {}", open.display());
}

/// The RGB pixels of `geometry` (WxH+X+Y) in the PNG at `path`.
fn pixels(path: &std::path::Path, geometry: &str) -> Vec<[u8; 3]> {
    let out = std::process::Command::new("convert")
        .arg(path)
        .args(["-crop", geometry, "-depth", "8", "rgb:-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "convert failed");
    out.stdout
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect()
}

/// A display with no tray host: said once in the log and by a
/// notification, and the app keeps running.
#[test]
fn no_tray_host_is_reported() {
    if !present_for_tray("no_tray_host_is_reported") {
        return;
    }
    let desktop = Desktop::with_dunst();
    let home = Home::new();
    let mut tray = start(&home, &desktop, &["demo", "--scenario", "healthy"]);
    wait_until("the report", || {
        desktop.history().contains("its icon cannot be shown")
    });
    let history = desktop.history();
    assert!(
        history.contains("org.kde.StatusNotifierWatcher"),
        "{history}"
    );
    assert_eq!(
        home.log().matches("the tray icon will not be seen").count(),
        1,
        "{}",
        home.log()
    );
    assert!(tray.running());
}

/// No notification server on the bus: the stall still shows in the tray,
/// the failed notification is logged, and the app keeps running.
#[test]
fn no_notification_server_leaves_the_tray_working() {
    if !present_for_tray("no_notification_server_leaves_the_tray_working") {
        return;
    }
    let desktop = Desktop::with_panel_no_notifications();
    let (home, mut tray) = stalled_demo(&desktop);
    wait_until("the log line", || {
        home.log().contains("notification not shown")
    });
    assert!(tray.running());
    assert!(!tray.labels(&desktop).is_empty());
}

/// A notification server that owns its name but never answers (dunst,
/// stopped): each notification gives up after 3 s (a real wait), the tray
/// keeps following the backup.
#[test]
fn a_hung_notification_server_leaves_the_tray_working() {
    if !present_for_tray("a_hung_notification_server_leaves_the_tray_working") {
        return;
    }
    let desktop = Desktop::with_panel();
    std::process::Command::new("kill")
        .args(["-STOP", &desktop.dunst.unwrap().to_string()])
        .status()
        .unwrap();
    let (home, mut tray) = stalled_demo(&desktop);
    wait_for("the time-out", 10, || {
        home.log().contains("did not answer within 3 s")
    });
    assert!(tray.running());
    desktop.click(&tray.item, "Restart Backup");
    wait_for("the backup to complete", 60, || {
        tray.title(&desktop).contains("backed up")
    });
}

/// No display at all: `unstuck` says so in one line and watches instead;
/// `unstuck --tray` fails with a clear message.
#[test]
fn without_a_display_the_app_watches_and_tray_fails_clearly() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    home.write_config(&format!(
        "backup_roots = [{:?}]\n",
        root.path().to_str().unwrap()
    ));
    let mut child = KillOnDrop(
        home.command(&[])
            .env("USBMUXD_SOCKET_ADDRESS", "127.0.0.1:9")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = std::io::BufReader::new(child.0.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert_eq!(
        first.trim(),
        "No graphical session (DISPLAY and WAYLAND_DISPLAY are unset): watching backups here instead of in the tray."
    );
    let mut second = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut second).unwrap();
    assert!(second.contains("Watching iPhone backups"), "{second}");
    assert!(child.0.try_wait().unwrap().is_none(), "the watch goes on");

    let run = home.run(&["--tray"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("cannot start the tray: no display to show it on"),
        "{}",
        run.stderr()
    );
    // The reason, without the place in a library's source it came from.
    assert!(!run.stderr().contains(".rs:"), "{}", run.stderr());
}

/// Start at Login is a checkbox: a click writes the login entry for this
/// binary, a second click removes it.
#[test]
fn start_at_login_is_a_checkbox() {
    if !present_for_tray("start_at_login_is_a_checkbox") {
        return;
    }
    let desktop = Desktop::with_panel();
    let home = Home::new();
    let tray = start(&home, &desktop, &["demo", "--scenario", "healthy"]);
    let entry = home.path().join(".config/autostart/Unstuck.desktop");
    let checked = || {
        desktop
            .layout(&tray.item, "['label', 'toggle-state']")
            .split("<(")
            .find(|e| e.contains("'Start at Login'"))
            .map(|e| e.contains("'toggle-state': <1>"))
    };
    wait_until("the menu", || checked().is_some());
    assert_eq!(checked(), Some(false));
    desktop.click(&tray.item, "Start at Login");
    wait_until("the login entry", || entry.exists());
    wait_until("the check mark", || checked() == Some(true));
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(text.contains(env!("CARGO_BIN_EXE_unstuck")), "{text}");
    desktop.click(&tray.item, "Start at Login");
    wait_until("the entry to go", || !entry.exists());
    wait_until("no check mark", || checked() == Some(false));
}

/// The session's SIGTERM at logout ends the tray cleanly: exit 0, and the
/// demo's temporary folder is gone.
#[test]
fn sigterm_ends_the_tray_cleanly() {
    if !present_for_tray("sigterm_ends_the_tray_cleanly") {
        return;
    }
    let desktop = Desktop::with_panel();
    let home = Home::new();
    let (mut tray, folder) = healthy_demo(&home, &desktop);
    assert!(folder.exists(), "{}", folder.display());
    let pid = tray.child.0.id();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    wait_until("the exit", || !tray.running());
    assert_eq!(tray.child.0.wait().unwrap().code(), Some(0));
    assert!(!folder.exists(), "{} is left behind", folder.display());
}

/// The plain app with usbmuxd not running: the menu says so on its first
/// line and keeps every item, disabled with its reason.
#[test]
fn without_usbmuxd_the_menu_says_so() {
    if !present_for_tray("without_usbmuxd_the_menu_says_so") {
        return;
    }
    let desktop = Desktop::with_panel();
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    home.write_config(&format!(
        "backup_roots = [{:?}]\n",
        root.path().to_str().unwrap()
    ));
    // Port 9 (discard) on loopback: nothing listens there.
    let tray = start_with(
        &home,
        &desktop,
        &[],
        &[("USBMUXD_SOCKET_ADDRESS", "127.0.0.1:9")],
    );
    wait_until("the usbmuxd line", || {
        tray.labels(&desktop).first().is_some_and(|(l, _)| {
            l.starts_with("No iPhone seen: usbmuxd is not running at 127.0.0.1:9")
        })
    });
    let labels = tray.labels(&desktop);
    assert!(
        labels.contains(&("Back Up Now (no iPhone seen)".into(), false)),
        "{labels:?}"
    );
    assert!(
        labels.contains(&("Storage Clean-up…".into(), true)),
        "{labels:?}"
    );
    assert!(tray.title(&desktop).contains("no iPhone seen"));
}

/// A display but no DBus session bus: the tray cannot be shown, and says
/// why and what works instead.
#[test]
fn without_a_session_bus_the_tray_fails_clearly() {
    if !present_all(
        "without_a_session_bus_the_tray_fails_clearly",
        &["Xvfb", "dbus-daemon"],
    ) {
        return;
    }
    let desktop = Desktop::with_display();
    let home = Home::new();
    let mut cmd = home.command(&["--tray"]);
    desktop.apply(&mut cmd);
    let out = cmd
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env("USBMUXD_SOCKET_ADDRESS", "127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot show the tray icon"), "{stderr}");
    assert!(
        stderr.contains("`unstuck watch` works without a tray"),
        "{stderr}"
    );
}

/// The demo after its healthy backup, with an empty Manifest.plist put in
/// the phone's folder (the leftover that makes a phone answer error 205):
/// Back Up Now must ask before moving it to the trash.
fn question_pending(home: &Home, desktop: &Desktop) -> (Tray, std::path::PathBuf) {
    let (tray, dir) = healthy_demo(home, desktop);
    let folder = dir.join("00008120-001A2B3C4D5E6F70");
    wait_for("the first backup", 40, || {
        tray.labels(desktop)
            .iter()
            .any(|(l, _)| l == "Demo iPhone: backup complete")
    });
    let manifest = folder.join("Manifest.plist");
    std::fs::write(&manifest, b"").unwrap();
    desktop.history();
    desktop.click(&tray.item, "Back Up Now");
    wait_until("the question", || desktop.displayed() > 0);
    (tray, manifest)
}

/// A question answered Yes on the notification: the leftover goes to the
/// trash (not deleted) and the backup runs.
#[test]
fn a_question_is_answered_on_the_notification() {
    if !present_for_tray("a_question_is_answered_on_the_notification") {
        return;
    }
    let desktop = Desktop::with_panel();
    let home = Home::new();
    let (_tray, manifest) = question_pending(&home, &desktop);
    desktop.pick("Yes (Unstuck asks)");
    wait_until("dunst's menu", || !desktop.offered().is_empty());
    let offered = desktop.offered();
    assert!(offered.contains("No (Unstuck asks)"), "{offered}");
    let trashed = home.path().join("data/Trash/files/Manifest.plist");
    wait_until("the leftover in the trash", || trashed.exists());
    wait_for("the new backup's Manifest.plist", 40, || {
        std::fs::metadata(&manifest).is_ok_and(|m| m.len() > 0)
    });
    let history = desktop.history();
    assert!(history.contains("to the trash?"), "{history}");
}

/// Nothing moves without a yes, and Quit while a question waits for its
/// answer ends the app within seconds.
#[test]
fn quit_does_not_wait_for_an_unanswered_question() {
    if !present_for_tray("quit_does_not_wait_for_an_unanswered_question") {
        return;
    }
    let desktop = Desktop::with_panel();
    let home = Home::new();
    let (mut tray, manifest) = question_pending(&home, &desktop);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::metadata(&manifest).unwrap().len(),
        0,
        "moved without a yes"
    );
    let asked = Instant::now();
    desktop.click(&tray.item, "Quit");
    wait_until("the app to quit", || !tray.running());
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "{:?}",
        asked.elapsed()
    );
}

/// Details on the stall notification answers with the evidence behind the
/// cause and the fixes.
#[test]
fn details_on_a_stall_notification_give_the_evidence() {
    if !present_for_tray("details_on_a_stall_notification_give_the_evidence") {
        return;
    }
    let desktop = Desktop::with_panel();
    let (home, _tray) = stalled_demo(&desktop);
    wait_until("the stall notification", || desktop.displayed() > 0);
    desktop.pick("Details (Demo iPhone: backup stalled)");
    // dunst acts on the pick after `dunstctl context` returns; reading the
    // history closes notifications, so it waits for the click to land.
    wait_until("the click", || home.log().contains("button=\"details\""));
    wait_until("the details", || {
        desktop.history().contains("Details — Demo iPhone")
    });
    let history = desktop.history();
    assert!(
        history.contains("the backup program is waiting and writing nothing: unstuck (process"),
        "{history}"
    );
    assert!(
        history.contains("Fix: Restart Backup, Restart iPhone"),
        "{history}"
    );
}
