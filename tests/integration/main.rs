//! Integration tests: the real `unstuck` binary and the library's public API,
//! on real Apple-written backups and on synthetic ones.

mod util;

/// The one-click fixes.
mod actions;
/// Start at login.
mod autostart;
/// Malformed and hostile folders: every one gets a row, none a panic.
mod bad_input;
/// The config file: created on first run, errors that name the key and line.
mod config;
/// A private desktop (bus, Xvfb, dunst, xfce4-panel) for the tray and
/// notification tests.
mod desktop;
/// The device layer (our client code) against the simulated iPhone.
mod device;
/// The backup engine against the simulated iPhone.
mod engine;
/// Real Apple-written backups from the shared fixtures folder.
mod fixtures;
/// The history and the report.
mod history;
/// A hostile simulated iPhone against the engine.
mod hostile;
/// Every scenario against every command: exit codes and words.
mod matrix;
/// Notifications on a real DBus session bus with dunst.
mod notify;
/// Packaging files and icons.
mod packaging;
/// The simulated iPhone, checked by libimobiledevice's tools (written by others).
mod peers;
/// The simulated iPhone and Unstuck's backups, checked by Python clients and
/// readers (pymobiledevice3, iOSbackup, pyiosbackup, iphone-backup-decrypt, mvt).
mod pypeers;
/// The reader never changes a byte or a timestamp inside a backup.
mod read_only;
/// Ctrl-C, SIGTERM, SIGHUP and SIGKILL during `unstuck backup`.
mod signals;
/// The simulated iPhone, driven by the real idevice client.
mod sim;
/// The `status` command end to end: table, JSON, exit codes, roots.
mod status;
/// The tray app over DBus, on a real panel and notification server.
mod tray;
/// `unstuck watch` against a backup made by idevicebackup2.
mod watch;
