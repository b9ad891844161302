//! What the phone's backup ErrorCodes (MBErrorDomain) mean for a user, and
//! what to do about each. The phone's own description, when it sends one,
//! is shown beside ours.

/// A cause in words and the action that fixes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meaning {
    pub cause: &'static str,
    pub action: &'static str,
}

/// The meaning of a non-zero ErrorCode.
pub fn meaning(code: u64) -> Meaning {
    let (cause, action) = match code {
        1 => (
            "the iPhone's backup service reported an unknown error",
            "restart the iPhone, then back up again",
        ),
        3 => (
            "the iPhone's backup service is in a bad state",
            "restart the iPhone (Restart iPhone in Unstuck's menu), then back up again",
        ),
        100 | 101 => (
            "the iPhone could not use the backup records on this computer",
            "back up again; if it fails once more, make a full backup (unstuck backup --full)",
        ),
        102 => (
            "the iPhone could not read the backup's properties on this computer",
            "make a full backup (unstuck backup --full)",
        ),
        103 => (
            "the iPhone could not read the backup's Status.plist on this computer",
            "clean up the interrupted backup (Storage Clean-up) and back up again",
        ),
        104 => (
            "the iPhone could not read the backup's file list on this computer",
            "make a full backup (unstuck backup --full)",
        ),
        105 => (
            "this computer's backup disk is full",
            "free space on the backup disk (Storage Clean-up) or back up to another disk (--dest)",
        ),
        205 => (
            "the backup folder holds leftovers of an interrupted backup (often an empty Manifest.plist)",
            "clean up the interrupted backup (Storage Clean-up), then back up again",
        ),
        207 => (
            "the backup password is not correct",
            "enter the right backup password, or reset it on the iPhone (Encryption… in Unstuck's menu)",
        ),
        208 => (
            "the passcode was not entered on the iPhone in time",
            "unlock the iPhone and enter its passcode when it asks, then back up again",
        ),
        211 => (
            "the iPhone refused the backup while Find My is changing or a restore is pending",
            "unlock the iPhone, finish anything it asks for in Settings, then back up again",
        ),
        212 => (
            "the iPhone has not finished its setup",
            "finish the setup screens on the iPhone, then back up again",
        ),
        _ => (
            "the iPhone ended the backup with an error",
            "restart the iPhone and back up again",
        ),
    };
    Meaning { cause, action }
}

/// The process exit code `unstuck backup` uses for a phone's ErrorCode: 10
/// plus a small number per family, so scripts can tell them apart.
pub fn exit_code(code: u64) -> u8 {
    match code {
        105 => 12,
        207 => 13,
        208 => 14,
        205 => 15,
        100..=104 => 16,
        211 | 212 => 17,
        _ => 11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_has_its_own_words() {
        let known = [1, 3, 100, 101, 102, 103, 104, 105, 205, 207, 208, 211, 212];
        let unknown = meaning(999);
        for code in known {
            let m = meaning(code);
            assert_ne!(m, unknown, "{code}");
            assert!(!m.action.is_empty());
        }
        assert!(meaning(105).cause.contains("disk is full"));
        assert!(meaning(207).cause.contains("password"));
        assert_eq!(exit_code(105), 12);
        assert_eq!(exit_code(4242), 11);
    }
}
