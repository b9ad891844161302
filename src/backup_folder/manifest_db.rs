//! Manifest.db, the SQLite file list of backups made by iOS 10 and later.
//!
//! Real ones are in WAL mode. Opening them the ordinary way would create
//! `-wal` and `-shm` files beside them — a write inside the user's backup, and
//! an error on a read-only volume — so they are opened read-only with
//! `immutable=1`, which tells SQLite that nobody changes the file meanwhile.
//!
//! The file is untrusted: its schema could make `Files` a recursive view or
//! give it expensive defaults, so every connection goes through [`guard`]
//! first — schema code not trusted, `Files` a plain table, a bound on each
//! value's length and on the work any statement may do.

use std::os::raw::c_int;
use std::path::Path;

use rusqlite::limits::Limit;
use rusqlite::{Connection, ErrorCode, OpenFlags};

/// How many SQLite VM steps pass between two calls of the progress handler.
const STEP_INTERVAL: c_int = 10_000;

/// The VM steps a connection may take in all. Counting a million rows takes
/// about 6.5 million, so this is enough for several million files, and a
/// fraction of a second's work.
const MAX_STEPS: u64 = 50_000_000;

/// The longest string or blob a statement may read or make. Real rows hold
/// paths and file records of a few kilobytes.
const MAX_VALUE_BYTES: c_int = 16 * 1024 * 1024;

/// Why Manifest.db was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestDbError {
    /// SQLite could not open or read it (not a database, truncated,
    /// no `Files` table, ...).
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    /// `Files` is a view or a virtual table: its rows would come from code
    /// in the file, not from stored data.
    #[error("its Files is {0}, not a table; Apple's tools do not write such a file")]
    FilesNotATable(&'static str),
    /// A statement took more than `MAX_STEPS` steps.
    #[error(
        "reading it took more than {MAX_STEPS} steps, far more than a million files need; \
         Apple's tools do not write such a file"
    )]
    TooMuchWork,
}

impl From<rusqlite::Error> for ManifestDbError {
    fn from(e: rusqlite::Error) -> ManifestDbError {
        match e.sqlite_error_code() {
            // Only the progress handler interrupts these connections.
            Some(ErrorCode::OperationInterrupted) => ManifestDbError::TooMuchWork,
            _ => ManifestDbError::Sqlite(e),
        }
    }
}

/// What the `Files` table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestDbSummary {
    /// Every row: files, folders and symlinks.
    pub entries: u64,
    /// Rows with `flags = 1`, regular files.
    pub files: u64,
}

/// Counts the rows of Manifest.db's `Files` table.
pub fn summarize(path: &Path) -> Result<ManifestDbSummary, ManifestDbError> {
    let mut conn = Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    guard(&mut conn)?;
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

/// Makes a connection to an untrusted Manifest.db safe to query: schema
/// code (views, triggers, defaults) may call only harmless functions, every
/// value is bounded, all statements together get `MAX_STEPS` steps, and
/// `Files` must be a table.
pub(crate) fn guard(conn: &mut Connection) -> Result<(), ManifestDbError> {
    conn.pragma_update(None, "trusted_schema", false)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)?;
    let mut calls: u64 = 0;
    conn.progress_handler(
        STEP_INTERVAL,
        Some(move || {
            calls += 1;
            calls > MAX_STEPS / STEP_INTERVAL as u64
        }),
    )?;
    // SQLite's own word for what `Files` is (table, view, virtual, shadow),
    // not a guess from the text that made it.
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM pragma_table_list \
             WHERE schema = 'main' AND name = 'Files' COLLATE NOCASE",
            [],
            |row| row.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            // No `Files` at all: the query's own error says so.
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    match kind.as_deref() {
        Some("view") => Err(ManifestDbError::FilesNotATable("a view")),
        Some("virtual") => Err(ManifestDbError::FilesNotATable("a virtual table")),
        Some("shadow") => Err(ManifestDbError::FilesNotATable("a virtual table's storage")),
        _ => Ok(()),
    }
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
    use std::time::{Duration, Instant};

    use super::*;

    /// A Manifest.db made by `schema`, counted by `summarize`, which must
    /// answer within a few seconds whatever the schema does.
    fn check(schema: &str, expected: Result<(u64, u64), &str>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Manifest.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(schema)
            .unwrap();
        let started = Instant::now();
        let got = summarize(&path);
        assert!(started.elapsed() < Duration::from_secs(10), "{schema}");
        match (got, expected) {
            (Ok(s), Ok((entries, files))) => {
                assert_eq!((s.entries, s.files), (entries, files), "{schema}")
            }
            (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{e}"),
            (got, expected) => panic!("{schema}: got {got:?}, expected {expected:?}"),
        }
    }

    const TABLE: &str = "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, \
                         relativePath TEXT, flags INTEGER, file BLOB);";

    #[test]
    fn rows_are_counted() {
        check(
            &format!(
                "{TABLE} INSERT INTO Files VALUES ('a', 'D', 'x', 1, x'00'), \
                 ('b', 'D', 'y', 2, NULL), ('c', 'D', 'z', 1, NULL);"
            ),
            Ok((3, 2)),
        );
    }

    #[test]
    fn a_million_rows_are_within_the_step_budget() {
        check(
            &format!(
                "{TABLE} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                 WHERE i < 1000000) INSERT INTO Files SELECT printf('%040d', i), \
                 'HomeDomain', 'Library/' || i, 1 + (i % 2), NULL FROM n;"
            ),
            Ok((1_000_000, 500_000)),
        );
    }

    #[test]
    fn files_as_a_recursive_view_is_refused_unrun() {
        check(
            "CREATE VIEW Files AS WITH RECURSIVE r(flags) AS \
             (SELECT 1 UNION ALL SELECT flags FROM r) SELECT flags FROM r;",
            Err("its Files is a view, not a table"),
        );
        check(
            "CREATE VIEW files AS SELECT 1 AS flags;",
            Err("its Files is a view"),
        );
    }

    #[test]
    fn a_missing_table_says_so() {
        check(
            "CREATE TABLE Other (flags INTEGER);",
            Err("no such table: Files"),
        );
    }

    #[test]
    fn every_statement_on_a_guarded_connection_is_bounded() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(TABLE).unwrap();
        guard(&mut conn).unwrap();
        let spin = conn.query_row(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
             SELECT COUNT(*) FROM r",
            [],
            |row| row.get::<_, i64>(0),
        );
        let err = ManifestDbError::from(spin.unwrap_err());
        assert!(matches!(err, ManifestDbError::TooMuchWork), "{err}");
        let huge = conn.query_row("SELECT length(zeroblob(100000000))", [], |row| {
            row.get::<_, i64>(0)
        });
        assert!(huge.is_err(), "a value over the length bound");
    }

    #[test]
    fn uri_escapes_what_sqlite_would_misread() {
        assert_eq!(
            immutable_uri(Path::new("/b/x?y#z 100%/Manifest.db")),
            "file:/b/x%3Fy%23z%20100%25/Manifest.db?mode=ro&immutable=1"
        );
    }
}
