//! Stall detection for one backup attempt: plain data and an injected clock.
//! `idevice` has no read time-outs, so a phone that stops sending leaves the
//! transfer waiting forever; the watchdog names the phase that went quiet.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Where a backup stands, as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Asked for a backup; the phone has not sent its first message yet
    /// (it prepares a snapshot, or waits for its passcode on iOS 16.1+).
    WaitingForPhone,
    /// Files are arriving.
    Transferring,
    /// The last files are in; the phone is writing its records and moving
    /// the snapshot into place.
    Finishing,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::WaitingForPhone => "waiting for the iPhone to start",
            Phase::Transferring => "copying files",
            Phase::Finishing => "finishing",
        })
    }
}

/// How long each phase may go without progress. Defaults are documented in
/// README (`[backup]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// Before the phone's first message. Real phones take up to a minute.
    pub first_message: Duration,
    /// Before the first message on iOS 16.1 and later, which may wait for the
    /// passcode until the phone gives up (about 3 minutes).
    pub passcode: Duration,
    pub transfer: Duration,
    pub finishing: Duration,
}

impl Default for WatchdogConfig {
    fn default() -> WatchdogConfig {
        WatchdogConfig {
            first_message: Duration::from_secs(180),
            passcode: Duration::from_secs(300),
            transfer: Duration::from_secs(120),
            finishing: Duration::from_secs(600),
        }
    }
}

/// A phase that went quiet for longer than its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub phase: Phase,
    pub quiet: Duration,
}

#[derive(Debug, Clone)]
pub struct Watchdog {
    config: WatchdogConfig,
    asks_for_passcode: bool,
    phase: Phase,
    last_progress: Instant,
}

impl Watchdog {
    /// A watchdog for an attempt that starts at `now`. `asks_for_passcode`
    /// is true for iOS 16.1 and later.
    pub fn new(config: WatchdogConfig, asks_for_passcode: bool, now: Instant) -> Watchdog {
        Watchdog {
            config,
            asks_for_passcode,
            phase: Phase::WaitingForPhone,
            last_progress: now,
        }
    }

    /// Any sign of life: a message, bytes, a file. The phase never goes back.
    pub fn progress(&mut self, phase: Phase, now: Instant) {
        let order = |p: Phase| p as u8;
        if order(phase) > order(self.phase) {
            self.phase = phase;
        }
        if now > self.last_progress {
            self.last_progress = now;
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn threshold(&self) -> Duration {
        match self.phase {
            Phase::WaitingForPhone if self.asks_for_passcode => {
                self.config.first_message.max(self.config.passcode)
            }
            Phase::WaitingForPhone => self.config.first_message,
            Phase::Transferring => self.config.transfer,
            Phase::Finishing => self.config.finishing,
        }
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

/// Whether an iOS version asks for the passcode before a backup (16.1+).
pub fn asks_for_passcode(ios_version: Option<&str>) -> bool {
    let Some(v) = ios_version else { return false };
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (16, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WatchdogConfig {
        WatchdogConfig {
            first_message: Duration::from_secs(60),
            passcode: Duration::from_secs(200),
            transfer: Duration::from_secs(30),
            finishing: Duration::from_secs(90),
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
            [None, Some((Phase::WaitingForPhone, 61))]
        );
        assert_eq!(
            check(false, &[(10, Phase::Transferring)], &[40, 41]),
            [None, Some((Phase::Transferring, 31))]
        );
        assert_eq!(
            check(
                false,
                &[(10, Phase::Transferring), (20, Phase::Finishing)],
                &[60, 111]
            ),
            [None, Some((Phase::Finishing, 91))]
        );
    }

    #[test]
    fn the_passcode_wait_gets_longer() {
        assert_eq!(
            check(true, &[], &[61, 200, 201]),
            [None, None, Some((Phase::WaitingForPhone, 201))]
        );
    }

    #[test]
    fn steady_progress_never_stalls_and_phases_never_go_back() {
        let events: Vec<(u64, Phase)> = (1..100)
            .map(|s| {
                (
                    s * 20,
                    if s < 50 {
                        Phase::Transferring
                    } else {
                        Phase::WaitingForPhone
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
        dog.progress(Phase::Transferring, start - Duration::from_secs(500));
        assert_eq!(dog.check(start), None);
        assert_eq!(dog.check(start - Duration::from_secs(10)), None);
    }

    #[test]
    fn passcode_versions() {
        assert!(asks_for_passcode(Some("16.1")));
        assert!(asks_for_passcode(Some("17.0.3")));
        assert!(asks_for_passcode(Some("26")));
        assert!(!asks_for_passcode(Some("16.0.2")));
        assert!(!asks_for_passcode(Some("9.3.5")));
        assert!(!asks_for_passcode(Some("junk")));
        assert!(!asks_for_passcode(None));
    }
}
