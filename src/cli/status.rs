//! `unstuck status`: every backup in every root, as a table or as JSON.
//!
//! The JSON is a public interface (README, "status --json"): its fields are
//! mapped here one by one rather than derived from the reader's types, so an
//! internal change cannot silently change the schema.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::{Context, print};
use crate::backup_folder::{
    self, Backup, BackupState, MeasureCache, ReadOptions, RootOrigin, RootOutcome, RootReport,
};
use crate::engine::record::{self, RunRecord, RunState};
use crate::humanize;

/// The version of the `--json` schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

pub fn run(ctx: &Context, extra_roots: &[PathBuf], json: bool) -> Result<ExitCode> {
    let roots = ctx.roots(extra_roots);
    let mut cache = MeasureCache::load(ctx.dirs.measure_cache_file());
    let mut reports = backup_folder::read_roots(&roots, read_options(ctx), &mut cache);
    if let Err(e) = cache.save() {
        tracing::warn!(error = %e, "could not save the backup size cache");
    }
    let memory = Memory::read(&ctx.dirs.data_dir, &reports);
    ended_runs_are_not_running(&mut reports, &memory.runs);
    let code = if json {
        print(|out| render_json(&reports, &memory, ctx.now, out))?
    } else {
        print(|out| render_table(&reports, &memory, ctx.now, out))?
    };
    let any_read = reports
        .iter()
        .any(|r| matches!(r.outcome, RootOutcome::Read(_)));
    let failures: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            RootOutcome::Failed(why) => Some(format!("{}: {why}", r.root.path.display())),
            _ => None,
        })
        .collect();
    if !any_read && !failures.is_empty() {
        bail!(
            "no backup folder could be read.\n  {}\nCheck the path (--backup-root or backup_roots in {}).",
            failures.join("\n  "),
            ctx.config_path.display()
        );
    }
    Ok(code)
}

pub fn read_options(ctx: &Context) -> ReadOptions {
    ReadOptions {
        now: ctx.now,
        active_window: ctx.config.interrupted_after(),
    }
}

/// One row per backup, then where Unstuck looked.
pub fn render_table(
    reports: &[RootReport],
    memory: &Memory,
    now: Timestamp,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let backups: Vec<&Backup> = reports
        .iter()
        .flat_map(|r| match &r.outcome {
            RootOutcome::Read(backups) => backups.iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    if backups.is_empty() {
        writeln!(out, "No iPhone backups found.")?;
    } else {
        let header = [
            "DEVICE",
            "iOS",
            "LAST COMPLETE BACKUP",
            "STATE",
            "ENCRYPTED",
            "SIZE",
            "LEFTOVERS",
        ];
        let rows: Vec<([String; 7], Option<String>)> =
            backups.iter().map(|b| table_row(b, memory, now)).collect();
        let mut widths = header.map(|h| h.chars().count());
        for (cells, _) in &rows {
            for (w, cell) in widths.iter_mut().zip(cells) {
                *w = (*w).max(cell.chars().count());
            }
        }
        write_cells(out, &header.map(String::from), &widths)?;
        for (cells, detail) in &rows {
            write_cells(out, cells, &widths)?;
            if let Some(detail) = detail {
                writeln!(out, "    {detail}")?;
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "Looked in:")?;
    for report in reports {
        let origin = match report.root.origin {
            RootOrigin::Platform => "standard folder",
            RootOrigin::Config => "config file",
            RootOrigin::CommandLine => "--backup-root",
        };
        let outcome = match &report.outcome {
            RootOutcome::Read(b) if b.len() == 1 => "1 backup".to_owned(),
            RootOutcome::Read(b) => format!("{} backups", b.len()),
            RootOutcome::Missing => "does not exist yet".to_owned(),
            RootOutcome::Failed(why) => format!("cannot be read: {why}"),
        };
        writeln!(
            out,
            "  {} ({origin}): {outcome}",
            report.root.path.display()
        )?;
    }
    Ok(())
}

fn write_cells(
    out: &mut dyn Write,
    cells: &[String; 7],
    widths: &[usize; 7],
) -> std::io::Result<()> {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        line.push_str(cell);
        if i + 1 < cells.len() {
            let pad = width - cell.chars().count() + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// The cells of a backup's row, and a line under it that explains a state
/// that is not plain "complete".
fn table_row(b: &Backup, memory: &Memory, now: Timestamp) -> ([String; 7], Option<String>) {
    let device = b
        .device_name
        .clone()
        .or_else(|| b.udid.clone())
        .unwrap_or_else(|| folder_name(&b.path));
    let device = if b.archived {
        format!("{device} (archived)")
    } else {
        device
    };
    let last = match (b.last_complete, memory.remembered(b)) {
        (Some(t), _) => format!("{} ({})", humanize::ago(now, t), local_time(t)),
        // The folder is mid-backup or was left interrupted; the history
        // knows when it last was complete.
        (None, Some(t)) => format!("{} ({}, remembered)", humanize::ago(now, t), local_time(t)),
        (None, None) => "none found".to_owned(),
    };
    let (state, detail) = match &b.state {
        BackupState::Complete => ("complete".to_owned(), None),
        BackupState::InProgress { phase } => (format!("backing up ({})", phase.as_str()), None),
        BackupState::Interrupted { reasons } => (
            "interrupted".to_owned(),
            Some(
                reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ),
        BackupState::Unreadable { why } => ("unreadable".to_owned(), Some(why.clone())),
    };
    let detail = match (&b.kept_by_unstuck, detail) {
        (Some(kept), detail) => {
            let note = format!(
                "an Unstuck backup keeps the last complete one in {} while it runs; if none runs, `unstuck backup` puts it back first",
                kept.display()
            );
            Some(detail.map_or(note.clone(), |d| format!("{d}; {note}")))
        }
        (None, detail) => detail,
    };
    let detail = match (failed_run(b, &memory.runs), detail) {
        (Some(run), detail) => {
            let note = format!(
                "Unstuck's last backup of it failed {}: {}",
                humanize::ago(now, run.updated),
                run_failure(run)
            );
            Some(detail.map_or(note.clone(), |d| format!("{d}; {note}")))
        }
        (None, detail) => detail,
    };
    let encrypted = match b.encrypted {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    let leftovers = if b.leftovers.is_empty() {
        "-".to_owned()
    } else {
        b.leftovers
            .iter()
            .map(|l| match l.bytes {
                0 => l.kind.to_string(),
                n => format!("{} {}", l.kind, humanize::bytes(n)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    (
        [
            device,
            b.ios_version.clone().unwrap_or_else(|| "?".to_owned()),
            last,
            state,
            encrypted.to_owned(),
            b.size_bytes
                .map(humanize::bytes)
                .unwrap_or_else(|| "?".to_owned()),
            leftovers,
        ],
        detail,
    )
}

/// What Unstuck remembers beside the folders: its own runs' records, and
/// the history's last complete backup of each phone whose folder has none.
#[derive(Default)]
pub struct Memory {
    pub runs: Vec<RunRecord>,
    pub completes: std::collections::HashMap<String, Timestamp>,
}

impl Memory {
    /// Reads the run records and, only when a folder lacks a complete
    /// backup and a history file exists, the history.
    fn read(data_dir: &Path, reports: &[RootReport]) -> Memory {
        let runs = record::read_all(&data_dir.join("runs"));
        let wanted: Vec<&str> = reports
            .iter()
            .flat_map(|r| match &r.outcome {
                RootOutcome::Read(b) => b.iter().collect(),
                _ => Vec::new(),
            })
            .filter(|b| b.last_complete.is_none())
            .filter_map(|b| b.udid.as_deref())
            .collect();
        let path = crate::history::History::path_in(data_dir);
        let mut completes = std::collections::HashMap::new();
        if !wanted.is_empty() && path.exists() {
            match crate::history::History::open(&path) {
                Ok(h) => {
                    for udid in wanted {
                        if let Ok(Some(t)) = h.last_complete(udid) {
                            completes.insert(udid.to_owned(), t);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the history was not read"),
            }
        }
        Memory { runs, completes }
    }

    fn remembered(&self, b: &Backup) -> Option<Timestamp> {
        b.last_complete
            .is_none()
            .then(|| self.completes.get(b.udid.as_deref()?).copied())
            .flatten()
    }
}

/// A folder that looks mid-backup because it changed a minute ago was
/// left so by Unstuck's own run that has since failed (nothing wrote after
/// its end): it is interrupted, not backing up.
fn ended_runs_are_not_running(reports: &mut [RootReport], runs: &[RunRecord]) {
    for report in reports {
        let RootOutcome::Read(backups) = &mut report.outcome else {
            continue;
        };
        for b in backups.iter_mut() {
            let BackupState::InProgress { phase } = b.state.clone() else {
                continue;
            };
            let Some(run) = failed_run(b, runs) else {
                continue;
            };
            let written = std::fs::metadata(b.path.join("Status.plist"))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| Timestamp::try_from(t).ok());
            if written.is_some_and(|w| w <= run.updated) {
                b.state = BackupState::Interrupted {
                    reasons: vec![backup_folder::Interruption::Unfinished { phase }],
                };
            }
        }
    }
}

/// Unstuck's own run of this backup's phone that failed after its last
/// complete backup, if one did.
fn failed_run<'a>(b: &Backup, runs: &'a [RunRecord]) -> Option<&'a RunRecord> {
    let udid = b.udid.as_deref()?;
    runs.iter().find(|r| {
        r.udid == udid
            && r.state == RunState::Failed
            && b.last_complete.is_none_or(|c| r.updated > c)
    })
}

/// How a run failed, in words: what it printed, else the phone's code.
fn run_failure(run: &RunRecord) -> String {
    match (&run.failure, run.error_code) {
        (Some(words), _) => words.clone(),
        (None, Some(code)) => format!(
            "error {code}: {}",
            crate::engine::codes::meaning(code).cause
        ),
        (None, None) => "it did not finish".to_owned(),
    }
}

fn local_time(t: Timestamp) -> String {
    t.to_zoned_datetime(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[derive(Serialize)]
struct JsonStatus<'a> {
    schema_version: u32,
    generated_at: Timestamp,
    roots: Vec<JsonRoot<'a>>,
    backups: Vec<JsonBackup<'a>>,
}

#[derive(Serialize)]
struct JsonRoot<'a> {
    path: &'a Path,
    origin: RootOrigin,
    status: &'static str,
    error: Option<&'a str>,
    backups: usize,
}

#[derive(Serialize)]
struct JsonBackup<'a> {
    root: &'a Path,
    path: &'a Path,
    udid: Option<&'a str>,
    device_name: Option<&'a str>,
    product_type: Option<&'a str>,
    ios_version: Option<&'a str>,
    build_version: Option<&'a str>,
    last_complete: Option<Timestamp>,
    last_attempt: Option<Timestamp>,
    state: &'static str,
    phase: Option<&'a str>,
    reasons: Vec<JsonReason<'a>>,
    unreadable_reason: Option<&'a str>,
    encrypted: Option<bool>,
    format: Option<backup_folder::ManifestFormat>,
    manifest_entries: Option<u64>,
    file_count: Option<u64>,
    size_bytes: Option<u64>,
    archived: bool,
    leftovers: Vec<JsonLeftover<'a>>,
    kept_by_unstuck: Option<&'a Path>,
    /// When `last_complete` is null (the folder is mid-backup or
    /// interrupted): the last complete backup the history remembers.
    last_complete_remembered: Option<Timestamp>,
    /// Unstuck's own backup of this phone that failed after the last
    /// complete one.
    last_failed_run: Option<JsonFailedRun>,
}

#[derive(Serialize)]
struct JsonFailedRun {
    at: Timestamp,
    error_code: Option<u64>,
    message: String,
}

/// An interruption's code (`kind`, plus `phase` for `unfinished`) and its
/// message in words.
#[derive(Serialize)]
struct JsonReason<'a> {
    #[serde(flatten)]
    reason: &'a backup_folder::Interruption,
    message: String,
}

#[derive(Serialize)]
struct JsonLeftover<'a> {
    kind: backup_folder::LeftoverKind,
    path: &'a Path,
    bytes: u64,
}

pub fn render_json(
    reports: &[RootReport],
    memory: &Memory,
    now: Timestamp,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut backups = Vec::new();
    let roots = reports
        .iter()
        .map(|r| {
            let (status, error, count) = match &r.outcome {
                RootOutcome::Read(list) => {
                    backups.extend(list.iter().map(|b| json_backup(&r.root.path, b, memory)));
                    ("read", None, list.len())
                }
                RootOutcome::Missing => ("missing", None, 0),
                RootOutcome::Failed(why) => ("failed", Some(why.as_str()), 0),
            };
            JsonRoot {
                path: &r.root.path,
                origin: r.root.origin,
                status,
                error,
                backups: count,
            }
        })
        .collect();
    let doc = JsonStatus {
        schema_version: SCHEMA_VERSION,
        generated_at: now,
        roots,
        backups,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn json_backup<'a>(root: &'a Path, b: &'a Backup, memory: &Memory) -> JsonBackup<'a> {
    let (state, phase, reasons, unreadable_reason) = match &b.state {
        BackupState::Complete => ("complete", None, Vec::new(), None),
        BackupState::InProgress { phase } => {
            ("in_progress", Some(phase.as_str()), Vec::new(), None)
        }
        BackupState::Interrupted { reasons } => (
            "interrupted",
            None,
            reasons
                .iter()
                .map(|reason| JsonReason {
                    reason,
                    message: reason.to_string(),
                })
                .collect(),
            None,
        ),
        BackupState::Unreadable { why } => ("unreadable", None, Vec::new(), Some(why.as_str())),
    };
    JsonBackup {
        root,
        path: &b.path,
        udid: b.udid.as_deref(),
        device_name: b.device_name.as_deref(),
        product_type: b.product_type.as_deref(),
        ios_version: b.ios_version.as_deref(),
        build_version: b.build_version.as_deref(),
        last_complete: b.last_complete,
        last_attempt: b.last_attempt,
        state,
        phase,
        reasons,
        unreadable_reason,
        encrypted: b.encrypted,
        format: b.format,
        manifest_entries: b.manifest_entries,
        file_count: b.file_count,
        size_bytes: b.size_bytes,
        archived: b.archived,
        leftovers: b
            .leftovers
            .iter()
            .map(|l| JsonLeftover {
                kind: l.kind,
                path: &l.path,
                bytes: l.bytes,
            })
            .collect(),
        kept_by_unstuck: b.kept_by_unstuck.as_deref(),
        last_complete_remembered: memory.remembered(b),
        last_failed_run: failed_run(b, &memory.runs).map(|r| JsonFailedRun {
            at: r.updated,
            error_code: r.error_code,
            message: run_failure(r),
        }),
    }
}
