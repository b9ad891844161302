//! Keeps the last complete backup safe while a new run writes into its
//! folder: a copy made of hard links (it costs no space), restored if the run
//! does not finish and removed when it does. The run never writes a file in
//! place (see `folder`), so the linked files keep their old bytes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Snapshots of this process being taken, held, or put back.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many snapshots this process holds now (taking, holding or putting
/// one back). A process that ends while one is held should wait for it:
/// the tray's Quit does.
pub fn held() -> usize {
    HELD.load(Ordering::Acquire)
}

/// Counts one snapshot in [`HELD`] while it lives.
#[derive(Debug)]
struct Held;

impl Held {
    fn new() -> Held {
        HELD.fetch_add(1, Ordering::AcqRel);
        Held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A hard-link copy of a backup folder, beside it and hidden
/// (`.unstuck-snapshot-<folder name>`), so readers pass it over.
///
/// A snapshot dropped without [`Snapshot::discard`] or [`Snapshot::restore`]
/// (a cancelled run: the tray's Quit, a dropped future) is restored then.
#[derive(Debug)]
pub struct Snapshot {
    folder: PathBuf,
    copy: PathBuf,
    /// Still to be discarded or restored.
    armed: bool,
    /// Dropped last: after `Drop` has put the copy back.
    _held: Held,
}

impl Snapshot {
    /// Links every file of `folder` into the snapshot. The copy is built
    /// under another name and renamed when whole, so a copy under the
    /// snapshot's name is always complete. The caller has run [`recover`].
    pub fn take(folder: &Path) -> io::Result<Snapshot> {
        let held = Held::new();
        let copy = snapshot_path(folder);
        let linking = beside(folder, "linking");
        let _ = fs::remove_dir_all(&linking);
        link_tree(folder, &linking)
            .and_then(|()| fs::rename(&linking, &copy))
            .inspect_err(|_| {
                let _ = fs::remove_dir_all(&linking);
            })?;
        Ok(Snapshot {
            folder: folder.to_path_buf(),
            copy,
            armed: true,
            _held: held,
        })
    }

    /// The run finished: the snapshot is no longer needed. It is renamed
    /// away first, so a removal cut short never leaves a part of it under
    /// the snapshot's name (which the next run would put back).
    pub fn discard(mut self) -> io::Result<()> {
        self.armed = false;
        let gone = beside(&self.folder, "discarded");
        let _ = fs::remove_dir_all(&gone);
        fs::rename(&self.copy, &gone)?;
        fs::remove_dir_all(&gone)
    }

    /// The run did not finish: put the last complete state back. The run's
    /// partial folder is moved aside first, then removed (it holds only what
    /// this run wrote and links shared with the snapshot). Nothing is moved
    /// unless the copy is there.
    pub fn restore(mut self) -> io::Result<()> {
        self.armed = false;
        self.put_back()
    }

    fn put_back(&self) -> io::Result<()> {
        if !fs::symlink_metadata(&self.copy).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the copy of the last complete backup, {}, is gone; the folder was left as it is",
                    self.copy.display()
                ),
            ));
        }
        let aside = beside(&self.folder, "failed");
        let _ = fs::remove_dir_all(&aside);
        if fs::symlink_metadata(&self.folder).is_ok() {
            fs::rename(&self.folder, &aside)?;
        }
        fs::rename(&self.copy, &self.folder)?;
        let _ = fs::remove_dir_all(&aside);
        Ok(())
    }
}

/// What a killed run left beside `folder` is dealt with before a new run:
/// a copy being built or being removed goes (it holds only links), and the
/// copy of the last complete backup is put back, unless the folder has
/// since become a newer complete backup (another program finished one),
/// which is kept. The caller holds the backup lock, so no live run owns any
/// of it. `Ok(true)` when the copy was put back.
pub fn recover(folder: &Path) -> io::Result<bool> {
    for what in ["linking", "discarded", "failed"] {
        let _ = fs::remove_dir_all(beside(folder, what));
    }
    let copy = snapshot_path(folder);
    if !fs::symlink_metadata(&copy).is_ok_and(|m| m.is_dir()) {
        return Ok(false);
    }
    let stale = Snapshot {
        folder: folder.to_path_buf(),
        copy: copy.clone(),
        armed: false,
        _held: Held::new(),
    };
    let finished = |dir: &Path| {
        crate::backup_folder::plists::read_status(&dir.join("Status.plist"))
            .ok()
            .filter(|s| s.snapshot_state == Some(crate::backup_folder::SnapshotState::Finished))
            .and_then(|s| s.date)
    };
    if let (Some(now), Some(kept)) = (finished(folder), finished(&copy))
        && now > kept
    {
        tracing::warn!(path = %copy.display(), "the folder holds a newer complete backup than the copy a stopped run kept; the copy goes");
        stale.discard()?;
        return Ok(false);
    }
    tracing::warn!(path = %copy.display(), "putting back the last complete backup a stopped run left");
    stale.restore()?;
    Ok(true)
}

/// Removes the `*.unstuck-part` files a killed run left in `folder` and its
/// sub-folders (a backup folder is two levels deep).
pub fn remove_part_files(folder: &Path) {
    let walk = walkdir::WalkDir::new(folder)
        .max_depth(2)
        .follow_links(false);
    for entry in walk.into_iter().flatten() {
        if entry.file_type().is_file()
            && entry
                .file_name()
                .to_string_lossy()
                .ends_with(super::folder::PART_SUFFIX)
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if self.armed {
            match self.put_back() {
                Ok(()) => {
                    tracing::info!(folder = %self.folder.display(), "the stopped run's folder was put back as it was")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not put the last complete backup back")
                }
            }
        }
    }
}

pub fn snapshot_path(folder: &Path) -> PathBuf {
    crate::backup_folder::stopped_run_copy(folder)
}

/// `.unstuck-<what>-<folder name>` beside `folder`.
fn beside(folder: &Path, what: &str) -> PathBuf {
    crate::backup_folder::unstuck_sibling(folder, what)
}

/// A hard link where the file system has them; a copy where it has none
/// (exFAT and FAT, common on external disks): slower and it takes space,
/// but the last complete backup is still kept safe.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if links_unsupported(&e) => fs::copy(from, to).map(drop),
        Err(e) => Err(e),
    }
}

/// Whether a failed `fs::hard_link` means the file system has no hard links
/// (FAT32, exFAT), so a copy should stand in.
///
/// # Platform specific behavior
/// - Linux's kernel exFAT and FAT drivers answer EPERM (`PermissionDenied`);
///   exfat-fuse answers ENOSYS (https://github.com/RsyncProject/rsync/issues/631)
///   and macOS ENOTSUP (https://github.com/s3fs-fuse/s3fs-fuse/issues/1633),
///   both `Unsupported`.
/// - Windows' `CreateHardLinkW` answers ERROR_INVALID_FUNCTION (1) on FAT and
///   exFAT (https://github.com/treeverse/dvc/issues/8515), some drivers
///   ERROR_NOT_SUPPORTED (50)
///   (https://github.com/PowerShell/openssh-portable/pull/440). std maps
///   neither to an `ErrorKind` (they come out uncategorized), so the numbers
///   are matched. Microsoft's "File system functionality comparison" lists no
///   hard links for FAT or exFAT.
fn links_unsupported(e: &io::Error) -> bool {
    if matches!(
        e.kind(),
        io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
    ) {
        return true;
    }
    #[cfg(windows)]
    {
        const ERROR_INVALID_FUNCTION: i32 = 1;
        const ERROR_NOT_SUPPORTED: i32 = 50;
        matches!(
            e.raw_os_error(),
            Some(ERROR_INVALID_FUNCTION | ERROR_NOT_SUPPORTED)
        )
    }
    #[cfg(not(windows))]
    {
        false
    }
}

fn link_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            link_or_copy(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            // Kept as the link it is (never followed), so a restore puts
            // back exactly what was there.
            #[cfg(unix)]
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_systems_without_hard_links_are_told_apart_from_other_failures() {
        let os = io::Error::from_raw_os_error;
        #[cfg(unix)]
        {
            assert!(links_unsupported(&os(libc::EPERM)));
            assert!(links_unsupported(&os(libc::ENOTSUP)));
            assert!(links_unsupported(&os(libc::ENOSYS)));
            assert!(!links_unsupported(&os(libc::ENOENT)));
            assert!(!links_unsupported(&os(libc::ENOSPC)));
            assert!(!links_unsupported(&os(libc::EXDEV)));
        }
        #[cfg(windows)]
        {
            // ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED, ERROR_ACCESS_DENIED
            assert!(links_unsupported(&os(1)));
            assert!(links_unsupported(&os(50)));
            assert!(links_unsupported(&os(5)));
            // ERROR_FILE_NOT_FOUND, ERROR_DISK_FULL
            assert!(!links_unsupported(&os(2)));
            assert!(!links_unsupported(&os(112)));
        }
        assert!(links_unsupported(&io::Error::from(
            io::ErrorKind::Unsupported
        )));
        assert!(!links_unsupported(&io::Error::from(
            io::ErrorKind::NotFound
        )));
    }

    #[test]
    fn restore_brings_back_the_old_bytes_and_discard_keeps_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backup");
        fs::create_dir_all(folder.join("ab")).unwrap();
        fs::write(folder.join("ab/file"), b"old").unwrap();
        fs::write(folder.join("Status.plist"), b"finished").unwrap();

        let snap = Snapshot::take(&folder).unwrap();
        // A run replaces files by renaming new ones over them, and adds some.
        fs::write(folder.join("ab/file.tmp"), b"new").unwrap();
        fs::rename(folder.join("ab/file.tmp"), folder.join("ab/file")).unwrap();
        fs::write(folder.join("extra"), b"x").unwrap();
        snap.restore().unwrap();
        assert_eq!(fs::read(folder.join("ab/file")).unwrap(), b"old");
        assert!(!folder.join("extra").exists());
        assert!(!snapshot_path(&folder).exists());

        let snap = Snapshot::take(&folder).unwrap();
        fs::write(folder.join("ab/file.tmp"), b"new").unwrap();
        fs::rename(folder.join("ab/file.tmp"), folder.join("ab/file")).unwrap();
        snap.discard().unwrap();
        assert_eq!(fs::read(folder.join("ab/file")).unwrap(), b"new");
        assert!(!snapshot_path(&folder).exists());
    }

    #[test]
    fn a_missing_copy_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backup");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("file"), b"new").unwrap();
        let snap = Snapshot::take(&folder).unwrap();
        fs::remove_dir_all(snapshot_path(&folder)).unwrap();
        let e = snap.restore().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("is gone"), "{e}");
        assert_eq!(fs::read(folder.join("file")).unwrap(), b"new");
        let aside = dir.path().join(".unstuck-failed-backup");
        assert!(!aside.exists());
    }

    #[test]
    fn a_snapshot_left_by_a_killed_run_is_put_back_first() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backup");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("file"), b"good").unwrap();
        let mut snap = Snapshot::take(&folder).unwrap();
        // A killed run: the snapshot is neither discarded nor restored.
        snap.armed = false;
        drop(snap);
        fs::write(folder.join("file.tmp"), b"half").unwrap();
        fs::rename(folder.join("file.tmp"), folder.join("file")).unwrap();
        assert!(recover(&folder).unwrap());
        assert_eq!(fs::read(folder.join("file")).unwrap(), b"good");
        assert!(!snapshot_path(&folder).exists());
        assert!(!recover(&folder).unwrap());
    }

    fn status(folder: &Path, date: &str) {
        let mut d = plist::Dictionary::new();
        d.insert("SnapshotState".into(), "finished".into());
        d.insert(
            "Date".into(),
            plist::Value::Date(plist::Date::from_xml_format(date).unwrap()),
        );
        plist::Value::Dictionary(d)
            .to_file_xml(folder.join("Status.plist"))
            .unwrap();
    }

    /// A copy cut short while it was linked, or while it was removed, is
    /// never put back over the folder.
    #[test]
    fn a_copy_cut_short_is_never_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backup");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("file"), b"whole").unwrap();
        for what in ["linking", "discarded"] {
            let cut = beside(&folder, what);
            fs::create_dir(&cut).unwrap();
            assert!(!recover(&folder).unwrap());
            assert!(!cut.exists());
            assert_eq!(fs::read(folder.join("file")).unwrap(), b"whole");
        }
    }

    /// Another program finished a newer backup after a run was killed: the
    /// newer one stays and the stale copy goes.
    #[test]
    fn a_newer_complete_backup_is_kept_over_a_stale_copy() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backup");
        let copy = snapshot_path(&folder);
        fs::create_dir(&folder).unwrap();
        fs::create_dir(&copy).unwrap();
        status(&copy, "2026-11-01T10:00:00Z");
        fs::write(copy.join("file"), b"older").unwrap();
        status(&folder, "2026-11-02T10:00:00Z");
        fs::write(folder.join("file"), b"newer").unwrap();
        assert!(!recover(&folder).unwrap());
        assert_eq!(fs::read(folder.join("file")).unwrap(), b"newer");
        assert!(!copy.exists());
    }
}
