//! Storage clean-up: what takes space on this computer (backups ranked by
//! what removing them frees, phones not seen for months, leftovers of
//! interrupted backups, Finder's archived copies), moved to the trash one
//! item at a time — never deleted outright, and the newest complete backup
//! of a phone only after a second, explicit yes. Also the hints for the
//! phone's own space and for iCloud.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use thiserror::Error;

use super::Confirm;
use crate::backup_folder::{self, BackupState, LeftoverKind, MeasureCache, ReadOptions};
use crate::device::DeviceFacts;
use crate::humanize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemKind {
    /// A complete backup; `newest` when it is the phone's most recent one.
    Backup {
        newest: bool,
    },
    /// A backup of a phone not backed up for months.
    Forgotten,
    /// Finder's archived copy (UDID-date-time).
    Archived,
    /// An interrupted backup that never finished.
    Interrupted,
    SnapshotFolder,
    EmptyManifestPlist,
    /// Left by an Unstuck backup that was killed (`.unstuck-snapshot-*`,
    /// `.unstuck-failed-*`).
    EngineLeftover,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    pub path: PathBuf,
    pub bytes: u64,
    pub udid: Option<String>,
    pub device_name: Option<String>,
    /// Why it is listed, in words.
    pub why: String,
}

/// Everything worth cleaning in `roots`, largest first.
pub fn survey(roots: &[PathBuf], now: Timestamp, forgotten_after: SignedDuration) -> Vec<Item> {
    let options = ReadOptions {
        now,
        active_window: SignedDuration::from_mins(10),
    };
    let mut cache = MeasureCache::in_memory();
    let mut items = Vec::new();
    let mut backups = Vec::new();
    for root in roots {
        if let Ok(found) = backup_folder::scan_root(root, options, &mut cache) {
            backups.extend(found);
        }
        items.extend(engine_leftovers(root));
    }
    // The newest complete backup of each phone.
    let newest = |udid: &Option<String>, path: &Path| {
        backups
            .iter()
            .filter(|b| {
                b.udid == *udid && b.state == BackupState::Complete && b.last_complete.is_some()
            })
            .max_by_key(|b| b.last_complete)
            .is_some_and(|b| b.path == path)
    };
    for b in &backups {
        let name = b.device_name.clone();
        let bytes = b.size_bytes.unwrap_or(0);
        let item = |kind, why: String, path: &Path, bytes| Item {
            kind,
            path: path.to_path_buf(),
            bytes,
            udid: b.udid.clone(),
            device_name: name.clone(),
            why,
        };
        for leftover in &b.leftovers {
            let (kind, why) = match leftover.kind {
                LeftoverKind::SnapshotFolder => (ItemKind::SnapshotFolder, "left by an interrupted backup".to_owned()),
                LeftoverKind::EmptyManifestPlist => (
                    ItemKind::EmptyManifestPlist,
                    "an empty Manifest.plist: the iPhone refuses the next backup (error 205) while it is there".to_owned(),
                ),
            };
            items.push(item(kind, why, &leftover.path, leftover.bytes));
        }
        let last = b.last_complete;
        let item = match &b.state {
            _ if b.archived => item(
                ItemKind::Archived,
                format!(
                    "a copy Finder archived{}",
                    last.map(|l| format!(", made {}", humanize::ago(now, l)))
                        .unwrap_or_default()
                ),
                &b.path,
                bytes,
            ),
            BackupState::Complete
                if last.is_some_and(|l| now.duration_since(l) > forgotten_after) =>
            {
                item(
                    ItemKind::Forgotten,
                    format!(
                        "its phone was last backed up {}",
                        humanize::ago(now, last.unwrap_or(now))
                    ),
                    &b.path,
                    bytes,
                )
            }
            BackupState::Complete => {
                let newest = newest(&b.udid, &b.path);
                item(
                    ItemKind::Backup { newest },
                    if newest {
                        "the newest complete backup of this phone".to_owned()
                    } else {
                        "an older complete backup of this phone".to_owned()
                    },
                    &b.path,
                    bytes,
                )
            }
            BackupState::Interrupted { .. } | BackupState::Unreadable { .. } => item(
                ItemKind::Interrupted,
                "a backup that never finished".to_owned(),
                &b.path,
                bytes,
            ),
            BackupState::InProgress { .. } => continue,
        };
        items.push(item);
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.bytes));
    items
}

/// Hard-link snapshots and set-aside folders a killed Unstuck backup left.
fn engine_leftovers(root: &Path) -> Vec<Item> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let udid = name
                .strip_prefix(".unstuck-snapshot-")
                .or_else(|| name.strip_prefix(".unstuck-failed-"))?;
            Some(Item {
                kind: ItemKind::EngineLeftover,
                path: e.path(),
                bytes: backup_folder::disk_usage(&e.path()).bytes,
                udid: backup_folder::normalize_udid(udid),
                device_name: None,
                why: "left by an Unstuck backup that was stopped before it could tidy up"
                    .to_owned(),
            })
        })
        .collect()
}

#[derive(Debug, Error)]
pub enum CleanupError {
    #[error("nothing was moved: you said no")]
    Declined,
    #[error("cannot move {} to the trash: {why}. Nothing was deleted", path.display())]
    Trash { path: PathBuf, why: String },
}

/// Moves `item` to the trash after a yes; the newest complete backup of a
/// phone needs a second one. Returns the bytes freed.
pub fn move_to_trash(item: &Item, confirm: &mut dyn Confirm) -> Result<u64, CleanupError> {
    let who = item.device_name.as_deref().unwrap_or("this iPhone");
    let first = format!(
        "Move {} ({}, {}) to the trash?",
        item.path.display(),
        humanize::bytes(item.bytes),
        item.why
    );
    if !confirm.confirm(&first) {
        return Err(CleanupError::Declined);
    }
    if item.kind == (ItemKind::Backup { newest: true }) {
        let second = format!(
            "This is the newest complete backup of {who}. Without it, {who} can only be restored from an older backup or iCloud. Move it to the trash anyway?"
        );
        if !confirm.confirm_again(&second) {
            return Err(CleanupError::Declined);
        }
    }
    trash::delete(&item.path).map_err(|e| CleanupError::Trash {
        path: item.path.clone(),
        why: e.to_string(),
    })?;
    Ok(item.bytes)
}

/// Hints for the phone's own space, with the figures behind them.
pub fn phone_hints(facts: &DeviceFacts) -> Vec<String> {
    let Some(storage) = facts.storage else {
        return Vec::new();
    };
    let needed = crate::engine::preflight::PHONE_MINIMUM_FREE;
    let mut hints = Vec::new();
    if storage.free < needed {
        hints.push(format!(
            "The iPhone has {} free; a backup needs about {} of room on it to prepare.",
            humanize::bytes(storage.free),
            humanize::bytes(needed)
        ));
        hints.push("Settings → General → iPhone Storage → Offload Unused Apps frees space without losing data.".to_owned());
        hints.push(
            "The same screen lists large videos and Messages attachments to review and delete."
                .to_owned(),
        );
    } else {
        hints.push(format!(
            "The iPhone has {} free of {}: enough to prepare a backup.",
            humanize::bytes(storage.free),
            humanize::bytes(storage.capacity)
        ));
    }
    hints
}

/// When iCloud Backup is on, a nearly full iCloud account makes it fail.
pub fn icloud_hint(facts: &DeviceFacts) -> Option<String> {
    (facts.backup.cloud_backup == Some(true)).then(|| {
        "iCloud Backup is on: if iCloud storage is nearly full, that backup fails. Check it on the iPhone in Settings → [your name] → iCloud → Manage Account Storage.".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Finish, SyntheticBackup};

    #[test]
    fn items_are_ranked_and_kinds_are_right() {
        let root = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let days = |n: i64| now - SignedDuration::from_hours(24 * n);
        let udid = "00008120-001A2B3C4D5E6F70";
        let mut newest = SyntheticBackup::new(udid, days(1));
        newest.files = 50;
        newest.write(root.path()).unwrap();
        let mut archived = SyntheticBackup::new(udid, days(40));
        archived.files = 10;
        let a = archived.write(&root.path().join("a")).unwrap();
        std::fs::rename(&a, root.path().join(format!("{udid}-20251005-134501"))).unwrap();
        let mut old = SyntheticBackup::new("3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a", days(400));
        old.files = 5;
        old.write(root.path()).unwrap();
        let mut broken = SyntheticBackup::new("00008030-0016354E1A2B3C4D", days(2));
        broken.finish = Finish::EmptyManifestPlist;
        broken.write(root.path()).unwrap();
        std::fs::create_dir(root.path().join(format!(".unstuck-snapshot-{udid}"))).unwrap();

        let items = survey(
            &[root.path().to_path_buf()],
            now,
            SignedDuration::from_hours(24 * 180),
        );
        let kinds: Vec<&ItemKind> = items.iter().map(|i| &i.kind).collect();
        assert!(
            kinds.contains(&&ItemKind::Backup { newest: true }),
            "{kinds:?}"
        );
        assert!(kinds.contains(&&ItemKind::Archived), "{kinds:?}");
        assert!(kinds.contains(&&ItemKind::Forgotten), "{kinds:?}");
        assert!(kinds.contains(&&ItemKind::EmptyManifestPlist), "{kinds:?}");
        assert!(kinds.contains(&&ItemKind::Interrupted), "{kinds:?}");
        assert!(kinds.contains(&&ItemKind::EngineLeftover), "{kinds:?}");
        assert!(items.windows(2).all(|w| w[0].bytes >= w[1].bytes));
        assert_eq!(items[0].kind, ItemKind::Backup { newest: true });
    }
}
