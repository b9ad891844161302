//! Reads iPhone backup folders — the layout Finder, iTunes and idevicebackup2
//! write — into plain data: who the phone is, when it was last backed up in
//! full, whether the folder is complete, in progress or interrupted, and what
//! is left over to clean. It only reads: nothing inside a backup is written.
//! Deciding what to do about a backup is left to the monitor and the actions.

pub mod keybag;
pub(crate) mod manifest_db;
pub mod mbdb;
mod measure;
pub mod plists;
mod roots;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

pub use measure::{DiskUsage, MeasureCache, disk_usage, free_space};
pub use plists::SnapshotState;
pub use roots::{
    BackupRoot, RootOrigin, RootOutcome, RootReport, combine_roots, platform_roots, read_roots,
};

use crate::plist_budget::{self, ReadError};
use plists::{InfoPlist, ManifestPlist, StatusPlist};

/// A Manifest.mbdb larger than this is not one Apple wrote; reading it
/// whole could exhaust memory, so it makes the backup unreadable instead.
/// (The plists have their bound in `Budget::FILE`.)
const MAX_MBDB_BYTES: usize = 64 * 1024 * 1024;

/// One device backup folder, as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backup {
    pub path: PathBuf,
    /// 40 hex digits (older phones) or `00008xxx-xxxxxxxxxxxxxxxx`.
    pub udid: Option<String>,
    pub device_name: Option<String>,
    pub product_type: Option<String>,
    pub ios_version: Option<String>,
    pub build_version: Option<String>,
    /// When the last backup that finished was made: Status.plist's Date when
    /// its SnapshotState is `finished`.
    pub last_complete: Option<Timestamp>,
    /// Info.plist's Last Backup Date: tools write it when a backup *starts*.
    pub last_attempt: Option<Timestamp>,
    pub state: BackupState,
    pub encrypted: Option<bool>,
    pub format: Option<ManifestFormat>,
    /// Rows of the file list: files, folders and symlinks.
    pub manifest_entries: Option<u64>,
    /// Regular files in the file list.
    pub file_count: Option<u64>,
    /// Bytes of every file in the folder.
    pub size_bytes: Option<u64>,
    pub leftovers: Vec<Leftover>,
    /// The copy of the last complete backup that an Unstuck backup keeps
    /// beside the folder while it writes ([`stopped_run_copy`]), when one is
    /// there: a run is writing, or one was stopped before it could put it
    /// back (the next `unstuck backup` does that first).
    pub kept_by_unstuck: Option<PathBuf>,
    /// A copy Finder archived: the UDID followed by a date and time.
    pub archived: bool,
}

/// Where a backup stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackupState {
    /// The last backup finished, and nothing was left half-done since.
    Complete,
    /// A backup is being written now (the folder changed recently).
    InProgress { phase: SnapshotState },
    /// A backup started and stopped without finishing.
    Interrupted { reasons: Vec<Interruption> },
    /// The folder cannot be read; `why` names the file and the fault.
    Unreadable { why: String },
}

/// Evidence that a backup did not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Interruption {
    /// A `Snapshot/` folder, where an unfinished backup keeps its files.
    SnapshotFolder,
    /// A 0-byte Manifest.plist; the phone refuses the next backup (error 205).
    EmptyManifestPlist,
    /// No Status.plist: the device never recorded a finished backup.
    NoStatusPlist,
    /// Status.plist's SnapshotState is not `finished`, and nothing has changed
    /// for longer than a running backup would stay quiet.
    Unfinished { phase: SnapshotState },
    /// Status.plist says finished, but there is no Manifest.db or Manifest.mbdb.
    NoFileList,
}

impl fmt::Display for Interruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interruption::SnapshotFolder => f.write_str("a Snapshot folder was left behind"),
            Interruption::EmptyManifestPlist => {
                f.write_str("Manifest.plist is empty, so the next backup fails (error 205)")
            }
            Interruption::NoStatusPlist => f.write_str("no Status.plist"),
            Interruption::Unfinished { phase } => {
                write!(f, "stopped while {}", phase.as_str())
            }
            Interruption::NoFileList => f.write_str("no Manifest.db or Manifest.mbdb"),
        }
    }
}

/// Which file list a backup has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestFormat {
    /// Manifest.db (SQLite), iOS 10 and later.
    ManifestDb,
    /// Manifest.mbdb, iOS 9 and earlier.
    ManifestMbdb,
}

/// Something an interrupted backup left that is worth cleaning up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub kind: LeftoverKind,
    pub path: PathBuf,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftoverKind {
    SnapshotFolder,
    EmptyManifestPlist,
}

impl fmt::Display for LeftoverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeftoverKind::SnapshotFolder => "Snapshot/",
            LeftoverKind::EmptyManifestPlist => "empty Manifest.plist",
        })
    }
}

/// What the reader needs besides the folder: the time and how long a running
/// backup may stay quiet before it counts as interrupted.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub now: Timestamp,
    pub active_window: SignedDuration,
}

/// Reads every backup folder in `root`, sorted by path. A root that is itself
/// a backup folder (a common slip when naming `--backup-root`) is read as that
/// one backup. Entries are read when they are named like a UDID or hold a
/// backup's metadata; hidden entries and other folders are passed over. Only
/// a root that cannot be listed at all is an error.
pub fn scan_root(
    root: &Path,
    options: ReadOptions,
    cache: &mut MeasureCache,
) -> io::Result<Vec<Backup>> {
    let meta = fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "it is a file, not a folder",
        ));
    }
    if has_backup_metadata(root) {
        return Ok(vec![read_backup(root, options, cache)]);
    }
    let mut paths = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // A symlink counts as what it points to; one that cannot be followed
        // (broken, or a loop) gets a row saying so.
        let target = fs::metadata(&path);
        let worth_reading =
            udid_of_folder_name(&name).is_some() || target.is_err() || has_backup_metadata(&path);
        if worth_reading {
            paths.push(path);
        } else {
            tracing::debug!(path = %path.display(), "not a backup folder; passed over");
        }
    }
    paths.sort();
    Ok(paths
        .iter()
        .map(|path| read_backup(path, options, cache))
        .collect())
}

/// Whether `folder` holds any of the files a backup folder is made of.
fn has_backup_metadata(folder: &Path) -> bool {
    measure::FINGERPRINT_FILES
        .iter()
        .any(|name| fs::symlink_metadata(folder.join(name)).is_ok())
}

/// Reads one device backup folder. Never fails: what cannot be read becomes
/// [`BackupState::Unreadable`] with the reason.
pub fn read_backup(folder: &Path, options: ReadOptions, cache: &mut MeasureCache) -> Backup {
    let folder_name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut backup = Backup {
        path: folder.to_path_buf(),
        udid: udid_of_folder_name(&folder_name),
        device_name: None,
        product_type: None,
        ios_version: None,
        build_version: None,
        last_complete: None,
        last_attempt: None,
        state: BackupState::Complete,
        encrypted: None,
        format: None,
        manifest_entries: None,
        file_count: None,
        size_bytes: None,
        leftovers: Vec::new(),
        kept_by_unstuck: None,
        archived: is_archive_name(&folder_name),
    };
    if let Err(why) = fill(&mut backup, options, cache) {
        backup.state = BackupState::Unreadable { why };
    }
    let kept = stopped_run_copy(folder);
    if fs::symlink_metadata(&kept).is_ok_and(|m| m.is_dir()) {
        if backup.state != BackupState::Complete
            && let Ok(s) = plists::read_status(&kept.join("Status.plist"))
            && s.snapshot_state == Some(SnapshotState::Finished)
        {
            backup.last_complete = s.date;
        }
        backup.kept_by_unstuck = Some(kept);
    }
    backup
}

/// Where an Unstuck backup keeps a hard-link copy of the last complete
/// backup in `folder` while it writes: beside it, hidden, so that readers
/// pass it over.
pub fn stopped_run_copy(folder: &Path) -> PathBuf {
    unstuck_sibling(folder, "snapshot")
}

/// `.unstuck-<what>-<folder name>` beside `folder`: the hidden names an
/// Unstuck backup uses for its copies (`snapshot`, and while they are made
/// or removed `linking`, `discarded`, `failed`).
pub fn unstuck_sibling(folder: &Path, what: &str) -> PathBuf {
    folder.with_file_name(format!(
        ".unstuck-{what}-{}",
        folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ))
}

fn fill(backup: &mut Backup, options: ReadOptions, cache: &mut MeasureCache) -> Result<(), String> {
    let folder = backup.path.clone();
    let meta = fs::metadata(&folder).map_err(|e| io_why(&folder, &e))?;
    if !meta.is_dir() {
        return Err(format!(
            "{} is a file where a backup folder should be",
            folder.display()
        ));
    }

    let info = read_plist(&folder, "Info.plist", plists::read_info)?;
    let status = read_plist(&folder, "Status.plist", plists::read_status)?;
    let manifest_len = file_len(&folder.join("Manifest.plist"))?;
    let manifest_plist_empty = manifest_len == Some(0);
    let manifest = if manifest_plist_empty {
        None
    } else {
        read_plist(&folder, "Manifest.plist", plists::read_manifest)?
    };
    let has_db = file_len(&folder.join("Manifest.db"))?.is_some();
    let has_mbdb = !has_db && file_len(&folder.join("Manifest.mbdb"))?.is_some();
    if info.is_none() && status.is_none() && manifest_len.is_none() && !has_db && !has_mbdb {
        return Err(format!(
            "{} has no Info.plist, Status.plist, Manifest.plist or Manifest.db: it is not an iPhone backup folder",
            folder.display()
        ));
    }
    backup.format = if has_db {
        Some(ManifestFormat::ManifestDb)
    } else if has_mbdb {
        Some(ManifestFormat::ManifestMbdb)
    } else {
        None
    };
    identify(backup, info.as_ref(), manifest.as_ref());
    backup.encrypted = manifest.as_ref().and_then(|m| m.is_encrypted);
    backup.last_attempt = info.as_ref().and_then(|i| i.last_backup_date);

    let snapshot = folder.join("Snapshot");
    let snapshot_meta = fs::symlink_metadata(&snapshot).ok();
    let finished = matches!(
        status.as_ref().and_then(|s| s.snapshot_state.as_ref()),
        Some(SnapshotState::Finished)
    );
    let facts = Facts {
        status: status.clone(),
        manifest_plist_empty,
        snapshot_folder: snapshot_meta.is_some(),
        has_file_list: has_db || has_mbdb,
        // Only an unfinished backup needs to know how recently it moved.
        last_activity: if finished {
            None
        } else {
            last_activity(&folder, snapshot_meta.as_ref())
        },
    };
    backup.state = classify(&facts, options);
    if let (Some(s), BackupState::Complete) = (&status, &backup.state) {
        backup.last_complete = s.date;
    }

    let fingerprint = measure::Fingerprint::of(&folder);
    let running = matches!(backup.state, BackupState::InProgress { .. });
    let cached = if running {
        None
    } else {
        cache.get(&folder, &fingerprint)
    };
    let (usage, file_list) = match cached {
        Some(hit) => hit,
        None => {
            let file_list = if has_db {
                let db = folder.join("Manifest.db");
                let s = manifest_db::summarize(&db)
                    .map_err(|e| format!("{} cannot be read: {e}", db.display()))?;
                Some(measure::FileList {
                    entries: s.entries,
                    files: s.files,
                })
            } else if has_mbdb {
                let path = folder.join("Manifest.mbdb");
                let bytes = plist_budget::read_capped(&path, MAX_MBDB_BYTES).map_err(read_why)?;
                let s = mbdb::summarize(&bytes)
                    .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
                Some(measure::FileList {
                    entries: s.records,
                    files: s.files,
                })
            } else {
                None
            };
            let usage = disk_usage(&folder);
            if !running {
                cache.put(&folder, fingerprint, usage, file_list);
            }
            (usage, file_list)
        }
    };
    backup.size_bytes = Some(usage.bytes);
    backup.manifest_entries = file_list.map(|l| l.entries);
    backup.file_count = file_list.map(|l| l.files);

    if facts.snapshot_folder {
        backup.leftovers.push(Leftover {
            kind: LeftoverKind::SnapshotFolder,
            path: snapshot,
            bytes: usage.snapshot_bytes,
        });
    }
    if manifest_plist_empty {
        backup.leftovers.push(Leftover {
            kind: LeftoverKind::EmptyManifestPlist,
            path: folder.join("Manifest.plist"),
            bytes: 0,
        });
    }
    Ok(())
}

/// Name, model, versions and UDID, preferring Info.plist, then Manifest.plist's
/// Lockdown record, then (UDID only) the folder's name.
fn identify(backup: &mut Backup, info: Option<&InfoPlist>, manifest: Option<&ManifestPlist>) {
    let from_info = |f: fn(&InfoPlist) -> &Option<String>| info.and_then(|i| f(i).clone());
    let from_manifest =
        |f: fn(&ManifestPlist) -> &Option<String>| manifest.and_then(|m| f(m).clone());
    backup.device_name = from_info(|i| &i.device_name).or(from_manifest(|m| &m.device_name));
    backup.product_type = from_info(|i| &i.product_type).or(from_manifest(|m| &m.product_type));
    backup.ios_version =
        from_info(|i| &i.product_version).or(from_manifest(|m| &m.product_version));
    backup.build_version = from_info(|i| &i.build_version).or(from_manifest(|m| &m.build_version));
    let udid = [
        from_info(|i| &i.target_identifier),
        from_info(|i| &i.unique_identifier),
        from_manifest(|m| &m.unique_device_id),
    ]
    .into_iter()
    .flatten()
    .find_map(|s| normalize_udid(&s));
    if udid.is_some() {
        backup.udid = udid;
    }
}

/// The evidence [`classify`] decides from.
#[derive(Debug, Clone, Default)]
struct Facts {
    /// `None` when there is no Status.plist.
    status: Option<StatusPlist>,
    manifest_plist_empty: bool,
    snapshot_folder: bool,
    has_file_list: bool,
    /// The newest modification among the folder, its metadata files and
    /// `Snapshot/`.
    last_activity: Option<Timestamp>,
}

/// Complete, in progress or interrupted, from the folder's evidence alone.
fn classify(facts: &Facts, options: ReadOptions) -> BackupState {
    let phase = facts.status.as_ref().and_then(|s| s.snapshot_state.clone());
    let recently_active = facts
        .last_activity
        .is_some_and(|t| options.now.duration_since(t) <= options.active_window);
    let mut reasons = Vec::new();
    match phase {
        Some(SnapshotState::Finished) => {}
        Some(phase) if recently_active => return BackupState::InProgress { phase },
        Some(phase) => reasons.push(Interruption::Unfinished { phase }),
        None => reasons.push(Interruption::NoStatusPlist),
    }
    if facts.snapshot_folder {
        reasons.push(Interruption::SnapshotFolder);
    }
    if facts.manifest_plist_empty {
        reasons.push(Interruption::EmptyManifestPlist);
    }
    if reasons.is_empty() && !facts.has_file_list {
        reasons.push(Interruption::NoFileList);
    }
    if reasons.is_empty() {
        BackupState::Complete
    } else {
        BackupState::Interrupted { reasons }
    }
}

/// When anything in the backup folder `folder` was last written (see
/// `last_activity`); `None` when there is no such folder.
pub fn last_written(folder: &Path) -> Option<Timestamp> {
    let snapshot = fs::symlink_metadata(folder.join("Snapshot")).ok();
    last_activity(folder, snapshot.as_ref())
}

/// The newest modification time among the metadata files, the folder,
/// `Snapshot/` and the 256 hashed sub-folders: a running backup adds files to
/// those sub-folders for hours without touching the files at the top.
fn last_activity(folder: &Path, snapshot: Option<&fs::Metadata>) -> Option<Timestamp> {
    let modified = |path: PathBuf| fs::metadata(path).ok()?.modified().ok();
    let hashed = (0..=255u8).map(|b| folder.join(format!("{b:02x}")));
    measure::FINGERPRINT_FILES
        .iter()
        .map(|name| folder.join(name))
        .chain(std::iter::once(folder.to_path_buf()))
        .chain(hashed)
        .filter_map(modified)
        .chain(snapshot.and_then(|m| m.modified().ok()))
        .max()
        .and_then(|t| Timestamp::try_from(t).ok())
}

/// Reads and parses `folder/name`; `Ok(None)` when the file is absent.
fn read_plist<T>(
    folder: &Path,
    name: &str,
    read: fn(&Path) -> Result<T, ReadError>,
) -> Result<Option<T>, String> {
    match read(&folder.join(name)) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(ReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_why(e)),
    }
}

fn read_why(err: ReadError) -> String {
    match err {
        ReadError::Io { path, source } => io_why(&path, &source),
        other => other.to_string(),
    }
}

/// The length of the file at `path`, `None` if there is none.
fn file_len(path: &Path) -> Result<Option<u64>, String> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(meta) => Err(format!(
            "{} is {} where a file should be",
            path.display(),
            crate::regular_file::describe(&meta.file_type())
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_why(path, &e)),
    }
}

fn io_why(path: &Path, err: &io::Error) -> String {
    // "Too many levels of symbolic links" is the OS's wording for a loop;
    // say so plainly.
    if is_symlink_loop(err) {
        return format!("{} is a symlink loop", path.display());
    }
    format!("{} cannot be read: {err}", path.display())
}

/// Whether `err` is the OS's "too many levels of symbolic links".
///
/// # Platform specific behavior
/// ELOOP is 40 on Linux (90 on MIPS) and 62 on macOS and the BSDs, so the
/// number comes from `libc` (libc 0.2.191 src/unix/bsd/apple/mod.rs,
/// `ELOOP = 62`; macOS reports `Os { code: 62, .. }`:
/// https://github.com/Angelmmiguel/fu/issues/24). `io::ErrorKind::FilesystemLoop`
/// would say it portably but is still unstable
/// (https://github.com/rust-lang/rust/issues/86442). Windows has no such
/// errno; a loop there is left to the plain "cannot be read".
fn is_symlink_loop(err: &io::Error) -> bool {
    #[cfg(unix)]
    {
        err.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = err;
        false
    }
}

/// Lower-cases the older 40-hex UDIDs; keeps the newer form
/// (`00008150-0011223344556677`) as the device reports it. `None` when `s` is
/// neither.
pub fn normalize_udid(s: &str) -> Option<String> {
    let s = s.trim();
    let hex = |part: &str| part.bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() == 40 && hex(s) {
        return Some(s.to_ascii_lowercase());
    }
    if let Some((a, b)) = s.split_once('-')
        && a.len() == 8
        && b.len() == 16
        && hex(a)
        && hex(b)
    {
        return Some(s.to_ascii_uppercase());
    }
    None
}

/// The UDID a backup folder is named after, archived copies included.
fn udid_of_folder_name(name: &str) -> Option<String> {
    normalize_udid(name).or_else(|| archive_parts(name).and_then(|(udid, _)| normalize_udid(udid)))
}

fn is_archive_name(name: &str) -> bool {
    archive_parts(name).is_some_and(|(udid, _)| normalize_udid(udid).is_some())
}

/// Splits Finder's archive names, `<UDID>-YYYYMMDD-HHMMSS`.
fn archive_parts(name: &str) -> Option<(&str, &str)> {
    let split = name.len().checked_sub(16)?;
    let (udid, suffix) = (name.get(..split)?, name.get(split..)?);
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = suffix.starts_with('-')
        && suffix.as_bytes().get(9) == Some(&b'-')
        && digits(&suffix[1..9])
        && digits(&suffix[10..]);
    ok.then_some((udid, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ReadOptions {
        ReadOptions {
            now: "2026-11-25T12:00:00Z".parse().unwrap(),
            active_window: SignedDuration::from_mins(10),
        }
    }

    fn status(state: SnapshotState) -> Option<StatusPlist> {
        Some(StatusPlist {
            snapshot_state: Some(state),
            ..StatusPlist::default()
        })
    }

    fn minutes_ago(n: i64) -> Option<Timestamp> {
        Some(options().now - SignedDuration::from_mins(n))
    }

    fn check(facts: Facts, expected: BackupState) {
        assert_eq!(classify(&facts, options()), expected, "{facts:?}");
    }

    #[test]
    fn finished_with_a_file_list_is_complete() {
        check(
            Facts {
                status: status(SnapshotState::Finished),
                has_file_list: true,
                last_activity: minutes_ago(1),
                ..Facts::default()
            },
            BackupState::Complete,
        );
    }

    #[test]
    fn unfinished_and_recent_is_in_progress_whatever_else_is_there() {
        check(
            Facts {
                status: status(SnapshotState::Uploading),
                snapshot_folder: true,
                last_activity: minutes_ago(9),
                ..Facts::default()
            },
            BackupState::InProgress {
                phase: SnapshotState::Uploading,
            },
        );
    }

    #[test]
    fn unfinished_and_quiet_is_interrupted() {
        check(
            Facts {
                status: status(SnapshotState::Moving),
                snapshot_folder: true,
                has_file_list: true,
                last_activity: minutes_ago(11),
                ..Facts::default()
            },
            BackupState::Interrupted {
                reasons: vec![
                    Interruption::Unfinished {
                        phase: SnapshotState::Moving,
                    },
                    Interruption::SnapshotFolder,
                ],
            },
        );
    }

    #[test]
    fn leftovers_spoil_a_finished_status() {
        check(
            Facts {
                status: status(SnapshotState::Finished),
                manifest_plist_empty: true,
                has_file_list: true,
                ..Facts::default()
            },
            BackupState::Interrupted {
                reasons: vec![Interruption::EmptyManifestPlist],
            },
        );
        check(
            Facts {
                status: status(SnapshotState::Finished),
                ..Facts::default()
            },
            BackupState::Interrupted {
                reasons: vec![Interruption::NoFileList],
            },
        );
    }

    #[test]
    fn no_status_plist_is_never_complete() {
        check(
            Facts {
                has_file_list: true,
                last_activity: minutes_ago(0),
                ..Facts::default()
            },
            BackupState::Interrupted {
                reasons: vec![Interruption::NoStatusPlist],
            },
        );
    }

    #[test]
    fn a_clock_behind_the_files_counts_as_recent() {
        // A file stamped in the future (clock skew, another machine) is not
        // evidence of a stopped backup.
        check(
            Facts {
                status: status(SnapshotState::Uploading),
                last_activity: Some(options().now + SignedDuration::from_hours(2)),
                ..Facts::default()
            },
            BackupState::InProgress {
                phase: SnapshotState::Uploading,
            },
        );
    }

    #[test]
    fn udid_forms() {
        let old = "1CB128EAFA77C5BE74283E9A3A2130AF36A3C059";
        assert_eq!(normalize_udid(old).unwrap(), old.to_lowercase());
        assert_eq!(
            normalize_udid("00008150-001a2b3c4d5e6f70").unwrap(),
            "00008150-001A2B3C4D5E6F70"
        );
        assert_eq!(normalize_udid("00008150-001A2B3C4D5E6F7"), None);
        assert_eq!(normalize_udid("not a udid"), None);
        assert_eq!(normalize_udid(""), None);
    }

    #[test]
    fn a_symlink_loop_is_named_by_the_platform_errno() {
        #[cfg(unix)]
        assert!(is_symlink_loop(&io::Error::from_raw_os_error(libc::ELOOP)));
        #[cfg(unix)]
        assert!(!is_symlink_loop(&io::Error::from_raw_os_error(
            libc::ENOENT
        )));
        // Linux's number is not a loop everywhere: on macOS 40 is EMSGSIZE.
        #[cfg(target_os = "macos")]
        assert!(!is_symlink_loop(&io::Error::from_raw_os_error(40)));
        assert!(!is_symlink_loop(&io::Error::other("no errno")));
    }

    #[test]
    fn archive_names() {
        let udid = "00008150-001A2B3C4D5E6F70";
        assert!(is_archive_name(&format!("{udid}-20251005-134501")));
        assert!(is_archive_name(&format!(
            "{}-20251005-134501",
            "a".repeat(40)
        )));
        assert!(!is_archive_name(udid));
        assert!(!is_archive_name("notes-20251005-134501"));
        assert!(!is_archive_name("-20251005-134501"));
        assert_eq!(
            udid_of_folder_name(&format!("{udid}-20251005-134501")).as_deref(),
            Some(udid)
        );
    }
}
