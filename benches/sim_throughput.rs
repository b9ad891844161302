//! Raw throughput of the simulated iPhone on loopback: one full backup of
//! `BENCH_SIM_FILES` files of `BENCH_SIM_FILE_KB` KiB (default 2000 × 256 KiB
//! = 500 MiB), unthrottled, received by idevice's own file delegate into a
//! RAM-backed folder (/dev/shm where there is one), so the figure is the
//! simulator and the protocol, not the disk. When Debian's idevicebackup2 is
//! installed, the same backup is also received by it, for comparison.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use idevice::mobilebackup2::FsBackupDelegate;
use unstuck::device::{self, MuxAddress};
use unstuck::sim::{Sim, SimConfig};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scratch() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn main() {
    let files = env_or("BENCH_SIM_FILES", 2000);
    let kib = env_or("BENCH_SIM_FILE_KB", 256);
    let udid = "00008120-00BE7C4A0F1E2D3C";
    let mut config = SimConfig::new(udid);
    config.content.files = files;
    config.content.file_size = kib * 1024;
    let total = config.content.total_bytes() as f64;
    let mib = total / (1024.0 * 1024.0);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(Sim::start(config)).unwrap();
    let addr = MuxAddress::Tcp(sim.addr());

    let dir = scratch();
    let seconds = runtime.block_on(async {
        let mut client = device::mobilebackup2(&addr, Some(udid), device::DEADLINE)
            .await
            .unwrap();
        let started = Instant::now();
        let result = client
            .backup_from_path(dir.path(), None, None, &FsBackupDelegate)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result["ErrorCode"].as_unsigned_integer(), Some(0));
        started.elapsed().as_secs_f64()
    });
    println!("simulated iPhone, full backup of {files} files, {mib:.0} MiB, unthrottled");
    println!(
        "  idevice client:   {:>7.1} MB/s ({seconds:.2} s)",
        total / seconds / 1e6
    );

    let present = Command::new("idevicebackup2")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if present {
        let dir = scratch();
        let started = Instant::now();
        let out = Command::new("idevicebackup2")
            .args(["backup", "--full"])
            .arg(dir.path())
            .env("USBMUXD_SOCKET_ADDRESS", sim.usbmuxd_address())
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let ok = String::from_utf8_lossy(&out.stdout).contains("Backup Successful.");
        println!(
            "  idevicebackup2:   {:>7.1} MB/s ({seconds:.2} s){}",
            total / seconds / 1e6,
            if ok {
                ""
            } else {
                " — it did not report success"
            }
        );
    } else {
        println!("  idevicebackup2:   skipped (not installed)");
    }
}
