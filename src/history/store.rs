//! The history file: SQLite in Unstuck's data folder, in WAL mode so a
//! reader (`history`, `report`) never waits for a writer, with migrations
//! numbered by `PRAGMA user_version`. A file that is not a database or is
//! damaged is moved aside (`history.db.damaged-<time>`) and a new one
//! started; one that stays locked is passed over for that write. Neither
//! ever stops a backup or the monitor: callers log the error and go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use thiserror::Error;

use super::{
    Outcome, Run, Stall, StallEnd, cause_from_name, cause_name, phase_from_name, phase_name,
};

/// The migrations, in order: the database's `user_version` says how many
/// have run.
const MIGRATIONS: &[&str] = &[
    // 1: runs, their stalls, complete backups, automatic-backup decisions.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        udid TEXT NOT NULL,
        name TEXT,
        program TEXT NOT NULL,
        started INTEGER NOT NULL,
        ended INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        files INTEGER,
        average_rate REAL,
        slowest_rate REAL,
        error_code INTEGER,
        cause TEXT,
        restarts INTEGER NOT NULL DEFAULT 0,
        size INTEGER
     );
     CREATE INDEX runs_by_phone ON runs (udid, started);
     CREATE TABLE stalls (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        phase TEXT NOT NULL,
        started INTEGER NOT NULL,
        secs INTEGER NOT NULL,
        cause TEXT NOT NULL,
        ended_by TEXT NOT NULL
     );
     CREATE INDEX stalls_by_run ON stalls (run);
     CREATE TABLE completes (
        udid TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (udid, at)
     ) WITHOUT ROWID;
     CREATE TABLE decisions (
        udid TEXT NOT NULL,
        at INTEGER NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL
     );",
];

/// How long a write waits for another writer before it is passed over.
const BUSY: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("the history file {} cannot be used: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the history file {} was written by a newer Unstuck (version {found}); it is left as it is", path.display())]
    Newer { path: PathBuf, found: i64 },
}

/// The history file, open.
pub struct History {
    conn: Connection,
    path: PathBuf,
    /// Where a damaged file was moved when this one was opened.
    pub moved_aside: Option<PathBuf>,
}

/// Which runs to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub udid: Option<String>,
    pub since: Option<Timestamp>,
}

impl History {
    /// The history file in Unstuck's data folder.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("history.db")
    }

    /// Opens (or makes) the history file at `path`; a damaged one is moved
    /// aside first.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let err = |source| HistoryError::Sqlite {
            path: path.to_owned(),
            source,
        };
        match History::open_as_is(path) {
            Ok(h) => Ok(h),
            Err(HistoryError::Sqlite { source, .. }) if damaged(&source) => {
                let aside =
                    path.with_extension(format!("db.damaged-{}", Timestamp::now().as_second()));
                std::fs::rename(path, &aside)
                    .map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.as_os_str().to_owned();
                    side.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(side));
                }
                tracing::warn!(
                    file = %path.display(),
                    moved_to = %aside.display(),
                    error = %source,
                    "the history file was damaged; it was moved aside and a new one started"
                );
                let mut h = History::open_as_is(path)?;
                h.moved_aside = Some(aside);
                Ok(h)
            }
            Err(e) => Err(e),
        }
    }

    fn open_as_is(path: &Path) -> Result<History, HistoryError> {
        let err = |source| HistoryError::Sqlite {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY).map_err(err)?;
        conn.pragma_update(None, "secure_delete", true)
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        // Reading every page costs little at the sizes a history reaches
        // (20 MB for 10,000 runs) and finds damage before a write does.
        let check: String = conn
            .pragma_query_value(None, "quick_check", |r| r.get(0))
            .map_err(err)?;
        if check != "ok" {
            return Err(err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check),
            )));
        }
        if version > MIGRATIONS.len() as i64 {
            return Err(HistoryError::Newer {
                path: path.to_owned(),
                found: version,
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        if version < MIGRATIONS.len() as i64 {
            // Two processes may make the file at once (the tray and
            // `unstuck backup`): the version is read again under the write
            // lock, so each migration runs once.
            conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
            let migrated = (|| {
                let now: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
                for (n, sql) in MIGRATIONS.iter().enumerate().skip(now.max(0) as usize) {
                    conn.execute_batch(sql)?;
                    conn.pragma_update(None, "user_version", n as i64 + 1)?;
                }
                conn.execute_batch("COMMIT")
            })();
            if let Err(e) = migrated {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(err(e));
            }
        }
        restrict(path);
        Ok(History {
            conn,
            path: path.to_owned(),
            moved_aside: None,
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        |source| HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records finished runs (and, for complete ones, the backup's date),
    /// in one transaction.
    pub fn save(&mut self, runs: &[Run]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        for run in runs {
            tx.execute(
                "INSERT INTO runs (udid, name, program, started, ended, outcome, bytes, files,
                    average_rate, slowest_rate, error_code, cause, restarts, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    run.udid,
                    run.name,
                    run.program,
                    run.started.as_second(),
                    run.ended.as_second(),
                    run.outcome.name(),
                    run.bytes as i64,
                    run.files.map(|f| f as i64),
                    run.average_rate,
                    run.slowest_rate,
                    run.error_code.map(|c| c as i64),
                    run.cause.map(cause_name),
                    run.restarts,
                    run.size.map(|s| s as i64),
                ],
            )
            .map_err(err)?;
            let id = tx.last_insert_rowid();
            for s in &run.stalls {
                tx.execute(
                    "INSERT INTO stalls (run, phase, started, secs, cause, ended_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        phase_name(s.phase),
                        s.started.as_second(),
                        s.secs as i64,
                        cause_name(s.cause),
                        s.ended_by.name(),
                    ],
                )
                .map_err(err)?;
            }
            if run.outcome == Outcome::Complete {
                tx.execute(
                    "INSERT OR IGNORE INTO completes (udid, at) VALUES (?1, ?2)",
                    params![run.udid, run.ended.as_second()],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Records that a phone's backup was complete at `at` (seen in its
    /// folder, whoever made it).
    pub fn complete_seen(&self, udid: &str, at: Timestamp) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO completes (udid, at) VALUES (?1, ?2)",
                params![udid, at.as_second()],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// The last complete backup of a phone that history knows of.
    pub fn last_complete(&self, udid: &str) -> Result<Option<Timestamp>, HistoryError> {
        let secs: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(at) FROM completes WHERE udid = ?1",
                params![udid],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?
            .flatten();
        Ok(secs.and_then(|s| Timestamp::from_second(s).ok()))
    }

    /// Opens the history file for reading when there is one; `None` when
    /// nothing was ever recorded (it is not made just to be read).
    pub fn open_existing(path: &Path) -> Result<Option<History>, HistoryError> {
        if !path.exists() {
            return Ok(None);
        }
        History::open(path).map(Some)
    }

    /// Runs, oldest first, with their stalls.
    pub fn runs(&self, filter: &Filter) -> Result<Vec<Run>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, udid, name, program, started, ended, outcome, bytes, files,
                        average_rate, slowest_rate, error_code, cause, restarts, size
                 FROM runs
                 WHERE (?1 IS NULL OR udid = ?1) AND (?2 IS NULL OR started >= ?2)
                 ORDER BY started, id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(
                params![filter.udid, filter.since.map(|s| s.as_second())],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Run {
                            udid: r.get(1)?,
                            name: r.get(2)?,
                            program: r.get(3)?,
                            started: time(r.get(4)?),
                            ended: time(r.get(5)?),
                            outcome: Outcome::from_name(&r.get::<_, String>(6)?)
                                .unwrap_or(Outcome::Failed),
                            bytes: r.get::<_, i64>(7)?.max(0) as u64,
                            files: r.get::<_, Option<i64>>(8)?.map(|f| f.max(0) as u64),
                            average_rate: r.get(9)?,
                            slowest_rate: r.get(10)?,
                            error_code: r.get::<_, Option<i64>>(11)?.map(|c| c.max(0) as u64),
                            cause: r.get::<_, Option<String>>(12)?.map(|c| cause_from_name(&c)),
                            restarts: r.get::<_, i64>(13)?.clamp(0, u32::MAX as i64) as u32,
                            size: r.get::<_, Option<i64>>(14)?.map(|s| s.max(0) as u64),
                            stalls: Vec::new(),
                        },
                    ))
                },
            )
            .map_err(self.err())?;
        let mut runs: Vec<(i64, Run)> = rows.collect::<Result<_, _>>().map_err(self.err())?;
        // Stalls in one pass over the table, matched to their runs.
        let mut stalls = self
            .conn
            .prepare(
                "SELECT s.run, s.phase, s.started, s.secs, s.cause, s.ended_by
                 FROM stalls s JOIN runs r ON r.id = s.run
                 WHERE (?1 IS NULL OR r.udid = ?1) AND (?2 IS NULL OR r.started >= ?2)
                 ORDER BY s.run, s.started",
            )
            .map_err(self.err())?;
        let index: std::collections::HashMap<i64, usize> = runs
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let found = stalls
            .query_map(
                params![filter.udid, filter.since.map(|s| s.as_second())],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Stall {
                            phase: phase_from_name(&r.get::<_, String>(1)?)
                                .unwrap_or(crate::stall::Phase::Copying),
                            started: time(r.get(2)?),
                            secs: r.get::<_, i64>(3)?.max(0) as u64,
                            cause: cause_from_name(&r.get::<_, String>(4)?),
                            ended_by: StallEnd::from_name(&r.get::<_, String>(5)?)
                                .unwrap_or(StallEnd::RunEnded),
                        },
                    ))
                },
            )
            .map_err(self.err())?;
        for row in found {
            let (id, stall) = row.map_err(self.err())?;
            if let Some(&i) = index.get(&id) {
                runs[i].1.stalls.push(stall);
            }
        }
        Ok(runs.into_iter().map(|(_, r)| r).collect())
    }

    /// Removes everything about a phone; how many runs went.
    pub fn forget(&mut self, udid: &str) -> Result<usize, HistoryError> {
        let path = self.path.clone();
        let err = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let runs = tx
            .execute("DELETE FROM runs WHERE udid = ?1", params![udid])
            .map_err(err)?;
        for table in ["completes", "decisions"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE udid = ?1"),
                params![udid],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        // The rows must not linger in free pages (secure_delete zeroes
        // them, VACUUM rewrites the file) or in the log (the checkpoint
        // after VACUUM empties it; a reader holding it open keeps it).
        self.conn.execute_batch("VACUUM;").map_err(self.err())?;
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(self.err())?;
        if busy != 0 {
            tracing::warn!("the history's log could not be emptied now: another program reads it");
        }
        Ok(runs)
    }
}

fn time(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Whether SQLite says the file is not a database or is damaged.
fn damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// The history is the user's own: readable by them alone.
fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::Cause;
    use crate::stall::Phase;

    fn run(udid: &str, started: i64, outcome: Outcome) -> Run {
        Run {
            udid: udid.into(),
            name: Some("Ann's iPhone".into()),
            program: "unstuck".into(),
            started: time(1_790_000_000 + started),
            ended: time(1_790_000_000 + started + 600),
            outcome,
            bytes: 5_000_000_000,
            files: Some(120_000),
            average_rate: Some(8_333_333.0),
            slowest_rate: Some(1_000_000.0),
            error_code: (outcome == Outcome::Failed).then_some(105),
            cause: (outcome == Outcome::Failed).then_some(Cause::HostDiskFull),
            restarts: 1,
            size: Some(30_000_000_000),
            stalls: vec![Stall {
                phase: Phase::Copying,
                started: time(1_790_000_000 + started + 100),
                secs: 130,
                cause: Cause::Unknown,
                ended_by: StallEnd::Restarted,
            }],
        }
    }

    #[test]
    fn runs_go_in_and_come_back_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = History::path_in(dir.path());
        let mut h = History::open(&path).unwrap();
        let saved = vec![
            run("A", 0, Outcome::Complete),
            run("B", 10, Outcome::Failed),
            run("A", 86_400, Outcome::Stopped),
        ];
        h.save(&saved).unwrap();
        drop(h);
        let h = History::open(&path).unwrap();
        assert_eq!(h.runs(&Filter::default()).unwrap(), saved);
        let a = h
            .runs(&Filter {
                udid: Some("A".into()),
                since: Some(time(1_790_000_000 + 1)),
            })
            .unwrap();
        assert_eq!(a, vec![saved[2].clone()]);
        assert_eq!(h.last_complete("A").unwrap(), Some(saved[0].ended));
        assert_eq!(h.last_complete("B").unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn forgetting_a_phone_leaves_no_trace_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = History::path_in(dir.path());
        let mut h = History::open(&path).unwrap();
        h.save(&[
            run("A", 0, Outcome::Complete),
            run("B", 5, Outcome::Complete),
        ])
        .unwrap();
        assert_eq!(h.forget("A").unwrap(), 1);
        let left = h.runs(&Filter::default()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].udid, "B");
        assert_eq!(h.last_complete("A").unwrap(), None);
        let stalls: i64 = h
            .conn
            .query_row("SELECT count(*) FROM stalls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stalls, 1, "A's stalls went with its runs");
    }

    #[test]
    fn a_damaged_file_is_moved_aside_and_a_new_one_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = History::path_in(dir.path());
        std::fs::write(&path, b"this is not a database, but it is someone's file").unwrap();
        let h = History::open(&path).unwrap();
        let aside = h.moved_aside.clone().expect("moved aside");
        assert!(std::fs::read(&aside).unwrap().starts_with(b"this is not"));
        assert!(h.runs(&Filter::default()).unwrap().is_empty());

        // A real database with a page overwritten in the middle.
        drop(h);
        let mut h = History::open(&path).unwrap();
        let many: Vec<Run> = (0..400)
            .map(|n| run("A", n * 1000, Outcome::Complete))
            .collect();
        h.save(&many).unwrap();
        h.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        drop(h);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2 / 4096 * 4096;
        bytes[middle..middle + 4096].fill(0x5a);
        std::fs::write(&path, &bytes).unwrap();
        let h = History::open(&path).unwrap();
        assert!(h.moved_aside.is_some(), "damage found at open");
    }

    /// Many processes making the file at once: each migration runs once and
    /// every one of them can write.
    #[test]
    fn processes_that_make_the_file_at_once_all_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = History::path_in(dir.path());
        let opened: Vec<_> = (0..6)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut h = History::open(&path)?;
                    h.save(&[run("A", n * 10, Outcome::Complete)])
                })
            })
            .collect();
        for t in opened {
            t.join().unwrap().unwrap();
        }
        let h = History::open(&path).unwrap();
        assert_eq!(h.runs(&Filter::default()).unwrap().len(), 6);
        assert!(
            History::open_existing(&dir.path().join("none.db"))
                .unwrap()
                .is_none()
        );
        assert!(!dir.path().join("none.db").exists());
    }

    #[test]
    fn a_file_from_a_newer_unstuck_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = History::path_in(dir.path());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            History::open(&path),
            Err(HistoryError::Newer { found: 99, .. })
        ));
        assert!(path.exists());
    }
}
