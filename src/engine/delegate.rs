//! The host side of the file work during a backup: `idevice` calls this
//! delegate for every file the phone sends or asks for. It never writes a
//! file in place — each file is written beside its destination and renamed
//! over it — so the hard-link snapshot of the last complete backup keeps its
//! bytes. Every call is also a sign of progress for the watchdog.

use std::collections::HashSet;
use std::fs;
use std::future::Future;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use idevice::IdeviceError;
use idevice::mobilebackup2::{BackupDelegate, BackupProgress, DirEntryInfo, FsBackupDelegate};
use tokio::time::Instant;

use super::watchdog::Phase;
use crate::lock;

/// What the delegate saw, read by the watchdog and the progress display.
#[derive(Debug, Clone)]
pub struct Observed {
    pub phase: Phase,
    pub last_progress: Instant,
    pub bytes: u64,
    pub files: u64,
    /// The phone's overall progress, 0–100, when it has said.
    pub percent: Option<f64>,
}

pub(crate) struct Delegate {
    observed: Arc<Mutex<Observed>>,
    made_dirs: Mutex<HashSet<PathBuf>>,
    /// Reported instead of the real free space (tests of a full disk).
    free_space: Option<u64>,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn internal(e: io::Error) -> IdeviceError {
    IdeviceError::InternalError(e.to_string())
}

impl Delegate {
    pub(crate) fn new(free_space: Option<u64>) -> (Delegate, Arc<Mutex<Observed>>) {
        let observed = Arc::new(Mutex::new(Observed {
            phase: Phase::WaitingForPhone,
            last_progress: Instant::now(),
            bytes: 0,
            files: 0,
            percent: None,
        }));
        (
            Delegate {
                observed: observed.clone(),
                made_dirs: Mutex::new(HashSet::new()),
                free_space,
            },
            observed,
        )
    }

    fn touch(&self, phase: Phase) {
        touch(&self.observed, phase, 0);
    }
}

fn touch(observed: &Mutex<Observed>, phase: Phase, bytes: u64) {
    let mut o = lock(observed);
    if phase as u8 > o.phase as u8 {
        o.phase = phase;
    }
    o.last_progress = Instant::now();
    o.bytes += bytes;
}

/// Writes to `<name>.unstuck-part` and renames it over `<name>` when dropped.
struct RenameOnDrop {
    file: Option<BufWriter<fs::File>>,
    part: PathBuf,
    target: PathBuf,
    observed: Arc<Mutex<Observed>>,
}

impl Write for RenameOnDrop {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("file already closed"))?
            .write(buf)?;
        touch(&self.observed, Phase::Transferring, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Drop for RenameOnDrop {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else { return };
        let done = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|_| fs::rename(&self.part, &self.target));
        match done {
            Ok(()) => lock(&self.observed).files += 1,
            Err(e) => {
                tracing::warn!(path = %self.target.display(), error = %e, "could not write a backup file");
                let _ = fs::remove_file(&self.part);
            }
        }
    }
}

impl BackupDelegate for Delegate {
    fn get_free_disk_space(&self, path: &Path) -> u64 {
        // The phone asks this early: it has started.
        self.touch(Phase::Transferring);
        self.free_space
            .unwrap_or_else(|| FsBackupDelegate.get_free_disk_space(path))
    }

    fn open_file_read<'a>(
        &'a self,
        path: &'a Path,
    ) -> Boxed<'a, Result<Box<dyn Read + Send>, IdeviceError>> {
        self.touch(Phase::Transferring);
        Box::pin(async move {
            match fs::File::open(path) {
                Ok(f) => Ok(Box::new(io::BufReader::new(f)) as Box<dyn Read + Send>),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(IdeviceError::NotFound),
                Err(e) => Err(internal(e)),
            }
        })
    }

    fn create_file_write<'a>(
        &'a self,
        path: &'a Path,
    ) -> Boxed<'a, Result<Box<dyn Write + Send>, IdeviceError>> {
        self.touch(Phase::Transferring);
        Box::pin(async move {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".unstuck-part");
            let part = path.with_file_name(name);
            let file = fs::File::create(&part).map_err(internal)?;
            Ok(Box::new(RenameOnDrop {
                file: Some(BufWriter::with_capacity(256 * 1024, file)),
                part,
                target: path.to_path_buf(),
                observed: self.observed.clone(),
            }) as Box<dyn Write + Send>)
        })
    }

    fn create_dir_all<'a>(&'a self, path: &'a Path) -> Boxed<'a, Result<(), IdeviceError>> {
        Box::pin(async move {
            // idevice asks for the parent of every file: remember what exists.
            if lock(&self.made_dirs).contains(path) {
                return Ok(());
            }
            fs::create_dir_all(path).map_err(internal)?;
            lock(&self.made_dirs).insert(path.to_path_buf());
            Ok(())
        })
    }

    fn remove<'a>(&'a self, path: &'a Path) -> Boxed<'a, Result<(), IdeviceError>> {
        self.touch(Phase::Transferring);
        Box::pin(async move {
            match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {
                    lock(&self.made_dirs).retain(|d| !d.starts_with(path));
                    fs::remove_dir_all(path).map_err(internal)
                }
                Ok(_) => fs::remove_file(path).map_err(internal),
                Err(e) => Err(internal(e)),
            }
        })
    }

    fn rename<'a>(&'a self, from: &'a Path, to: &'a Path) -> Boxed<'a, Result<(), IdeviceError>> {
        self.touch(Phase::Transferring);
        Box::pin(async move { fs::rename(from, to).map_err(internal) })
    }

    fn copy<'a>(&'a self, src: &'a Path, dst: &'a Path) -> Boxed<'a, Result<(), IdeviceError>> {
        self.touch(Phase::Transferring);
        Box::pin(async move {
            if fs::metadata(src).is_ok_and(|m| m.is_dir()) {
                fs::create_dir_all(dst).map_err(internal)
            } else {
                // A new file, not a link: the copy may be written to later.
                fs::copy(src, dst).map(drop).map_err(internal)
            }
        })
    }

    fn exists<'a>(&'a self, path: &'a Path) -> Boxed<'a, bool> {
        Box::pin(async move { path.exists() })
    }

    fn is_dir<'a>(&'a self, path: &'a Path) -> Boxed<'a, bool> {
        Box::pin(async move { path.is_dir() })
    }

    fn list_dir<'a>(
        &'a self,
        path: &'a Path,
    ) -> Boxed<'a, Result<Vec<DirEntryInfo>, IdeviceError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for entry in fs::read_dir(path).map_err(internal)? {
                let entry = entry.map_err(internal)?;
                let meta = entry.metadata().ok();
                out.push(DirEntryInfo {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    is_dir: meta.as_ref().is_some_and(|m| m.is_dir()),
                    is_file: meta.as_ref().is_some_and(|m| m.is_file()),
                    size: meta.as_ref().map_or(0, |m| m.len()),
                    modified: meta.and_then(|m| m.modified().ok()),
                });
            }
            Ok(out)
        })
    }

    fn on_progress(&self, progress: BackupProgress) {
        let mut o = lock(&self.observed);
        if progress.overall_progress > 0.0 {
            o.percent = Some(progress.overall_progress.min(100.0));
            if progress.overall_progress >= 100.0 && o.phase == Phase::Transferring {
                o.phase = Phase::Finishing;
            }
        }
        o.last_progress = Instant::now();
    }
}
