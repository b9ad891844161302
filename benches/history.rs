//! The history at the size of years: 10,000 runs and 100,000 stalls.
//!
//! Goals: the report (history read, summed up, charts drawn, page written)
//! in at most 1 s; the history file at most 20 MB. Prints the time to
//! record them (one transaction), the file's size, the time to read every
//! run back, and the report's time through the library and through the
//! real binary (`unstuck report`, process start included).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use unstuck::cause::Cause;
use unstuck::history::store::Filter;
use unstuck::history::{History, Outcome, Run, Stall, StallEnd};
use unstuck::stall::Phase;

const RUNS: usize = 10_000;
const STALLS_PER_RUN: usize = 10;
const REPORT_GOAL: Duration = Duration::from_secs(1);
const FILE_GOAL: u64 = 20 * 1024 * 1024;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data/unstuck");
    let path = History::path_in(&data);
    let now = Timestamp::now();
    let causes = [
        Cause::Detached,
        Cause::ProcessHung,
        Cause::HostDiskFull,
        Cause::Unknown,
        Cause::PasscodeWait,
    ];
    // Five phones, a run every few hours for years.
    let runs: Vec<Run> = (0..RUNS)
        .map(|n| {
            let started = now - SignedDuration::from_hours(4 * (RUNS - n) as i64);
            Run {
                udid: format!("00008120-00000000000{:05X}", n % 5),
                name: Some(format!("Phone {}", n % 5)),
                program: "unstuck".into(),
                started,
                ended: started + SignedDuration::from_mins(20),
                outcome: if n % 13 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Complete
                },
                bytes: 500_000_000,
                files: Some(120_000),
                average_rate: Some(4e6),
                slowest_rate: Some(1e6),
                error_code: (n % 13 == 0).then_some(105),
                cause: (n % 13 == 0).then_some(Cause::HostDiskFull),
                restarts: 2,
                size: Some(40_000_000_000),
                stalls: (0..STALLS_PER_RUN)
                    .map(|s| Stall {
                        phase: Phase::Copying,
                        started: started + SignedDuration::from_secs(60 * s as i64),
                        secs: 130,
                        cause: causes[(n + s) % causes.len()],
                        ended_by: StallEnd::Restarted,
                    })
                    .collect(),
            }
        })
        .collect();

    let t = Instant::now();
    let mut history = History::open(&path).unwrap();
    history.save(&runs).unwrap();
    drop(history);
    let record = t.elapsed();
    let bytes: u64 = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(Path::new(&p)).ok().map(|m| m.len())
        })
        .sum();

    let t = Instant::now();
    let history = History::open(&path).unwrap();
    let back = history.runs(&Filter::default()).unwrap();
    let read = t.elapsed();
    assert_eq!(back.len(), RUNS);

    let out = dir.path().join("report.html");
    let t = Instant::now();
    unstuck::history::write_report(&data, &out, now, 7).unwrap();
    let library = t.elapsed();
    let page = std::fs::metadata(&out).unwrap().len();

    let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/unstuck");
    let binary = exe.exists().then(|| {
        let t = Instant::now();
        let status = Command::new(&exe)
            .args(["report", "--out"])
            .arg(&out)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        t.elapsed()
    });

    println!("history: {RUNS} runs, {} stalls", RUNS * STALLS_PER_RUN);
    println!("  recorded in one transaction: {:.0} ms", ms(record));
    println!(
        "  history file: {:.1} MB (goal ≤ {} MB): {}",
        bytes as f64 / 1e6,
        FILE_GOAL / 1024 / 1024,
        verdict(bytes <= FILE_GOAL)
    );
    println!("  every run read back: {:.0} ms", ms(read));
    println!(
        "  report (library): {:.0} ms, page {:.0} KB (goal ≤ {} ms): {}",
        ms(library),
        page as f64 / 1e3,
        REPORT_GOAL.as_millis(),
        verdict(library <= REPORT_GOAL)
    );
    match binary {
        Some(d) => println!(
            "  unstuck report (release binary, process start included): {:.0} ms: {}",
            ms(d),
            verdict(d <= REPORT_GOAL)
        ),
        None => println!("  unstuck report: skipped (cargo build --release first)"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "within the goal"
    } else {
        "OVER THE GOAL"
    }
}
