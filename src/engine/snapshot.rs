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
    /// Links every file of `folder` into the snapshot. A snapshot left by a
    /// run that was killed is the last complete state: it is restored first.
    pub fn take(folder: &Path) -> io::Result<Snapshot> {
        let held = Held::new();
        let copy = snapshot_path(folder);
        if copy.exists() {
            tracing::warn!(path = %copy.display(), "restoring the snapshot a killed run left");
            Snapshot {
                folder: folder.to_path_buf(),
                copy: copy.clone(),
                armed: true,
                _held: Held::new(),
            }
            .restore()?;
        }
        link_tree(folder, &copy).inspect_err(|_| {
            let _ = fs::remove_dir_all(&copy);
        })?;
        Ok(Snapshot {
            folder: folder.to_path_buf(),
            copy,
            armed: true,
            _held: held,
        })
    }

    /// The run finished: the snapshot is no longer needed.
    pub fn discard(mut self) -> io::Result<()> {
        self.armed = false;
        fs::remove_dir_all(&self.copy)
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
        let aside = self.folder.with_file_name(format!(
            ".unstuck-failed-{}",
            self.folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let _ = fs::remove_dir_all(&aside);
        if self.folder.exists() {
            fs::rename(&self.folder, &aside)?;
        }
        fs::rename(&self.copy, &self.folder)?;
        let _ = fs::remove_dir_all(&aside);
        Ok(())
    }
}

/// Puts back the snapshot a killed run left beside `folder`, if any. The
/// caller holds the backup lock, so no live run owns it.
pub fn recover(folder: &Path) -> io::Result<bool> {
    let copy = snapshot_path(folder);
    if !fs::symlink_metadata(&copy).is_ok_and(|m| m.is_dir()) {
        return Ok(false);
    }
    tracing::warn!(path = %copy.display(), "putting back the last complete backup a stopped run left");
    Snapshot {
        folder: folder.to_path_buf(),
        copy,
        armed: true,
        _held: Held::new(),
    }
    .restore()?;
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

fn link_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::hard_link(entry.path(), &target)?;
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
    fn a_snapshot_left_by_a_killed_run_is_restored_first() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backup");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("file"), b"good").unwrap();
        let snap = Snapshot::take(&folder).unwrap();
        std::mem::forget(snap);
        fs::write(folder.join("file.tmp"), b"half").unwrap();
        fs::rename(folder.join("file.tmp"), folder.join("file")).unwrap();
        let again = Snapshot::take(&folder).unwrap();
        assert_eq!(fs::read(folder.join("file")).unwrap(), b"good");
        again.discard().unwrap();
    }
}
