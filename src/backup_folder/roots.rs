//! Where backups live: the folders Apple's tools use on each platform, and
//! Unstuck's own on Linux.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A folder that holds one sub-folder per device backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRoot {
    pub path: PathBuf,
    pub origin: RootOrigin,
}

/// Who named a root. A platform root that does not exist is normal (that tool
/// was never used); a root the user named that does not exist is a mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootOrigin {
    Platform,
    Config,
    CommandLine,
}

/// The standard backup roots of this platform.
///
/// # Platform specific behavior
/// - macOS: `~/Library/Application Support/MobileSync/Backup` (Finder, iTunes).
/// - Windows: `%APPDATA%\Apple Computer\MobileSync\Backup` (iTunes from Apple)
///   and `%USERPROFILE%\Apple\MobileSync\Backup` (iTunes from the Microsoft
///   Store, and the Apple Devices app).
/// - Linux and others: Unstuck's own backup folder, `Backup` in its data
///   folder (`~/.local/share/unstuck/Backup`).
pub fn platform_roots(home: &Path, data_dir: &Path) -> Vec<PathBuf> {
    #[cfg(target_os = "macos")]
    {
        let _ = data_dir;
        vec![home.join("Library/Application Support/MobileSync/Backup")]
    }
    #[cfg(windows)]
    {
        let _ = data_dir;
        let appdata = std::env::var_os("APPDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("AppData").join("Roaming"));
        vec![
            appdata
                .join("Apple Computer")
                .join("MobileSync")
                .join("Backup"),
            home.join("Apple").join("MobileSync").join("Backup"),
        ]
    }
    #[cfg(not(any(target_os = "macos", windows)))]
    {
        let _ = home;
        vec![data_dir.join("Backup")]
    }
}

/// What reading one root gave.
#[derive(Debug, Clone, PartialEq)]
pub struct RootReport {
    pub root: BackupRoot,
    pub outcome: RootOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RootOutcome {
    /// The root was listed; one entry per backup folder in it.
    Read(Vec<super::Backup>),
    /// A platform root that does not exist: that tool was never used here.
    Missing,
    /// The root could not be listed; the reason names the fault.
    Failed(String),
}

/// Reads every root in turn. A failure in one root is recorded in its report
/// and the others are still read.
pub fn read_roots(
    roots: &[BackupRoot],
    options: super::ReadOptions,
    cache: &mut super::MeasureCache,
) -> Vec<RootReport> {
    roots
        .iter()
        .map(|root| {
            let outcome = match super::scan_root(&root.path, options, cache) {
                Ok(backups) => RootOutcome::Read(backups),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match root.origin {
                    RootOrigin::Platform => RootOutcome::Missing,
                    _ => RootOutcome::Failed("it does not exist".to_owned()),
                },
                Err(e) => {
                    let why = failure_words(&root.path, &e, std::env::consts::OS);
                    RootOutcome::Failed(why)
                }
            };
            RootReport {
                root: root.clone(),
                outcome,
            }
        })
        .collect()
}

/// What macOS's refusal to list a backup folder means, and its fix.
pub const FULL_DISK_ACCESS: &str = "Unstuck needs Full Disk Access: \
    System Settings → Privacy & Security → Full Disk Access → turn Unstuck on \
    (when you run unstuck in a terminal, turn on the terminal app instead)";

/// Why the root at `path` could not be listed, in words: the OS's message,
/// or [`FULL_DISK_ACCESS`] where macOS's privacy controls refused it. `os`
/// is `std::env::consts::OS`, a parameter so the rule is tested anywhere.
///
/// # Platform specific behavior
/// macOS (10.14 and later) guards `~/Library/Application Support/MobileSync`
/// with its privacy controls (TCC): without Full Disk Access, listing it
/// fails with EPERM ("Operation not permitted"), even for root, while a
/// refusal by permissions or an ACL is EACCES (Apple DTS, "On File System
/// Permissions", https://developer.apple.com/forums/tags/files-and-storage;
/// https://github.com/richinfante/iphonebackuptools/issues/48). There is
/// no prompt: the user turns it on in System Settings (Apple Platform
/// Security, https://support.apple.com/guide/security/secddd1d86a6/web).
/// The grant goes to the app responsible for the process, which for the
/// command line is the terminal
/// (https://developer.apple.com/forums/thread/107546).
fn failure_words(path: &Path, err: &io::Error, os: &str) -> String {
    // EPERM on macOS (libc 0.2.191 src/unix/bsd/apple/mod.rs:2515); libc
    // is not a dependency on Windows, where this is still compiled.
    const EPERM: i32 = 1;
    if os == "macos" && err.raw_os_error() == Some(EPERM) && in_mobilesync(path) {
        return FULL_DISK_ACCESS.to_owned();
    }
    err.to_string()
}

/// Whether `path` is `…/Library/Application Support/MobileSync` or inside it.
fn in_mobilesync(path: &Path) -> bool {
    let parts: Vec<&std::ffi::OsStr> = path.components().map(|c| c.as_os_str()).collect();
    parts
        .windows(3)
        .any(|w| w[0] == "Library" && w[1] == "Application Support" && w[2] == "MobileSync")
}

/// The roots to read: the platform's, then the config file's, then the command
/// line's, each path once (the later, more deliberate origin wins).
pub fn combine_roots(
    platform: Vec<PathBuf>,
    config: &[PathBuf],
    command_line: &[PathBuf],
) -> Vec<BackupRoot> {
    let mut roots: Vec<BackupRoot> = Vec::new();
    let all = platform
        .into_iter()
        .map(|p| (p, RootOrigin::Platform))
        .chain(config.iter().map(|p| (p.clone(), RootOrigin::Config)))
        .chain(
            command_line
                .iter()
                .map(|p| (p.clone(), RootOrigin::CommandLine)),
        );
    for (path, origin) in all {
        let path = std::path::absolute(&path).unwrap_or(path);
        match roots.iter_mut().find(|r| r.path == path) {
            Some(existing) => existing.origin = origin,
            None => roots.push(BackupRoot { path, origin }),
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_mobilesync_on_macos_asks_for_full_disk_access() {
        let root = Path::new("/Users/ann/Library/Application Support/MobileSync/Backup");
        let eperm = io::Error::from_raw_os_error(1);
        assert_eq!(failure_words(root, &eperm, "macos"), FULL_DISK_ACCESS);
        assert!(FULL_DISK_ACCESS.contains("Privacy & Security → Full Disk Access"));
        // The same number elsewhere is the OS's own message.
        assert_eq!(failure_words(root, &eperm, "linux"), eperm.to_string());
        assert_eq!(failure_words(root, &eperm, "windows"), eperm.to_string());
        // Permissions or an ACL (EACCES) are not the privacy controls.
        let eacces = io::Error::from_raw_os_error(13);
        assert_eq!(failure_words(root, &eacces, "macos"), eacces.to_string());
        // A folder of the user's own is not what Full Disk Access guards.
        let own = Path::new("/Volumes/Backups/MobileSync");
        assert_eq!(failure_words(own, &eperm, "macos"), eperm.to_string());
        let plain = io::Error::other("it is a file, not a folder");
        assert_eq!(
            failure_words(root, &plain, "macos"),
            "it is a file, not a folder"
        );
    }

    #[test]
    fn roots_are_listed_once_with_the_most_deliberate_origin() {
        let roots = combine_roots(
            vec![PathBuf::from("/a"), PathBuf::from("/b")],
            &[PathBuf::from("/b"), PathBuf::from("/c")],
            &[PathBuf::from("/c/")],
        );
        let got: Vec<(&str, RootOrigin)> = roots
            .iter()
            .map(|r| (r.path.to_str().unwrap(), r.origin))
            .collect();
        assert_eq!(
            got,
            [
                ("/a", RootOrigin::Platform),
                ("/b", RootOrigin::Config),
                ("/c", RootOrigin::CommandLine)
            ]
        );
    }
}
