//! Stall detection for one backup attempt: plain data and an injected clock.
//! `idevice` has no read time-outs, so a phone that stops sending leaves the
//! transfer waiting forever; the watchdog names the phase that went quiet.
//! What the phases and their thresholds are is `stall`'s.

use std::time::Duration;

use tokio::time::Instant;

use crate::stall::{Phase, StallThresholds};

/// A phase that went quiet for longer than its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub phase: Phase,
    pub quiet: Duration,
}

#[derive(Debug, Clone)]
pub struct Watchdog {
    thresholds: StallThresholds,
    asks_for_passcode: bool,
    phase: Phase,
    last_progress: Instant,
}

impl Watchdog {
    /// A watchdog for an attempt that starts at `now`. `asks_for_passcode`
    /// is true for iOS 16.1 and later.
    pub fn new(thresholds: StallThresholds, asks_for_passcode: bool, now: Instant) -> Watchdog {
        Watchdog {
            thresholds,
            asks_for_passcode,
            phase: Phase::Starting,
            last_progress: now,
        }
    }

    /// Any sign of life: a message, bytes, a file. The phase never goes back.
    pub fn progress(&mut self, phase: Phase, now: Instant) {
        self.phase = self.phase.max(phase);
        if now > self.last_progress {
            self.last_progress = now;
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn threshold(&self) -> Duration {
        self.thresholds
            .for_phase(self.phase, self.asks_for_passcode)
            .unsigned_abs()
    }

    /// The stall, if the current phase has been quiet for too long.
    pub fn check(&self, now: Instant) -> Option<Stall> {
        let quiet = now.saturating_duration_since(self.last_progress);
        (quiet > self.threshold()).then_some(Stall {
            phase: self.phase,
            quiet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StallThresholds {
        use jiff::SignedDuration;
        StallThresholds {
            starting: SignedDuration::from_secs(60),
            passcode: SignedDuration::from_secs(200),
            copying: SignedDuration::from_secs(30),
            finishing: SignedDuration::from_secs(90),
        }
    }

    /// Feeds (seconds, phase or none) events and returns what `check` says at
    /// each second listed in `probes`.
    fn check(passcode: bool, events: &[(u64, Phase)], probes: &[u64]) -> Vec<Option<(Phase, u64)>> {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut dog = Watchdog::new(config(), passcode, start);
        let mut out = Vec::new();
        let mut events = events.iter().peekable();
        for &probe in probes {
            while let Some((t, phase)) = events.peek() {
                if *t > probe {
                    break;
                }
                dog.progress(*phase, at(*t));
                events.next();
            }
            out.push(dog.check(at(probe)).map(|s| (s.phase, s.quiet.as_secs())));
        }
        out
    }

    #[test]
    fn each_phase_has_its_threshold() {
        assert_eq!(
            check(false, &[], &[60, 61]),
            [None, Some((Phase::Starting, 61))]
        );
        assert_eq!(
            check(false, &[(10, Phase::Copying)], &[40, 41]),
            [None, Some((Phase::Copying, 31))]
        );
        assert_eq!(
            check(
                false,
                &[(10, Phase::Copying), (20, Phase::Finishing)],
                &[60, 111]
            ),
            [None, Some((Phase::Finishing, 91))]
        );
    }

    #[test]
    fn the_passcode_wait_gets_longer() {
        assert_eq!(
            check(true, &[], &[61, 200, 201]),
            [None, None, Some((Phase::Starting, 201))]
        );
    }

    #[test]
    fn steady_progress_never_stalls_and_phases_never_go_back() {
        let events: Vec<(u64, Phase)> = (1..100)
            .map(|s| {
                (
                    s * 20,
                    if s < 50 {
                        Phase::Copying
                    } else {
                        Phase::Starting
                    },
                )
            })
            .collect();
        let probes: Vec<u64> = (1..100).map(|s| s * 20 + 19).collect();
        assert!(check(false, &events, &probes).iter().all(Option::is_none));
    }

    #[test]
    fn a_clock_that_jumps_back_is_not_a_stall() {
        let start = Instant::now() + Duration::from_secs(1000);
        let mut dog = Watchdog::new(config(), false, start);
        dog.progress(Phase::Copying, start - Duration::from_secs(500));
        assert_eq!(dog.check(start), None);
        assert_eq!(dog.check(start - Duration::from_secs(10)), None);
    }
}
