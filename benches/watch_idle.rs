//! The cost of an idle `unstuck watch`: ten complete backups on disk, one
//! simulated iPhone attached (a separate `unstuck sim`), no backup running.
//! Over `BENCH_IDLE_SECS` seconds (default 60) it prints the watch
//! process's CPU (% of one core), thread wake-ups per second and memory,
//! read from /proc (Linux). Goal: at most 0.05 % of a core and 12 MiB.
//! Needs the release binary (`cargo build --release`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "common/idle.rs"]
mod idle;

fn main() {
    let secs = idle::window();
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/unstuck");
    if !bin.exists() || !Path::new("/proc/self/stat").exists() {
        println!("skipped: needs the release binary (cargo build --release) and /proc");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    idle::backups(root.path());
    let (mut sim, addr) = idle::sim(&bin, home.path());
    let mut watch = Command::new(&bin)
        .args(["watch", "--no-notify", "--backup-root"])
        .arg(root.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("USBMUXD_SOCKET_ADDRESS", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let it start, read the folders and the phone, and settle.
    let figures = idle::measure(watch.id(), Duration::from_secs(5), secs);
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = sim.kill();
    let _ = sim.wait();
    idle::report(
        &format!("idle unstuck watch, 10 backups, 1 phone attached, {secs} s"),
        figures,
        12.0,
    );
}
