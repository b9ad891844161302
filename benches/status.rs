//! `status` over 10 synthetic backups of 100,000 files each.
//!
//! Goal: a warm `status` (sizes and counts cached from an earlier run) takes
//! at most 200 ms. Prints the cold figure (first run: every folder walked and
//! every Manifest.db counted), the warm figures through the library, and the
//! warm figure of the real binary, process start included.
//!
//! The backups are generated once into `target/bench-data/` and reused; files
//! are empty so that a million of them cost inodes, not gigabytes (the walk's
//! cost is per entry, not per byte). `BENCH_FILES` and `BENCH_BACKUPS` change
//! the size for a quick run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use unstuck::backup_folder::{self, BackupRoot, MeasureCache, ReadOptions, RootOrigin};
use unstuck::synthetic::SyntheticBackup;

const GOAL: Duration = Duration::from_millis(200);

fn main() {
    let files: usize = env_or("BENCH_FILES", 100_000);
    let backups: usize = env_or("BENCH_BACKUPS", 10);
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-data")
        .join(format!("status-{backups}x{files}"));
    let root = data.join("Backup");
    prepare(&root, backups, files);

    let roots = [BackupRoot {
        path: root.clone(),
        origin: RootOrigin::CommandLine,
    }];
    let options = ReadOptions {
        now: Timestamp::now(),
        active_window: SignedDuration::from_mins(10),
    };
    let cache_file = data.join("cache.json");
    let _ = std::fs::remove_file(&cache_file);

    let started = Instant::now();
    let mut cache = MeasureCache::load(cache_file.clone());
    let reports = backup_folder::read_roots(&roots, options, &mut cache);
    cache.save().expect("save the cache");
    let cold = started.elapsed();
    check(&reports, backups, files);

    let mut warm = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let mut cache = MeasureCache::load(cache_file.clone());
        let reports = backup_folder::read_roots(&roots, options, &mut cache);
        cache.save().expect("save the cache");
        warm.push(started.elapsed());
        check(&reports, backups, files);
    }
    warm.sort();

    let binary = binary_warm(&root, &data);

    println!("status over {backups} backups of {files} files each");
    println!("  cold (walk + count, cache empty): {:>8.1} ms", ms(cold));
    println!(
        "  warm, library (20 runs):          {:>8.1} ms median, {:.1} min, {:.1} max",
        ms(warm[warm.len() / 2]),
        ms(warm[0]),
        ms(warm[warm.len() - 1])
    );
    match binary {
        Some(b) => println!(
            "  warm, `unstuck status` process:   {:>8.1} ms median of 10",
            ms(b)
        ),
        None => println!(
            "  warm, `unstuck status` process:   skipped (no release binary; run `cargo build --release`)"
        ),
    }
    let median = warm[warm.len() / 2];
    println!(
        "  goal <= {} ms warm: {}",
        GOAL.as_millis(),
        if median <= GOAL { "met" } else { "NOT met" }
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn prepare(root: &Path, backups: usize, files: usize) {
    let done = root.join(".complete");
    if done.exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(root);
    eprintln!(
        "generating {backups} backups of {files} files in {} (once)",
        root.display()
    );
    let started = Instant::now();
    for n in 0..backups {
        let udid = format!("00008120-{:016X}", n as u64 + 1);
        let mut b = SyntheticBackup::new(&udid, Timestamp::now() - SignedDuration::from_hours(30));
        b.files = files;
        b.file_size = 0;
        b.seed = n as u64;
        b.write(root).expect("write a synthetic backup");
    }
    std::fs::write(&done, b"").unwrap();
    eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
}

fn check(reports: &[backup_folder::RootReport], backups: usize, files: usize) {
    let backup_folder::RootOutcome::Read(list) = &reports[0].outcome else {
        panic!("the bench root could not be read: {:?}", reports[0].outcome);
    };
    assert_eq!(list.len(), backups);
    for b in list {
        assert_eq!(b.file_count, Some(files as u64), "{}", b.path.display());
    }
}

/// The median of ten runs of the release binary, once its cache is warm.
fn binary_warm(root: &Path, data: &Path) -> Option<Duration> {
    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/unstuck");
    if !binary.exists() {
        return None;
    }
    let home = data.join("home");
    let run = || {
        let started = Instant::now();
        let out = Command::new(&binary)
            .args(["status", "--json", "--backup-root"])
            .arg(root)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .output()
            .expect("run unstuck");
        assert!(out.status.success());
        started.elapsed()
    };
    run();
    let mut times: Vec<Duration> = (0..10).map(|_| run()).collect();
    times.sort();
    Some(times[5])
}
