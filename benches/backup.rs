//! `unstuck backup` against `idevicebackup2 backup --full`, in one run, on
//! the same simulated iPhone (a separate `unstuck sim` process): by default
//! 2 GB in 20,000 files, unthrottled, into a RAM-backed folder (/dev/shm
//! where there is one) so the disk is not what is measured. Prints MB/s,
//! CPU seconds per GB and peak memory of each client, and the ratios.
//! `BENCH_BACKUP_FILES` and `BENCH_BACKUP_FILE_KB` change the size; a second
//! run of Unstuck at a quarter of the size shows whether memory stays flat.
//! Each client runs twice, alternating, and its faster run counts. The
//! simulator's own work is the same for both and is not counted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Measured {
    seconds: f64,
    cpu: f64,
    max_rss_mib: f64,
    ok: bool,
}

/// Runs a command to completion and takes its own resource use (wait4).
// The child is reaped by wait4, which std's Child cannot see.
#[allow(clippy::zombie_processes)]
fn measure(mut cmd: Command, success: &str) -> Measured {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the client");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; the pointers are to
    // live locals.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    let text = reader.join().unwrap_or_default();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        seconds,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        ok: text.contains(success),
    }
}

fn scratch(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("unstuck-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let files = env_or("BENCH_BACKUP_FILES", 20_000);
    let kib = env_or("BENCH_BACKUP_FILE_KB", 100);
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/unstuck");
    if !bin.exists() {
        println!("skipped: build the release binary first (cargo build --release)");
        return;
    }
    if Command::new("idevicebackup2")
        .arg("--help")
        .output()
        .is_err()
    {
        println!(
            "skipped: idevicebackup2 is not installed (apt-get install libimobiledevice-utils)"
        );
        return;
    }
    let home = scratch("home");
    let total = files as f64 * kib as f64 * 1024.0;
    let gb = total / 1e9;
    println!(
        "backup of {files} files of {kib} KiB ({:.2} GB), unthrottled, simulated iPhone on loopback",
        gb
    );

    let (mut sim, addr) = start_sim(&bin, &home, files, kib);
    let unstuck_run = |addr: &str| {
        let dest = scratch("unstuck");
        let mut cmd = Command::new(&bin);
        cmd.args(["backup", "--full", "--dest"])
            .arg(&dest)
            .env("HOME", &home)
            .env("USBMUXD_SOCKET_ADDRESS", addr);
        let m = measure(cmd, "Backup complete");
        let _ = std::fs::remove_dir_all(&dest);
        m
    };
    let their_run = |addr: &str| {
        let dest = scratch("idevicebackup2");
        let mut cmd = Command::new("idevicebackup2");
        cmd.args(["backup", "--full"])
            .arg(&dest)
            .env("USBMUXD_SOCKET_ADDRESS", addr);
        let m = measure(cmd, "Backup Successful.");
        let _ = std::fs::remove_dir_all(&dest);
        m
    };
    // Alternate, twice each, and keep each client's faster run: the first
    // writes into a fresh RAM disk pay for its pages.
    let best = |a: Measured, b: Measured| if a.seconds <= b.seconds { a } else { b };
    let theirs_1 = their_run(&addr);
    let ours_1 = unstuck_run(&addr);
    let theirs = best(theirs_1, their_run(&addr));
    let ours = best(ours_1, unstuck_run(&addr));
    let _ = sim.kill();
    let _ = sim.wait();

    let (mut small_sim, small_addr) = start_sim(&bin, &home, files / 4, kib);
    let small = unstuck_run(&small_addr);
    let _ = small_sim.kill();
    let _ = small_sim.wait();
    let _ = std::fs::remove_dir_all(&home);

    let show = |name: &str, m: &Measured, gb: f64| {
        println!(
            "  {name:<16} {:>7.1} MB/s  {:>5.2} s  CPU {:>5.2} s/GB  peak RSS {:>6.1} MiB{}",
            gb * 1000.0 / m.seconds,
            m.seconds,
            m.cpu / gb,
            m.max_rss_mib,
            if m.ok {
                ""
            } else {
                "  (did not report success)"
            }
        );
    };
    show("unstuck backup", &ours, gb);
    show("idevicebackup2", &theirs, gb);
    show("unstuck, 1/4 size", &small, gb / 4.0);
    println!(
        "  throughput ratio unstuck/idevicebackup2: {:.2}x (goal >= 1.2x); CPU per GB ratio: {:.2} (goal <= 1.0)",
        theirs.seconds / ours.seconds,
        (ours.cpu / gb) / (theirs.cpu / gb)
    );
    println!(
        "  peak memory at full size vs a quarter: {:.1} MiB vs {:.1} MiB",
        ours.max_rss_mib, small.max_rss_mib
    );
}

/// Starts `unstuck sim` with the given content and returns it with its address.
fn start_sim(bin: &Path, home: &Path, files: usize, kib: usize) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut sim = Command::new(bin)
        .args(["sim", "--files", &files.to_string()])
        .args(["--file-size", &(kib * 1024).to_string(), "--rate", "0"])
        .env("HOME", home)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start unstuck sim");
    let stdout = sim.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("USBMUXD_SOCKET_ADDRESS=").map(str::to_owned))
        .expect("the simulator prints its address");
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (sim, addr)
}
