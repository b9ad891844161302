//! The command line: what the user typed (clap structs, checked by clap
//! alone), then a resolved [`Context`] — folders found, config loaded — that
//! each command runs against. Only this module and `main` use `anyhow`.

mod backup;
mod demo;
mod devices;
mod encryption;
mod fix;
mod history;
#[cfg(feature = "sim")]
mod sim;
mod status;
mod tray;
mod watch;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use jiff::Timestamp;

use crate::config::{self, AppDirs, Config};

/// Unstuck keeps iPhone backups moving: it finds every backup on this
/// computer, tells whether it is complete, in progress or stuck, and why.
#[derive(Debug, Parser)]
#[command(name = "unstuck", version)]
pub struct Cli {
    /// Start the tray even when no graphical session is seen (fails with a
    /// clear message when there is no display). Without a command, Unstuck
    /// starts the tray in a desktop session and `watch` otherwise.
    #[arg(long)]
    pub tray: bool,

    /// Use this config file instead of the standard one.
    #[arg(long, global = true, value_name = "FILE", env = "UNSTUCK_CONFIG")]
    pub config: Option<PathBuf>,

    /// Also print log lines to stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every backup: phone, iOS, last complete backup, state, size, leftovers.
    Status {
        /// Print JSON (schema in README) instead of a table.
        #[arg(long)]
        json: bool,
        /// Also look in this folder of backups (repeatable).
        #[arg(long = "backup-root", value_name = "DIR")]
        backup_roots: Vec<PathBuf>,
    },
    /// List attached iPhones with their storage, backup settings and battery.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Back up an iPhone with Unstuck's own engine (restarts a stalled transfer).
    Backup {
        /// The iPhone's UDID; the only attached one when left out.
        #[arg(long)]
        udid: Option<String>,
        /// The folder of backups to write into (default: this computer's standard one).
        #[arg(long, value_name = "DIR")]
        dest: Option<PathBuf>,
        /// Ask for a full backup even when an earlier one is there.
        #[arg(long)]
        full: bool,
        /// Print progress as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// See or change whether the iPhone encrypts its backups, and the password.
    Encryption {
        #[arg(value_enum)]
        action: encryption::EncryptionAction,
        /// The iPhone's UDID; the only attached one when left out.
        #[arg(long)]
        udid: Option<String>,
        /// Read passwords from standard input, one per line (current first;
        /// for `check`, every line a candidate).
        #[arg(long)]
        password_stdin: bool,
        /// For `check`: the backup folder to check (the phone's, named by its
        /// UDID); else the one of --udid, or the only encrypted one.
        #[arg(long, value_name = "FOLDER")]
        backup: Option<PathBuf>,
    },
    /// Watch backups headless: print each change, notify on stalls and failures.
    Watch {
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Print the current diagnosis and exit: 0 healthy, 2 stalled, 3 failed,
        /// 4 a phone locked or not trusting this computer.
        #[arg(long)]
        once: bool,
        /// Do not show desktop notifications.
        #[arg(long)]
        no_notify: bool,
        /// Also watch this folder of backups (repeatable).
        #[arg(long = "backup-root", value_name = "DIR")]
        backup_roots: Vec<PathBuf>,
    },
    /// Every backup run Unstuck made or watched, with its stalls and causes.
    History {
        /// Only this phone: its UDID, or a part of its name.
        #[arg(long)]
        phone: Option<String>,
        /// Only runs since a date (2026-11-01) or a number of days ago (7d).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Remove everything the history holds about this phone (its UDID).
        #[arg(long, value_name = "UDID")]
        forget: Option<String>,
    },
    /// Write the backup report: one HTML page with charts, per phone.
    Report {
        /// Where to write it (default: Unstuck's data folder).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Open it with the default browser.
        #[arg(long)]
        open: bool,
    },
    /// Run a fix: restart, restart-iphone, network, storage, encryption.
    Fix {
        #[arg(value_enum)]
        fix: crate::actions::Action,
        #[command(flatten)]
        options: fix::FixOptions,
    },
    /// Start Unstuck at login: on, off, or status.
    Autostart {
        #[arg(value_enum)]
        action: AutostartAction,
    },
    /// Show Unstuck on a simulated iPhone whose backup stalls: in the tray
    /// in a desktop session, in the terminal otherwise.
    Demo {
        /// What the simulated iPhone does (see `unstuck sim --help`).
        #[cfg(feature = "sim")]
        #[arg(long, default_value = "stall-at-40", value_parser = scenario_names())]
        scenario: String,
    },
    /// Serve a simulated iPhone (usbmuxd, lockdownd, mobilebackup2) until Ctrl-C.
    #[cfg(feature = "sim")]
    Sim {
        /// The loopback TCP port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// What the phone does: healthy, slow, stall-at-40, unplug-at-70,
        /// host-disk-full, wrong-password, passcode-wait, locked, untrusted,
        /// unpaired.
        #[arg(long, default_value = "healthy", value_parser = scenario_names())]
        scenario: String,
        /// Files in the phone's backup (instead of the scenario's).
        #[arg(long)]
        files: Option<usize>,
        /// Bytes per file (instead of the scenario's).
        #[arg(long)]
        file_size: Option<usize>,
        /// Bytes per second the phone sends; 0 for as fast as possible.
        #[arg(long)]
        rate: Option<u64>,
    },
    /// Work with the config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AutostartAction {
    On,
    Off,
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print where the config file is.
    Path,
}

/// Everything a command needs that comes from outside the command line.
pub struct Context {
    pub dirs: AppDirs,
    pub config: Config,
    pub config_path: PathBuf,
    pub now: Timestamp,
}

impl Context {
    /// The backup roots to read: the platform's, the config file's, then
    /// `extra` from the command line.
    pub fn roots(&self, extra: &[PathBuf]) -> Vec<crate::backup_folder::BackupRoot> {
        crate::backup_folder::combine_roots(
            crate::backup_folder::platform_roots(&self.dirs.home, &self.dirs.data_dir),
            &self.config.backup_roots,
            extra,
        )
    }

    /// The roots' paths alone.
    pub fn root_paths(&self, extra: &[PathBuf]) -> Vec<PathBuf> {
        self.roots(extra).into_iter().map(|r| r.path).collect()
    }

    /// Options for a backup of `udid` into `dest` (the platform's standard
    /// backup folder when `None`), with the config file's `[backup]` settings.
    pub fn backup_options(
        &self,
        udid: Option<String>,
        dest: Option<PathBuf>,
    ) -> Result<crate::engine::BackupOptions> {
        let dest = match dest {
            Some(d) => d,
            None => crate::backup_folder::platform_roots(&self.dirs.home, &self.dirs.data_dir)
                .into_iter()
                .next()
                .context("this platform has no standard backup folder: give one with --dest")?,
        };
        let mut options = crate::engine::BackupOptions::new(dest);
        options.udid = udid;
        options.stall = self.config.stall_thresholds();
        options.max_restarts = self.config.backup.max_restarts;
        Ok(options)
    }
}

/// Runs the parsed command line and returns the process's exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let dirs = AppDirs::from_os().context(
        "cannot find your home folder: set HOME (or USERPROFILE on Windows) and try again",
    )?;
    let (config_path, create) = match &cli.config {
        Some(path) => (path.clone(), false),
        None => (dirs.config_file.clone(), true),
    };
    // Every command but `config path` reads the config and opens the log;
    // printing the path must work even when the file has a mistake in it.
    let verbose = cli.verbose;
    let context = || -> Result<Context> {
        let config = config::load(&config_path, create, &dirs.home)?;
        crate::logging::init(Some(&dirs.log_file()), config.log_level.as_str(), verbose);
        tracing::debug!(config = %config_path.display(), "started");
        for line in &config.deprecated {
            tracing::warn!(config = %config_path.display(), "{line}");
        }
        Ok(Context {
            dirs: dirs.clone(),
            config,
            config_path: config_path.clone(),
            now: Timestamp::now(),
        })
    };
    let Some(command) = cli.command else {
        return tray::run(&context()?, cli.tray);
    };
    match command {
        Command::Config {
            command: ConfigCommand::Path,
        } => print(|out| writeln!(out, "{}", config_path.display())),
        Command::Status { json, backup_roots } => status::run(&context()?, &backup_roots, json),
        #[cfg(feature = "sim")]
        Command::Demo { scenario } => demo::run(&context()?, &scenario, cli.tray),
        #[cfg(not(feature = "sim"))]
        Command::Demo {} => demo::run(&context()?),
        Command::Autostart { action } => {
            context()?;
            autostart(action)
        }
        Command::Fix { fix, options } => fix::run(&context()?, fix, options),
        Command::Watch {
            json,
            once,
            no_notify,
            backup_roots,
        } => watch::run(&context()?, &backup_roots, json, once, !no_notify),
        Command::Backup {
            udid,
            dest,
            full,
            json,
        } => backup::run(&context()?, udid, dest, full, json),
        Command::Encryption {
            action,
            udid,
            password_stdin,
            backup,
        } => encryption::encryption(&context()?, action, udid, password_stdin, backup),
        Command::Devices { json } => devices::run(&context()?, json),
        Command::History {
            phone,
            since,
            json,
            forget,
        } => history::run(&context()?, phone, since, json, forget),
        Command::Report { out, open } => history::report(&context()?, out, open),
        #[cfg(feature = "sim")]
        Command::Sim {
            port,
            scenario,
            files,
            file_size,
            rate,
        } => {
            context()?;
            sim::run(port, &scenario, (files, file_size, rate))
        }
    }
}

#[cfg(feature = "sim")]
fn scenario_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::sim::SCENARIOS.iter().map(|(name, _)| *name))
}

fn autostart(action: AutostartAction) -> Result<ExitCode> {
    use crate::autostart::{self as a, Status};
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    match action {
        AutostartAction::On => {
            a::enable(&exe)?;
            print(|out| writeln!(out, "Unstuck now starts at login ({}).", exe.display()))
        }
        AutostartAction::Off => {
            a::disable(&exe)?;
            print(|out| writeln!(out, "Unstuck no longer starts at login."))
        }
        AutostartAction::Status => match a::status(&exe)? {
            Status::On => {
                print(|out| writeln!(out, "on: Unstuck starts at login ({}).", exe.display()))
            }
            Status::Off => {
                print(|out| writeln!(out, "off: Unstuck does not start at login."))?;
                Ok(ExitCode::from(1))
            }
            Status::Elsewhere(path) => {
                print(|out| {
                    writeln!(
                        out,
                        "stale: the login entry starts {path}, not this program; run `unstuck autostart on` to point it here."
                    )
                })?;
                Ok(ExitCode::from(2))
            }
        },
    }
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?}: say on or off")),
    }
}

/// A small runtime for commands that talk to devices; two threads at most.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// An error that ends a command in words: the whole chain (what failed,
/// then why), each system error without Rust's " (os error N)".
pub fn words_of(err: &anyhow::Error) -> String {
    let mut text = format!("{err:#}");
    while let Some(at) = text.find(" (os error ") {
        let Some(len) = text[at..].find(')') else {
            break;
        };
        text.replace_range(at..at + len + 1, "");
    }
    text
}

/// The exit code for an error that ends a command: 4 when the phone or
/// usbmuxd could not be reached (as `unstuck backup` says it), else 1.
pub fn exit_code_of(err: &anyhow::Error) -> ExitCode {
    // A usbmuxd address that cannot be parsed is a setting to correct (1).
    let unreachable = err.chain().any(|e| {
        e.downcast_ref::<crate::device::DeviceError>()
            .is_some_and(|d| !matches!(d, crate::device::DeviceError::BadAddress { .. }))
    });
    ExitCode::from(if unreachable { 4 } else { 1 })
}

/// Writes to stdout through `f`. A closed pipe (`unstuck status | head`) is
/// not an error: the reader has what it wanted.
fn print(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match f(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if reader_gone(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}

/// Whether a failed write to stdout means its reader has gone.
///
/// # Platform specific behavior
/// std reports EPIPE, and Windows' ERROR_BROKEN_PIPE (109) and ERROR_NO_DATA
/// (232, "The pipe is being closed"), as `BrokenPipe`, but leaves
/// ERROR_PIPE_NOT_CONNECTED (233, "No process is on the other end of the
/// pipe") uncategorized; that is what `unstuck.exe status | head` ended
/// with under wine ("Pipe not connected (os error 233)",
/// ../shared/cross-platform/README.md). Windows' numbers are matched too:
/// https://learn.microsoft.com/windows/win32/debug/system-error-codes--0-499-
fn reader_gone(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return true;
    }
    #[cfg(windows)]
    {
        const ERROR_NO_DATA: i32 = 232;
        const ERROR_PIPE_NOT_CONNECTED: i32 = 233;
        matches!(
            e.raw_os_error(),
            Some(ERROR_NO_DATA | ERROR_PIPE_NOT_CONNECTED)
        )
    }
    #[cfg(not(windows))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_a_reader_gone_on_every_platform() {
        let os = io::Error::from_raw_os_error;
        assert!(reader_gone(&io::Error::from(io::ErrorKind::BrokenPipe)));
        assert!(!reader_gone(&io::Error::from(io::ErrorKind::NotFound)));
        #[cfg(unix)]
        assert!(reader_gone(&os(libc::EPIPE)));
        // ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED; and
        // ERROR_DISK_FULL, which is not.
        #[cfg(windows)]
        {
            assert!(reader_gone(&os(109)));
            assert!(reader_gone(&os(232)));
            assert!(reader_gone(&os(233)));
            assert!(!reader_gone(&os(112)));
        }
        // Elsewhere those numbers mean nothing of the kind.
        #[cfg(not(windows))]
        assert!(!reader_gone(&os(233)));
    }
}
