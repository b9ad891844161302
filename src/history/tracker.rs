//! Turns what happens during a backup into a finished [`Run`]: Unstuck's own
//! runs from the engine's events ([`EngineTracker`], exact), other
//! programs' from the monitor's effects ([`MonitorTracker`], as observed).
//! Pure: the caller gives the time of each event.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::{Ending, Outcome, Run, Stall, StallEnd};
use crate::cause::Cause;
use crate::engine::BackupEvent;
use crate::monitor::{Effect, Finding, PhoneState};
use crate::stall::Phase;

/// Rates are measured over at least this long, so a burst between two
/// events is not "the slowest rate".
const RATE_WINDOW: SignedDuration = SignedDuration::from_secs(5);

/// One run being followed.
#[derive(Debug, Clone)]
struct Open {
    run: Run,
    stall: Option<Stall>,
    phase: Phase,
    /// Bytes of the attempts before this one (the engine counts each
    /// attempt from zero).
    earlier_attempts: u64,
    /// Bytes in this attempt so far.
    attempt_bytes: u64,
    /// Where the current rate window began.
    window: Option<(Timestamp, u64)>,
}

impl Open {
    fn new(udid: &str, name: Option<String>, program: &str, started: Timestamp) -> Open {
        Open {
            run: Run {
                udid: udid.to_owned(),
                name,
                program: program.to_owned(),
                started,
                ended: started,
                outcome: Outcome::Complete,
                bytes: 0,
                files: None,
                average_rate: None,
                slowest_rate: None,
                error_code: None,
                cause: None,
                restarts: 0,
                size: None,
                stalls: Vec::new(),
            },
            stall: None,
            phase: Phase::Starting,
            earlier_attempts: 0,
            attempt_bytes: 0,
            window: None,
        }
    }

    /// The run has written `total` bytes by `now`.
    fn moved(&mut self, now: Timestamp, total: u64) {
        self.run.bytes = self.run.bytes.max(total);
        match self.window {
            Some((since, at)) if now.duration_since(since) >= RATE_WINDOW => {
                if total > at {
                    let rate = (total - at) as f64 / now.duration_since(since).as_secs_f64();
                    self.run.slowest_rate =
                        Some(self.run.slowest_rate.map_or(rate, |s: f64| s.min(rate)));
                }
                self.window = Some((now, total));
            }
            Some(_) => {}
            None => self.window = Some((now, total)),
        }
    }

    fn close_stall(&mut self, now: Timestamp, end: StallEnd) {
        if let Some(mut stall) = self.stall.take() {
            stall.secs = now.duration_since(stall.started).as_secs().max(0) as u64;
            stall.ended_by = end;
            self.run.stalls.push(stall);
        }
        // A stall is no rate: the next window starts after it.
        self.window = None;
    }

    fn finish(mut self, now: Timestamp, outcome: Outcome) -> Run {
        let end = if outcome == Outcome::Complete {
            StallEnd::Resumed
        } else {
            StallEnd::RunEnded
        };
        self.close_stall(now, end);
        self.run.ended = now;
        self.run.outcome = outcome;
        let secs = now.duration_since(self.run.started).as_secs_f64();
        if secs > 0.0 && self.run.bytes > 0 {
            self.run.average_rate = Some(self.run.bytes as f64 / secs);
        }
        self.run
    }
}

/// Follows one of Unstuck's own runs through the engine's events.
#[derive(Debug, Default)]
pub struct EngineTracker {
    open: Option<Open>,
}

impl EngineTracker {
    pub fn event(&mut self, now: Timestamp, event: &BackupEvent) {
        if let BackupEvent::Started {
            udid, device_name, ..
        } = event
        {
            self.open = Some(Open::new(udid, device_name.clone(), "unstuck", now));
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

/// Follows other programs' runs, one per phone, through the monitor's
/// effects. Unstuck's own runs are the engine's to record.
#[derive(Debug, Default)]
pub struct MonitorTracker {
    open: HashMap<String, Open>,
}

impl MonitorTracker {
    /// Takes one effect; returns a run that ended with it.
    pub fn effect(&mut self, now: Timestamp, effect: &Effect) -> Option<Run> {
        match effect {
            Effect::Progress { udid, running, .. } => {
                if let Some(open) = self.open.get_mut(udid) {
                    open.phase = running.phase;
                    open.moved(now, running.bytes);
                }
                None
            }
            Effect::StateChanged {
                udid,
                name,
                state,
                findings,
            } => self.changed(now, udid, name, state, findings),
            Effect::Notify(_) => None,
        }
    }

    fn changed(
        &mut self,
        now: Timestamp,
        udid: &str,
        name: &Option<String>,
        state: &PhoneState,
        findings: &[Finding],
    ) -> Option<Run> {
        let cause = findings.first().map_or(Cause::Unknown, |f| f.cause);
        match state {
            PhoneState::Running(r) => {
                if r.tool == "unstuck" {
                    return None;
                }
                let open = self
                    .open
                    .entry(udid.to_owned())
                    .or_insert_with(|| Open::new(udid, name.clone(), &r.tool, r.since));
                open.close_stall(now, StallEnd::Resumed);
                open.phase = r.phase;
                open.moved(now, r.bytes);
                None
            }
            PhoneState::Stalled { since, phase, tool } => {
                if tool == "unstuck" {
                    return None;
                }
                let open = self
                    .open
                    .entry(udid.to_owned())
                    .or_insert_with(|| Open::new(udid, name.clone(), tool, *since));
                open.close_stall(now, StallEnd::Resumed);
                open.phase = *phase;
                open.stall = Some(Stall {
                    phase: *phase,
                    started: *since,
                    secs: 0,
                    cause,
                    ended_by: StallEnd::RunEnded,
                });
                None
            }
            PhoneState::Completed { .. } => {
                let open = self.open.remove(udid)?;
                Some(open.finish(now, Outcome::Complete))
            }
            PhoneState::Failed { code, .. } => {
                let open = self.open.remove(udid)?;
                let mut run = open.finish(now, Outcome::Failed);
                run.error_code = *code;
                run.cause = Some(cause);
                Some(run)
            }
            // Gone quiet without a word of how it ended.
            PhoneState::Idle | PhoneState::Refused { .. } => {
                let open = self.open.remove(udid)?;
                let mut run = open.finish(now, Outcome::Failed);
                run.cause = Some(Cause::Unknown);
                Some(run)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Running;

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

    fn running(tool: &str, bytes: u64) -> PhoneState {
        PhoneState::Running(Running {
            tool: tool.into(),
            phase: Phase::Copying,
            since: at(0),
            bytes,
            percent: None,
            estimated: true,
            rate: 0.0,
            eta_secs: None,
        })
    }

    fn changed(state: PhoneState, findings: Vec<Finding>) -> Effect {
        Effect::StateChanged {
            udid: "U".into(),
            name: Some("Ann's iPhone".into()),
            state,
            findings,
        }
    }

    #[test]
    fn another_programs_run_as_the_monitor_saw_it() {
        let mut t = MonitorTracker::default();
        assert!(
            t.effect(at(2), &changed(running("idevicebackup2", 0), vec![]))
                .is_none()
        );
        let stalled = PhoneState::Stalled {
            since: at(30),
            phase: Phase::Copying,
            tool: "idevicebackup2".into(),
        };
        let hung = Finding {
            cause: Cause::ProcessHung,
            evidence: vec![],
            actions: vec![],
        };
        assert!(t.effect(at(150), &changed(stalled, vec![hung])).is_none());
        assert!(
            t.effect(
                at(200),
                &changed(running("idevicebackup2", 9_000_000), vec![])
            )
            .is_none()
        );
        let run = t
            .effect(
                at(260),
                &changed(PhoneState::Completed { at: at(259) }, vec![]),
            )
            .unwrap();
        assert_eq!(run.program, "idevicebackup2");
        assert_eq!((run.started, run.ended), (at(0), at(260)));
        assert_eq!(run.stalls.len(), 1);
        assert_eq!(run.stalls[0].cause, Cause::ProcessHung);
        assert_eq!(
            (run.stalls[0].secs, run.stalls[0].ended_by),
            (170, StallEnd::Resumed)
        );
        // Unstuck's own runs are not the monitor's to record.
        assert!(
            t.effect(at(300), &changed(running("unstuck", 5), vec![]))
                .is_none()
        );
        assert!(
            t.effect(
                at(310),
                &changed(
                    PhoneState::Failed {
                        at: at(310),
                        code: Some(1)
                    },
                    vec![]
                )
            )
            .is_none()
        );
    }
}
