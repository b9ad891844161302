//! Manifest.db, the SQLite file list of backups made by iOS 10 and later.
//!
//! Real ones are in WAL mode. Opening them the ordinary way would create
//! `-wal` and `-shm` files beside them — a write inside the user's backup, and
//! an error on a read-only volume — so they are opened read-only with
//! `immutable=1`, which tells SQLite that nobody changes the file meanwhile.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// What the `Files` table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestDbSummary {
    /// Every row: files, folders and symlinks.
    pub entries: u64,
    /// Rows with `flags = 1`, regular files.
    pub files: u64,
}

/// Counts the rows of Manifest.db's `Files` table.
pub fn summarize(path: &Path) -> rusqlite::Result<ManifestDbSummary> {
    let conn = Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let (entries, files): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COUNT(CASE WHEN flags = 1 THEN 1 END) FROM Files",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(ManifestDbSummary {
        entries: u64::try_from(entries).unwrap_or(0),
        files: u64::try_from(files).unwrap_or(0),
    })
}

/// A `file:` URI for `path` with `mode=ro&immutable=1`. Characters that mean
/// something in a URI (`?`, `#`, `%`) and anything outside printable ASCII are
/// percent-encoded, so any path opens the file it names.
fn immutable_uri(path: &Path) -> String {
    // Windows paths ("C:\\x") become "file:///C:/x", as SQLite expects.
    let bytes = path.as_os_str().as_encoded_bytes();
    let windows = cfg!(windows);
    let drive_letter_path = windows && bytes.first() != Some(&b'/');
    let mut uri = String::from(if drive_letter_path {
        "file:///"
    } else {
        "file:"
    });
    for &byte in bytes {
        let byte = if windows && byte == b'\\' { b'/' } else { byte };
        let plain = byte.is_ascii_alphanumeric() || b"/-_.~:".contains(&byte);
        if plain {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_what_sqlite_would_misread() {
        assert_eq!(
            immutable_uri(Path::new("/b/x?y#z 100%/Manifest.db")),
            "file:/b/x%3Fy%23z%20100%25/Manifest.db?mode=ro&immutable=1"
        );
    }
}
