//! The device layer's costs against the simulated iPhone on loopback:
//! - one full facts read (usbmuxd list, pair record, lockdownd session with
//!   TLS, five domains), averaged over 50 reads;
//! - an idle watcher (usbmuxd Listen, no phone attached) over a window of
//!   `BENCH_IDLE_SECS` seconds (default 10): CPU time and thread wake-ups of
//!   the whole process (simulator included), from /proc on Linux.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use unstuck::device::{self, MuxAddress};
use unstuck::sim::{Sim, SimConfig};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let udid = "00008120-00BE7C4A0F1E2D3C";
    let sim = runtime.block_on(Sim::start(SimConfig::new(udid))).unwrap();
    let addr = MuxAddress::Tcp(sim.addr());

    let reads = 50;
    let started = Instant::now();
    runtime.block_on(async {
        for _ in 0..reads {
            device::facts(&addr, Some(udid), device::DEADLINE)
                .await
                .unwrap();
        }
    });
    let per_read = started.elapsed().as_secs_f64() * 1000.0 / reads as f64;
    println!("device facts read: {per_read:.2} ms each (mean of {reads}, TLS session included)");

    sim.detach();
    let (tx, mut rx) = mpsc::channel(16);
    runtime.spawn(device::watch(addr, tx));
    runtime.block_on(async {
        // Let the watcher connect and settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while rx.try_recv().is_ok() {}
    });
    let secs: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (cpu0, wakes0) = (cpu_seconds(), wakeups());
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu1, wakes1) = (cpu_seconds(), wakeups());
    match (cpu0, cpu1, wakes0, wakes1) {
        (Some(c0), Some(c1), Some(w0), Some(w1)) => {
            let cpu = (c1 - c0) / secs as f64 * 100.0;
            let wakes = (w1 - w0) as f64 / secs as f64;
            println!(
                "idle watcher, no phone, {secs} s: {cpu:.3} % of a core, {wakes:.2} wake-ups/s (whole process, simulator included)"
            );
        }
        _ => println!("idle watcher: /proc is not available here; no figures"),
    }
    drop(rx);
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks: 100 per second on Linux.
    Some((utime + stime) / 100.0)
}

/// Voluntary context switches of every thread: how often they woke.
fn wakeups() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        for line in status.lines() {
            if let Some(n) = line.strip_prefix("voluntary_ctxt_switches:") {
                total += n.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}
