//! Builds a [`Run`] as it goes: its bytes and slowest rate, its stalls as
//! they start and end, and how it ended. Pure: the caller gives the time of
//! each step. The engine feeds one from its events (`engine::record`), the
//! monitor from its effects (`monitor::runs`).

use jiff::{SignedDuration, Timestamp};

use super::{Outcome, Run, Stall, StallEnd};
use crate::stall::Phase;

/// Rates are measured over at least this long, so a burst between two
/// events is not "the slowest rate".
const RATE_WINDOW: SignedDuration = SignedDuration::from_secs(5);

/// One run being followed, whoever feeds it.
#[derive(Debug, Clone)]
pub struct RunBuilder {
    pub run: Run,
    /// The stall going on now, if one is.
    pub stall: Option<Stall>,
    pub phase: Phase,
    /// Bytes of the attempts before this one (the engine counts each
    /// attempt from zero).
    pub earlier_attempts: u64,
    /// Bytes in this attempt so far.
    pub attempt_bytes: u64,
    /// Where the current rate window began.
    window: Option<(Timestamp, u64)>,
}

impl RunBuilder {
    pub fn new(udid: &str, name: Option<String>, program: &str, started: Timestamp) -> RunBuilder {
        RunBuilder {
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
    pub fn moved(&mut self, now: Timestamp, total: u64) {
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

    pub fn close_stall(&mut self, now: Timestamp, end: StallEnd) {
        if let Some(mut stall) = self.stall.take() {
            stall.secs = now.duration_since(stall.started).as_secs().max(0) as u64;
            stall.ended_by = end;
            self.run.stalls.push(stall);
        }
        // A stall is no rate: the next window starts after it.
        self.window = None;
    }

    pub fn finish(mut self, now: Timestamp, outcome: Outcome) -> Run {
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
