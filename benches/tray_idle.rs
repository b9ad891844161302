//! The cost of the idle tray app (`unstuck` with no command): ten complete
//! backups on disk, one simulated iPhone attached (a separate `unstuck
//! sim`), no backup running, its icon hosted by xfce4-panel on a private
//! Xvfb display and DBus session bus. Over `BENCH_IDLE_SECS` seconds
//! (default 60) it prints the tray process's CPU (% of one core), thread
//! wake-ups per second and memory, read from /proc (Linux). Goal: at most
//! 0.05 % of a core and 20 MiB. Needs the release binary (`cargo build
//! --release`) and Xvfb, dbus-daemon and xfce4-panel.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/idle.rs"]
mod idle;
// The tests' desktop: private bus, Xvfb, xfce4-panel.
#[allow(dead_code)]
#[path = "../tests/integration/desktop.rs"]
mod desktop;

fn main() {
    let secs = idle::window();
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/unstuck");
    if !bin.exists() {
        println!("skipped: needs the release binary (cargo build --release)");
        return;
    }
    if !desktop::present_for_tray("tray_idle") {
        return;
    }
    let desktop = desktop::Desktop::with_panel_no_notifications();
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("backups");
    idle::backups(&root);
    let config = home.path().join("config/unstuck/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!("backup_roots = [{:?}]\n", root.to_str().unwrap()),
    )
    .unwrap();
    let (mut sim, addr) = idle::sim(&bin, home.path());

    let mut cmd = Command::new(&bin);
    desktop.apply(&mut cmd);
    let mut tray = cmd
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("USBMUXD_SOCKET_ADDRESS", &addr)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = tray.id();
    // Wait for the icon on the bus, then let it settle.
    let started = Instant::now();
    let mut figures = None;
    while started.elapsed() < Duration::from_secs(20) {
        if desktop.tray_item(pid).is_some() {
            figures = idle::measure(pid, Duration::from_secs(5), secs);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tray.kill();
    let _ = tray.wait();
    let _ = sim.kill();
    let _ = sim.wait();
    idle::report(
        &format!(
            "idle tray (unstuck), 10 backups, 1 phone attached, icon hosted by xfce4-panel, {secs} s"
        ),
        figures,
        20.0,
    );
}
