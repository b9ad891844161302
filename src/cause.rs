//! The words Unstuck has for what went wrong and what fixes it: a `Cause`
//! (the backup disk is full, the phone is locked …) and an `Action` (the
//! one-click fixes). Plain data shared by what diagnoses (the monitor, the
//! engine's table of the phone's error codes) and what shows and carries
//! out the fixes (tray, notifications, `unstuck fix`, `actions`); it
//! depends on nothing.

use serde::Serialize;

/// What most likely keeps a backup from moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
            Cause::HostDiskFull => "the backup disk is nearly full",
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

    /// The fix in a few words, for buttons and "fix:" lines.
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
