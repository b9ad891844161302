//! Unstuck keeps iPhone backups moving: it finds backups, tells whether each
//! is complete, in progress or stuck, and why.
//!
//! # Layout
//! - `actions`: the one-click fixes (restart, network, storage, encryption).
//! - `cause`: the words for what went wrong (`Cause`) and what fixes it
//!   (`Action`), shared by every part that diagnoses, shows or fixes.
//! - `backup_folder`: reads backup folders (plists, Manifest.db, Manifest.mbdb)
//!   into plain data; never writes inside one.
//! - `device`: phones through usbmuxd (idevice): attach/detach, facts, typed
//!   errors that say what to do; every request with a deadline.
//! - `engine`: Unstuck's own backups over mobilebackup2: pre-flight, the
//!   DeviceLink conversation confined to the phone's folder, a watchdog with
//!   bounded restarts, the last complete backup kept safe whatever ends a run.
//! - `monitor`: watches every backup; decides states from plain observations
//!   (`core`), names causes (`diagnose`), words notices (`notices`), reads
//!   the world (`observe`), loops (`shell`).
//! - `stall`: one vocabulary for stalls — the `Phase`s of a backup and the
//!   `StallThresholds` the engine's watchdog and the monitor share.
//! - `process`: which process a PID stands for (start time, program), and
//!   stopping exactly that one.
//! - `signals`: Ctrl-C, SIGTERM, SIGHUP (and Windows' console events) as one
//!   future, so work ends in order.
//! - `notify`: desktop notifications with buttons, each call with a time-out.
//! - `tray`: the tray app — what it shows (`view`, pure), the event loop and
//!   icon (`app`), the monitor and the fixes behind it (`controller`).
//! - `config`: the settings file, checked key by key, and Unstuck's own folders.
//! - `cli`: the command line, from parsed arguments to output.
//! - `sim`: a simulated iPhone that speaks usbmuxd, lockdownd (TLS) and
//!   mobilebackup2 on loopback TCP, with scripted faults.
//! - `synthetic`: made-up backups in the real layout, for tests, benchmarks and
//!   the demo.
//! - `wire`: usbmuxd and length-prefixed plist frames, with bounds.
//! - `plist_budget`: every plist from disk or the wire, parsed within a
//!   budget of bytes, values and nesting.
//! - `regular_file`: opening what must be a regular file, never blocking on
//!   a pipe or a device, optionally never following a link.
//! - `history`: every run and stall remembered in SQLite, summed up, and
//!   drawn as a self-contained HTML report.
//! - `humanize`: "2 days ago", "1.4 GB".
//! - `logging`: the log file and `--verbose`.

pub mod actions;
pub mod autostart;
pub mod backup_folder;
pub mod cause;
pub mod cli;
pub mod config;
pub mod device;
pub mod engine;
pub mod history;
pub mod humanize;
pub mod logging;
pub mod monitor;
pub mod notify;
pub mod plist_budget;
pub mod process;
pub mod regular_file;
pub mod signals;
#[cfg(feature = "sim")]
pub mod sim;
pub mod stall;
pub mod synthetic;
pub mod tray;
pub mod wire;

/// Locks a mutex, recovering from a panicked holder: every mutex in Unstuck
/// guards plain data that stays consistent between statements.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
