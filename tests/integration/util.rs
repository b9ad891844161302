use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use jiff::Timestamp;
use tempfile::TempDir;

/// A private home for one run of the binary: HOME and the XDG folders point
/// inside it, so a test never reads or writes the real user's files.
pub struct Home {
    pub dir: TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_file(&self) -> PathBuf {
        self.path().join("config/unstuck/config.toml")
    }

    /// Writes `text` as this home's config file.
    pub fn write_config(&self, text: &str) {
        let file = self.config_file();
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_unstuck"));
        cmd.args(args)
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env_remove("UNSTUCK_CONFIG")
            .env_remove("RUST_LOG")
            // Never the real user's desktop: tests that want one start
            // their own (`desktop::Desktop`).
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        cmd
    }

    /// Unstuck's log file in this home.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path().join("data/unstuck/unstuck.log")).unwrap_or_default()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    /// Runs the binary against the usbmuxd (a simulated iPhone) at `usbmuxd`.
    pub fn run_on(&self, usbmuxd: &str, args: &[&str]) -> Run {
        Run(self
            .command(args)
            .env("USBMUXD_SOCKET_ADDRESS", usbmuxd)
            .output()
            .unwrap())
    }

    /// Runs the binary against `usbmuxd` with `stdin` as its standard input
    /// (passwords, answers to questions).
    pub fn run_with_input(&self, usbmuxd: &str, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .command(args)
            .env("USBMUXD_SOCKET_ADDRESS", usbmuxd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A program that exits before reading it all is no error here.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        Run(child.wait_with_output().unwrap())
    }

    /// `unstuck status --json --backup-root ROOT`, which must succeed.
    pub fn status_json(&self, root: &str) -> serde_json::Value {
        let run = self.run(&["status", "--json", "--backup-root", root]);
        run.success();
        run.json()
    }
}

/// A simulated iPhone started on a runtime of its own, for tests that drive
/// it from synchronous code; it serves for as long as the runtime lives.
pub fn sim_on_runtime(
    config: unstuck::sim::SimConfig,
) -> (tokio::runtime::Runtime, unstuck::sim::Sim) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime.block_on(unstuck::sim::Sim::start(config)).unwrap();
    (runtime, sim)
}

/// Reads one backup folder now, with the default quiet window.
pub fn read(folder: &Path) -> unstuck::backup_folder::Backup {
    unstuck::backup_folder::read_backup(
        folder,
        unstuck::backup_folder::ReadOptions {
            now: Timestamp::now(),
            active_window: jiff::SignedDuration::from_mins(10),
        },
        &mut unstuck::backup_folder::MeasureCache::in_memory(),
    )
}

/// The bytes of every regular file under `folder`.
pub fn bytes_on_disk(folder: &Path) -> u64 {
    walkdir::WalkDir::new(folder)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code(),
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout()))
    }
}

/// The shared fixtures folder (`$UNSTUCK_FIXTURES`, else `../shared/fixtures`
/// beside the repository), or `None` after saying the test is skipped.
pub fn fixtures(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("UNSTUCK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if dir.join("backups").is_dir() {
        Some(dir.join("backups"))
    } else {
        eprintln!(
            "SKIPPED {test}: no fixtures at {} (set UNSTUCK_FIXTURES to the shared fixtures folder)",
            dir.display()
        );
        None
    }
}

/// Copies a folder tree (files and folders only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::open(path).unwrap().set_modified(t).unwrap();
}

pub fn hours_ago(n: u64) -> SystemTime {
    SystemTime::now() - std::time::Duration::from_secs(n * 3600)
}

pub fn days_ago(n: i64) -> Timestamp {
    Timestamp::now() - jiff::SignedDuration::from_hours(24 * n)
}

/// Every entry under a folder: its kind, length, modification time and bytes.
pub type Tree = BTreeMap<PathBuf, (bool, u64, SystemTime, Vec<u8>)>;

/// Every entry under `root`: its kind, length, modification time and bytes.
pub fn snapshot_tree(root: &Path) -> Tree {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let bytes = if meta.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        out.insert(
            entry.path().to_path_buf(),
            (meta.is_dir(), meta.len(), meta.modified().unwrap(), bytes),
        );
    }
    out
}

/// The JSON backup whose path ends with `name`.
pub fn backup_named<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no backup {name} in {doc:#}"))
}

/// Held by tests that run idevicebackup2 and by tests that need no backup
/// program running (Unstuck refuses to start beside one), so the two kinds
/// never overlap.
pub fn backup_programs_lock() -> std::sync::RwLockWriteGuard<'static, ()> {
    BACKUP_PROGRAMS.write().unwrap_or_else(|e| e.into_inner())
}

/// Held, shared, by tests whose monitor must not see another test's backup
/// program (an idevicebackup2 that names no phone counts as working for
/// every unfinished backup, which would hide their stall): they run beside
/// each other, never beside a `backup_programs_lock` holder.
pub fn no_foreign_backup_programs() -> std::sync::RwLockReadGuard<'static, ()> {
    BACKUP_PROGRAMS.read().unwrap_or_else(|e| e.into_inner())
}

static BACKUP_PROGRAMS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A child process killed when the test ends, passed or failed.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
