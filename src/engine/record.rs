//! A small record of a running `unstuck backup`, kept in Unstuck's data
//! folder (never in the backup), so that the monitor in another process
//! sees Unstuck's own backups exactly — phase, bytes, per cent, and the
//! phone's ErrorCode when it fails — instead of estimating them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::stall::Phase;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub udid: String,
    pub pid: u32,
    pub state: RunState,
    #[serde(with = "crate::stall::backup_names::option", default)]
    pub phase: Option<Phase>,
    pub bytes: u64,
    pub percent: Option<f64>,
    /// The phone's ErrorCode when the run failed with one.
    pub error_code: Option<u64>,
    /// Why the run failed, in the words it printed, and the cause they
    /// name (a record from an older Unstuck has neither).
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub cause: Option<crate::cause::Cause>,
    pub updated: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Finished,
    Failed,
}

/// Where the record of `udid` lives in `dir`.
pub fn path(dir: &Path, udid: &str) -> PathBuf {
    dir.join(format!("{udid}.json"))
}

/// Writes a record through a temporary file and a rename, so a reader never
/// sees half of one.
pub fn write(dir: &Path, record: &RunRecord) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let target = path(dir, &record.udid);
    let part = target.with_extension("json.part");
    fs::write(&part, serde_json::to_vec(record).map_err(io::Error::other)?)?;
    fs::rename(part, target)
}

/// Every readable record in `dir`; unreadable ones are passed over.
pub fn read_all(dir: &Path) -> Vec<RunRecord> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
        .collect()
}

/// How a run failed: the phone's ErrorCode if it gave one, the cause, and
/// the message the user saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: Option<u64>,
    pub cause: crate::cause::Cause,
    pub words: String,
    /// Stopped by the user or the system (Ctrl-C, a signal, Quit), not
    /// failed.
    pub stopped: bool,
}

impl Failure {
    /// A failure with no cause to name.
    pub fn unknown(words: String) -> Failure {
        Failure {
            code: None,
            cause: crate::cause::Cause::Unknown,
            words,
            stopped: false,
        }
    }

    pub fn of(e: &super::EngineError) -> Failure {
        Failure {
            code: e.phone_code(),
            cause: e.cause(),
            words: e.to_string(),
            stopped: matches!(e, super::EngineError::Interrupted(_)),
        }
    }
}

/// Keeps a run's record up to date for a monitor in another process (at
/// most once a second, and at the end), and adds the finished run to the
/// history.
pub struct Recorder {
    dir: std::path::PathBuf,
    history: std::path::PathBuf,
    record: Option<RunRecord>,
    written: Option<std::time::Instant>,
    tracker: crate::history::tracker::EngineTracker,
    folder: Option<std::path::PathBuf>,
}

impl Recorder {
    /// A recorder for Unstuck's data folder (`runs/`, `history.db`).
    pub fn new(data_dir: &Path) -> Recorder {
        Recorder {
            dir: data_dir.join("runs"),
            history: crate::history::History::path_in(data_dir),
            record: None,
            written: None,
            tracker: Default::default(),
            folder: None,
        }
    }

    pub fn event(&mut self, event: &super::BackupEvent) {
        self.tracker.event(jiff::Timestamp::now(), event);
        match event {
            super::BackupEvent::Started { udid, folder, .. } => {
                self.folder = Some(folder.clone());
                self.record = Some(RunRecord {
                    udid: udid.clone(),
                    pid: std::process::id(),
                    state: RunState::Running,
                    phase: None,
                    bytes: 0,
                    percent: None,
                    error_code: None,
                    failure: None,
                    cause: None,
                    updated: jiff::Timestamp::now(),
                });
                self.write(true);
            }
            super::BackupEvent::Progress {
                phase,
                bytes,
                percent,
                ..
            } => {
                if let Some(r) = &mut self.record {
                    r.phase = Some(*phase);
                    r.bytes = *bytes;
                    r.percent = *percent;
                    r.updated = jiff::Timestamp::now();
                }
                self.write(false);
            }
            _ => {}
        }
    }

    /// Whether the run got as far as starting (a monitor knows of it).
    pub fn started(&self) -> bool {
        self.record.is_some()
    }

    /// Records the end of the run: `None` when it finished, else how it
    /// failed.
    pub fn finish(&mut self, failure: Option<Failure>) {
        self.remember(failure.as_ref());
        if let Some(r) = &mut self.record {
            r.updated = jiff::Timestamp::now();
            match failure {
                None => r.state = RunState::Finished,
                Some(f) => {
                    r.state = RunState::Failed;
                    r.error_code = f.code;
                    r.cause = Some(f.cause);
                    r.failure = Some(f.words);
                }
            }
        }
        self.write(true);
    }

    /// Adds the run to the history; a history that cannot be written is
    /// logged, never in the way.
    fn remember(&mut self, failure: Option<&Failure>) {
        let ending = failure.map(|f| crate::history::Ending {
            code: f.code,
            cause: f.cause,
            stopped: f.stopped,
        });
        let Some(mut run) = self.tracker.end(jiff::Timestamp::now(), ending) else {
            return;
        };
        if run.outcome == crate::history::Outcome::Complete
            && let Some(folder) = &self.folder
        {
            run.size = Some(crate::backup_folder::disk_usage(folder).bytes);
        }
        let saved = crate::history::History::open(&self.history).and_then(|mut h| h.save(&[run]));
        if let Err(e) = saved {
            tracing::warn!(error = %e, "the run was not added to the history");
        }
    }

    fn write(&mut self, now: bool) {
        let due = now || self.written.is_none_or(|t| t.elapsed().as_secs() >= 1);
        if let (true, Some(r)) = (due, &self.record) {
            if let Err(e) = write(&self.dir, r) {
                tracing::debug!(error = %e, "could not write the run record");
            }
            self.written = Some(std::time::Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let record = RunRecord {
            udid: "U".into(),
            pid: 7,
            state: RunState::Failed,
            phase: Some(Phase::Copying),
            bytes: 10,
            percent: Some(50.0),
            error_code: Some(207),
            failure: None,
            cause: None,
            updated: Timestamp::UNIX_EPOCH,
        };
        write(dir.path(), &record).unwrap();
        fs::write(dir.path().join("junk.json"), b"{").unwrap();
        assert_eq!(read_all(dir.path()), [record]);
    }
}
