//! The cost of an idle `unstuck watch`: ten complete backups on disk, one
//! simulated iPhone attached (a separate `unstuck sim`), no backup running.
//! Over `BENCH_IDLE_SECS` seconds (default 60) it prints the watch
//! process's CPU (% of one core), thread wake-ups per second and memory,
//! read from /proc (Linux). Goal: at most 0.05 % of a core and 12 MiB.
//! Needs the release binary (`cargo build --release`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() {
    let secs: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/unstuck");
    if !bin.exists() || !Path::new("/proc/self/stat").exists() {
        println!("skipped: needs the release binary (cargo build --release) and /proc");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    for n in 0..10 {
        let mut b = unstuck::synthetic::SyntheticBackup::new(
            &format!("00008120-{:016X}", n + 1),
            jiff::Timestamp::now() - jiff::SignedDuration::from_hours(20),
        );
        b.files = 2000;
        b.file_size = 64;
        b.write(root.path()).unwrap();
    }
    let mut sim = Command::new(&bin)
        .arg("sim")
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(sim.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("USBMUXD_SOCKET_ADDRESS=").map(str::to_owned))
        .expect("the simulator's address");
    std::thread::spawn(move || for _ in lines {});

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
    let pid = watch.id();
    // Let it start, read the folders and the phone, and settle.
    std::thread::sleep(Duration::from_secs(5));
    let (cpu0, wakes0) = (cpu_seconds(pid), wakeups(pid));
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu1, wakes1) = (cpu_seconds(pid), wakeups(pid));
    let rss = memory(pid);
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = sim.kill();
    let _ = sim.wait();
    match (cpu0, cpu1, wakes0, wakes1, rss) {
        (Some(c0), Some(c1), Some(w0), Some(w1), Some((rss, peak))) => {
            let wakes = woke(&w0, &w1);
            println!("idle unstuck watch, 10 backups, 1 phone attached, {secs} s:");
            println!(
                "  CPU {:.4} % of a core (goal <= 0.05 %)",
                (c1 - c0) / secs as f64 * 100.0
            );
            println!(
                "  {:.2} wake-ups/s over all threads",
                wakes as f64 / secs as f64
            );
            println!(
                "  memory {:.1} MiB now, {:.1} MiB peak (goal <= 12 MiB)",
                rss, peak
            );
        }
        _ => println!("the watch process ended early; no figures"),
    }
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Voluntary context switches by thread: how often each woke.
fn wakeups(pid: u32) -> Option<std::collections::HashMap<String, u64>> {
    let mut by_thread = std::collections::HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let task = task.ok()?;
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let n = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        by_thread.insert(task.file_name().to_string_lossy().into_owned(), n);
    }
    Some(by_thread)
}

/// Wake-ups between two readings; threads that came and went are counted
/// from zero (a pool thread that started meanwhile).
fn woke(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> u64 {
    after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Resident and peak resident memory, MiB.
fn memory(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
    };
    Some((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}
