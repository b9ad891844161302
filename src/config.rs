//! The user's settings: a TOML file in the OS config folder, created with
//! commented defaults on first run and never overwritten. Parsing checks every
//! key and value and does no I/O; finding the file is `AppDirs`' job.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use directories::{BaseDirs, ProjectDirs};
use jiff::SignedDuration;
use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// The file written on first run. Every key is here, commented out, at its
/// default; README's "Configuration" section documents the same keys.
pub const DEFAULT_CONFIG: &str = r##"# Unstuck's settings. Every key is optional; remove the leading "# " to change one.
# Unstuck never rewrites this file.

# Extra folders that hold iPhone backups (one sub-folder per phone), searched
# besides the standard ones of this computer. "~/" means your home folder.
# backup_roots = ["~/iPhoneBackups", "/media/usb/MobileSync/Backup"]

# How much goes into the log file: "error", "warn", "info", "debug" or "trace".
# log_level = "info"

# A backup whose Status.plist is not "finished" counts as in progress while its
# folder changed within this many minutes, and as interrupted after that (1 to 1440).
# interrupted_after_minutes = 10

# Where usbmuxd listens, when not the usual place (/var/run/usbmuxd on Linux and
# macOS, 127.0.0.1:27015 on Windows): HOST:PORT or a socket path. The
# USBMUXD_SOCKET_ADDRESS environment variable, when set, wins over this.
# usbmuxd_address = "127.0.0.1:27015"

# Unstuck's own backups (unstuck backup).
[backup]
# How many times a stalled or unplugged backup is started again (0 to 20).
# max_restarts = 3
# How long each phase may go without progress before it counts as stalled, in
# seconds (1 to 86400): before the iPhone's first message, the same on iOS 16.1
# and later (the iPhone may wait for its passcode), while copying files, and
# while the iPhone finishes.
# first_message_seconds = 180
# passcode_seconds = 300
# transfer_stall_seconds = 120
# finishing_stall_seconds = 600
# Restart Backup uses Unstuck's own engine. To use the platform's tool instead,
# give its command; {udid} and {dest} are filled in. For example on macOS:
# platform_command = ["/System/Library/PrivateFrameworks/MobileDevice.framework/Versions/Current/AppleMobileDeviceHelper.app/Contents/Resources/AppleMobileBackup", "--backup", "--target", "{udid}"]

# Watching backups (unstuck watch, the tray).
[monitor]
# Seconds between looks while a backup runs, and while none does (1 to 3600).
# poll_seconds_busy = 2
# poll_seconds_idle = 60
# How long a backup may go without progress before it counts as stalled, in
# seconds (1 to 86400): before anything is written, the same on iOS 16.1 and
# later (passcode), while copying, and while finishing.
# starting_stall_seconds = 180
# passcode_stall_seconds = 300
# copying_stall_seconds = 120
# finishing_stall_seconds = 600
# Remind when a phone has no complete backup for this many days (1 to 365).
# overdue_days = 7
# Also notify when a backup completes.
# notify_completion = true
"##;

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "paths")]
    pub backup_roots: Vec<PathBuf>,
    #[serde(default)]
    pub log_level: LogLevel,
    #[serde(default = "default_interrupted_after", deserialize_with = "minutes")]
    pub interrupted_after_minutes: u32,
    #[serde(default, deserialize_with = "mux_address")]
    pub usbmuxd_address: Option<String>,
    #[serde(default)]
    pub backup: BackupConfig,
    #[serde(default)]
    pub monitor: MonitorSettings,
}

/// The `[monitor]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSettings {
    #[serde(deserialize_with = "poll_seconds")]
    pub poll_seconds_busy: u64,
    #[serde(deserialize_with = "poll_seconds")]
    pub poll_seconds_idle: u64,
    #[serde(deserialize_with = "seconds")]
    pub starting_stall_seconds: u64,
    #[serde(deserialize_with = "seconds")]
    pub passcode_stall_seconds: u64,
    #[serde(deserialize_with = "seconds")]
    pub copying_stall_seconds: u64,
    #[serde(deserialize_with = "seconds")]
    pub finishing_stall_seconds: u64,
    #[serde(deserialize_with = "days")]
    pub overdue_days: u64,
    pub notify_completion: bool,
}

impl Default for MonitorSettings {
    fn default() -> MonitorSettings {
        let c = crate::monitor::MonitorConfig::default();
        MonitorSettings {
            poll_seconds_busy: 2,
            poll_seconds_idle: 60,
            starting_stall_seconds: c.starting.as_secs() as u64,
            passcode_stall_seconds: c.passcode.as_secs() as u64,
            copying_stall_seconds: c.copying.as_secs() as u64,
            finishing_stall_seconds: c.finishing.as_secs() as u64,
            overdue_days: (c.overdue.as_hours() / 24) as u64,
            notify_completion: c.notify_completion,
        }
    }
}

impl MonitorSettings {
    pub fn monitor_config(&self) -> crate::monitor::MonitorConfig {
        let secs = |n: u64| SignedDuration::from_secs(n as i64);
        crate::monitor::MonitorConfig {
            starting: secs(self.starting_stall_seconds),
            passcode: secs(self.passcode_stall_seconds),
            copying: secs(self.copying_stall_seconds),
            finishing: secs(self.finishing_stall_seconds),
            overdue: SignedDuration::from_hours(24 * self.overdue_days as i64),
            notify_completion: self.notify_completion,
        }
    }
}

fn poll_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within(d, 1..=3600, "1 to 3600 seconds").map(|n| n as u64)
}

fn days<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within(d, 1..=365, "1 to 365 days").map(|n| n as u64)
}

/// The `[backup]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    #[serde(deserialize_with = "restarts")]
    pub max_restarts: u32,
    #[serde(deserialize_with = "seconds")]
    pub first_message_seconds: u64,
    #[serde(deserialize_with = "seconds")]
    pub passcode_seconds: u64,
    #[serde(deserialize_with = "seconds")]
    pub transfer_stall_seconds: u64,
    #[serde(deserialize_with = "seconds")]
    pub finishing_stall_seconds: u64,
    #[serde(default, deserialize_with = "command")]
    pub platform_command: Option<Vec<String>>,
}

impl Default for BackupConfig {
    fn default() -> BackupConfig {
        let w = crate::engine::WatchdogConfig::default();
        BackupConfig {
            max_restarts: 3,
            first_message_seconds: w.first_message.as_secs(),
            passcode_seconds: w.passcode.as_secs(),
            transfer_stall_seconds: w.transfer.as_secs(),
            finishing_stall_seconds: w.finishing.as_secs(),
            platform_command: None,
        }
    }
}

impl BackupConfig {
    pub fn watchdog(&self) -> crate::engine::WatchdogConfig {
        use std::time::Duration;
        crate::engine::WatchdogConfig {
            first_message: Duration::from_secs(self.first_message_seconds),
            passcode: Duration::from_secs(self.passcode_seconds),
            transfer: Duration::from_secs(self.transfer_stall_seconds),
            finishing: Duration::from_secs(self.finishing_stall_seconds),
        }
    }
}

fn restarts<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    within(d, 0..=20, "0 to 20 restarts").map(|n| n as u32)
}

/// A program and its arguments: the program must be there.
fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let command = Vec::<String>::deserialize(d)?;
    if command
        .first()
        .is_none_or(|program| program.trim().is_empty())
    {
        return Err(serde::de::Error::custom(
            "the command is empty: name the program first, then its arguments, as in [\"/path/to/program\", \"--udid\", \"{udid}\"]; or remove the key to back up with Unstuck's engine",
        ));
    }
    Ok(Some(command))
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within(d, 1..=86_400, "1 to 86400 seconds").map(|n| n as u64)
}

impl Default for Config {
    fn default() -> Config {
        Config {
            backup_roots: Vec::new(),
            log_level: LogLevel::default(),
            interrupted_after_minutes: default_interrupted_after(),
            usbmuxd_address: None,
            backup: BackupConfig::default(),
            monitor: MonitorSettings::default(),
        }
    }
}

impl Config {
    /// Parses and checks a config file's text. `home` expands a leading `~/`.
    pub fn parse(text: &str, home: &Path) -> Result<Config, toml::de::Error> {
        let mut config: Config = toml::from_str(text)?;
        for root in &mut config.backup_roots {
            if let Ok(rest) = root.strip_prefix("~") {
                *root = home.join(rest);
            }
        }
        Ok(config)
    }

    pub fn interrupted_after(&self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.interrupted_after_minutes))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

fn default_interrupted_after() -> u32 {
    10
}

fn minutes<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    within(d, 1..=1440, "a number of minutes from 1 to 1440").map(|n| n as u32)
}

/// Reads a whole number that must lie in `range`; the error says which
/// numbers to use.
fn within<'de, D: Deserializer<'de>>(
    d: D,
    range: std::ops::RangeInclusive<i64>,
    hint: &str,
) -> Result<i64, D::Error> {
    let n = i64::deserialize(d)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "{n} is out of range: use {hint}"
        )))
    }
}

fn mux_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = String::deserialize(d)?;
    crate::device::MuxAddress::parse(&value).map_err(serde::de::Error::custom)?;
    Ok(Some(value))
}

fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.into_iter()
        .map(|s| {
            let path = PathBuf::from(&s);
            if s.is_empty() {
                Err(serde::de::Error::custom("an empty path: name a folder"))
            } else if path.is_absolute() || path.starts_with("~") {
                Ok(path)
            } else {
                Err(serde::de::Error::custom(format!(
                    "\"{s}\" is a relative path: write it in full, or starting with ~/"
                )))
            }
        })
        .collect()
}

/// Why the settings could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read the config file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// A key or value is wrong; toml's message names the key and the line.
    #[error("the config file {} has a mistake; fix it or delete the file to get the defaults back.\n{error}", path.display())]
    Invalid {
        path: PathBuf,
        error: toml::de::Error,
    },
    /// `--config` named a file that does not exist.
    #[error("the config file {} does not exist; create it, or leave out --config to use the standard one", path.display())]
    Missing { path: PathBuf },
}

/// Loads the config file at `path`. When `create` is set and there is no file,
/// the commented defaults are written there first (a failure to write is
/// logged, not fatal: the defaults still apply).
pub fn load(path: &Path, create: bool, home: &Path) -> Result<Config, ConfigError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            if let Err(e) = write_defaults(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not create the config file");
            }
            return Ok(Config::default());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(error) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                error,
            });
        }
    };
    Config::parse(&text, home).map_err(|error| ConfigError::Invalid {
        path: path.to_path_buf(),
        error,
    })
}

/// Writes the commented defaults, refusing to replace any file already there.
fn write_defaults(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    // Only the user reads it (it may name folders and commands).
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    io::Write::write_all(&mut file, DEFAULT_CONFIG.as_bytes())
}

/// The folders Unstuck keeps its own files in.
#[derive(Debug, Clone)]
pub struct AppDirs {
    pub home: PathBuf,
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl AppDirs {
    /// The OS's folders for Unstuck (on Linux the XDG ones, so `XDG_*_HOME`
    /// and `HOME` move them). `None` when no home folder can be found.
    pub fn from_os() -> Option<AppDirs> {
        let base = BaseDirs::new()?;
        let project = ProjectDirs::from("org", "Unstuck", "Unstuck")?;
        Some(AppDirs {
            home: base.home_dir().to_path_buf(),
            config_file: project.config_dir().join("config.toml"),
            data_dir: project.data_dir().to_path_buf(),
            cache_dir: project.cache_dir().to_path_buf(),
        })
    }

    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("unstuck.log")
    }

    pub fn measure_cache_file(&self) -> PathBuf {
        self.cache_dir.join("backup-sizes.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(text: &str, expected: &[&str]) {
        let err = Config::parse(text, Path::new("/home/u")).unwrap_err();
        let message = err.to_string();
        for part in expected {
            assert!(message.contains(part), "{part:?} not in:\n{message}");
        }
    }

    #[test]
    fn the_default_file_means_the_defaults() {
        assert_eq!(
            Config::parse(DEFAULT_CONFIG, Path::new("/home/u")).unwrap(),
            Config::default()
        );
        let uncommented: String = DEFAULT_CONFIG
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::parse(&uncommented, Path::new("/home/u")).unwrap();
        assert_eq!(
            config.backup_roots,
            vec![
                PathBuf::from("/home/u/iPhoneBackups"),
                PathBuf::from("/media/usb/MobileSync/Backup")
            ]
        );
        assert_eq!(config.log_level, LogLevel::Info);
        assert_eq!(config.interrupted_after_minutes, 10);
        assert_eq!(config.usbmuxd_address.as_deref(), Some("127.0.0.1:27015"));
        assert_eq!(config.backup.max_restarts, 3);
        assert_eq!(
            config
                .backup
                .platform_command
                .as_ref()
                .map(|c| c[1].as_str()),
            Some("--backup")
        );
        assert_eq!(config.monitor, MonitorSettings::default());
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        check_err(
            "log_level = \"info\"\nbackup_rots = []\n",
            &["line 2", "backup_rots"],
        );
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        check_err("\n\nlog_level = \"loud\"\n", &["line 3", "loud", "warn"]);
        check_err(
            "interrupted_after_minutes = 0\n",
            &["line 1", "interrupted_after_minutes", "1 to 1440"],
        );
        check_err(
            "backup_roots = [\"backups\"]\n",
            &["line 1", "relative path"],
        );
        check_err("backup_roots = \"/x\"\n", &["line 1", "backup_roots"]);
        check_err(
            "usbmuxd_address = \"nowhere\"\n",
            &["line 1", "usbmuxd_address", "HOST:PORT"],
        );
    }

    #[test]
    fn load_creates_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        assert_eq!(load(&path, true, dir.path()).unwrap(), Config::default());
        assert_eq!(fs::read_to_string(&path).unwrap(), DEFAULT_CONFIG);
        fs::write(&path, "log_level = \"debug\"\n").unwrap();
        assert_eq!(
            load(&path, true, dir.path()).unwrap().log_level,
            LogLevel::Debug
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "log_level = \"debug\"\n"
        );
        let missing = dir.path().join("none.toml");
        assert!(matches!(
            load(&missing, false, dir.path()),
            Err(ConfigError::Missing { .. })
        ));
    }
}
