//! A real desktop for one test: a private DBus session bus (no
//! D-Bus activation, so "no server" stays no server), and on request an X
//! display (Xvfb), dunst serving notifications, and xfce4-panel hosting
//! tray icons — all from Debian. Tests that need them skip, with a message,
//! where they are not installed; `.ci/run` installs them.
//!
//! The tray is read and driven over DBus with `gdbus`, as a panel does:
//! `org.kde.StatusNotifierItem` properties and `com.canonical.dbusmenu`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether every program in `tools` is installed; says which are missing.
pub fn present_all(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED {test}: needs {} (apt-get install xvfb dbus dunst xfce4-panel libglib2.0-bin imagemagick xdotool)",
            missing.join(", ")
        );
    }
    missing.is_empty()
}

/// The notification tests' tools.
pub fn present(test: &str) -> bool {
    present_all(test, &["Xvfb", "dbus-daemon", "dunst", "dunstctl"])
}

/// The tray tests' tools.
pub fn present_for_tray(test: &str) -> bool {
    present_all(
        test,
        &[
            "Xvfb",
            "dbus-daemon",
            "dunst",
            "dunstctl",
            "xfce4-panel",
            "gdbus",
        ],
    ) && xfconfd().is_some()
}

fn xfconfd() -> Option<PathBuf> {
    ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| PathBuf::from(format!("/usr/lib/{arch}/xfce4/xfconf/xfconfd")))
        .find(|p| p.exists())
}

/// Polls `ready` every 50 ms for up to `secs` seconds (real servers and a
/// real backup take real time).
pub fn wait_for(what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(
            Instant::now() < until,
            "{what} did not happen within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_for`] with 10 s: starting a server.
pub fn wait_until(what: &str, ready: impl FnMut() -> bool) {
    wait_for(what, 10, ready)
}

pub struct Desktop {
    pub dir: tempfile::TempDir,
    pub bus: String,
    children: Vec<Child>,
    pub display: Option<String>,
    pub dunst: Option<u32>,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            // A stopped dunst must be continued to be killed cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Desktop {
    pub fn bus_only() -> Desktop {
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
        let address = first_line(&mut bus);
        Desktop {
            dir,
            bus: address,
            children: vec![bus],
            display: None,
            dunst: None,
        }
    }

    /// A bus and an X display, nothing else.
    pub fn with_display() -> Desktop {
        let mut d = Desktop::bus_only();
        // Xvfb picks a free display number itself and writes it to fd 1.
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
        d.display = Some(format!(":{}", first_line(&mut xvfb)));
        d.children.push(xvfb);
        d
    }

    /// A display with dunst serving notifications. Its context menu (how
    /// a user picks a notification's button) goes to a script that picks
    /// the button whose label [`Desktop::pick`] names.
    pub fn with_dunst() -> Desktop {
        let mut d = Desktop::with_display();
        d.start_dunst();
        d
    }

    /// A display, dunst, and xfce4-panel with a system-tray area that shows
    /// StatusNotifierItems.
    pub fn with_panel() -> Desktop {
        let mut d = Desktop::with_dunst();
        d.start_panel();
        d
    }

    /// A display and a panel, but no notification server.
    pub fn with_panel_no_notifications() -> Desktop {
        let mut d = Desktop::with_display();
        d.start_panel();
        d
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(display) = &self.display {
            cmd.env("DISPLAY", display);
        }
    }

    fn start_dunst(&mut self) {
        let config = self.dir.path().join("config/dunst");
        std::fs::create_dir_all(&config).unwrap();
        let picker = self.dir.path().join("pick.sh");
        std::fs::write(
            &picker,
            format!(
                "#!/bin/sh\ncat > '{0}/offered'\ngrep -m1 -F \"$(cat '{0}/pick')\" '{0}/offered'\n",
                self.dir.path().display()
            ),
        )
        .unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(&picker)
            .status()
            .unwrap();
        std::fs::write(
            config.join("dunstrc"),
            format!("[global]\n    dmenu = {}\n", picker.display()),
        )
        .unwrap();
        let mut cmd = Command::new("dunst");
        self.env(&mut cmd);
        let dunst = cmd.spawn().unwrap();
        self.dunst = Some(dunst.id());
        self.children.push(dunst);
        let bus = self.bus.clone();
        wait_until("dunst", || {
            Command::new("dunstctl")
                .arg("count")
                .env("DBUS_SESSION_BUS_ADDRESS", &bus)
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    fn start_panel(&mut self) {
        let channel = self
            .dir
            .path()
            .join("config/xfce4/xfconf/xfce-perchannel-xml");
        std::fs::create_dir_all(&channel).unwrap();
        std::fs::write(channel.join("xfce4-panel.xml"), PANEL).unwrap();
        // The panel's settings daemon is normally D-Bus-activated; this bus
        // activates nothing, so it is started by hand.
        let mut cmd = Command::new(xfconfd().unwrap());
        self.env(&mut cmd);
        self.children.push(cmd.spawn().unwrap());
        wait_until("xfconfd", || self.has_owner("org.xfce.Xfconf"));
        let mut cmd = Command::new("xfce4-panel");
        cmd.arg("--disable-wm-check");
        self.env(&mut cmd);
        self.children.push(cmd.spawn().unwrap());
        wait_until("the panel's tray host", || {
            self.gdbus(&[
                "--dest",
                "org.kde.StatusNotifierWatcher",
                "--object-path",
                "/StatusNotifierWatcher",
                "--method",
                "org.freedesktop.DBus.Properties.Get",
                "org.kde.StatusNotifierWatcher",
                "IsStatusNotifierHostRegistered",
            ])
            .is_some_and(|out| out.contains("true"))
        });
    }

    /// Runs `gdbus call --session ARGS`; its output when it succeeded.
    pub fn gdbus(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("gdbus")
            .args(["call", "--session"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn has_owner(&self, name: &str) -> bool {
        self.names().iter().any(|n| n == name)
    }

    pub fn names(&self) -> Vec<String> {
        let out = self
            .gdbus(&[
                "--dest",
                "org.freedesktop.DBus",
                "--object-path",
                "/org/freedesktop/DBus",
                "--method",
                "org.freedesktop.DBus.ListNames",
            ])
            .unwrap_or_default();
        out.split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// The bus name of the process `pid`'s StatusNotifierItem, once it is
    /// on the bus.
    pub fn tray_item(&self, pid: u32) -> Option<String> {
        let prefix = format!("org.kde.StatusNotifierItem-{pid}-");
        self.names().into_iter().find(|n| n.starts_with(&prefix))
    }

    /// A StatusNotifierItem property, as gdbus prints it.
    pub fn tray_property(&self, item: &str, property: &str) -> String {
        self.gdbus(&[
            "--dest",
            item,
            "--object-path",
            "/StatusNotifierItem",
            "--method",
            "org.freedesktop.DBus.Properties.Get",
            "org.kde.StatusNotifierItem",
            property,
        ])
        .unwrap_or_default()
    }

    /// The tray's whole menu with `properties` (a GVariant list of names),
    /// as gdbus prints it.
    pub fn layout(&self, item: &str, properties: &str) -> String {
        self.menu_bar(item, "GetLayout", &["--", "0", "-1", properties])
            .unwrap_or_default()
    }

    /// Calls `method` of `item`'s com.canonical.dbusmenu interface.
    fn menu_bar(&self, item: &str, method: &str, args: &[&str]) -> Option<String> {
        let method = format!("com.canonical.dbusmenu.{method}");
        let mut all = vec![
            "--dest",
            item,
            "--object-path",
            "/MenuBar",
            "--method",
            &method,
        ];
        all.extend_from_slice(args);
        self.gdbus(&all)
    }

    /// The tray's menu: (id, label, enabled) per item, separators left out.
    pub fn menu(&self, item: &str) -> Vec<(i32, String, bool)> {
        self.layout(item, "['label', 'enabled']")
            .split("<(")
            .skip(1)
            .filter_map(|entry| {
                let id = entry.split(',').next()?.trim().parse().ok()?;
                let label = quoted_after(entry, "'label': <")?;
                let enabled = !entry.contains("'enabled': <false>");
                Some((id, label, enabled))
            })
            .collect()
    }

    /// Clicks the menu item whose label starts with `label`, as a panel
    /// does; panics when there is none.
    pub fn click(&self, item: &str, label: &str) {
        let menu = self.menu(item);
        let (id, _, _) = menu
            .iter()
            .find(|(_, l, _)| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} in the menu: {menu:?}"));
        self.menu_bar(
            item,
            "Event",
            &[&id.to_string(), "clicked", "<int32 0>", "0"],
        )
        .expect("the click was refused");
    }

    /// Picks the button labelled `label` on the newest notification, through
    /// dunst's context menu, as a user would.
    pub fn pick(&self, label: &str) {
        std::fs::write(self.dir.path().join("pick"), label).unwrap();
        let ok = Command::new("dunstctl")
            .arg("context")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .status()
            .unwrap()
            .success();
        assert!(ok, "dunstctl context failed");
    }

    /// The buttons dunst offered the last time [`Desktop::pick`] ran.
    pub fn offered(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("offered")).unwrap_or_default()
    }

    /// What dunst has shown: shown notifications move to the history when
    /// closed, so all are closed first.
    pub fn history(&self) -> String {
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

    /// How many notifications dunst shows now.
    pub fn displayed(&self) -> usize {
        let out = Command::new("dunstctl")
            .args(["count", "displayed"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Environment for the app under test: this bus and display.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.bus);
        match &self.display {
            Some(display) => cmd.env("DISPLAY", display),
            None => cmd.env_remove("DISPLAY"),
        };
    }

    /// Saves a screenshot of the whole display to `path` (ImageMagick).
    pub fn screenshot(&self, path: &std::path::Path) {
        let ok = Command::new("import")
            .args(["-window", "root"])
            .arg(path)
            .env("DISPLAY", self.display.as_ref().unwrap())
            .status()
            .unwrap()
            .success();
        assert!(ok, "import failed");
    }

    /// Moves the pointer to (x, y) and presses `button` (xdotool).
    pub fn mouse(&self, x: u32, y: u32, button: u32) {
        let ok = Command::new("xdotool")
            .args(["mousemove", &x.to_string(), &y.to_string()])
            .args(["click", &button.to_string()])
            .env("DISPLAY", self.display.as_ref().unwrap())
            .status()
            .unwrap()
            .success();
        assert!(ok, "xdotool failed");
    }
}

/// The first line `child` prints (a server's address), trimmed.
fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_owned()
}

/// The GVariant string that follows `key` in `text` ('…' or "…").
fn quoted_after(text: &str, key: &str) -> Option<String> {
    let rest = &text[text.find(key)? + key.len()..];
    let quote = rest.chars().next()?;
    let body = &rest[1..];
    let end = body.find(quote)?;
    Some(body[..end].to_owned())
}

/// A panel along the top with a system-tray area at its right end.
const PANEL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="32"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-2" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>
    </property>
  </property>
</channel>
"#;
