//! The phone's own folder on the host, `<dest>/<UDID>`, as the phone may touch
//! it during a backup. Every path the phone names is checked here before
//! anything is read, written, moved or removed: it must lie strictly inside
//! this folder, name no `..`, root, drive or device, and pass through no
//! symbolic link below it (the folder itself, or the backup root, may be a
//! link the user made to another disk). Files are never written in place: each goes to
//! `<name>.unstuck-part` and is renamed over `<name>` only when it is
//! complete, so the hard-link snapshot of the last complete backup keeps its
//! bytes and a short write leaves the old file as it was.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The longest path a phone may name, in bytes (real ones are under 100).
const MAX_PATH: usize = 1024;
/// The longest file or folder name most file systems accept.
const MAX_NAME: usize = 255;
/// Suffix of a file being written; renamed away when complete.
pub(crate) const PART_SUFFIX: &str = ".unstuck-part";

/// A path the phone named that Unstuck will not touch.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "the iPhone asked to {action} {path:?}, which {why}; refused, and nothing outside its own backup folder was touched"
)]
pub struct Refused {
    pub action: &'static str,
    /// The path as the phone sent it (cut to 200 characters).
    pub path: String,
    pub why: &'static str,
}

/// What the phone wants done with a path. Removing, moving and copying onto
/// a path may never name the phone's whole folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Read,
    Write,
    MakeFolder,
    List,
    Remove,
    MoveFrom,
    MoveTo,
    CopyFrom,
    CopyTo,
}

impl Use {
    fn action(self) -> &'static str {
        match self {
            Use::Read => "read",
            Use::Write => "write",
            Use::MakeFolder => "create the folder",
            Use::List => "list",
            Use::Remove => "remove",
            Use::MoveFrom => "move",
            Use::MoveTo => "move something to",
            Use::CopyFrom => "copy",
            Use::CopyTo => "copy something to",
        }
    }

    fn may_name_the_folder(self) -> bool {
        matches!(self, Use::MakeFolder | Use::List)
    }
}

/// Windows device names, which refer to a device in any folder and with any
/// extension (`CON`, `nul.txt`).
/// See: Microsoft Learn, "Naming Files, Paths, and Namespaces".
fn reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let upper = stem.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) {
        return true;
    }
    // COM1–COM9 and LPT1–LPT9, and with the superscript digits ¹ ² ³.
    let Some(n) = upper
        .strip_prefix("COM")
        .or_else(|| upper.strip_prefix("LPT"))
    else {
        return false;
    };
    matches!(
        n,
        "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
    )
}
/// The components below the phone's folder that `wire` names, or why it is
/// refused. Pure: no file is looked at.
pub(crate) fn components<'a>(
    udid: &str,
    wire: &'a str,
    what: Use,
) -> Result<Vec<&'a str>, &'static str> {
    if wire.is_empty() {
        return Err("is empty");
    }
    if wire.len() > MAX_PATH {
        return Err("is longer than any path a backup holds");
    }
    if wire.starts_with('/') || wire.starts_with('\\') {
        return Err("is an absolute path");
    }
    let mut parts = wire.split('/');
    let first = parts.next().unwrap_or_default();
    if !first.eq_ignore_ascii_case(udid) {
        return Err("is not inside the iPhone's own backup folder");
    }
    let mut below = Vec::new();
    for part in parts {
        if part.is_empty() {
            // "a/" or "a//b": tolerated as a separator, never as a name.
            continue;
        }
        if part == "." || part == ".." {
            return Err("steps out of its folder with . or ..");
        }
        if part.len() > MAX_NAME {
            return Err("has a name longer than a file system allows");
        }
        if part.contains(['\\', ':', '\0']) {
            return Err(
                "has a backslash, colon or NUL in a name (a drive or another folder on Windows)",
            );
        }
        if part.ends_with(['.', ' ']) {
            return Err(
                "has a name ending in a dot or space (Windows drops them, naming another file)",
            );
        }
        if reserved_on_windows(part) {
            return Err("names a Windows device (CON, NUL, COM1 …)");
        }
        below.push(part);
    }
    if below.is_empty() && !what.may_name_the_folder() {
        return Err("is the iPhone's whole backup folder");
    }
    Ok(below)
}

/// The phone's folder, `<dest>/<UDID>`, and the file work the phone asks for.
pub(crate) struct PhoneFolder {
    udid: String,
    root: PathBuf,
    /// Folders known to exist and to be real folders, not links.
    checked: HashSet<PathBuf>,
}

impl PhoneFolder {
    /// `udid` must have passed [`valid_udid`].
    pub(crate) fn new(dest: &Path, udid: &str) -> PhoneFolder {
        PhoneFolder {
            udid: udid.to_owned(),
            root: dest.join(udid),
            checked: HashSet::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The host path for `wire`, checked for `what`. Every folder on the way
    /// must be a real folder or not exist yet; the last component may be a
    /// link only where the link itself is what is replaced or removed.
    pub(crate) fn resolve(&mut self, wire: &str, what: Use) -> Result<PathBuf, Refused> {
        let refuse = |why| Refused {
            action: what.action(),
            path: wire.chars().take(200).collect(),
            why,
        };
        let parts = components(&self.udid, wire, what).map_err(refuse)?;
        let path: PathBuf = parts.iter().fold(self.root.clone(), |p, part| p.join(part));
        let mut on_the_way = self.root.clone();
        let last = parts.len();
        for (i, part) in parts.iter().enumerate() {
            on_the_way.push(part);
            let is_last = i + 1 == last;
            if !is_last && self.checked.contains(&on_the_way) {
                continue;
            }
            match fs::symlink_metadata(&on_the_way) {
                Ok(m) if m.file_type().is_symlink() => {
                    let replaced = matches!(
                        what,
                        Use::Write | Use::Remove | Use::MoveTo | Use::CopyTo | Use::MoveFrom
                    );
                    if !is_last || !replaced {
                        return Err(refuse("passes through a symbolic link"));
                    }
                }
                Ok(m) if m.is_dir() && !is_last => {
                    self.checked.insert(on_the_way.clone());
                }
                Ok(_) => {}
                // Nothing below a missing folder can exist either.
                Err(_) => break,
            }
        }
        Ok(path)
    }

    /// Creates the folders down to `path` (inside the phone's folder, already
    /// resolved).
    pub(crate) fn make_folders(&mut self, path: &Path) -> io::Result<()> {
        if self.checked.contains(path) {
            return Ok(());
        }
        fs::create_dir_all(path)?;
        self.checked.insert(path.to_path_buf());
        Ok(())
    }

    /// Opens a file the phone asked for; a link or anything but a regular
    /// file (a pipe would block) is not opened.
    pub(crate) fn open(&self, path: &Path) -> io::Result<fs::File> {
        crate::regular_file::open(path, crate::regular_file::Links::Refuse)
    }

    /// Starts writing `path`: the bytes go to `<path>.unstuck-part` until
    /// [`PartFile::commit`].
    pub(crate) fn create(&mut self, path: &Path) -> io::Result<PartFile> {
        if let Some(parent) = path.parent() {
            self.make_folders(parent)?;
        }
        let part = part_path(path);
        match fs::remove_file(&part) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)?;
        Ok(PartFile {
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            part,
            target: path.to_path_buf(),
        })
    }

    /// Removes a file, link or folder (with what it holds), never following
    /// a link. A path that does not exist is not an error.
    pub(crate) fn remove(&mut self, path: &Path) -> io::Result<()> {
        // Forget every folder known to be real: on a file system that
        // ignores case, another spelling of a removed folder would stay
        // "known" and a link put in its place would not be looked at.
        self.checked.clear();
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Renames inside the phone's folder.
    pub(crate) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if let Some(parent) = to.parent() {
            self.make_folders(parent)?;
        }
        // As for a removal: nothing known about the folders stays true.
        self.checked.clear();
        fs::rename(from, to)
    }

    /// Copies a file or a folder: every file through a part file renamed into
    /// place, links inside a copied folder left out.
    pub(crate) fn copy(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if to.starts_with(from) {
            // A folder into itself would copy without end.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a folder cannot be copied into itself",
            ));
        }
        let meta = fs::symlink_metadata(from)?;
        if meta.is_dir() {
            self.make_folders(to)?;
            for entry in fs::read_dir(from)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() || kind.is_file() {
                    self.copy(&entry.path(), &to.join(entry.file_name()))?;
                }
            }
            Ok(())
        } else if meta.is_file() {
            let mut part = self.create(to)?;
            io::copy(&mut self.open(from)?, &mut part)?;
            part.commit()
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ))
        }
    }
}

pub(crate) fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(PART_SUFFIX);
    path.with_file_name(name)
}

/// A file being written. Dropped without [`PartFile::commit`], its part file
/// is removed and the destination keeps what it had.
pub(crate) struct PartFile {
    file: Option<BufWriter<fs::File>>,
    part: PathBuf,
    target: PathBuf,
}

impl PartFile {
    /// The file is complete: flush it and rename it over the destination.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        let Some(file) = self.file.take() else {
            return Err(io::Error::other("file already closed"));
        };
        let done = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|_| fs::rename(&self.part, &self.target));
        if done.is_err() {
            let _ = fs::remove_file(&self.part);
        }
        done
    }
}

impl Write for PartFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("file already closed"))?
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::valid_udid;

    const UDID: &str = "00008030-0011223344556677";

    fn check(wire: &str, what: Use) -> Result<Vec<&str>, &'static str> {
        components(UDID, wire, what)
    }

    #[test]
    fn paths_inside_the_phone_folder_are_accepted() {
        assert_eq!(
            check(&format!("{UDID}/ab/abcdef"), Use::Write),
            Ok(vec!["ab", "abcdef"])
        );
        assert_eq!(
            check(&format!("{UDID}/Status.plist"), Use::Read),
            Ok(vec!["Status.plist"])
        );
        assert_eq!(check(&format!("{UDID}//ab/"), Use::Remove), Ok(vec!["ab"]));
        assert_eq!(check(UDID, Use::MakeFolder), Ok(vec![]));
        assert_eq!(check(&UDID.to_ascii_lowercase(), Use::List), Ok(vec![]));
    }

    #[test]
    fn escapes_are_refused() {
        let other = "00008030-FFFFFFFFFFFFFFFF";
        for (wire, what) in [
            (format!("{other}/Manifest.plist"), Use::Read),
            (other.to_owned(), Use::Remove),
            ("../".to_owned(), Use::Remove),
            (format!("{UDID}/../x"), Use::Write),
            (format!("{UDID}/./x"), Use::Write),
            (format!("/{UDID}/x"), Use::Write),
            ("/etc/passwd".to_owned(), Use::Read),
            (format!("{UDID}/D:/x"), Use::Write),
            (format!("{UDID}/a\\..\\..\\x"), Use::Write),
            (format!("{UDID}/CON"), Use::Write),
            (format!("{UDID}/ab/nul.txt"), Use::Write),
            (format!("{UDID}/com1"), Use::Write),
            (format!("{UDID}/LPT².log"), Use::Write),
            (format!("{UDID}/x."), Use::Write),
            (format!("{UDID}/x\0y"), Use::Write),
            (UDID.to_owned(), Use::Remove),
            (format!("{UDID}/"), Use::MoveFrom),
            (UDID.to_owned(), Use::CopyTo),
            (String::new(), Use::Read),
            (format!("{UDID}/{}", "a".repeat(300)), Use::Write),
            (format!("{UDID}/{}", "a/".repeat(600)), Use::Write),
        ] {
            assert!(
                check(&wire, what).is_err(),
                "{wire:?} for {what:?} was accepted"
            );
        }
        // Not devices: a longer name, COM0.
        assert!(check(&format!("{UDID}/CONFIG"), Use::Write).is_ok());
        assert!(check(&format!("{UDID}/COM0"), Use::Write).is_ok());
    }

    #[test]
    fn udids() {
        assert!(valid_udid("00008030-0011223344556677"));
        assert!(valid_udid("0123456789abcdef0123456789abcdef01234567"));
        for bad in ["", "..", "a/b", "a\\b", "C:", "-", &"a".repeat(65)] {
            assert!(!valid_udid(bad), "{bad:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn links_are_not_followed_and_writes_land_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"keep").unwrap();
        let mut folder = PhoneFolder::new(dir.path(), UDID);
        fs::create_dir(folder.root()).unwrap();
        std::os::unix::fs::symlink(&outside, folder.root().join("ab")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), folder.root().join("link")).unwrap();

        assert!(
            folder
                .resolve(&format!("{UDID}/ab/secret"), Use::Read)
                .is_err()
        );
        assert!(
            folder
                .resolve(&format!("{UDID}/ab/new"), Use::Write)
                .is_err()
        );
        assert!(folder.resolve(&format!("{UDID}/link"), Use::Read).is_err());
        // Writing over the link replaces the link, not what it points to.
        let path = folder.resolve(&format!("{UDID}/link"), Use::Write).unwrap();
        let mut part = folder.create(&path).unwrap();
        part.write_all(b"new").unwrap();
        part.commit().unwrap();
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"keep");
        assert_eq!(fs::read(folder.root().join("link")).unwrap(), b"new");
        // Removing the folder link removes the link only.
        let path = folder.resolve(&format!("{UDID}/ab"), Use::Remove).unwrap();
        folder.remove(&path).unwrap();
        assert!(outside.join("secret").exists());

        // A write that is dropped before it is complete leaves the old file.
        fs::write(folder.root().join("Manifest.db"), b"old").unwrap();
        let path = folder
            .resolve(&format!("{UDID}/Manifest.db"), Use::Write)
            .unwrap();
        let mut part = folder.create(&path).unwrap();
        part.write_all(b"half").unwrap();
        drop(part);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!part_path(&path).exists());
    }

    /// A path below a folder that does not exist yet is the whole path, not
    /// the folder's (found by the conversation's property test).
    #[test]
    fn a_path_below_a_missing_folder_resolves_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut folder = PhoneFolder::new(dir.path(), UDID);
        let path = folder
            .resolve(&format!("{UDID}/2e/0000"), Use::Write)
            .unwrap();
        assert_eq!(path, dir.path().join(UDID).join("2e").join("0000"));
    }

    /// A folder the check once found real may be removed and a link put in
    /// its place (on a file system that ignores case, under another
    /// spelling): it is looked at again.
    #[cfg(unix)]
    #[test]
    fn a_folder_replaced_by_a_link_is_looked_at_again() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut folder = PhoneFolder::new(dir.path(), UDID);
        let ab = folder.root().join("ab");
        fs::create_dir_all(&ab).unwrap();
        folder.resolve(&format!("{UDID}/ab/x"), Use::Write).unwrap();
        let path = folder.resolve(&format!("{UDID}/ab"), Use::Remove).unwrap();
        folder.remove(&path).unwrap();
        std::os::unix::fs::symlink(&outside, &ab).unwrap();
        assert!(folder.resolve(&format!("{UDID}/ab/x"), Use::Write).is_err());
    }

    #[test]
    fn a_folder_is_never_copied_into_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut folder = PhoneFolder::new(dir.path(), UDID);
        fs::create_dir_all(folder.root().join("a")).unwrap();
        fs::write(folder.root().join("a/f"), b"x").unwrap();
        let from = folder.resolve(&format!("{UDID}/a"), Use::CopyFrom).unwrap();
        let to = folder.resolve(&format!("{UDID}/a/b"), Use::CopyTo).unwrap();
        assert!(folder.copy(&from, &to).is_err());
        assert!(!to.exists());
    }

    #[test]
    fn a_copy_never_writes_into_a_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut folder = PhoneFolder::new(dir.path(), UDID);
        fs::create_dir(folder.root()).unwrap();
        let src = folder.root().join("Manifest.db");
        let dst = folder.root().join("Manifest.db.copy");
        let shared = dir.path().join("snapshot-link");
        fs::write(&src, b"new bytes").unwrap();
        fs::write(&dst, b"old").unwrap();
        fs::hard_link(&dst, &shared).unwrap();
        folder.copy(&src, &dst).unwrap();
        assert_eq!(fs::read(&dst).unwrap(), b"new bytes");
        assert_eq!(fs::read(&shared).unwrap(), b"old");
    }
}
