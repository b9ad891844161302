//! Opening a file that must be a regular file. A FIFO or a device in its
//! place (planted in a backup folder, or a link to `/dev/zero`) would block
//! the open or never end a read, so the open does not wait for a writer and
//! what it opened is checked before anything is read. Optionally a link is
//! not followed at all.

use std::fs;
use std::io;
use std::path::Path;

/// Whether a link in the last component of the path may be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// Opens `path` for reading if it is a regular file; otherwise an error of
/// kind `InvalidInput` that names what it is.
pub fn open(path: &Path, links: Links) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO opens at once instead of waiting for a writer;
        // on a regular file it changes nothing.
        let nofollow = if links == Links::Refuse {
            libc::O_NOFOLLOW
        } else {
            0
        };
        options.custom_flags(libc::O_NONBLOCK | nofollow);
    }
    #[cfg(not(unix))]
    if links == Links::Refuse && fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link where a file should be",
        ));
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} where a file should be", describe(&kind)),
        ));
    }
    Ok(file)
}

/// What a file that is not a regular file is, in words.
pub fn describe(kind: &fs::FileType) -> &'static str {
    if kind.is_dir() {
        return "a folder";
    }
    if kind.is_symlink() {
        return "a symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "something other than a file"
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn pipes_devices_and_links_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path in a fresh temporary folder.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open(&fifo, Links::Follow).unwrap_err();
        assert!(err.to_string().contains("named pipe"), "{err}");
        let err = open(Path::new("/dev/zero"), Links::Follow).unwrap_err();
        assert!(err.to_string().contains("device"), "{err}");
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open(&link, Links::Follow).is_ok());
        assert!(open(&link, Links::Refuse).is_err());
    }
}
