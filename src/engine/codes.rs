//! The phone's backup ErrorCodes (MBErrorDomain): one table giving each code
//! its meaning for a user (the cause and the fix in words), the monitor's
//! `Cause` and the fixes it offers, and `unstuck backup`'s exit code. The
//! phone's own description, when it sends one, is shown beside ours.

use crate::cause::{Action, Cause};

/// What an ErrorCode means, and what each part of Unstuck does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meaning {
    /// The cause in words.
    pub cause: &'static str,
    /// What fixes it, in words.
    pub action: &'static str,
    /// The cause as the monitor's finding names it.
    pub finding: Cause,
    /// The fixes the tray and notifications offer, most useful first.
    pub actions: &'static [Action],
    /// The process exit code `unstuck backup` uses: 10 plus a small number
    /// per family, so scripts can tell them apart.
    pub exit_code: u8,
}

const RESTART_BACKUP_THEN_PHONE: &[Action] = &[Action::RestartBackup, Action::RestartPhone];
const CLEAN_UP_THEN_BACKUP: &[Action] = &[Action::StorageCleanup, Action::RestartBackup];

/// Codes and their meanings; a code in no row gets `OTHER`.
const TABLE: &[(&[u64], Meaning)] = &[
    (
        &[1],
        Meaning {
            cause: "the iPhone's backup service reported an unknown error",
            action: "restart the iPhone, then back up again",
            ..OTHER
        },
    ),
    (
        &[3],
        Meaning {
            cause: "the iPhone's backup service is in a bad state",
            action: "restart the iPhone (`unstuck fix restart-iphone`), then back up again",
            actions: &[Action::RestartPhone, Action::RestartBackup],
            ..OTHER
        },
    ),
    (
        &[100, 101],
        Meaning {
            cause: "the iPhone could not use the backup records on this computer",
            action: "back up again; if it fails once more, make a full backup (`unstuck backup --full`)",
            exit_code: 16,
            ..OTHER
        },
    ),
    (
        &[102],
        Meaning {
            cause: "the iPhone could not read the backup's properties on this computer",
            action: "make a full backup (`unstuck backup --full`)",
            exit_code: 16,
            ..OTHER
        },
    ),
    (
        &[103],
        Meaning {
            cause: "the iPhone could not read the backup's Status.plist on this computer",
            action: "clean up the interrupted backup (`unstuck fix storage`) and back up again",
            exit_code: 16,
            ..OTHER
        },
    ),
    (
        &[104],
        Meaning {
            cause: "the iPhone could not read the backup's file list on this computer",
            action: "make a full backup (`unstuck backup --full`)",
            exit_code: 16,
            ..OTHER
        },
    ),
    (
        &[105],
        Meaning {
            // The phone's judgement for this backup: the disk may still
            // have gigabytes free, just not enough for it.
            cause: "this computer's backup disk has too little free space for this backup",
            action: "free space on the backup disk (`unstuck fix storage`) or back up to another disk (`unstuck backup --dest DIR`)",
            finding: Cause::HostDiskFull,
            actions: CLEAN_UP_THEN_BACKUP,
            exit_code: 12,
        },
    ),
    (
        &[205],
        Meaning {
            cause: "the backup folder holds leftovers of an interrupted backup (often an empty Manifest.plist)",
            action: "clean up the interrupted backup (`unstuck fix storage`), then back up again",
            finding: Cause::Leftovers,
            actions: CLEAN_UP_THEN_BACKUP,
            exit_code: 15,
        },
    ),
    (
        &[207],
        Meaning {
            cause: "the backup password is not correct",
            action: "enter the right backup password, or reset it on the iPhone (`unstuck fix encryption`)",
            finding: Cause::WrongPassword,
            actions: &[Action::EncryptionReset],
            exit_code: 13,
        },
    ),
    (
        &[208],
        Meaning {
            cause: "the passcode was not entered on the iPhone in time",
            action: "unlock the iPhone and enter its passcode when it asks, then back up again",
            finding: Cause::PasscodeWait,
            actions: &[Action::RestartBackup],
            exit_code: 14,
        },
    ),
    (
        &[211],
        Meaning {
            cause: "the iPhone refused the backup while Find My is changing or a restore is pending",
            action: "unlock the iPhone, finish anything it asks for in Settings, then back up again",
            exit_code: 17,
            ..OTHER
        },
    ),
    (
        &[212],
        Meaning {
            cause: "the iPhone has not finished its setup",
            action: "finish the setup screens on the iPhone, then back up again",
            exit_code: 17,
            ..OTHER
        },
    ),
];

/// Any other non-zero code.
const OTHER: Meaning = Meaning {
    cause: "the iPhone ended the backup with an error",
    action: "restart the iPhone and back up again",
    finding: Cause::Unknown,
    actions: RESTART_BACKUP_THEN_PHONE,
    exit_code: 11,
};

/// The meaning of a non-zero ErrorCode.
pub fn meaning(code: u64) -> Meaning {
    TABLE
        .iter()
        .find(|(codes, _)| codes.contains(&code))
        .map_or(OTHER, |(_, meaning)| *meaning)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (code, words in its cause, finding, first action, exit code)
    fn check(code: u64, words: &str, finding: Cause, first: Action, exit_code: u8) {
        let m = meaning(code);
        assert!(m.cause.contains(words), "{code}: {}", m.cause);
        assert!(!m.action.is_empty(), "{code}");
        assert_eq!(m.finding, finding, "{code}");
        assert_eq!(m.actions.first(), Some(&first), "{code}");
        assert_eq!(m.exit_code, exit_code, "{code}");
    }

    #[test]
    fn every_known_code_has_its_own_words() {
        let known = [1, 3, 100, 101, 102, 103, 104, 105, 205, 207, 208, 211, 212];
        let unknown = meaning(999);
        for code in known {
            let m = meaning(code);
            assert_ne!(m.cause, unknown.cause, "{code}");
            assert!(!m.action.is_empty());
        }
        use Action::*;
        use Cause::*;
        check(1, "unknown error", Unknown, RestartBackup, 11);
        check(3, "bad state", Unknown, RestartPhone, 11);
        check(101, "backup records", Unknown, RestartBackup, 16);
        check(104, "file list", Unknown, RestartBackup, 16);
        check(
            105,
            "too little free space",
            HostDiskFull,
            StorageCleanup,
            12,
        );
        check(205, "leftovers", Leftovers, StorageCleanup, 15);
        check(207, "password", WrongPassword, EncryptionReset, 13);
        check(208, "passcode", PasscodeWait, RestartBackup, 14);
        check(211, "Find My", Unknown, RestartBackup, 17);
        check(212, "setup", Unknown, RestartBackup, 17);
        check(4242, "ended the backup", Unknown, RestartBackup, 11);
        assert_eq!(meaning(0), OTHER);
    }
}
