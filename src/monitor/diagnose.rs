//! Diagnosis: the likely causes of a stall or a failure, most likely first,
//! each with its evidence and the fixes to offer. Takes the observation and a
//! plain `Stop` (what the state machine knows of the run), returns
//! `Finding`s; no state of its own, no clock, no I/O.

use jiff::SignedDuration;

use super::model::*;
use crate::device::Link;
// The same limits as the engine's pre-flight, so the monitor and a backup
// agree on what "too little space" is.
use crate::engine::preflight::{HOST_MARGIN, PHONE_MINIMUM_FREE};
use crate::humanize;

/// What the state machine knows of a run that stopped moving (`phase` set)
/// or ended unfinished (`phase` none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Stop {
    pub phase: Option<Phase>,
    /// Since the run last moved.
    pub quiet: SignedDuration,
    /// How the phone was last reached.
    pub link: Option<Link>,
    /// The folder's bytes when the run began.
    pub baseline: u64,
    /// The phone was attached at some point during the run.
    pub was_attached: bool,
    pub network_up: Option<bool>,
}

/// Below this share of a core a backup program that writes nothing is
/// waiting, not working. It is measured over one poll: a single 10 ms
/// scheduler tick in a 1 s poll already reads 1 %, while a program spinning
/// on a dead connection reads near 100 %.
const WAITING_CPU_PERCENT: f32 = 10.0;

/// The likely causes of a stall (`stop.phase` set) or a failure, most likely
/// first, each with its evidence and the actions that fix it.
pub(super) fn diagnose(
    phone: &PhoneObservation,
    processes: &[&BackupProcess],
    stop: &Stop,
) -> Vec<Finding> {
    let Stop {
        phase,
        quiet,
        link,
        baseline,
        was_attached,
        network_up,
    } = *stop;
    let mut found = Vec::new();
    let minutes = |d: SignedDuration| humanize::duration(d);
    if phone.device.is_none() && was_attached {
        let wifi = link == Some(Link::Wifi);
        let mut evidence = vec![if wifi {
            "the iPhone, synced over Wi-Fi, is no longer seen by usbmuxd".to_owned()
        } else {
            "the iPhone is no longer attached (usbmuxd reported it detached)".to_owned()
        }];
        if wifi && network_up == Some(false) {
            evidence.push("this computer has no network connection up".to_owned());
        }
        found.push(Finding {
            cause: if wifi {
                Cause::WifiLost
            } else {
                Cause::Detached
            },
            evidence,
            actions: vec![Action::NetworkAdvice, Action::RestartBackup],
        });
    }
    if let Some(folder) = &phone.folder
        && let Some(free) = folder.host_free
    {
        let expected = expected_bytes(phone).unwrap_or(0);
        let written = folder.bytes.saturating_sub(baseline);
        let remaining = expected.saturating_sub(written);
        if free < remaining.saturating_add(HOST_MARGIN) {
            found.push(Finding {
                cause: Cause::HostDiskFull,
                evidence: vec![format!(
                    "{} free on the backup disk, about {} still to write",
                    humanize::bytes(free),
                    humanize::bytes(remaining)
                )],
                actions: vec![Action::StorageCleanup, Action::RestartBackup],
            });
        }
    }
    if let Some(free) = phone.device.as_ref().and_then(|d| d.free)
        && free < PHONE_MINIMUM_FREE
    {
        found.push(Finding {
            cause: Cause::PhoneStorageLow,
            evidence: vec![format!("{} free on the iPhone", humanize::bytes(free))],
            actions: vec![Action::StorageCleanup, Action::RestartBackup],
        });
    }
    if phase == Some(Phase::Starting) && phone.device.is_some() && asks_for_passcode(phone) {
        found.push(Finding {
            cause: Cause::PasscodeWait,
            evidence: vec![format!(
                "iOS {} asks for the passcode before a backup, and nothing has arrived for {}",
                phone
                    .device
                    .as_ref()
                    .and_then(|d| d.ios_version.clone())
                    .unwrap_or_default(),
                minutes(quiet)
            )],
            actions: vec![Action::RestartBackup],
        });
    }
    // A program whose phone just went away is waiting for it, not hung.
    let phone_gone = phone.device.is_none() && was_attached;
    for p in processes.iter().filter(|p| !p.helper) {
        if phase.is_some() && p.cpu_percent < WAITING_CPU_PERCENT && !phone_gone {
            found.push(Finding {
                cause: Cause::ProcessHung,
                evidence: vec![format!(
                    "{} (process {}) is running but has written nothing for {}",
                    p.name,
                    p.pid,
                    minutes(quiet)
                )],
                actions: vec![Action::RestartBackup, Action::RestartPhone],
            });
        }
    }
    let ios = phone.device.as_ref().and_then(|d| d.ios_version.as_deref());
    for p in processes.iter().filter(|p| !p.helper) {
        if let Some(evidence) = outdated(&p.name, p.version.as_deref(), ios) {
            found.push(Finding {
                cause: Cause::OutdatedSoftware,
                evidence: vec![evidence],
                actions: vec![Action::RestartBackup],
            });
        }
    }
    if let Some(folder) = &phone.folder
        && (folder.empty_manifest_plist || (folder.stale_snapshot && phase.is_none()))
    {
        found.push(Finding {
            cause: Cause::Leftovers,
            evidence: vec![if folder.empty_manifest_plist {
                "the backup folder has an empty Manifest.plist (the iPhone answers error 205)"
                    .to_owned()
            } else {
                "the backup folder has a Snapshot folder left by an interrupted backup".to_owned()
            }],
            actions: vec![Action::StorageCleanup, Action::RestartBackup],
        });
    }
    if found.is_empty() {
        found.push(Finding {
            cause: Cause::Unknown,
            evidence: vec![match phase {
                Some(phase) => format!("nothing has moved for {} while {phase}", minutes(quiet)),
                None => "the backup stopped before it finished".to_owned(),
            }],
            actions: vec![Action::RestartBackup, Action::RestartPhone],
        });
    }
    found
}

/// What a phone's ErrorCode says about the cause, when Unstuck's own backup
/// reported one.
pub(super) fn finding_for_code(code: u64) -> Finding {
    let meaning = crate::engine::codes::meaning(code);
    Finding {
        cause: meaning.finding,
        evidence: vec![format!(
            "the iPhone ended the backup with error {code}: {}",
            meaning.cause
        )],
        actions: meaning.actions.to_vec(),
    }
}

/// Why Unstuck's own run failed, from its record: the phone's ErrorCode
/// when it gave one, else the cause and the words the run printed.
pub(super) fn finding_for_run(run: &EngineRun) -> Option<Finding> {
    if let Some(code) = run.error_code {
        return Some(finding_for_code(code));
    }
    let words = run.failure.clone()?;
    let cause = run.cause.unwrap_or(Cause::Unknown);
    let actions = match cause {
        Cause::Detached | Cause::WifiLost => vec![Action::NetworkAdvice, Action::RestartBackup],
        Cause::HostDiskFull | Cause::Leftovers | Cause::PhoneStorageLow => {
            vec![Action::StorageCleanup, Action::RestartBackup]
        }
        _ => vec![Action::RestartBackup, Action::RestartPhone],
    };
    Some(Finding {
        cause,
        evidence: vec![format!("Unstuck's backup said: {words}")],
        actions,
    })
}

/// What a full backup of the phone will hold: the last complete backup, or
/// the phone's used space.
pub(super) fn expected_bytes(phone: &PhoneObservation) -> Option<u64> {
    phone
        .folder
        .as_ref()
        .and_then(|f| f.last_complete_bytes)
        .or_else(|| phone.device.as_ref().and_then(|d| d.used))
}

pub(super) fn asks_for_passcode(phone: &PhoneObservation) -> bool {
    crate::stall::asks_for_passcode(phone.device.as_ref().and_then(|d| d.ios_version.as_deref()))
}

/// Release years of the backup programs whose versions are known, and of
/// iOS versions: a program released before the phone's iOS may not know its
/// changes. A guess with its evidence, never a verdict.
const TOOL_YEARS: [(&str, &str, i32); 3] = [
    ("idevicebackup2", "1.2.0", 2015),
    ("idevicebackup2", "1.3.0", 2020),
    ("pymobiledevice3", "1.0.0", 2022),
];

fn ios_year(ios: &str) -> Option<i32> {
    let major: i32 = ios.split('.').next()?.parse().ok()?;
    match major {
        // iOS 26 followed iOS 18 in 2025.
        26.. => Some(2025 + (major - 26)),
        7..=18 => Some(2006 + major),
        _ => None,
    }
}

fn outdated(tool: &str, version: Option<&str>, ios: Option<&str>) -> Option<String> {
    let version = version?;
    let (_, _, tool_year) = TOOL_YEARS
        .iter()
        .find(|(t, v, _)| *t == tool && *v == version)?;
    let ios = ios?;
    let ios_year = ios_year(ios)?;
    (ios_year > *tool_year).then(|| {
        format!("{tool} {version} ({tool_year}) is older than iOS {ios} ({ios_year}) and may not know it: update it, or back up with Unstuck")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ios_versions_have_their_years() {
        assert_eq!(ios_year("26.1"), Some(2025));
        assert_eq!(ios_year("18.0"), Some(2024));
        assert_eq!(ios_year("9.3.5"), Some(2015));
        assert_eq!(ios_year("x"), None);
        assert_eq!(ios_year("3.0"), None);
    }
}
