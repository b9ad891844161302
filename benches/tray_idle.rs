//! The cost of the idle tray app (`unstuck` with no command): ten complete
//! backups on disk, one simulated iPhone attached (a separate `unstuck
//! sim`), no backup running, its icon hosted by xfce4-panel on a private
//! Xvfb display and DBus session bus. Over `BENCH_IDLE_SECS` seconds
//! (default 60) it prints the tray process's CPU (% of one core), thread
//! wake-ups per second and memory, read from /proc (Linux). Goal: at most
//! 0.05 % of a core and 20 MiB. Needs the release binary (`cargo build
//! --release`) and Xvfb, dbus-daemon and xfce4-panel.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/idle.rs"]
mod idle;

/// Child processes, killed at the end in reverse order.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() {
    let secs = idle::window();
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/unstuck");
    let xfconfd = Path::new("/usr/lib/x86_64-linux-gnu/xfce4/xfconf/xfconfd");
    let tools = ["Xvfb", "dbus-daemon", "xfce4-panel"];
    let installed = tools.iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !bin.exists() || !installed || !xfconfd.exists() {
        println!(
            "skipped: needs the release binary (cargo build --release), {} and xfconfd",
            tools.join(", ")
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut children = Children(Vec::new());

    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "800x600x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let display = first_line(&mut xvfb);
    children.0.push(xvfb);
    let config = dir.path().join("bus.conf");
    std::fs::write(
        &config,
        format!(
            "<busconfig><type>session</type><listen>unix:dir={}</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
             <allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>",
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
    let bus_address = first_line(&mut bus);
    children.0.push(bus);
    let channel = dir.path().join("config/xfce4/xfconf/xfce-perchannel-xml");
    std::fs::create_dir_all(&channel).unwrap();
    std::fs::write(channel.join("xfce4-panel.xml"), PANEL).unwrap();
    let desktop = |cmd: &mut Command| {
        cmd.env("DISPLAY", format!(":{display}"))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut cmd = Command::new(xfconfd);
    desktop(&mut cmd);
    children.0.push(cmd.spawn().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let mut cmd = Command::new("xfce4-panel");
    cmd.arg("--disable-wm-check");
    desktop(&mut cmd);
    children.0.push(cmd.spawn().unwrap());

    let root = dir.path().join("backups");
    for n in 0..10 {
        let mut b = unstuck::synthetic::SyntheticBackup::new(
            &format!("00008120-{:016X}", n + 1),
            jiff::Timestamp::now() - jiff::SignedDuration::from_hours(20),
        );
        b.files = 2000;
        b.file_size = 64;
        b.write(&root).unwrap();
    }
    let unstuck_config = dir.path().join("config/unstuck/config.toml");
    std::fs::create_dir_all(unstuck_config.parent().unwrap()).unwrap();
    std::fs::write(
        &unstuck_config,
        format!("backup_roots = [{:?}]\n", root.to_str().unwrap()),
    )
    .unwrap();
    let (sim, addr) = idle::sim(&bin, dir.path());
    children.0.push(sim);

    let mut cmd = Command::new(&bin);
    desktop(&mut cmd);
    let tray = cmd.env("USBMUXD_SOCKET_ADDRESS", &addr).spawn().unwrap();
    let pid = tray.id();
    children.0.push(tray);
    // Wait for the icon on the bus, then let it settle.
    let started = Instant::now();
    while !names(&bus_address).contains(&format!("org.kde.StatusNotifierItem-{pid}-")) {
        if started.elapsed() > Duration::from_secs(20) {
            println!("the tray did not appear on the bus within 20 s; no figures");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let figures = idle::measure(pid, Duration::from_secs(5), secs);
    drop(children);
    match figures {
        Some(f) => {
            println!(
                "idle tray (unstuck), 10 backups, 1 phone attached, icon hosted by xfce4-panel, {secs} s:"
            );
            println!("  CPU {:.4} % of a core (goal <= 0.05 %)", f.cpu_percent);
            println!("  {:.2} wake-ups/s over all threads", f.wakeups_per_sec);
            println!(
                "  memory {:.1} MiB now, {:.1} MiB peak (goal <= 20 MiB)",
                f.rss_mib, f.peak_mib
            );
        }
        None => println!("the tray process ended early; no figures"),
    }
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_owned()
}

/// The names on the bus, as `gdbus` lists them (empty without gdbus).
fn names(bus: &str) -> String {
    Command::new("gdbus")
        .args([
            "call",
            "--session",
            "--dest",
            "org.freedesktop.DBus",
            "--object-path",
            "/org/freedesktop/DBus",
            "--method",
            "org.freedesktop.DBus.ListNames",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A panel with a system-tray area (the tests' panel, without the spacer).
const PANEL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="size" type="uint" value="32"/>
      <property name="plugin-ids" type="array"><value type="int" value="1"/></property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray"/>
  </property>
</channel>
"#;
