//! `unstuck history` (every run remembered, as a table or JSON; `--forget`)
//! and `unstuck report` (the HTML report, written and opened).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use jiff::{SignedDuration, Timestamp};

use super::{Context, print};
use crate::history::store::Filter;
use crate::history::{History, Run};
use crate::humanize;

/// `unstuck history`.
pub fn run(
    ctx: &Context,
    phone: Option<String>,
    since: Option<String>,
    json: bool,
    forget: Option<String>,
) -> Result<ExitCode> {
    let path = History::path_in(&ctx.dirs.data_dir);
    let history = open(&path)?;
    if let Some(udid) = forget {
        let udid = crate::backup_folder::normalize_udid(&udid).with_context(|| {
            format!("{udid:?} is not a UDID: name the phone by the UDID `unstuck history` shows")
        })?;
        let runs = match history {
            Some(mut h) => h.forget(&udid)?,
            None => 0,
        };
        // Its last run's record (the failure in words) goes too.
        let record = crate::engine::record::path(&ctx.dirs.data_dir.join("runs"), &udid);
        match std::fs::remove_file(&record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("cannot remove {}: {e}", record.display()),
        }
        println!("Forgot {udid}: {runs} run{} removed.", plural(runs));
        return Ok(ExitCode::SUCCESS);
    }
    let since = since.map(|s| parse_since(&s, ctx.now)).transpose()?;
    let all = match &history {
        Some(h) => h.runs(&Filter { udid: None, since })?,
        None => Vec::new(),
    };
    // A phone by its UDID, or by a part of its name.
    let runs: Vec<Run> = match &phone {
        None => all,
        Some(p) => {
            let wanted = p.to_lowercase();
            all.into_iter()
                .filter(|r| {
                    r.udid.eq_ignore_ascii_case(p)
                        || r.name
                            .as_deref()
                            .is_some_and(|n| n.to_lowercase().contains(&wanted))
                })
                .collect()
        }
    };
    if json {
        return print(|out| {
            serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "runs": runs }))?;
            writeln!(out)
        });
    }
    print(|out| table(out, ctx.now, &runs))
}

/// The history to read, if anything was ever recorded.
fn open(path: &std::path::Path) -> Result<Option<History>> {
    let Some(history) = History::open_existing(path)? else {
        return Ok(None);
    };
    if let Some(aside) = &history.moved_aside {
        eprintln!(
            "The history file was damaged; it was moved to {} and a new one started.",
            aside.display()
        );
    }
    Ok(Some(history))
}

pub(super) fn table(out: &mut dyn Write, now: Timestamp, runs: &[Run]) -> std::io::Result<()> {
    if runs.is_empty() {
        return writeln!(
            out,
            "No runs in the history yet: Unstuck remembers every backup it makes or watches."
        );
    }
    for run in runs {
        let outcome = match (run.outcome, run.error_code) {
            (crate::history::Outcome::Failed, Some(code)) => format!("failed (error {code})"),
            (o, _) => o.name().to_owned(),
        };
        let restarts = match run.restarts {
            0 => String::new(),
            n => format!(", {n} restart{}", plural(n as usize)),
        };
        writeln!(
            out,
            "{}  {}  {} by {}: {outcome} in {}, {}{restarts}",
            local(run.started),
            run.name.as_deref().unwrap_or(&run.udid),
            humanize::ago(now, run.started),
            run.program,
            humanize::duration(run.ended.duration_since(run.started)),
            humanize::bytes(run.bytes),
        )?;
        if let Some(cause) = run
            .cause
            .filter(|_| run.outcome != crate::history::Outcome::Complete)
        {
            writeln!(out, "    cause: {}", cause.headline())?;
        }
        for stall in &run.stalls {
            writeln!(
                out,
                "    stalled while {} at {} for {}: {}; {}",
                stall.phase,
                local(stall.started),
                humanize::duration(SignedDuration::from_secs(stall.secs as i64)),
                stall.cause.headline(),
                match stall.ended_by {
                    crate::history::StallEnd::Resumed => "it went on by itself",
                    crate::history::StallEnd::Restarted => "restarted",
                    crate::history::StallEnd::PhoneBack => "the iPhone came back",
                    crate::history::StallEnd::RunEnded => "the run ended there",
                }
            )?;
        }
    }
    Ok(())
}

/// `2026-11-01`, or `7d` (days ago).
fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Some(days) = text.strip_suffix('d')
        && let Ok(n) = days.parse::<i64>()
    {
        if !(0..=36_500).contains(&n) {
            bail!("--since {text:?}: give a number of days from 0 to 36500");
        }
        return Ok(now - SignedDuration::from_hours(24 * n));
    }
    match text.parse::<jiff::civil::Date>() {
        Ok(date) => Ok(date
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .context("that date does not exist here")?
            .timestamp()),
        Err(_) => bail!("--since {text:?}: give a date (2026-11-01) or a number of days (7d)"),
    }
}

fn local(t: Timestamp) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `unstuck report`: writes the report (to `out`, else the data folder)
/// and opens it when asked.
pub fn report(ctx: &Context, out: Option<PathBuf>, open_it: bool) -> Result<ExitCode> {
    let path = write_report(ctx, out)?;
    println!("The report is in {}", path.display());
    if open_it {
        crate::actions::show(&path).map_err(anyhow::Error::msg)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the report (to `out`, else the data folder); returns where.
fn write_report(ctx: &Context, out: Option<PathBuf>) -> Result<PathBuf> {
    let path = out.unwrap_or_else(|| crate::history::report_path(&ctx.dirs.data_dir));
    let overdue_days = ctx.config.monitor.overdue_days as i64;
    let aside = crate::history::write_report(&ctx.dirs.data_dir, &path, ctx.now, overdue_days)
        .map_err(anyhow::Error::msg)?;
    if let Some(aside) = aside {
        eprintln!(
            "The history file was damaged; it was moved to {} and a new one started.",
            aside.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_days() {
        let now: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("7d", now).unwrap(),
            "2026-11-25T12:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_since("2026-11-01", now).is_ok());
        assert!(parse_since("999999999d", now).is_err());
        assert!(parse_since("-5d", now).is_err());
        let e = parse_since("last week", now).unwrap_err().to_string();
        assert!(e.contains("7d"), "{e}");
    }
}
