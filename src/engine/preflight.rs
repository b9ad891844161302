//! Checks made before any byte moves. Pure: the caller gathers the facts
//! (free space, the folder as read, running processes, the phone's storage).

use std::fmt;

use crate::humanize;

/// Head room on the host beyond the expected size of the backup.
pub const HOST_MARGIN: u64 = 128 * 1024 * 1024;
/// Below this much free space a phone cannot make the snapshot a backup
/// needs.
pub const PHONE_MINIMUM_FREE: u64 = 500 * 1000 * 1000;

/// What pre-flight looks at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub host_free: u64,
    /// The last complete backup's size in this folder, if there is one.
    pub last_backup_bytes: Option<u64>,
    /// The phone's used space, when known.
    pub phone_used: Option<u64>,
    pub phone_free: Option<u64>,
    pub empty_manifest_plist: bool,
    pub stale_snapshot_folder: bool,
    /// Other backup programs working on this phone: (name, pid).
    pub other_backups: Vec<(String, u32)>,
}

/// A reason not to start, with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    HostSpace { free: u64, needed: u64 },
    EmptyManifestPlist,
    StaleSnapshot,
    AnotherBackup { name: String, pid: u32 },
    PhoneSpace { free: u64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::HostSpace { free, needed } => write!(
                f,
                "the backup disk has {} free but the backup needs about {}: free space (`unstuck fix storage`) or choose another disk (`unstuck backup --dest DIR`)",
                humanize::bytes(*free),
                humanize::bytes(*needed)
            ),
            Problem::EmptyManifestPlist => f.write_str(
                "the backup folder has an empty Manifest.plist left by an interrupted backup, which makes the iPhone fail with error 205: move it to the trash (`unstuck fix storage`) and try again",
            ),
            Problem::StaleSnapshot => f.write_str(
                "the backup folder has a Snapshot folder left by an interrupted backup: move it to the trash (`unstuck fix storage`) and try again",
            ),
            Problem::AnotherBackup { name, pid } => write!(
                f,
                "another backup of this iPhone is running ({name}, process {pid}): wait for it to finish, or stop it (`unstuck fix restart`) first"
            ),
            Problem::PhoneSpace { free } => write!(
                f,
                "the iPhone has only {} free; it needs at least {} to prepare a backup: delete or offload some apps, videos or messages on the iPhone",
                humanize::bytes(*free),
                humanize::bytes(PHONE_MINIMUM_FREE)
            ),
        }
    }
}

/// The expected size of the backup: the last one's, else the phone's used
/// space, plus head room.
pub fn expected_bytes(inputs: &Inputs) -> u64 {
    inputs
        .last_backup_bytes
        .or(inputs.phone_used)
        .unwrap_or(0)
        .saturating_add(HOST_MARGIN)
}

/// Every reason not to start; empty when the backup may go ahead.
pub fn check(inputs: &Inputs) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, pid) in &inputs.other_backups {
        problems.push(Problem::AnotherBackup {
            name: name.clone(),
            pid: *pid,
        });
    }
    if inputs.empty_manifest_plist {
        problems.push(Problem::EmptyManifestPlist);
    }
    if inputs.stale_snapshot_folder {
        problems.push(Problem::StaleSnapshot);
    }
    let needed = expected_bytes(inputs);
    if inputs.host_free < needed {
        problems.push(Problem::HostSpace {
            free: inputs.host_free,
            needed,
        });
    }
    if let Some(free) = inputs.phone_free
        && free < PHONE_MINIMUM_FREE
    {
        problems.push(Problem::PhoneSpace { free });
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_inputs() -> Inputs {
        Inputs {
            host_free: 100_000_000_000,
            last_backup_bytes: Some(20_000_000_000),
            phone_used: Some(30_000_000_000),
            phone_free: Some(10_000_000_000),
            ..Inputs::default()
        }
    }

    fn check_with(f: impl FnOnce(&mut Inputs)) -> Vec<Problem> {
        let mut inputs = ok_inputs();
        f(&mut inputs);
        check(&inputs)
    }

    #[test]
    fn healthy_inputs_pass() {
        assert!(check(&ok_inputs()).is_empty());
    }

    #[test]
    fn host_space_uses_the_last_backup_then_the_phone() {
        assert_eq!(
            check_with(|i| i.host_free = 20_000_000_000),
            [Problem::HostSpace {
                free: 20_000_000_000,
                needed: 20_000_000_000 + HOST_MARGIN
            }]
        );
        assert_eq!(
            check_with(|i| {
                i.host_free = 25_000_000_000;
                i.last_backup_bytes = None;
            }),
            [Problem::HostSpace {
                free: 25_000_000_000,
                needed: 30_000_000_000 + HOST_MARGIN
            }]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_fix() {
        let problems = check_with(|i| {
            i.empty_manifest_plist = true;
            i.stale_snapshot_folder = true;
            i.other_backups = vec![("idevicebackup2".into(), 42)];
            i.phone_free = Some(100_000_000);
            i.host_free = 0;
        });
        assert_eq!(problems.len(), 5);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text[0].contains("idevicebackup2, process 42"));
        assert!(text[1].contains("error 205"));
        assert!(text[2].contains("Snapshot"));
        assert!(text[3].contains("--dest"));
        assert!(text[4].contains("100 MB free"));
    }
}
