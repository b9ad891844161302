//! The words Unstuck has for what went wrong and what fixes it: a `Cause`
//! (the backup disk is full, the phone is locked …) and an `Action` (the
//! one-click fixes). Plain data shared by what diagnoses (the monitor, the
//! engine's table of the phone's error codes) and what shows and carries
//! out the fixes (tray, notifications, `unstuck fix`, `actions`); it
//! depends on nothing.

use serde::{Deserialize, Serialize};

/// What most likely keeps a backup from moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Detached,
    WifiLost,
    HostDiskFull,
    PhoneStorageLow,
    PasscodeWait,
    WrongPassword,
    ProcessHung,
    Leftovers,
    OutdatedSoftware,
    Overdue,
    Unknown,
}

impl Cause {
    pub fn headline(self) -> &'static str {
        match self {
            Cause::Detached => "the iPhone was disconnected",
            Cause::WifiLost => "the Wi-Fi link to the iPhone was lost",
            Cause::HostDiskFull => "the backup disk has too little free space",
            Cause::PhoneStorageLow => "the iPhone is short of space",
            Cause::PasscodeWait => "the iPhone is waiting for its passcode",
            Cause::WrongPassword => "the backup password is wrong",
            Cause::ProcessHung => "the backup program is waiting and writing nothing",
            Cause::Leftovers => "an interrupted backup left files that make backups fail",
            Cause::OutdatedSoftware => "the backup program may be too old for this iOS",
            Cause::Overdue => "no recent complete backup",
            Cause::Unknown => "no progress, cause unknown",
        }
    }
}

/// The one-click fixes: what a finding recommends, a notification button
/// and a tray menu item run, and `unstuck fix` names (`actions` carries
/// them out). Plain data here, so the monitor can name a fix without
/// depending on the code that does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    RestartBackup,
    NetworkAdvice,
    StorageCleanup,
    EncryptionReset,
    RestartPhone,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::RestartBackup,
        Action::NetworkAdvice,
        Action::StorageCleanup,
        Action::EncryptionReset,
        Action::RestartPhone,
    ];

    /// The identifier a notification button or menu item reports when
    /// clicked (stable: logs and tests name it).
    pub fn id(self) -> &'static str {
        match self {
            Action::RestartBackup => "restart-backup",
            Action::NetworkAdvice => "network-advice",
            Action::StorageCleanup => "storage-cleanup",
            Action::EncryptionReset => "encryption-reset",
            Action::RestartPhone => "restart-phone",
        }
    }

    /// The action an identifier stands for.
    pub fn from_id(id: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.id() == id)
    }

    /// The fix as a command, for what a terminal shows.
    pub fn command(self) -> &'static str {
        match self {
            Action::RestartBackup => "unstuck fix restart",
            Action::NetworkAdvice => "unstuck fix network",
            Action::StorageCleanup => "unstuck fix storage",
            Action::EncryptionReset => "unstuck fix encryption",
            Action::RestartPhone => "unstuck fix restart-iphone",
        }
    }

    /// The fix in a few words, for buttons and menu items.
    pub fn label(self) -> &'static str {
        match self {
            Action::RestartBackup => "Restart Backup",
            Action::NetworkAdvice => "Network Advice",
            Action::StorageCleanup => "Storage Clean-up",
            Action::EncryptionReset => "Encryption",
            Action::RestartPhone => "Restart iPhone",
        }
    }
}

/// Advice written for a terminal — each fix named as its command in
/// backquotes — in the words of the tray's menu: `` `unstuck fix storage` ``
/// becomes "Storage Clean-up", and any other command in parentheses (an
/// option of `unstuck backup`) is left out, since the menu has none.
pub fn in_menu_words(text: &str) -> String {
    let mut out = text.to_owned();
    for action in Action::ALL {
        out = out.replace(&format!("`{}`", action.command()), action.label());
    }
    // " (`unstuck backup --full`)" and the like: no menu item does that.
    while let Some(start) = out.find(" (`") {
        let Some(len) = out[start..].find("`)") else {
            break;
        };
        out.replace_range(start..start + len + 2, "");
    }
    out.replace('`', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_advice_reads_as_menu_items_in_the_tray() {
        assert_eq!(
            in_menu_words(
                "free space on the backup disk (`unstuck fix storage`) or back up to another disk (`unstuck backup --dest DIR`)"
            ),
            "free space on the backup disk (Storage Clean-up) or back up to another disk"
        );
        assert_eq!(
            in_menu_words("restart the iPhone (`unstuck fix restart-iphone`), then back up again"),
            "restart the iPhone (Restart iPhone), then back up again"
        );
        assert_eq!(in_menu_words("no command here"), "no command here");
        // A parenthesis left open is left alone, not looped on.
        assert_eq!(in_menu_words("odd (`unstuck x"), "odd (unstuck x");
    }

    #[test]
    fn every_fix_has_a_command_and_an_id_of_its_own() {
        for a in Action::ALL {
            assert!(a.command().starts_with("unstuck fix "));
            assert_eq!(Action::from_id(a.id()), Some(a));
        }
    }
}
