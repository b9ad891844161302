//! A small record of a running `unstuck backup`, kept in Unstuck's data
//! folder (never in the backup), so that the monitor in another process
//! sees Unstuck's own backups exactly — phase, bytes, per cent, and the
//! phone's ErrorCode when it fails — instead of estimating them; and the
//! run as the history keeps it (`EngineTracker`, fed by the same events).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::BackupEvent;
use crate::cause::Cause;
use crate::history::builder::RunBuilder;
use crate::history::{Ending, Outcome, Run, Stall, StallEnd};
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
    tracker: EngineTracker,
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
        let ending = failure.clone();
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
        // The monitor reads the record; the history (which may walk the
        // folder for its size) comes after.
        self.remember(ending.as_ref());
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

/// Follows one of Unstuck's own runs through the engine's events.
#[derive(Debug, Default)]
pub struct EngineTracker {
    open: Option<RunBuilder>,
}

impl EngineTracker {
    pub fn event(&mut self, now: Timestamp, event: &BackupEvent) {
        if let BackupEvent::Started {
            udid, device_name, ..
        } = event
        {
            self.open = Some(RunBuilder::new(udid, device_name.clone(), "unstuck", now));
            return;
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match event {
            BackupEvent::Started { .. } => {}
            BackupEvent::Progress {
                phase,
                bytes,
                files,
                ..
            } => {
                open.phase = *phase;
                open.attempt_bytes = *bytes;
                open.run.files = Some(open.run.files.unwrap_or(0).max(*files));
                let total = open.earlier_attempts + bytes;
                open.moved(now, total);
            }
            BackupEvent::Stalled { phase, quiet_secs } => {
                open.close_stall(now, StallEnd::Resumed);
                open.stall = Some(Stall {
                    phase: *phase,
                    started: now - SignedDuration::from_secs(*quiet_secs as i64),
                    secs: *quiet_secs,
                    cause: Cause::Unknown,
                    ended_by: StallEnd::RunEnded,
                });
            }
            BackupEvent::WaitingForPhone { .. } => {
                // The watchdog saw nothing of it: an unplug stops the
                // transfer at once.
                if open.stall.is_none() {
                    open.stall = Some(Stall {
                        phase: open.phase,
                        started: now,
                        secs: 0,
                        cause: Cause::Detached,
                        ended_by: StallEnd::RunEnded,
                    });
                }
            }
            BackupEvent::Restarting { .. } => {
                let end = match &open.stall {
                    Some(s) if s.cause == Cause::Detached => StallEnd::PhoneBack,
                    _ => StallEnd::Restarted,
                };
                open.close_stall(now, end);
                open.run.restarts += 1;
                open.earlier_attempts += open.attempt_bytes;
                open.attempt_bytes = 0;
            }
        }
    }

    /// The run as it ended: `None` when it finished, else how it failed.
    /// `None` when it never started (a pre-flight refusal is no run).
    pub fn end(&mut self, now: Timestamp, failure: Option<Ending>) -> Option<Run> {
        let open = self.open.take()?;
        let outcome = match failure {
            None => Outcome::Complete,
            Some(f) if f.stopped => Outcome::Stopped,
            Some(_) => Outcome::Failed,
        };
        let mut run = open.finish(now, outcome);
        if let Some(f) = failure {
            run.error_code = f.code;
            run.cause = Some(f.cause);
        }
        Some(run)
    }
}

#[cfg(test)]
mod tracker_tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + secs).unwrap()
    }

    fn progress(bytes: u64) -> BackupEvent {
        BackupEvent::Progress {
            phase: Phase::Copying,
            bytes,
            files: bytes / 1000,
            percent: None,
        }
    }

    #[test]
    fn an_engine_run_with_a_stall_a_restart_and_an_unplug() {
        let mut t = EngineTracker::default();
        t.event(
            at(0),
            &BackupEvent::Started {
                udid: "U".into(),
                device_name: Some("Ann's iPhone".into()),
                folder: "/b/U".into(),
                protected: true,
                asks_for_passcode: false,
            },
        );
        t.event(at(10), &progress(10_000_000));
        t.event(at(20), &progress(30_000_000));
        t.event(
            at(140),
            &BackupEvent::Stalled {
                phase: Phase::Copying,
                quiet_secs: 120,
            },
        );
        t.event(at(145), &BackupEvent::Restarting { attempt: 1, of: 3 });
        t.event(at(150), &progress(5_000_000));
        t.event(at(160), &BackupEvent::WaitingForPhone { wait_secs: 300 });
        t.event(at(190), &BackupEvent::Restarting { attempt: 2, of: 3 });
        t.event(at(200), &progress(1_000_000));
        let run = t.end(at(210), None).unwrap();
        assert_eq!(run.outcome, Outcome::Complete);
        assert_eq!(run.restarts, 2);
        assert_eq!(run.bytes, 36_000_000, "attempts add up");
        assert_eq!(run.slowest_rate, Some(2_000_000.0));
        assert_eq!(run.stalls.len(), 2);
        let (stall, unplug) = (&run.stalls[0], &run.stalls[1]);
        assert_eq!(
            (stall.phase, stall.started, stall.secs),
            (Phase::Copying, at(20), 125)
        );
        assert_eq!(stall.ended_by, StallEnd::Restarted);
        assert_eq!((unplug.cause, unplug.secs), (Cause::Detached, 30));
        assert_eq!(unplug.ended_by, StallEnd::PhoneBack);
        assert!(t.end(at(300), None).is_none(), "one run, ended once");
    }

    #[test]
    fn an_engine_run_that_fails_or_is_stopped_says_so() {
        let started = BackupEvent::Started {
            udid: "U".into(),
            device_name: None,
            folder: "/b/U".into(),
            protected: false,
            asks_for_passcode: true,
        };
        let mut t = EngineTracker::default();
        t.event(at(0), &started);
        let failure = Ending {
            code: Some(105),
            cause: Cause::HostDiskFull,
            stopped: false,
        };
        let run = t.end(at(5), Some(failure)).unwrap();
        assert_eq!(run.outcome, Outcome::Failed);
        assert_eq!(
            (run.error_code, run.cause),
            (Some(105), Some(Cause::HostDiskFull))
        );

        t.event(at(10), &started);
        let stopped = Ending {
            code: None,
            cause: Cause::Unknown,
            stopped: true,
        };
        assert_eq!(
            t.end(at(12), Some(stopped)).unwrap().outcome,
            Outcome::Stopped
        );
        assert!(EngineTracker::default().end(at(1), None).is_none());
    }
}
