//! The costly facts of a backup folder — bytes on disk and the file list's
//! counts — and a cache that keeps them while the folder's metadata files are
//! unchanged, so that a 100k-file backup is walked once, not on every call.
//!
//! The cache lives outside the backup (Unstuck never writes inside one) and
//! is only trusted for folders where no backup is running: a finished or
//! abandoned backup changes its metadata files whenever its content changes.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use walkdir::WalkDir;

/// The files whose length and modification time stand for the whole folder.
pub(crate) const FINGERPRINT_FILES: [&str; 5] = [
    "Info.plist",
    "Status.plist",
    "Manifest.plist",
    "Manifest.db",
    "Manifest.mbdb",
];

/// Length and modification time (ns since the epoch) of each fingerprint file,
/// `None` where it is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(Vec<Option<(u64, i128)>>);

impl Fingerprint {
    pub fn of(folder: &Path) -> Fingerprint {
        Fingerprint(
            FINGERPRINT_FILES
                .iter()
                .map(|name| {
                    let meta = fs::metadata(folder.join(name)).ok()?;
                    let mtime = meta.modified().ok()?;
                    let ns = match mtime.duration_since(UNIX_EPOCH) {
                        Ok(d) => d.as_nanos() as i128,
                        Err(e) => -(e.duration().as_nanos() as i128),
                    };
                    Some((meta.len(), ns))
                })
                .collect(),
        )
    }
}

/// Bytes on disk, counted by one walk that does not follow symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Every regular file's length, the `Snapshot/` folder included.
    pub bytes: u64,
    /// The part of `bytes` under a leftover `Snapshot/` folder.
    pub snapshot_bytes: u64,
}

/// The file list's counts, from Manifest.db or Manifest.mbdb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList {
    pub entries: u64,
    pub files: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    fingerprint: Fingerprint,
    usage: DiskUsage,
    file_list: Option<FileList>,
}

/// Measurements by folder. Load it with [`MeasureCache::load`], pass it to
/// the reader, and [`MeasureCache::save`] it when done.
#[derive(Debug, Default)]
pub struct MeasureCache {
    entries: HashMap<PathBuf, Entry>,
    file: Option<PathBuf>,
    dirty: bool,
}

impl MeasureCache {
    /// An empty cache that is never saved.
    pub fn in_memory() -> MeasureCache {
        MeasureCache::default()
    }

    /// Loads the cache kept in `file`. A missing or unreadable file gives an
    /// empty cache: it only costs a walk.
    pub fn load(file: PathBuf) -> MeasureCache {
        let entries = fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Vec<(PathBuf, Entry)>>(&bytes).ok())
            .map(|list| list.into_iter().collect())
            .unwrap_or_default();
        MeasureCache {
            entries,
            file: Some(file),
            dirty: false,
        }
    }

    /// Writes the cache back if it changed, through a temporary file and a
    /// rename so that a crash never leaves half a file.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut list: Vec<(&PathBuf, &Entry)> = self.entries.iter().collect();
        list.sort_by(|a, b| a.0.cmp(b.0));
        let tmp = file.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec(&list).map_err(io::Error::other)?)?;
        fs::rename(&tmp, file)?;
        self.dirty = false;
        Ok(())
    }

    /// The cached measurements of `folder` if its fingerprint still matches.
    pub(crate) fn get(
        &self,
        folder: &Path,
        fingerprint: &Fingerprint,
    ) -> Option<(DiskUsage, Option<FileList>)> {
        let entry = self.entries.get(folder)?;
        (entry.fingerprint == *fingerprint).then_some((entry.usage, entry.file_list))
    }

    pub(crate) fn put(
        &mut self,
        folder: &Path,
        fingerprint: Fingerprint,
        usage: DiskUsage,
        file_list: Option<FileList>,
    ) {
        self.entries.insert(
            folder.to_path_buf(),
            Entry {
                fingerprint,
                usage,
                file_list,
            },
        );
        self.dirty = true;
    }
}

/// Free bytes on the volume that holds `path` (a backup root or a phone's
/// folder), as idevice's own backup delegate tells the phone: the engine's
/// pre-flight and the phone, the monitor and the fixes all read this one
/// figure. 0 when it cannot be read.
pub fn free_space(path: &Path) -> u64 {
    use idevice::mobilebackup2::{BackupDelegate, FsBackupDelegate};
    FsBackupDelegate.get_free_disk_space(path)
}

/// Walks `folder` once and adds up its regular files' lengths. Entries that
/// cannot be read are passed over: the figure is for display, and the walk
/// never fails a backup's row.
pub fn disk_usage(folder: &Path) -> DiskUsage {
    let snapshot = folder.join("Snapshot");
    let mut usage = DiskUsage::default();
    for entry in WalkDir::new(folder)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        usage.bytes = usage.bytes.saturating_add(meta.len());
        if entry.path().starts_with(&snapshot) {
            usage.snapshot_bytes = usage.snapshot_bytes.saturating_add(meta.len());
        }
    }
    usage
}
