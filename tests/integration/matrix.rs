//! The acceptance matrix: every simulated scenario (and no usbmuxd, a disk
//! that fills during the run, a read-only destination) against every
//! command that applies to it, run as a user runs them — the real binary, a
//! private home, the simulated iPhone behind usbmuxd's protocol. Each cell
//! checks the exit code the README documents, the words that name the
//! cause and the fix, and words that would mislead. The whole table is
//! printed and kept in `target/acceptance-matrix.md`; the README's exit-code
//! lists are checked against the codes the cells expect.
//!
//! Real time: thresholds of seconds and a phone of 640 KB, so a scenario
//! takes a few seconds; scenarios run four at a time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use unstuck::sim::{Sim, SimConfig, SimEvent};

use crate::util::{self, Home, KillOnDrop};

/// Thresholds of seconds, one restart: a stall is seen and given up on
/// within a few seconds.
const CONFIG: &str = "\
[stall]
starting_seconds = 6
passcode_seconds = 10
copying_seconds = 2
finishing_seconds = 6
[backup]
max_restarts = 1
[monitor]
poll_seconds_busy = 1
poll_seconds_idle = 1
";

/// What a cell expects: the exit code, words that must appear (any case) in
/// what it printed, and words that must not.
#[derive(Clone, Copy)]
struct Expect {
    code: i32,
    says: &'static [&'static str],
    never: &'static [&'static str],
}

const fn expect(code: i32, says: &'static [&'static str]) -> Expect {
    Expect {
        code,
        says,
        never: &[],
    }
}

impl Expect {
    const fn never(mut self, never: &'static [&'static str]) -> Expect {
        self.never = never;
        self
    }
}

/// Words no answer may ever contain: the phone's "unknown size" sentinel
/// shown as a size, Rust's own error texts, a path into a crate's source.
const NEVER_ANYWHERE: &[&str] = &[
    "1125899906842624",
    "os error",
    "panicked",
    ".cargo/registry",
    "internal error",
];

/// The commands of the matrix, in the table's column order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Cmd {
    Devices,
    Backup,
    /// `watch --json` while the backup runs (its exit code is not asked).
    WatchDuring,
    WatchOnce,
    FixRestart,
    FixNetwork,
    FixStorage,
    FixEncryption,
    Encryption,
    /// `status` after the backup.
    Status,
}

impl Cmd {
    fn title(self) -> &'static str {
        match self {
            Cmd::Devices => "devices",
            Cmd::Backup => "backup",
            Cmd::WatchDuring => "watch --json (during)",
            Cmd::WatchOnce => "watch --once",
            Cmd::FixRestart => "fix restart --yes",
            Cmd::FixNetwork => "fix network",
            Cmd::FixStorage => "fix storage",
            Cmd::FixEncryption => "fix encryption",
            Cmd::Encryption => "encryption",
            Cmd::Status => "status",
        }
    }
}

/// How the scenario's world is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum World {
    /// The named simulated scenario.
    Sim,
    /// Nothing listens where usbmuxd should be.
    NoUsbmuxd,
    /// A healthy phone; the backup disk fills while the backup runs.
    FillingDisk,
    /// A healthy phone; the destination is on a read-only file system.
    ReadOnlyDest,
}

struct Row {
    name: &'static str,
    scenario: &'static str,
    world: World,
    cells: Vec<(Cmd, Expect)>,
    /// For `encryption`: the arguments and what standard input gives.
    encryption: (&'static [&'static str], &'static str),
}

fn rows() -> Vec<Row> {
    use Cmd::*;
    let status: (&[&str], &str) = (&["encryption", "status"], "");
    vec![
        Row {
            name: "healthy",
            scenario: "healthy",
            world: World::Sim,
            cells: vec![
                (Devices, expect(0, &["Matrix iPhone", "USB"])),
                (Backup, expect(0, &["complete"])),
                (
                    WatchDuring,
                    expect(0, &["\"attached\":true", "running", "completed"])
                        .never(&["nothing_found"]),
                ),
                (
                    WatchOnce,
                    expect(0, &["Matrix iPhone"]).never(&["did not finish", "stalled"]),
                ),
                (Status, expect(0, &["complete"]).never(&["failed"])),
                (FixRestart, expect(0, &["complete"]).never(&["stuck"])),
                (FixNetwork, expect(0, &["USB"])),
                (FixStorage, expect(0, &["Matrix iPhone", "free"])),
                (FixEncryption, expect(0, &["not encrypted"])),
                (Encryption, expect(0, &["not encrypted"])),
            ],
            encryption: status,
        },
        Row {
            name: "slow",
            scenario: "slow",
            world: World::Sim,
            cells: vec![
                (Status, expect(0, &["complete"]).never(&["failed"])),
                (FixStorage, expect(0, &["Matrix iPhone", "free"])),
                (Devices, expect(0, &["Wi-Fi", "Wi-Fi sync on"])),
                (Backup, expect(0, &["complete"])),
                (WatchDuring, expect(0, &["running", "completed"])),
                (WatchOnce, expect(0, &["Matrix iPhone"])),
                (
                    FixNetwork,
                    expect(0, &["Wi-Fi"]).never(&["turn on wi-fi sync"]),
                ),
            ],
            encryption: status,
        },
        Row {
            name: "stall-at-40",
            scenario: "stall-at-40",
            world: World::Sim,
            cells: vec![
                (Devices, expect(0, &["Matrix iPhone"])),
                (Backup, expect(5, &["stalled", "unstuck fix"])),
                (WatchDuring, expect(0, &["stalled", "copying"])),
                (WatchOnce, expect(3, &["failed", "stalled"])),
                (
                    Status,
                    expect(0, &["interrupted", "failed", "stalled"]).never(&["backing up"]),
                ),
                (
                    FixRestart,
                    expect(5, &["stalled"]).never(&["starting again after"]),
                ),
                (FixNetwork, expect(0, &["USB"])),
            ],
            encryption: status,
        },
        Row {
            name: "unplug-at-70",
            scenario: "unplug-at-70",
            world: World::Sim,
            cells: vec![
                (Devices, expect(0, &["Matrix iPhone", "USB"])),
                (Status, expect(0, &["complete"]).never(&["failed"])),
                (
                    Backup,
                    expect(0, &["plug it back in", "complete"]).never(&["try again"]),
                ),
                (
                    WatchDuring,
                    expect(0, &["stalled", "disconnected", "completed"]),
                ),
                (
                    WatchOnce,
                    expect(0, &["Matrix iPhone"]).never(&["did not finish"]),
                ),
                (FixNetwork, expect(0, &["cable"])),
            ],
            encryption: status,
        },
        Row {
            name: "host-disk-full (105)",
            scenario: "host-disk-full",
            world: World::Sim,
            cells: vec![
                (Devices, expect(0, &["Matrix iPhone"])),
                (FixNetwork, expect(0, &["USB"])),
                (
                    Backup,
                    expect(12, &["105", "too little free space", "unstuck fix storage"])
                        .never(&["disk is full", "Storage Clean-up"]),
                ),
                (WatchDuring, expect(0, &["failed", "105"])),
                (WatchOnce, expect(3, &["105", "unstuck fix storage"])),
                (Status, expect(0, &["failed", "error 105"])),
                (FixStorage, expect(0, &["free"])),
            ],
            encryption: status,
        },
        Row {
            name: "wrong-password (207)",
            scenario: "wrong-password",
            world: World::Sim,
            cells: vec![
                (WatchOnce, expect(0, &["Matrix iPhone"])),
                (Status, expect(0, &["complete"])),
                (Devices, expect(0, &["encrypted"])),
                (Backup, expect(0, &["complete"])),
                (
                    FixEncryption,
                    expect(0, &["encrypted", "Reset All Settings"]),
                ),
                (
                    Encryption,
                    expect(13, &["not the backup password", "Reset All Settings"]),
                ),
            ],
            encryption: (
                &["encryption", "change", "--password-stdin"],
                "not it\nnew one\nnew one\n",
            ),
        },
        Row {
            name: "passcode-wait (208)",
            scenario: "passcode-wait",
            world: World::Sim,
            cells: vec![
                (Devices, expect(0, &["Matrix iPhone", "iOS 18.1"])),
                (Status, expect(0, &["failed", "error 208"])),
                (FixRestart, expect(14, &["passcode"])),
                (Backup, expect(14, &["enter the passcode", "208"])),
                (WatchDuring, expect(0, &["passcode"])),
                (WatchOnce, expect(3, &["208", "passcode"])),
            ],
            encryption: status,
        },
        Row {
            name: "locked",
            scenario: "locked",
            world: World::Sim,
            cells: vec![
                (FixRestart, expect(4, &["unlock"])),
                (FixEncryption, expect(4, &["unlock"])),
                (Devices, expect(0, &["locked", "unlock"])),
                (Backup, expect(4, &["unlock"])),
                (WatchOnce, expect(4, &["locked", "unlock"]).never(&["idle"])),
                (FixNetwork, expect(0, &["unlock"]).never(&["with a cable"])),
                (Encryption, expect(4, &["unlock"])),
            ],
            encryption: status,
        },
        Row {
            name: "untrusted",
            scenario: "untrusted",
            world: World::Sim,
            cells: vec![
                (FixRestart, expect(4, &["Trust"])),
                (Encryption, expect(4, &["Trust"])),
                (Devices, expect(0, &["Trust"])),
                (Backup, expect(4, &["Trust"])),
                (WatchOnce, expect(4, &["Trust"]).never(&["idle"])),
                (FixNetwork, expect(0, &["Trust"]).never(&["with a cable"])),
            ],
            encryption: status,
        },
        Row {
            name: "unpaired",
            scenario: "unpaired",
            world: World::Sim,
            cells: vec![
                (FixNetwork, expect(0, &["Trust"]).never(&["with a cable"])),
                (Encryption, expect(4, &["Trust"])),
                (Devices, expect(0, &["Trust"])),
                (Backup, expect(4, &["Trust"])),
                (WatchOnce, expect(4, &["Trust"]).never(&["idle"])),
            ],
            encryption: status,
        },
        Row {
            name: "no usbmuxd",
            scenario: "healthy",
            world: World::NoUsbmuxd,
            cells: vec![
                (Devices, expect(4, &["usbmuxd"])),
                (Backup, expect(4, &["usbmuxd"])),
                (WatchOnce, expect(0, &["usbmuxd"])),
                (FixRestart, expect(4, &["usbmuxd"])),
                (FixNetwork, expect(4, &["usbmuxd"]).never(&["wi-fi sync"])),
                (FixStorage, expect(0, &["free"])),
                (Encryption, expect(4, &["usbmuxd"])),
            ],
            encryption: status,
        },
        Row {
            name: "disk fills mid-run",
            scenario: "healthy",
            world: World::FillingDisk,
            cells: vec![
                (
                    Backup,
                    expect(7, &["disk is full", "unstuck fix storage"])
                        .never(&["iPhone or usbmuxd"]),
                ),
                (WatchOnce, expect(3, &["disk"])),
                (Status, expect(0, &["complete", "failed", "disk is full"])),
            ],
            encryption: status,
        },
        Row {
            name: "read-only destination",
            scenario: "healthy",
            world: World::ReadOnlyDest,
            cells: vec![
                (Devices, expect(0, &["Matrix iPhone"])),
                (
                    Backup,
                    expect(7, &["read-only", "--dest"]).never(&["File exists"]),
                ),
            ],
            encryption: status,
        },
    ]
}

/// What a cell saw.
#[derive(Clone, Debug)]
struct Seen {
    code: Option<i32>,
    text: String,
}

impl Seen {
    fn of(out: std::process::Output) -> Seen {
        Seen {
            code: out.status.code(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

/// One cell's result: the command, what it printed, and why it failed
/// (`None` when it passed).
type Cell = (Cmd, Seen, Option<String>);

/// `None` when the cell passed, else why not.
fn judge(cmd: Cmd, expect: &Expect, seen: &Seen) -> Option<String> {
    let text = seen.text.to_lowercase();
    let mut wrong = Vec::new();
    if cmd != Cmd::WatchDuring && seen.code != Some(expect.code) {
        wrong.push(format!("exit {:?}, not {}", seen.code, expect.code));
    }
    for word in expect.says {
        if !text.contains(&word.to_lowercase()) {
            wrong.push(format!("no {word:?}"));
        }
    }
    for word in expect.never.iter().chain(NEVER_ANYWHERE) {
        if text.contains(&word.to_lowercase()) {
            wrong.push(format!("says {word:?}"));
        }
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// A tmpfs mounted for one scenario (root only), unmounted when dropped.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn new(options: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Mount { dir })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A phone of 640 KB sent at 400 KB/s (about 1.6 s), with waits of seconds;
/// its own UDID, so scenarios running side by side never share a backup.
fn phone(scenario: &str, n: usize) -> SimConfig {
    let mut c = unstuck::sim::scenario(scenario).unwrap();
    c.udid = format!("00008120-00000000000A{n:04X}");
    c.device_name = "Matrix iPhone".into();
    c.content.files = 40;
    c.content.file_size = 16 * 1024;
    c.content.changed_files = 10;
    c.throughput = Some(if scenario == "slow" { 200_000 } else { 400_000 });
    if let Some(stall) = &mut c.stall {
        stall.duration = Duration::from_secs(120);
    }
    if let Some(wait) = &mut c.passcode_wait {
        *wait = Duration::from_secs(4);
    }
    c.fit_storage_to_content();
    c
}

/// Runs one row; each cell's result.
fn run_row(row: &Row, n: usize) -> Vec<Cell> {
    let home = Home::new();
    home.write_config(CONFIG);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(Sim::start(phone(row.scenario, n)))
        .unwrap();
    let usbmuxd = match row.world {
        World::NoUsbmuxd => closed_port(),
        _ => sim.usbmuxd_address(),
    };
    // The destination: a fresh folder, a small disk, or a read-only one.
    let plain = tempfile::tempdir().unwrap();
    let mount = match row.world {
        World::FillingDisk => Mount::new("size=140m"),
        World::ReadOnlyDest => Mount::new("ro,size=1m"),
        _ => None,
    };
    let dest: PathBuf = match (&mount, row.world) {
        (Some(m), _) => m.dir.path().to_owned(),
        (None, World::ReadOnlyDest) => {
            // Not root: a folder without write permission says the same.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(plain.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
            plain.path().to_owned()
        }
        _ => plain.path().to_owned(),
    };
    let dest_s = dest.to_str().unwrap().to_owned();
    let roots = ["--backup-root", dest_s.as_str()];
    let wants = |cmd: Cmd| row.cells.iter().find(|(c, _)| *c == cmd).map(|(_, e)| *e);
    let mut seen: BTreeMap<Cmd, Seen> = BTreeMap::new();
    let run = |args: &[&str], stdin: &str| -> Seen {
        Seen::of(home.run_with_input(&usbmuxd, args, stdin).0)
    };

    if wants(Cmd::Devices).is_some() {
        seen.insert(Cmd::Devices, run(&["devices"], ""));
    }
    if row.world == World::FillingDisk && mount.is_none() {
        eprintln!(
            "SKIPPED matrix row {}: cannot mount a tmpfs here (CI runs as root and can)",
            row.name
        );
        return Vec::new();
    }
    if wants(Cmd::Backup).is_some() {
        if row.world == World::FillingDisk {
            // A complete backup first, so that the run that fills the disk
            // has one to keep.
            let first = run(&["backup", "--dest", &dest_s], "");
            assert_eq!(first.code, Some(0), "{}", first.text);
        }
        let watching = wants(Cmd::WatchDuring).map(|_| Watch::start(&home, &usbmuxd, &roots));
        let mut child = home
            .command(&["backup", "--dest", &dest_s])
            .env("USBMUXD_SOCKET_ADDRESS", &usbmuxd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let readers: Vec<_> = [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ]
        .into_iter()
        .map(|r| {
            let text = text.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let mut t = text.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            })
        })
        .collect();
        // The world changes while the backup runs, as a user's would.
        let started = Instant::now();
        let mut child = KillOnDrop(child);
        let mut replugged = false;
        let mut filled = false;
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "row {}: the backup did not end in 120 s:\n{}",
                row.name,
                text.lock().unwrap()
            );
            let events = sim.events();
            if row.scenario == "unplug-at-70"
                && !replugged
                && events
                    .iter()
                    .any(|e| matches!(e, SimEvent::Unplugged { .. }))
            {
                // Plugged back in after three seconds.
                std::thread::sleep(Duration::from_secs(3));
                sim.update(|c| c.unplug_at_percent = None);
                sim.attach();
                replugged = true;
            }
            if row.world == World::FillingDisk
                && !filled
                && events
                    .iter()
                    .filter(|e| matches!(e, SimEvent::BackupStarted { .. }))
                    .count()
                    >= 2
            {
                // Another program takes what is left of the disk.
                fill(&dest);
                filled = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for r in readers {
            r.join().unwrap();
        }
        let text = text.lock().unwrap().clone();
        seen.insert(
            Cmd::Backup,
            Seen {
                code: status.code(),
                text,
            },
        );
        if let Some(w) = watching {
            seen.insert(Cmd::WatchDuring, w.finish());
        }
        if filled {
            // The other program's file goes; the disk has room again.
            let _ = std::fs::remove_file(dest.join("filler"));
        }
    }
    if wants(Cmd::WatchOnce).is_some() {
        let mut args = vec!["watch", "--once", "--no-notify"];
        args.extend(roots);
        seen.insert(Cmd::WatchOnce, run(&args, ""));
    }
    if wants(Cmd::Status).is_some() {
        let mut args = vec!["status"];
        args.extend(roots);
        seen.insert(Cmd::Status, run(&args, ""));
    }
    if wants(Cmd::FixRestart).is_some() {
        seen.insert(
            Cmd::FixRestart,
            run(&["fix", "restart", "--yes", "--dest", &dest_s], ""),
        );
    }
    if wants(Cmd::FixNetwork).is_some() {
        seen.insert(Cmd::FixNetwork, run(&["fix", "network"], ""));
    }
    if wants(Cmd::FixStorage).is_some() {
        let mut args = vec!["fix", "storage"];
        args.extend(roots);
        seen.insert(Cmd::FixStorage, run(&args, ""));
    }
    if wants(Cmd::FixEncryption).is_some() {
        seen.insert(Cmd::FixEncryption, run(&["fix", "encryption"], ""));
    }
    if wants(Cmd::Encryption).is_some() {
        let (args, stdin) = row.encryption;
        seen.insert(Cmd::Encryption, run(args, stdin));
    }
    drop(sim);
    row.cells
        .iter()
        .map(|(cmd, expect)| {
            let s = seen.remove(cmd).unwrap_or(Seen {
                code: None,
                text: "(not run)".into(),
            });
            let verdict = judge(*cmd, expect, &s);
            (*cmd, s, verdict)
        })
        .collect()
}

/// An address where nothing listens.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

/// Fills the file system under `dir` but for a few KB.
fn fill(dir: &Path) {
    let mut file = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 1 << 20];
    while file.write_all(&block).is_ok() {}
    let small = vec![0u8; 4096];
    while file.write_all(&small).is_ok() {}
}

/// `unstuck watch --json` for the length of a backup.
struct Watch {
    child: KillOnDrop,
    lines: Arc<Mutex<String>>,
}

impl Watch {
    fn start(home: &Home, usbmuxd: &str, roots: &[&str]) -> Watch {
        let mut args = vec!["watch", "--json", "--no-notify"];
        args.extend(roots);
        let mut child = home
            .command(&args)
            .env("USBMUXD_SOCKET_ADDRESS", usbmuxd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(String::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut t = sink.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        // Its first look and the picture it starts with (1.5 s), before
        // the backup starts.
        std::thread::sleep(Duration::from_millis(2000));
        Watch {
            child: KillOnDrop(child),
            lines,
        }
    }

    /// What it printed, once it has had a poll or two to see the end.
    fn finish(self) -> Seen {
        std::thread::sleep(Duration::from_secs(3));
        drop(self.child);
        Seen {
            code: Some(0),
            text: self.lines.lock().unwrap().clone(),
        }
    }
}

/// The exit codes of `unstuck backup` (and `fix restart`, which exits as it
/// does) with the README's words for each.
const BACKUP_CODES: &[(i32, &str)] = &[
    (0, "0 done"),
    (3, "3 not started"),
    (4, "4 the phone could not be reached"),
    (5, "5 stalled in every attempt"),
    (7, "7 the disk could not be written"),
    (
        12,
        "12 too little space on the backup disk for this backup — 105",
    ),
    (13, "13 wrong password — 207"),
    (14, "14 passcode not entered — 208"),
];

/// The exit codes of `watch --once`.
const WATCH_CODES: &[(i32, &str)] = &[
    (0, "exits 0 (healthy)"),
    (2, "2 (a backup is stalled)"),
    (3, "3 (a backup did not finish)"),
    (
        4,
        "4 (a phone refuses this computer: locked, or not trusted)",
    ),
];

#[test]
fn every_scenario_and_command_says_what_is_true() {
    let _no_foreign = util::no_foreign_backup_programs();
    let rows = rows();
    let results: Vec<Mutex<Option<Vec<Cell>>>> = rows.iter().map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(row) = rows.get(i) else { break };
                    *results[i].lock().unwrap() = Some(run_row(row, i));
                }
            });
        }
    });

    // The table, for the eye and for the record.
    let columns: Vec<Cmd> = {
        let mut c: Vec<Cmd> = rows
            .iter()
            .flat_map(|r| r.cells.iter().map(|(c, _)| *c))
            .collect();
        c.sort();
        c.dedup();
        c
    };
    let mut table = format!(
        "| scenario | {} |\n|---|{}\n",
        columns
            .iter()
            .map(|c| c.title())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(columns.len())
    );
    let mut failures = Vec::new();
    // `UNSTUCK_MATRIX_SHOW=1` prints what every cell printed, for review.
    let show = std::env::var_os("UNSTUCK_MATRIX_SHOW").is_some();
    for (row, result) in rows.iter().zip(&results) {
        let result = result.lock().unwrap().take().unwrap_or_default();
        if show {
            for (cmd, seen, _) in &result {
                println!(
                    "=== {} × {} ({:?})\n{}",
                    row.name,
                    cmd.title(),
                    seen.code,
                    seen.text
                );
            }
        }
        let mut line = format!("| {} |", row.name);
        for col in &columns {
            let cell = result.iter().find(|(c, ..)| c == col);
            let expected = row.cells.iter().find(|(c, _)| c == col);
            match (cell, expected) {
                (Some((_, seen, None)), Some(_)) => {
                    line.push_str(&format!(" ✓ {} |", exit_word(*col, seen)))
                }
                (Some((_, seen, Some(why))), _) => {
                    line.push_str(&format!(" ✗ {} |", exit_word(*col, seen)));
                    failures.push(format!(
                        "{} × {}: {why}\n--- it printed:\n{}\n---",
                        row.name,
                        col.title(),
                        seen.text
                    ));
                }
                (None, Some(_)) => line.push_str(" skipped |"),
                _ => line.push_str(" — |"),
            }
        }
        table.push_str(&line);
        table.push('\n');
    }
    println!("{table}");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::write(target.join("acceptance-matrix.md"), &table);

    // The README documents every exit code a cell expects, in the words
    // the cells check for.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for row in &rows {
        for (cmd, expect) in &row.cells {
            let table = match cmd {
                Cmd::Backup | Cmd::FixRestart => BACKUP_CODES,
                Cmd::WatchOnce => WATCH_CODES,
                _ => continue,
            };
            match table.iter().find(|(code, _)| *code == expect.code) {
                Some((_, words)) => assert!(
                    readme.contains(words),
                    "README does not say {words:?} for exit {} of {}",
                    expect.code,
                    cmd.title()
                ),
                None => failures.push(format!(
                    "{} × {}: exit {} is in no README list this test knows",
                    row.name,
                    cmd.title(),
                    expect.code
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn exit_word(cmd: Cmd, seen: &Seen) -> String {
    match (cmd, seen.code) {
        (Cmd::WatchDuring, _) => "seen".into(),
        (_, Some(c)) => format!("exit {c}"),
        (_, None) => "killed".into(),
    }
}
