//! Storage clean-up: what takes space on this computer (backups ranked by
//! what removing them frees, phones not seen for months, leftovers of
//! interrupted backups, Finder's archived copies), moved to the trash one
//! item at a time — never deleted outright. Whatever may hold a phone's
//! newest data takes a second, explicit yes, and what a running backup is
//! using is not offered at all. Items are named by a short id made from
//! their path, so the same name means the same item from one run to the
//! next. Also the hints for the phone's own space and for iCloud.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sha1::{Digest, Sha1};
use thiserror::Error;

use super::Confirm;
use crate::backup_folder::{
    self, Backup, BackupState, Interruption, LeftoverKind, MeasureCache, ReadOptions,
};
use crate::device::{self, DeviceFacts, MuxAddress};
use crate::humanize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemKind {
    /// A complete backup.
    Complete,
    /// A complete backup of a phone not backed up for months.
    Forgotten,
    /// Finder's archived copy (UDID-date-time).
    Archived,
    /// A backup whose last run finished but left a `Snapshot/` folder or an
    /// empty Manifest.plist inside it.
    FinishedWithLeftovers,
    /// A backup whose last run stopped; `on_complete` when the file list of
    /// an earlier complete backup is still under it.
    Interrupted { on_complete: bool },
    /// A backup folder that cannot be read.
    Unreadable,
    /// `.unstuck-snapshot-*`: the last complete backup, kept aside by an
    /// Unstuck backup that was stopped (the next backup puts it back).
    EngineSnapshot,
    /// A `Snapshot/` folder inside a backup.
    SnapshotFolder,
    /// A 0-byte Manifest.plist inside a backup.
    EmptyManifestPlist,
    /// `.unstuck-failed-*`: a stopped Unstuck backup's partial folder, set
    /// aside.
    EngineFailed,
}

impl ItemKind {
    /// A whole backup (or a kept copy of one): never part of a one-click or
    /// `--yes`-only batch.
    pub fn is_backup(self) -> bool {
        !self.is_leftover()
    }

    /// Something that only gets in the way and holds no backup.
    pub fn is_leftover(self) -> bool {
        matches!(
            self,
            ItemKind::SnapshotFolder | ItemKind::EmptyManifestPlist | ItemKind::EngineFailed
        )
    }

    /// The leftovers that make the phone refuse or fail the next backup.
    pub fn clears_a_refusal(self) -> bool {
        matches!(
            self,
            ItemKind::SnapshotFolder | ItemKind::EmptyManifestPlist
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// A short name made from the path (see [`id_of`]): the same item keeps
    /// it however the list changes.
    pub id: String,
    pub kind: ItemKind,
    /// It may hold the newest copy of its phone's data (nothing newer of
    /// that phone is known complete): moving it takes the second yes.
    pub newest: bool,
    pub path: PathBuf,
    pub bytes: u64,
    pub udid: Option<String>,
    pub device_name: Option<String>,
    /// What it is and why it is listed, in words.
    pub why: String,
}

/// The first 8 hex digits of the SHA-1 of a path.
pub fn id_of(path: &Path) -> String {
    let digest = Sha1::digest(path.as_os_str().as_encoded_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// A folder a stopped Unstuck backup left beside the backups.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineFolder {
    pub path: PathBuf,
    pub bytes: u64,
    /// The backup folder it belongs to (`<root>/<name>`).
    pub of: PathBuf,
    /// `.unstuck-snapshot-*` (else `.unstuck-failed-*`).
    pub snapshot: bool,
}

/// Everything worth cleaning in `roots`, largest first. What a running
/// Unstuck backup holds (its lock is held by a live process) is left out.
pub fn survey(roots: &[PathBuf], now: Timestamp, forgotten_after: SignedDuration) -> Vec<Item> {
    let options = ReadOptions {
        now,
        active_window: SignedDuration::from_mins(10),
    };
    let mut cache = MeasureCache::in_memory();
    let mut backups = Vec::new();
    let mut engine = Vec::new();
    let mut live = Vec::new();
    for root in roots {
        if let Ok(found) = backup_folder::scan_root(root, options, &mut cache) {
            backups.extend(found);
        }
        let (folders, running) = engine_folders(root);
        engine.extend(folders);
        live.extend(running);
    }
    decide(&backups, &engine, &live, now, forgotten_after)
}

/// The leftovers in `<dest>/<udid>` that make the phone refuse or fail its
/// next backup: what a restart clears. Reads that folder alone; nothing
/// while a live run holds the phone's lock.
pub fn refusals(dest: &Path, udid: &str, now: Timestamp) -> Vec<Item> {
    let folder = dest.join(udid);
    if !folder.is_dir() {
        return Vec::new();
    }
    let options = ReadOptions {
        now,
        active_window: SignedDuration::from_mins(10),
    };
    let backup = backup_folder::read_backup(&folder, options, &mut MeasureCache::in_memory());
    let live: Vec<PathBuf> = crate::engine::lock_holder(dest, udid)
        .map(|_| folder.clone())
        .into_iter()
        .collect();
    // Leftovers are never "the newest data", so how long ago counts as
    // forgotten does not matter here.
    decide(&[backup], &[], &live, now, FORGOTTEN_AFTER)
        .into_iter()
        .filter(|i| i.kind.clears_a_refusal())
        .collect()
}

/// What the storage fix shows: free space per backup folder, what could be
/// moved to the trash, and hints for the phone's own space and iCloud.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageReport {
    /// Each backup folder that exists, with the free space on its volume.
    pub free: Vec<(PathBuf, u64)>,
    pub items: Vec<Item>,
    pub hints: Vec<String>,
}

/// How long a phone may go without a backup before its backups are listed
/// as forgotten.
pub const FORGOTTEN_AFTER: SignedDuration = SignedDuration::from_hours(24 * 180);

/// The storage fix's report, gathered once for the menu and `unstuck fix
/// storage`: the folders are read off the async workers, and the phone's
/// facts (when `addr` is given and a phone answers) add its hints.
pub async fn report(
    roots: &[PathBuf],
    now: Timestamp,
    addr: Option<&MuxAddress>,
    udid: Option<&str>,
) -> StorageReport {
    let surveyed = roots.to_vec();
    let read = tokio::task::spawn_blocking(move || {
        let free = surveyed
            .iter()
            .filter(|r| r.exists())
            .map(|r| (r.clone(), crate::backup_folder::free_space(r)))
            .collect();
        (free, survey(&surveyed, now, FORGOTTEN_AFTER))
    })
    .await;
    let (free, items) = read.unwrap_or_default();
    let mut hints = Vec::new();
    if let Some(addr) = addr
        && let Ok(facts) = device::facts(addr, udid, device::DEADLINE).await
    {
        hints.extend(phone_hints(&facts));
        hints.extend(icloud_hint(&facts));
    }
    StorageReport { free, items, hints }
}

/// The folders stopped Unstuck backups left in `root`, and the backup
/// folders whose lock a live process holds now.
fn engine_folders(root: &Path) -> (Vec<EngineFolder>, Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return (Vec::new(), Vec::new());
    };
    let mut folders = Vec::new();
    let mut live = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(udid) = name
            .strip_prefix(".unstuck-")
            .and_then(|n| n.strip_suffix(".lock"))
        {
            if crate::engine::lock_holder(root, udid).is_some() {
                live.push(root.join(udid));
            }
            continue;
        }
        let (snapshot, of) = match (
            name.strip_prefix(".unstuck-snapshot-"),
            name.strip_prefix(".unstuck-failed-"),
        ) {
            (Some(of), _) => (true, of),
            (None, Some(of)) => (false, of),
            (None, None) => continue,
        };
        folders.push(EngineFolder {
            path: e.path(),
            bytes: backup_folder::disk_usage(&e.path()).bytes,
            of: root.join(of),
            snapshot,
        });
    }
    (folders, live)
}

/// What to offer, from what was read: `backups`, the `engine` folders,
/// and the backup folders `live` runs are writing. Pure.
pub fn decide(
    backups: &[Backup],
    engine: &[EngineFolder],
    live: &[PathBuf],
    now: Timestamp,
    forgotten_after: SignedDuration,
) -> Vec<Item> {
    let complete = |b: &Backup| b.state == BackupState::Complete && b.last_complete.is_some();
    // The newest complete backup of a phone; ties go to the folder that is
    // not Finder's archive, then to the first path.
    let rank = |b: &Backup| {
        (
            b.last_complete,
            !b.archived,
            std::cmp::Reverse(b.path.clone()),
        )
    };
    let newest_data = |b: &Backup| -> bool {
        if b.udid.is_none() {
            return true;
        }
        let phone = same_phone(backups, b);
        let best = phone.iter().filter(|o| complete(o)).max_by_key(|o| rank(o));
        match (&b.state, best) {
            (_, None) => true,
            (BackupState::Complete, Some(best)) => b.last_complete.is_none() || best.path == b.path,
            // Data of a run that started after the newest complete backup
            // finished, or of an unknown time, may be newer than it.
            (_, Some(best)) => b
                .last_attempt
                .is_none_or(|started| best.last_complete.is_some_and(|l| l <= started)),
        }
    };
    let mut items = Vec::new();
    for b in backups {
        if live.contains(&b.path) || matches!(b.state, BackupState::InProgress { .. }) {
            continue;
        }
        let make = |kind: ItemKind, newest: bool, why: String, path: &Path, bytes: u64| Item {
            id: id_of(path),
            kind,
            newest,
            path: path.to_path_buf(),
            bytes,
            udid: b.udid.clone(),
            device_name: b.device_name.clone(),
            why,
        };
        let finished = matches!(&b.state, BackupState::Interrupted { reasons }
            if reasons.iter().all(|r| matches!(r, Interruption::SnapshotFolder | Interruption::EmptyManifestPlist)));
        for leftover in &b.leftovers {
            let (kind, why) = match leftover.kind {
                LeftoverKind::SnapshotFolder if finished => (
                    ItemKind::SnapshotFolder,
                    "a Snapshot/ folder left inside a finished backup".to_owned(),
                ),
                LeftoverKind::SnapshotFolder => (
                    ItemKind::SnapshotFolder,
                    "left by an interrupted backup".to_owned(),
                ),
                LeftoverKind::EmptyManifestPlist => (
                    ItemKind::EmptyManifestPlist,
                    "an empty Manifest.plist: the iPhone refuses the next backup (error 205) while it is there".to_owned(),
                ),
            };
            items.push(make(kind, false, why, &leftover.path, leftover.bytes));
        }
        let phone = same_phone(backups, b);
        let only = phone.len() == 1;
        let newest = newest_data(b);
        let phone_last = phone
            .iter()
            .filter(|o| complete(o))
            .filter_map(|o| o.last_complete)
            .max();
        let forgotten = phone_last.is_some_and(|l| now.duration_since(l) > forgotten_after);
        let made = b
            .last_complete
            .map(|l| format!(", made {}", humanize::ago(now, l)))
            .unwrap_or_default();
        // What a folder that did not finish holds, against the phone's other backups.
        let standing = if b.udid.is_none() {
            " — which phone it belongs to is unknown, so it may be a phone's only copy"
        } else if only {
            " — the only copy of this phone's data"
        } else if newest {
            " — it may hold this phone's newest data"
        } else {
            "; a newer complete backup of this phone is kept"
        };
        let (kind, why) = match &b.state {
            _ if b.archived => (
                ItemKind::Archived,
                format!(
                    "a copy Finder archived{made}{}",
                    if newest {
                        " — the newest copy of this phone's data"
                    } else {
                        ""
                    }
                ),
            ),
            BackupState::Complete if forgotten => (
                ItemKind::Forgotten,
                format!(
                    "{} of a phone last backed up {}",
                    match (only, newest) {
                        (true, _) => "the only backup",
                        (false, true) => "the newest backup",
                        (false, false) => "an older backup",
                    },
                    humanize::ago(now, phone_last.unwrap_or(now))
                ),
            ),
            BackupState::Complete if newest => (
                ItemKind::Complete,
                "the newest complete backup of this phone".to_owned(),
            ),
            BackupState::Complete => (
                ItemKind::Complete,
                format!("an older complete backup of this phone{made}"),
            ),
            BackupState::Interrupted { reasons } if finished => {
                let snapshot = reasons.contains(&Interruption::SnapshotFolder);
                let empty = reasons.contains(&Interruption::EmptyManifestPlist);
                let left = match (snapshot, empty) {
                    (true, true) => "a leftover Snapshot/ folder and an empty Manifest.plist",
                    (true, false) => "a leftover Snapshot/ folder",
                    _ => "an empty Manifest.plist",
                };
                (
                    ItemKind::FinishedWithLeftovers,
                    format!(
                        "a finished backup with {left}{}",
                        if newest && !only {
                            " — this phone's newest complete data"
                        } else if only {
                            " — the only copy of this phone's data"
                        } else {
                            ""
                        }
                    ),
                )
            }
            BackupState::Interrupted { .. } => {
                let on_complete = b.format.is_some();
                (
                    ItemKind::Interrupted { on_complete },
                    if on_complete {
                        format!(
                            "an interrupted backup on top of an earlier complete one, whose files it still holds{standing}"
                        )
                    } else {
                        format!("an interrupted backup{standing}")
                    },
                )
            }
            BackupState::Unreadable { why } => (
                ItemKind::Unreadable,
                format!("a backup folder that cannot be read ({why}){standing}"),
            ),
            BackupState::InProgress { .. } => continue,
        };
        items.push(make(kind, newest, why, &b.path, b.size_bytes.unwrap_or(0)));
    }
    for e in engine {
        if live.contains(&e.of) {
            continue;
        }
        let name = e.of.file_name().map(|n| n.to_string_lossy().into_owned());
        let udid = name.as_deref().and_then(backup_folder::normalize_udid);
        let device_name = backups
            .iter()
            .find(|b| b.path == e.of)
            .and_then(|b| b.device_name.clone());
        let (kind, newest, why) = if e.snapshot {
            (
                ItemKind::EngineSnapshot,
                true,
                "the last complete backup of this phone, kept aside by an Unstuck backup that was stopped (the next backup puts it back)".to_owned(),
            )
        } else {
            (
                ItemKind::EngineFailed,
                false,
                "the partial folder of an Unstuck backup that was stopped before it could tidy up"
                    .to_owned(),
            )
        };
        items.push(Item {
            id: id_of(&e.path),
            kind,
            newest,
            path: e.path.clone(),
            bytes: e.bytes,
            udid,
            device_name,
            why,
        });
    }
    items.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    items
}

/// The backups of `b`'s phone, `b` among them (only `b` when its phone is
/// unknown).
fn same_phone<'a>(backups: &'a [Backup], b: &'a Backup) -> Vec<&'a Backup> {
    match &b.udid {
        Some(u) => backups
            .iter()
            .filter(|o| o.udid.as_ref() == Some(u))
            .collect(),
        None => vec![b],
    }
}

/// The item `wanted` names: its id, or its path.
pub fn find<'a>(items: &'a [Item], wanted: &str) -> Option<&'a Item> {
    items
        .iter()
        .find(|i| i.id.eq_ignore_ascii_case(wanted))
        .or_else(|| {
            let path = Path::new(wanted);
            let canonical = std::fs::canonicalize(path).ok();
            items.iter().find(|i| {
                i.path == path
                    || canonical
                        .as_ref()
                        .is_some_and(|c| std::fs::canonicalize(&i.path).is_ok_and(|p| p == *c))
            })
        })
}

/// The leftovers among `items`: what one click may move to the trash.
pub fn leftovers(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .filter(|i| i.kind.is_leftover())
        .cloned()
        .collect()
}

/// Moves the leftovers among `shown` to the trash, and nothing else: the
/// click on the button that named them is the yes. `roots` are surveyed
/// again first, and only what is still a leftover there now moves: the
/// list was shown minutes ago, and a backup may have started since.
/// Returns the bytes freed and what could not be moved.
pub fn move_leftovers(shown: &[Item], roots: &[PathBuf]) -> (u64, Vec<String>) {
    let now = survey(
        roots,
        Timestamp::now(),
        SignedDuration::from_hours(24 * 365 * 10),
    );
    let still: Vec<Item> = leftovers(shown)
        .into_iter()
        .filter(|s| now.iter().any(|n| n.id == s.id && n.kind == s.kind))
        .collect();
    /// The click answers the first question; no second one is answered.
    struct Clicked;
    impl Confirm for Clicked {
        fn confirm(&mut self, _question: &str) -> bool {
            true
        }
        fn confirm_again(&mut self, _question: &str) -> bool {
            false
        }
        fn confirm_unsure(&mut self, _question: &str) -> bool {
            false
        }
    }
    let mut freed = 0;
    let mut errors = Vec::new();
    for item in still {
        match move_to_trash(&item, &mut Clicked) {
            Ok(bytes) => freed += bytes,
            Err(e) => errors.push(e.to_string()),
        }
    }
    (freed, errors)
}

#[derive(Debug, Error)]
pub enum CleanupError {
    #[error("nothing was moved: the question was not answered yes")]
    Declined,
    #[error("cannot move {} to the trash: {why}. Nothing was deleted", path.display())]
    Trash { path: PathBuf, why: String },
}

/// Moves `item` to the trash after a yes; what may hold a phone's newest
/// data needs a second one. Returns the bytes freed.
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
    if let Some(second) = second_question(item, who)
        && !confirm.confirm_again(&second)
    {
        return Err(CleanupError::Declined);
    }
    // Measured before it goes: what the trash will give back once emptied.
    let freed = exclusive_bytes(&item.path).unwrap_or(item.bytes);
    to_trash(&item.path).map_err(|e| CleanupError::Trash {
        path: item.path.clone(),
        why: e.to_string(),
    })?;
    Ok(freed)
}

/// Moves `path` to the OS trash.
///
/// # Platform specific behavior
/// On macOS, trash's default method asks Finder through AppleScript
/// (`osascript`), which "might ask the user to give additional permissions"
/// (to control Finder); NSFileManager's `trashItemAtURL` "does *not* require
/// additional permissions", at the cost of Finder's "Put Back" on some
/// systems (trash 5.3.0 src/macos/mod.rs:12-43,
/// https://github.com/ArturKovacs/trash-rs/issues/14). It runs in Unstuck's
/// own process, so under MobileSync it needs Full Disk Access like a read.
fn to_trash(path: &Path) -> Result<(), trash::Error> {
    #[cfg(target_os = "macos")]
    {
        use trash::macos::{DeleteMethod, TrashContextExtMacos};
        let mut context = trash::TrashContext::default();
        context.set_delete_method(DeleteMethod::NsFileManager);
        context.delete(path)
    }
    #[cfg(not(target_os = "macos"))]
    {
        trash::delete(path)
    }
}

/// The bytes that removing `path` gives back: a file linked from
/// elsewhere too (a hard-link copy of a backup shares every file with it)
/// frees nothing, so each file counts once, and only when every link to it
/// lies under `path`. `None` where links cannot be counted.
///
/// # Platform specific behavior
/// Unix counts links by inode; elsewhere `None` (the caller uses the size).
pub fn exclusive_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::collections::HashMap;
        use std::os::unix::fs::MetadataExt;
        // (device, inode) -> (links seen under `path`, links in all, length)
        let mut seen: HashMap<(u64, u64), (u64, u64, u64)> = HashMap::new();
        for entry in walkdir::WalkDir::new(path).follow_links(false) {
            let entry = entry.ok()?;
            if !entry.file_type().is_file() {
                continue;
            }
            let meta = entry.metadata().ok()?;
            let e = seen
                .entry((meta.dev(), meta.ino()))
                .or_insert((0, meta.nlink(), meta.len()));
            e.0 += 1;
        }
        Some(
            seen.values()
                .filter(|(here, all, _)| here >= all)
                .map(|(_, _, len)| len)
                .sum(),
        )
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The second question, for what may hold a phone's newest data.
fn second_question(item: &Item, who: &str) -> Option<String> {
    if !(item.newest && item.kind.is_backup()) {
        return None;
    }
    Some(if item.kind == ItemKind::Complete {
        format!(
            "This is the newest complete backup of {who}. Without it, {who} can only be restored from an older backup or iCloud. Move it to the trash anyway?"
        )
    } else {
        format!(
            "This may hold the newest copy of {who}'s data ({}). Without it, that data may be gone for good. Move it to the trash anyway?",
            item.why
        )
    })
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
    use crate::backup_folder::{Leftover, ManifestFormat};
    use crate::synthetic::{Finish, SyntheticBackup};

    const ANN: &str = "00008120-001A2B3C4D5E6F70";
    const BOB: &str = "00008030-0016354E1A2B3C4D";

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn days(n: i64) -> Timestamp {
        now() - SignedDuration::from_hours(24 * n)
    }

    /// A backup folder as read: complete `days` ago unless `state` says
    /// otherwise (then its last run started `days` ago).
    fn backup(name: &str, udid: &str, state: BackupState, days_ago: i64) -> Backup {
        let complete = state == BackupState::Complete;
        Backup {
            path: PathBuf::from("/b").join(name),
            udid: Some(udid.to_owned()),
            device_name: Some(format!("{}'s iPhone", &udid[..4])),
            product_type: None,
            ios_version: None,
            build_version: None,
            last_complete: complete.then(|| days(days_ago)),
            last_attempt: Some(days(days_ago)),
            state,
            encrypted: None,
            format: Some(ManifestFormat::ManifestDb),
            manifest_entries: None,
            file_count: None,
            size_bytes: Some(1_000),
            leftovers: Vec::new(),
            kept_by_unstuck: None,
            archived: false,
        }
    }

    fn interrupted(reasons: Vec<Interruption>) -> BackupState {
        BackupState::Interrupted { reasons }
    }

    fn unfinished() -> BackupState {
        interrupted(vec![Interruption::Unfinished {
            phase: backup_folder::SnapshotState::Uploading,
        }])
    }

    /// Each offered item as (folder or file name, kind, newest, why).
    fn check(
        backups: &[Backup],
        engine: &[EngineFolder],
        live: &[&str],
        expect: &[(&str, ItemKind, bool, &str)],
    ) {
        let live: Vec<PathBuf> = live.iter().map(|n| PathBuf::from("/b").join(n)).collect();
        let items = decide(
            backups,
            engine,
            &live,
            now(),
            SignedDuration::from_hours(24 * 180),
        );
        let mut got: Vec<(String, ItemKind, bool, String)> = items
            .iter()
            .map(|i| {
                let name = i.path.strip_prefix("/b").unwrap().display().to_string();
                (name, i.kind, i.newest, i.why.clone())
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let mut expect: Vec<(String, ItemKind, bool, String)> = expect
            .iter()
            .map(|(n, k, new, why)| (n.to_string(), *k, *new, why.to_string()))
            .collect();
        expect.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, expect);
    }

    #[test]
    fn complete_backups_newest_first_and_older_ones() {
        check(
            &[
                backup(ANN, ANN, BackupState::Complete, 1),
                backup("old", ANN, BackupState::Complete, 30),
            ],
            &[],
            &[],
            &[
                (
                    ANN,
                    ItemKind::Complete,
                    true,
                    "the newest complete backup of this phone",
                ),
                (
                    "old",
                    ItemKind::Complete,
                    false,
                    "an older complete backup of this phone, made 30 days ago",
                ),
            ],
        );
    }

    #[test]
    fn a_finished_backup_with_a_stray_snapshot_is_a_backup_not_a_leftover() {
        let mut b = backup(ANN, ANN, interrupted(vec![Interruption::SnapshotFolder]), 1);
        b.leftovers.push(Leftover {
            kind: LeftoverKind::SnapshotFolder,
            path: PathBuf::from("/b").join(ANN).join("Snapshot"),
            bytes: 0,
        });
        let older = backup("old", ANN, BackupState::Complete, 30);
        let snapshot = format!("{ANN}/Snapshot");
        check(
            &[b.clone(), older.clone()],
            &[],
            &[],
            &[
                (
                    ANN,
                    ItemKind::FinishedWithLeftovers,
                    true,
                    "a finished backup with a leftover Snapshot/ folder — this phone's newest complete data",
                ),
                (
                    &snapshot,
                    ItemKind::SnapshotFolder,
                    false,
                    "a Snapshot/ folder left inside a finished backup",
                ),
                (
                    "old",
                    ItemKind::Complete,
                    true,
                    "the newest complete backup of this phone",
                ),
            ],
        );
        // Alone, it is the phone's only copy.
        check(
            &[b],
            &[],
            &[],
            &[
                (
                    ANN,
                    ItemKind::FinishedWithLeftovers,
                    true,
                    "a finished backup with a leftover Snapshot/ folder — the only copy of this phone's data",
                ),
                (
                    &snapshot,
                    ItemKind::SnapshotFolder,
                    false,
                    "a Snapshot/ folder left inside a finished backup",
                ),
            ],
        );
    }

    #[test]
    fn interrupted_backups_say_what_they_hold() {
        let mut first = backup(BOB, BOB, unfinished(), 2);
        first.format = None;
        check(
            &[
                backup(ANN, ANN, unfinished(), 1),
                backup("ann-old", ANN, BackupState::Complete, 10),
                first,
            ],
            &[],
            &[],
            &[
                (
                    ANN,
                    ItemKind::Interrupted { on_complete: true },
                    true,
                    "an interrupted backup on top of an earlier complete one, whose files it still holds — it may hold this phone's newest data",
                ),
                (
                    "ann-old",
                    ItemKind::Complete,
                    true,
                    "the newest complete backup of this phone",
                ),
                (
                    BOB,
                    ItemKind::Interrupted { on_complete: false },
                    true,
                    "an interrupted backup — the only copy of this phone's data",
                ),
            ],
        );
        // A complete backup made after the interrupted run started supersedes it.
        check(
            &[
                backup(ANN, ANN, unfinished(), 5),
                backup("ann-new", ANN, BackupState::Complete, 1),
            ],
            &[],
            &[],
            &[
                (
                    ANN,
                    ItemKind::Interrupted { on_complete: true },
                    false,
                    "an interrupted backup on top of an earlier complete one, whose files it still holds; a newer complete backup of this phone is kept",
                ),
                (
                    "ann-new",
                    ItemKind::Complete,
                    true,
                    "the newest complete backup of this phone",
                ),
            ],
        );
    }

    #[test]
    fn unreadable_and_forgotten_backups_guard_the_only_copy() {
        let mut unreadable = backup(
            BOB,
            BOB,
            BackupState::Unreadable {
                why: "Info.plist is not a valid plist".into(),
            },
            3,
        );
        unreadable.last_attempt = None;
        check(
            &[backup(ANN, ANN, BackupState::Complete, 400), unreadable],
            &[],
            &[],
            &[
                (
                    ANN,
                    ItemKind::Forgotten,
                    true,
                    "the only backup of a phone last backed up 13 months ago",
                ),
                (
                    BOB,
                    ItemKind::Unreadable,
                    true,
                    "a backup folder that cannot be read (Info.plist is not a valid plist) — the only copy of this phone's data",
                ),
            ],
        );
        check(
            &[
                backup(ANN, ANN, BackupState::Complete, 400),
                backup("older", ANN, BackupState::Complete, 500),
            ],
            &[],
            &[],
            &[
                (
                    ANN,
                    ItemKind::Forgotten,
                    true,
                    "the newest backup of a phone last backed up 13 months ago",
                ),
                (
                    "older",
                    ItemKind::Forgotten,
                    false,
                    "an older backup of a phone last backed up 13 months ago",
                ),
            ],
        );
    }

    #[test]
    fn an_archived_copy_is_newest_only_when_nothing_newer_is_kept() {
        let mut archive = backup("archive", ANN, BackupState::Complete, 40);
        archive.archived = true;
        check(
            &[archive.clone(), backup(ANN, ANN, BackupState::Complete, 1)],
            &[],
            &[],
            &[
                (
                    "archive",
                    ItemKind::Archived,
                    false,
                    "a copy Finder archived, made 40 days ago",
                ),
                (
                    ANN,
                    ItemKind::Complete,
                    true,
                    "the newest complete backup of this phone",
                ),
            ],
        );
        check(
            &[archive],
            &[],
            &[],
            &[(
                "archive",
                ItemKind::Archived,
                true,
                "a copy Finder archived, made 40 days ago — the newest copy of this phone's data",
            )],
        );
    }

    #[test]
    fn what_a_live_run_uses_is_not_offered() {
        let engine = |name: &str, snapshot| EngineFolder {
            path: PathBuf::from("/b").join(name),
            bytes: 10,
            of: PathBuf::from("/b").join(ANN),
            snapshot,
        };
        let folders = [
            engine(&format!(".unstuck-snapshot-{ANN}"), true),
            engine(&format!(".unstuck-failed-{ANN}"), false),
        ];
        let mut running = backup(ANN, ANN, unfinished(), 1);
        running.leftovers.push(Leftover {
            kind: LeftoverKind::SnapshotFolder,
            path: PathBuf::from("/b").join(ANN).join("Snapshot"),
            bytes: 0,
        });
        check(&[running.clone()], &folders, &[ANN], &[]);
        // An in-progress backup and its Snapshot/ are not offered either.
        let mut writing = running.clone();
        writing.state = BackupState::InProgress {
            phase: backup_folder::SnapshotState::Uploading,
        };
        check(&[writing], &[], &[], &[]);
        // Once the run is gone: the kept copy is a backup, the partial folder a leftover.
        let snapshot = format!(".unstuck-snapshot-{ANN}");
        let failed = format!(".unstuck-failed-{ANN}");
        let items = decide(&[], &folders, &[], now(), SignedDuration::from_hours(1));
        assert_eq!(items.len(), 2);
        check(
            &[],
            &folders,
            &[],
            &[
                (
                    &snapshot,
                    ItemKind::EngineSnapshot,
                    true,
                    "the last complete backup of this phone, kept aside by an Unstuck backup that was stopped (the next backup puts it back)",
                ),
                (
                    &failed,
                    ItemKind::EngineFailed,
                    false,
                    "the partial folder of an Unstuck backup that was stopped before it could tidy up",
                ),
            ],
        );
    }

    #[test]
    fn only_leftovers_are_one_click_and_backups_need_the_second_yes() {
        let mut b = backup(
            ANN,
            ANN,
            interrupted(vec![
                Interruption::SnapshotFolder,
                Interruption::EmptyManifestPlist,
            ]),
            1,
        );
        for (kind, name) in [
            (LeftoverKind::SnapshotFolder, "Snapshot"),
            (LeftoverKind::EmptyManifestPlist, "Manifest.plist"),
        ] {
            b.leftovers.push(Leftover {
                kind,
                path: b.path.join(name),
                bytes: 0,
            });
        }
        let items = decide(&[b], &[], &[], now(), SignedDuration::from_hours(1));
        let one_click = leftovers(&items);
        assert_eq!(one_click.len(), 2, "{items:?}");
        assert!(
            one_click
                .iter()
                .all(|i| i.path.starts_with(format!("/b/{ANN}/")))
        );
        let folder = items
            .iter()
            .find(|i| i.path == Path::new("/b").join(ANN))
            .unwrap();
        assert!(second_question(folder, "Ann").is_some());
        assert!(
            one_click
                .iter()
                .all(|i| second_question(i, "Ann").is_none())
        );
        // The click never answers the second question.
        let (freed, errors) = move_leftovers(std::slice::from_ref(folder), &[]);
        assert_eq!((freed, errors.len()), (0, 0));
    }

    #[test]
    fn ids_are_short_stable_and_found_by_id_or_path() {
        let a = id_of(Path::new("/b/x"));
        assert_eq!(a.len(), 8);
        assert_eq!(a, id_of(Path::new("/b/x")));
        assert_ne!(a, id_of(Path::new("/b/y")));
        let items = decide(
            &[
                backup(ANN, ANN, BackupState::Complete, 1),
                backup("old", ANN, BackupState::Complete, 9),
            ],
            &[],
            &[],
            now(),
            SignedDuration::from_hours(24 * 180),
        );
        let old = items.iter().find(|i| i.path.ends_with("old")).unwrap();
        assert_eq!(find(&items, &old.id).unwrap().path, old.path);
        assert_eq!(find(&items, &old.id.to_uppercase()).unwrap().path, old.path);
        assert_eq!(find(&items, "/b/old").unwrap().id, old.id);
        assert!(find(&items, "1").is_none());
    }

    #[test]
    fn survey_reads_folders_and_passes_over_a_live_runs_copy() {
        let root = tempfile::tempdir().unwrap();
        let t = Timestamp::now();
        let ago = |n: i64| t - SignedDuration::from_hours(24 * n);
        let mut newest = SyntheticBackup::new(ANN, ago(1));
        newest.files = 5;
        newest.write(root.path()).unwrap();
        let mut broken = SyntheticBackup::new(BOB, ago(2));
        broken.finish = Finish::EmptyManifestPlist;
        broken.write(root.path()).unwrap();
        let copy = root.path().join(format!(".unstuck-snapshot-{ANN}"));
        std::fs::create_dir(&copy).unwrap();
        let held = crate::engine::BackupLock::acquire(root.path(), ANN)
            .unwrap()
            .unwrap();
        let kinds = |items: &[Item]| -> Vec<ItemKind> { items.iter().map(|i| i.kind).collect() };

        let items = survey(
            &[root.path().to_path_buf()],
            t,
            SignedDuration::from_hours(24 * 180),
        );
        assert!(!items.iter().any(|i| i.path == copy), "{items:?}");
        assert!(
            !items.iter().any(|i| i.udid.as_deref() == Some(ANN)),
            "{items:?}"
        );
        assert!(
            kinds(&items).contains(&ItemKind::EmptyManifestPlist),
            "{items:?}"
        );

        // A lock file no one holds (its run was killed) is stale, whoever it
        // names.
        drop(held);
        let me = crate::process::me().unwrap();
        let lock = root.path().join(format!(".unstuck-{ANN}.lock"));
        std::fs::write(&lock, serde_json::to_string(&me).unwrap()).unwrap();
        let items = survey(
            &[root.path().to_path_buf()],
            t,
            SignedDuration::from_hours(24 * 180),
        );
        assert!(
            kinds(&items).contains(&ItemKind::EngineSnapshot),
            "{items:?}"
        );
        assert!(kinds(&items).contains(&ItemKind::Complete), "{items:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_copy_made_of_links_frees_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup");
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&backup).unwrap();
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(backup.join("shared"), vec![0u8; 1000]).unwrap();
        std::fs::hard_link(backup.join("shared"), copy.join("shared")).unwrap();
        std::fs::write(copy.join("own"), vec![0u8; 300]).unwrap();
        // Two links of one file inside the same folder still free it.
        std::fs::hard_link(copy.join("own"), copy.join("own-again")).unwrap();
        assert_eq!(exclusive_bytes(&copy), Some(300));
        assert_eq!(exclusive_bytes(&backup), Some(0));
        assert_eq!(exclusive_bytes(dir.path()), Some(1300));
    }
}
