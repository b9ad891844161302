//! What the monitor is given on each poll (observations) and what it keeps
//! and decides (states, findings, notices). Plain data only.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::Serialize;

pub use crate::cause::{Action, Cause};

use crate::backup_folder::SnapshotState;
use crate::device::Link;
pub use crate::stall::Phase;

/// Everything seen in one poll.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub phones: Vec<PhoneObservation>,
    pub processes: Vec<BackupProcess>,
    /// Whether this computer has a network interface up (one with an
    /// address, loopback aside); `None` when unknown.
    pub network_up: Option<bool>,
}

/// One phone: its backup folder (if there is one) and, while attached, the
/// device's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneObservation {
    pub udid: String,
    pub name: Option<String>,
    pub folder: Option<FolderSample>,
    /// `None` while the phone is not attached.
    pub device: Option<DeviceSample>,
    /// Unstuck's own backup of this phone, from its run record.
    pub engine: Option<EngineRun>,
}

/// What `unstuck backup` recorded about its run (exact, not estimated).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineRun {
    pub state: crate::engine::record::RunState,
    pub percent: Option<f64>,
    pub bytes: u64,
    pub error_code: Option<u64>,
    /// Why it failed, in the words it printed, and the cause they name.
    pub failure: Option<String>,
    pub cause: Option<Cause>,
    pub updated: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FolderSample {
    pub path: PathBuf,
    pub snapshot_state: Option<SnapshotState>,
    /// When Status.plist last changed.
    pub status_modified: Option<Timestamp>,
    pub last_complete: Option<Timestamp>,
    /// When the folder has no complete backup now (being written, or left
    /// interrupted): the last one the history remembers.
    pub remembered_complete: Option<Timestamp>,
    /// Bytes of the last complete backup, when there is one.
    pub last_complete_bytes: Option<u64>,
    /// Bytes and files in the folder now.
    pub bytes: u64,
    pub files: u64,
    pub empty_manifest_plist: bool,
    pub stale_snapshot: bool,
    /// Free space on the folder's volume.
    pub host_free: Option<u64>,
    /// The newest change in the folder (metadata files, hashed sub-folders).
    pub last_activity: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceSample {
    pub link: Option<Link>,
    pub ios_version: Option<String>,
    pub free: Option<u64>,
    pub used: Option<u64>,
    pub will_encrypt: Option<bool>,
    /// Why the phone would not be asked for its facts (locked, not
    /// trusted), in words that say what to do.
    pub refused: Option<String>,
}

/// A backup program seen running.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupProcess {
    pub name: String,
    pub pid: u32,
    pub cpu_percent: f32,
    /// Bytes written since the process started.
    pub written_bytes: u64,
    /// The phone named on its command line, if any.
    pub udid: Option<String>,
    /// The program's version (`--version`), when it says.
    pub version: Option<String>,
    /// A program that only helps (iTunes, Apple Devices, AMPDevicesAgent):
    /// always running, so its writes count as progress but its presence does
    /// not mean a backup is on.
    pub helper: bool,
}

/// One phone as the tray shows it: where its backup stands, why, and what
/// else is known of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhoneSummary {
    pub udid: String,
    pub name: Option<String>,
    pub state: PhoneState,
    pub findings: Vec<Finding>,
    pub last_complete: Option<Timestamp>,
    pub attached: bool,
    pub link: Option<Link>,
    /// Drops within the last hour (a loose cable shows as several).
    pub recent_detaches: u32,
    pub folder: Option<PathBuf>,
}

/// Where a phone's backup stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PhoneState {
    Idle,
    Running(Running),
    Stalled {
        since: Timestamp,
        phase: Phase,
        tool: String,
    },
    Completed {
        at: Timestamp,
    },
    Failed {
        at: Timestamp,
        /// The phone's ErrorCode, when known.
        code: Option<u64>,
    },
    /// Attached, but it will not talk to this computer (locked since it
    /// restarted, or it does not trust it); `why` says what to do.
    Refused {
        why: String,
    },
}

impl PhoneState {
    pub fn name(&self) -> &'static str {
        match self {
            PhoneState::Idle => "idle",
            PhoneState::Running(_) => "running",
            PhoneState::Stalled { .. } => "stalled",
            PhoneState::Completed { .. } => "completed",
            PhoneState::Failed { .. } => "failed",
            PhoneState::Refused { .. } => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Running {
    /// The program making the backup, or "unknown".
    pub tool: String,
    pub phase: Phase,
    pub since: Timestamp,
    /// Bytes written in this run.
    pub bytes: u64,
    /// Per cent done; an estimate for other tools (bytes against the
    /// expected size).
    pub percent: Option<f64>,
    pub estimated: bool,
    /// Bytes per second over the recent polls.
    pub rate: f64,
    pub eta_secs: Option<u64>,
}

/// A cause of trouble, with what shows it and what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cause: Cause,
    /// The facts that point to the cause, in words.
    pub evidence: Vec<String>,
    pub actions: Vec<Action>,
}

/// A desktop notification the monitor decided to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub udid: String,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Stalled,
    Failed,
    Completed,
    Overdue,
}
