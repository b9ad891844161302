//! Where backups live: the folders Apple's tools use on each platform, and
//! Unstuck's own on Linux.

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
                Err(e) => RootOutcome::Failed(e.to_string()),
            };
            RootReport {
                root: root.clone(),
                outcome,
            }
        })
        .collect()
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
