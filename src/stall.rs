//! What a stall is, for Unstuck's own backups (`engine::watchdog`) and the
//! ones it watches (`monitor`) alike: the `Phase`s of a backup, how long
//! each may stay quiet (`StallThresholds`, the `[stall]` settings) and the
//! one rule that picks the threshold. Plain data; measuring quiet time is
//! the caller's.

use std::fmt;

use jiff::SignedDuration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a backup stands. The order is the order of a run: a phase never
/// goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Asked for (or begun), nothing has arrived yet: the phone prepares a
    /// snapshot, or waits for its passcode on iOS 16.1 and later.
    Starting,
    /// Files are arriving.
    Copying,
    /// The last files are in; the phone writes its records and moves the
    /// snapshot into place (Status.plist says moving or removing).
    Finishing,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Starting => "waiting for the iPhone to start",
            Phase::Copying => "copying files",
            Phase::Finishing => "finishing",
        })
    }
}

/// `unstuck backup --json` and the run records name the phases as
/// `waiting_for_phone`, `transferring` and `finishing`, while `watch --json`
/// says `starting`, `copying` and `finishing`. Scripts read both, so each
/// keeps its names: the engine's fields use this module through
/// `#[serde(with = "crate::stall::backup_names")]`.
pub mod backup_names {
    use super::*;

    const NAMES: [(Phase, &str); 3] = [
        (Phase::Starting, "waiting_for_phone"),
        (Phase::Copying, "transferring"),
        (Phase::Finishing, "finishing"),
    ];

    fn name(phase: Phase) -> &'static str {
        NAMES
            .iter()
            .find(|(p, _)| *p == phase)
            .map_or("finishing", |(_, n)| n)
    }

    fn parse<E: serde::de::Error>(name: &str) -> Result<Phase, E> {
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(p, _)| *p)
            .ok_or_else(|| {
                E::unknown_variant(name, &["waiting_for_phone", "transferring", "finishing"])
            })
    }

    pub fn serialize<S: Serializer>(phase: &Phase, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*phase))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Phase, D::Error> {
        parse(&String::deserialize(d)?)
    }

    /// The same for an optional phase.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(phase: &Option<Phase>, s: S) -> Result<S::Ok, S::Error> {
            match phase {
                Some(phase) => s.serialize_some(name(*phase)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Phase>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|n| parse(&n))
                .transpose()
        }
    }
}

/// How long each phase may go without progress before it counts as
/// stalled. Defaults are documented in README (`[stall]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallThresholds {
    /// Before anything arrives. Real phones take up to a minute.
    pub starting: SignedDuration,
    /// The same on iOS 16.1 and later, where the phone may wait for its
    /// passcode until it gives up (about 3 minutes).
    pub passcode: SignedDuration,
    pub copying: SignedDuration,
    pub finishing: SignedDuration,
}

impl Default for StallThresholds {
    fn default() -> StallThresholds {
        StallThresholds {
            starting: SignedDuration::from_secs(180),
            passcode: SignedDuration::from_secs(300),
            copying: SignedDuration::from_secs(120),
            finishing: SignedDuration::from_secs(600),
        }
    }
}

impl StallThresholds {
    /// How long `phase` may stay quiet; `asks_for_passcode` (iOS 16.1 and
    /// later, see `asks_for_passcode`) lengthens the wait before the start.
    pub fn for_phase(&self, phase: Phase, asks_for_passcode: bool) -> SignedDuration {
        match phase {
            Phase::Starting if asks_for_passcode => self.starting.max(self.passcode),
            Phase::Starting => self.starting,
            Phase::Copying => self.copying,
            Phase::Finishing => self.finishing,
        }
    }

    /// The longest any phase of a healthy backup may stay quiet.
    pub fn longest(&self) -> SignedDuration {
        self.starting
            .max(self.passcode)
            .max(self.copying)
            .max(self.finishing)
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

    /// (phase, passcode?) → seconds the phase may stay quiet.
    fn check(thresholds: StallThresholds, cases: &[(Phase, bool, i64)]) {
        for &(phase, passcode, secs) in cases {
            assert_eq!(
                thresholds.for_phase(phase, passcode),
                SignedDuration::from_secs(secs),
                "{phase:?} {passcode}"
            );
        }
    }

    #[test]
    fn each_phase_has_its_threshold() {
        check(
            StallThresholds::default(),
            &[
                (Phase::Starting, false, 180),
                (Phase::Starting, true, 300),
                (Phase::Copying, false, 120),
                (Phase::Copying, true, 120),
                (Phase::Finishing, false, 600),
            ],
        );
        // A passcode wait set shorter than the start never shortens it.
        let short = StallThresholds {
            passcode: SignedDuration::from_secs(60),
            ..StallThresholds::default()
        };
        check(short, &[(Phase::Starting, true, 180)]);
        assert_eq!(
            StallThresholds::default().longest(),
            SignedDuration::from_secs(600)
        );
    }

    #[test]
    fn each_output_keeps_its_phase_names() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Backup {
            #[serde(with = "backup_names")]
            phase: Phase,
            #[serde(with = "backup_names::option")]
            last: Option<Phase>,
        }
        for (phase, backup, watch) in [
            (Phase::Starting, "waiting_for_phone", "starting"),
            (Phase::Copying, "transferring", "copying"),
            (Phase::Finishing, "finishing", "finishing"),
        ] {
            assert_eq!(serde_json::to_value(phase).unwrap(), watch);
            let record = Backup {
                phase,
                last: Some(phase),
            };
            let json = serde_json::to_value(&record).unwrap();
            assert_eq!(json["phase"], backup);
            assert_eq!(json["last"], backup);
            assert_eq!(serde_json::from_value::<Backup>(json).unwrap(), record);
        }
        let none: Backup = serde_json::from_str(r#"{"phase":"finishing","last":null}"#).unwrap();
        assert_eq!(none.last, None);
        assert!(serde_json::from_str::<Backup>(r#"{"phase":"starting","last":null}"#).is_err());
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
