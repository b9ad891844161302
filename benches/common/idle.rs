//! What an idle process costs, read from /proc (Linux): CPU seconds,
//! wake-ups by thread, resident memory. Shared by the idle benchmarks.

/// User and system CPU seconds of `pid` so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Voluntary context switches by thread: how often each woke.
pub fn wakeups(pid: u32) -> Option<std::collections::HashMap<String, u64>> {
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
pub fn woke(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> u64 {
    after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Resident and peak resident memory, MiB.
pub fn memory(pid: u32) -> Option<(f64, f64)> {
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

/// An idle window's figures.
pub struct Figures {
    pub cpu_percent: f64,
    pub wakeups_per_sec: f64,
    pub rss_mib: f64,
    pub peak_mib: f64,
}

/// Measures `pid` over `secs` seconds after letting it settle for `settle`;
/// `None` when it ended meanwhile.
pub fn measure(pid: u32, settle: std::time::Duration, secs: u64) -> Option<Figures> {
    std::thread::sleep(settle);
    let (cpu0, wakes0) = (cpu_seconds(pid)?, wakeups(pid)?);
    std::thread::sleep(std::time::Duration::from_secs(secs));
    let (cpu1, wakes1) = (cpu_seconds(pid)?, wakeups(pid)?);
    let (rss_mib, peak_mib) = memory(pid)?;
    Some(Figures {
        cpu_percent: (cpu1 - cpu0) / secs as f64 * 100.0,
        wakeups_per_sec: woke(&wakes0, &wakes1) as f64 / secs as f64,
        rss_mib,
        peak_mib,
    })
}

/// Starts `unstuck sim` (a healthy simulated iPhone) with `bin`; returns
/// the process and its `USBMUXD_SOCKET_ADDRESS`.
pub fn sim(bin: &std::path::Path, home: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut sim = std::process::Command::new(bin)
        .arg("sim")
        .env("HOME", home)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(sim.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("USBMUXD_SOCKET_ADDRESS=").map(str::to_owned))
        .expect("the simulator's address");
    std::thread::spawn(move || for _ in lines {});
    (sim, addr)
}

/// The seconds to measure: `BENCH_IDLE_SECS`, default 60.
pub fn window() -> u64 {
    std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// Prints `figures` for `what` against the goals (0.05 % of a core, and
/// `goal_mib` of memory).
pub fn report(what: &str, figures: Option<Figures>, goal_mib: f64) {
    let Some(f) = figures else {
        println!("{what}: the process ended early or never started; no figures");
        return;
    };
    println!("{what}:");
    println!("  CPU {:.4} % of a core (goal <= 0.05 %)", f.cpu_percent);
    println!("  {:.2} wake-ups/s over all threads", f.wakeups_per_sec);
    println!(
        "  memory {:.1} MiB now, {:.1} MiB peak (goal <= {goal_mib:.0} MiB)",
        f.rss_mib, f.peak_mib
    );
}

/// Ten complete backups of 2,000 small files each in `root`, the last
/// twenty hours ago: what the idle benchmarks watch.
pub fn backups(root: &std::path::Path) {
    for n in 0..10 {
        let mut b = unstuck::synthetic::SyntheticBackup::new(
            &format!("00008120-{:016X}", n + 1),
            jiff::Timestamp::now() - jiff::SignedDuration::from_hours(20),
        );
        b.files = 2000;
        b.file_size = 64;
        b.write(root).unwrap();
    }
}
