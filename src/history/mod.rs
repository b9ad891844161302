//! What Unstuck remembers: every backup run it saw (its own, exactly, from
//! the engine's events; other programs', as the monitor observed them),
//! each stall in them, and each complete backup's date — so "when was this
//! phone last backed up, how often does it stall, and why" has an answer
//! even while its folder is being written or was left interrupted.
//!
//! `builder` builds a `Run` step by step (pure, given the time; the engine
//! and the monitor feed it from their own events);
//! `store` keeps them in SQLite (WAL, versioned migrations; a corrupt file
//! is moved aside, never in the way of a backup); `summary` makes the plain
//! figures a report shows (pure); `report` draws them as one self-contained
//! HTML page. No file name from a phone and no password is ever kept.

use jiff::Timestamp;
use serde::Serialize;

use crate::cause::Cause;
use crate::stall::Phase;

pub mod builder;
pub mod report;
pub mod store;
pub mod summary;

pub use store::History;

/// One backup run, from its start to its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub udid: String,
    pub name: Option<String>,
    /// The program that made it: `unstuck`, `idevicebackup2`,
    /// `AppleMobileBackup`…
    pub program: String,
    pub started: Timestamp,
    pub ended: Timestamp,
    pub outcome: Outcome,
    /// Bytes written by the run.
    pub bytes: u64,
    pub files: Option<u64>,
    /// Bytes per second over the whole run, and the slowest rate seen while
    /// it moved (a stall is not a rate; it is a stall).
    pub average_rate: Option<f64>,
    pub slowest_rate: Option<f64>,
    /// The phone's ErrorCode, when it ended the run with one.
    pub error_code: Option<u64>,
    /// What most likely made it fail.
    pub cause: Option<Cause>,
    pub restarts: u32,
    /// The backup folder's size after a complete run, when measured.
    pub size: Option<u64>,
    pub stalls: Vec<Stall>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Complete,
    Failed,
    /// Ctrl-C, a signal, the tray's Quit.
    Stopped,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
        }
    }

    pub fn from_name(name: &str) -> Option<Outcome> {
        [Outcome::Complete, Outcome::Failed, Outcome::Stopped]
            .into_iter()
            .find(|o| o.name() == name)
    }
}

/// How a run that did not complete ended, as the history keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ending {
    /// The phone's ErrorCode, when it gave one.
    pub code: Option<u64>,
    pub cause: Cause,
    /// Stopped by the user or the system, not failed.
    pub stopped: bool,
}

/// A stretch of a run in which nothing moved long enough to count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stall {
    pub phase: Phase,
    pub started: Timestamp,
    pub secs: u64,
    pub cause: Cause,
    pub ended_by: StallEnd,
}

/// What ended a stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallEnd {
    /// The backup moved again by itself.
    Resumed,
    /// The attempt was stopped and started again (the watchdog, Restart
    /// Backup).
    Restarted,
    /// The phone came back after it was unplugged.
    PhoneBack,
    /// The run ended while stalled.
    RunEnded,
}

impl StallEnd {
    pub fn name(self) -> &'static str {
        match self {
            StallEnd::Resumed => "resumed",
            StallEnd::Restarted => "restarted",
            StallEnd::PhoneBack => "phone_back",
            StallEnd::RunEnded => "run_ended",
        }
    }

    pub fn from_name(name: &str) -> Option<StallEnd> {
        [
            StallEnd::Resumed,
            StallEnd::Restarted,
            StallEnd::PhoneBack,
            StallEnd::RunEnded,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }

    /// Whether the backup went on after the stall.
    pub fn recovered(self) -> bool {
        !matches!(self, StallEnd::RunEnded)
    }
}

/// Where the report goes unless told otherwise: Unstuck's data folder.
pub fn report_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("Backup Report.html")
}

/// Writes the report of the history in `data_dir` to `out`, through a part
/// file renamed into place. Returns where a damaged history file was moved,
/// if it was.
pub fn write_report(
    data_dir: &std::path::Path,
    out: &std::path::Path,
    now: Timestamp,
    overdue_days: i64,
) -> Result<Option<std::path::PathBuf>, String> {
    let history = History::open_existing(&History::path_in(data_dir)).map_err(|e| e.to_string())?;
    let runs = match &history {
        Some(h) => h
            .runs(&store::Filter::default())
            .map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let page = report::html(now, &runs, overdue_days, |udid| {
        history
            .as_ref()
            .and_then(|h| h.last_complete(udid).ok().flatten())
    });
    let mut part = out.as_os_str().to_owned();
    part.push(".unstuck-part");
    let part = std::path::PathBuf::from(part);
    std::fs::write(&part, page)
        .and_then(|()| std::fs::rename(&part, out))
        .map_err(|e| {
            format!(
                "cannot write {}: {}",
                out.display(),
                crate::humanize::io_error(&e)
            )
        })?;
    Ok(history.and_then(|h| h.moved_aside))
}

/// A phase's name in the history file and `history --json`.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Starting => "starting",
        Phase::Copying => "copying",
        Phase::Finishing => "finishing",
    }
}

pub fn phase_from_name(name: &str) -> Option<Phase> {
    [Phase::Starting, Phase::Copying, Phase::Finishing]
        .into_iter()
        .find(|p| phase_name(*p) == name)
}

/// A cause's name in the history file (its JSON name).
pub fn cause_name(cause: Cause) -> String {
    serde_json::to_value(cause)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn cause_from_name(name: &str) -> Cause {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap_or(Cause::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back() {
        for o in [Outcome::Complete, Outcome::Failed, Outcome::Stopped] {
            assert_eq!(Outcome::from_name(o.name()), Some(o));
        }
        for p in [Phase::Starting, Phase::Copying, Phase::Finishing] {
            assert_eq!(phase_from_name(phase_name(p)), Some(p));
        }
        for c in [Cause::Detached, Cause::HostDiskFull, Cause::Unknown] {
            assert_eq!(cause_from_name(&cause_name(c)), c);
        }
        assert_eq!(cause_from_name("no such cause"), Cause::Unknown);
    }
}
