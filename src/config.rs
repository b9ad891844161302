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

use crate::stall::StallThresholds;

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

# When a backup counts as stalled, for Unstuck's own backups and the ones it
# watches alike: how long each phase may go without progress, in seconds (1 to
# 86400). Before anything arrives, the same on iOS 16.1 and later (the iPhone
# may wait for its passcode), while copying files, and while the iPhone finishes.
[stall]
# starting_seconds = 180
# passcode_seconds = 300
# copying_seconds = 120
# finishing_seconds = 600

# Unstuck's own backups (unstuck backup).
[backup]
# How many times a stalled or unplugged backup is started again (0 to 20).
# max_restarts = 3
# Restart Backup uses Unstuck's own engine. To use the platform's tool instead,
# give its command; {udid} and {dest} are filled in. For example on macOS:
# platform_command = ["/System/Library/PrivateFrameworks/MobileDevice.framework/Versions/Current/AppleMobileDeviceHelper.app/Contents/Resources/AppleMobileBackup", "--backup", "--target", "{udid}"]

# Watching backups (unstuck watch, the tray).
[monitor]
# Seconds between looks while a backup runs, and while none does (1 to 3600).
# poll_seconds_busy = 2
# poll_seconds_idle = 60
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
    /// The `[stall]` table as written; `Config::parse` resolves it, with the
    /// old keys, into `stall_thresholds()`.
    #[serde(default)]
    pub stall: StallSettings,
    /// One line per old key read, naming the key to use instead; logged once
    /// logging is set up.
    #[serde(skip)]
    pub deprecated: Vec<String>,
}

/// The `[stall]` table: each key unset means "the old key's value, or the
/// default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StallSettings {
    #[serde(deserialize_with = "some_seconds")]
    pub starting_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub passcode_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub copying_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub finishing_seconds: Option<u64>,
}

/// The `[monitor]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSettings {
    #[serde(deserialize_with = "poll_seconds")]
    pub poll_seconds_busy: u64,
    #[serde(deserialize_with = "poll_seconds")]
    pub poll_seconds_idle: u64,
    #[serde(deserialize_with = "days")]
    pub overdue_days: u64,
    pub notify_completion: bool,
    /// Old keys, read so that an old file still loads; `[stall]` replaces
    /// them.
    #[serde(deserialize_with = "some_seconds")]
    pub starting_stall_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub passcode_stall_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub copying_stall_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub finishing_stall_seconds: Option<u64>,
    /// The thresholds `Config::parse` resolved, kept here so that
    /// `monitor_config` carries them.
    #[serde(skip)]
    pub stall: StallThresholds,
}

impl Default for MonitorSettings {
    fn default() -> MonitorSettings {
        let c = crate::monitor::MonitorConfig::default();
        MonitorSettings {
            poll_seconds_busy: 2,
            poll_seconds_idle: 60,
            overdue_days: (c.overdue.as_hours() / 24) as u64,
            notify_completion: c.notify_completion,
            starting_stall_seconds: None,
            passcode_stall_seconds: None,
            copying_stall_seconds: None,
            finishing_stall_seconds: None,
            stall: c.stall,
        }
    }
}

impl MonitorSettings {
    pub fn monitor_config(&self) -> crate::monitor::MonitorConfig {
        crate::monitor::MonitorConfig {
            stall: self.stall,
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
    #[serde(default, deserialize_with = "command")]
    pub platform_command: Option<Vec<String>>,
    /// Old keys, read so that an old file still loads; `[stall]` replaces
    /// them.
    #[serde(deserialize_with = "some_seconds")]
    pub first_message_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub passcode_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub transfer_stall_seconds: Option<u64>,
    #[serde(deserialize_with = "some_seconds")]
    pub finishing_stall_seconds: Option<u64>,
}

impl Default for BackupConfig {
    fn default() -> BackupConfig {
        BackupConfig {
            max_restarts: 3,
            platform_command: None,
            first_message_seconds: None,
            passcode_seconds: None,
            transfer_stall_seconds: None,
            finishing_stall_seconds: None,
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

fn some_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    within(d, 1..=86_400, "1 to 86400 seconds").map(|n| Some(n as u64))
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
            stall: StallSettings::default(),
            deprecated: Vec::new(),
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
        config.resolve_stall();
        Ok(config)
    }

    /// The stall thresholds, for Unstuck's own backups and the monitor.
    pub fn stall_thresholds(&self) -> StallThresholds {
        self.monitor.stall
    }

    /// Resolves each threshold: the `[stall]` key, else the old keys of
    /// `[backup]` and `[monitor]` (the longer when both are set, so nothing
    /// counts as stalled sooner than either allowed), else the default. Each
    /// old key read leaves a line in `deprecated`.
    fn resolve_stall(&mut self) {
        let b = &self.backup;
        let m = &self.monitor;
        let default = StallThresholds::default();
        let rows = [
            (
                "starting_seconds",
                self.stall.starting_seconds,
                ("first_message_seconds", b.first_message_seconds),
                ("starting_stall_seconds", m.starting_stall_seconds),
                default.starting,
            ),
            (
                "passcode_seconds",
                self.stall.passcode_seconds,
                ("passcode_seconds", b.passcode_seconds),
                ("passcode_stall_seconds", m.passcode_stall_seconds),
                default.passcode,
            ),
            (
                "copying_seconds",
                self.stall.copying_seconds,
                ("transfer_stall_seconds", b.transfer_stall_seconds),
                ("copying_stall_seconds", m.copying_stall_seconds),
                default.copying,
            ),
            (
                "finishing_seconds",
                self.stall.finishing_seconds,
                ("finishing_stall_seconds", b.finishing_stall_seconds),
                ("finishing_stall_seconds", m.finishing_stall_seconds),
                default.finishing,
            ),
        ];
        let mut resolved = Vec::new();
        for (new, set, (backup_key, backup), (monitor_key, monitor), default) in rows {
            for (table, key, value) in [
                ("backup", backup_key, backup),
                ("monitor", monitor_key, monitor),
            ] {
                if value.is_some() {
                    self.deprecated.push(format!(
                        "the config key [{table}] {key} is deprecated: use [stall] {new}{}",
                        if set.is_some() {
                            " (it is set, and wins)"
                        } else {
                            ""
                        }
                    ));
                }
            }
            let old = backup.max(monitor);
            resolved.push(
                set.or(old)
                    .map_or(default, |s| SignedDuration::from_secs(s as i64)),
            );
        }
        self.monitor.stall = StallThresholds {
            starting: resolved[0],
            passcode: resolved[1],
            copying: resolved[2],
            finishing: resolved[3],
        };
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
        assert_eq!(config.stall_thresholds(), StallThresholds::default());
        assert!(config.deprecated.is_empty());
    }

    /// An old file's stall keys, in `[backup]` and `[monitor]`.
    const OLD: &str = "[backup]\nfirst_message_seconds = 90\npasscode_seconds = 400\ntransfer_stall_seconds = 45\nfinishing_stall_seconds = 700\n\n[monitor]\nstarting_stall_seconds = 90\npasscode_stall_seconds = 400\ncopying_stall_seconds = 45\nfinishing_stall_seconds = 700\n";

    fn thresholds(text: &str) -> (Vec<i64>, Vec<String>) {
        let config = Config::parse(text, Path::new("/home/u")).unwrap();
        let t = config.stall_thresholds();
        assert_eq!(config.monitor.monitor_config().stall, t);
        let secs = [t.starting, t.passcode, t.copying, t.finishing]
            .map(|d| d.as_secs())
            .to_vec();
        (secs, config.deprecated)
    }

    #[test]
    fn an_old_config_still_loads_to_the_same_values() {
        let (secs, deprecated) = thresholds(OLD);
        assert_eq!(secs, [90, 400, 45, 700]);
        assert_eq!(deprecated.len(), 8, "{deprecated:#?}");
        for (old, new) in [
            ("[backup] first_message_seconds", "[stall] starting_seconds"),
            ("[backup] transfer_stall_seconds", "[stall] copying_seconds"),
            (
                "[monitor] passcode_stall_seconds",
                "[stall] passcode_seconds",
            ),
            (
                "[monitor] finishing_stall_seconds",
                "[stall] finishing_seconds",
            ),
        ] {
            assert!(
                deprecated
                    .iter()
                    .any(|l| l.contains(old) && l.contains(new)),
                "{old}: {deprecated:#?}"
            );
        }
        // Only one old table: its values.
        let monitor_only = &OLD[OLD.find("[monitor]").unwrap()..];
        assert_eq!(thresholds(monitor_only).0, [90, 400, 45, 700]);
        // The two disagree: the longer wins, so nothing stalls sooner.
        let mixed =
            "[backup]\ntransfer_stall_seconds = 300\n[monitor]\ncopying_stall_seconds = 60\n";
        assert_eq!(thresholds(mixed).0, [180, 300, 300, 600]);
        // The new key wins over the old, and the line says so.
        let both = "[stall]\ncopying_seconds = 30\n[backup]\ntransfer_stall_seconds = 300\n";
        let (secs, deprecated) = thresholds(both);
        assert_eq!(secs, [180, 300, 30, 600]);
        assert!(deprecated[0].contains("wins"), "{deprecated:?}");
        // None of them: the defaults, and nothing to say.
        assert_eq!(thresholds("").0, [180, 300, 120, 600]);
        assert!(thresholds("").1.is_empty());
        check_err(
            "[backup]\nfirst_message_seconds = 0\n",
            &["line 2", "first_message_seconds", "1 to 86400"],
        );
        check_err(
            "[stall]\ncopying_seconds = 90000\n",
            &["line 2", "copying_seconds", "1 to 86400"],
        );
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
