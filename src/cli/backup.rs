//! `unstuck backup`: Unstuck's own backups, with a progress bar (or JSON
//! lines for scripts).

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use super::Context;
use super::devices::mux_address;
use crate::engine::record::Failure;
use crate::engine::{self, BackupEvent, EngineError};
use crate::humanize;

pub fn run(
    ctx: &Context,
    udid: Option<String>,
    dest: Option<PathBuf>,
    full: bool,
    json: bool,
) -> Result<ExitCode> {
    let addr = mux_address(ctx)?;
    let mut options = ctx.backup_options(udid, dest)?;
    options.full = full;

    let runtime = super::runtime()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let result = runtime.block_on(follow(
        ctx,
        json,
        rx,
        engine::backup_until(&addr, &options, &tx, crate::signals::stopped()),
        |r| r.as_ref().err().map(Failure::of),
    ));
    match result {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "finished", "report": report})
                );
            } else {
                println!(
                    "Backup complete: {} files, {} in {:.0} s{} — {}",
                    report.files,
                    humanize::bytes(report.bytes),
                    report.seconds,
                    match report.restarts {
                        0 => String::new(),
                        n => format!(" after {n} restart{}", if n == 1 { "" } else { "s" }),
                    },
                    report.folder.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "failed", "error": e.to_string(), "exit_code": e.exit_code()})
                );
            }
            eprintln!("unstuck: backup failed: {e}");
            if !matches!(e, EngineError::Preflight { .. } | EngineError::Busy { .. }) {
                eprintln!("unstuck: the last complete backup, if there was one, is unchanged.");
            }
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

/// Runs `work` (a backup, or a fix that backs up) while showing its
/// events — a bar, lines or JSON — and keeping its run record, which a
/// monitor in another process reads; `failure` says how a result failed.
pub(super) async fn follow<T>(
    ctx: &Context,
    json: bool,
    mut events: mpsc::UnboundedReceiver<BackupEvent>,
    work: impl std::future::Future<Output = T>,
    failure: impl FnOnce(&T) -> Option<Failure>,
) -> T {
    tokio::pin!(work);
    let mut view = View::new(json);
    let mut recorder = engine::record::Recorder::new(&ctx.dirs.data_dir);
    loop {
        tokio::select! {
            result = &mut work => {
                while let Ok(event) = events.try_recv() {
                    recorder.event(&event);
                    view.show(&event);
                }
                view.done();
                if recorder.started() {
                    recorder.finish(failure(&result));
                }
                return result;
            }
            Some(event) = events.recv() => {
                recorder.event(&event);
                view.show(&event);
            }
        }
    }
}

/// Shows engine events: a progress bar on a terminal, plain lines
/// otherwise, JSON lines with `--json`.
struct View {
    json: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl View {
    fn new(json: bool) -> View {
        let bar = (!json && io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(100);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        View {
            json,
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn show(&mut self, event: &BackupEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        let line = match event {
            BackupEvent::Started {
                udid,
                device_name,
                folder,
                protected,
                asks_for_passcode,
            } => Some(format!(
                "Backing up {} ({udid}) to {}{}{}",
                device_name.as_deref().unwrap_or("iPhone"),
                folder.display(),
                if *protected {
                    "; the last complete backup is kept safe until this one finishes"
                } else {
                    ""
                },
                if *asks_for_passcode {
                    ".\nEnter the passcode on the iPhone now: iOS 16.1 and later ask for it before a backup starts"
                } else {
                    ""
                }
            )),
            BackupEvent::Progress {
                phase,
                bytes,
                percent,
                ..
            } => {
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                let rate = *bytes as f64 / secs;
                let eta = match percent {
                    Some(p) if *p > 0.5 && *p < 100.0 => format!(
                        ", ETA {}",
                        humanize::duration(jiff::SignedDuration::from_secs_f64(
                            secs * (100.0 - p) / p
                        ))
                    ),
                    _ => String::new(),
                };
                // Nothing has come yet: the phase says it all.
                let msg = if *bytes == 0 {
                    phase.to_string()
                } else {
                    format!(
                        "{phase}: {} at {}/s{eta}",
                        humanize::bytes(*bytes),
                        humanize::bytes(rate as u64)
                    )
                };
                if let Some(bar) = &self.bar {
                    bar.set_position(percent.unwrap_or(0.0) as u64);
                    bar.set_message(msg);
                    None
                } else if self.last_line.elapsed().as_secs() >= 5 {
                    self.last_line = Instant::now();
                    Some(format!("{:>3.0}% {msg}", percent.unwrap_or(0.0)))
                } else {
                    None
                }
            }
            BackupEvent::Stalled { phase, quiet_secs } => Some(format!(
                "Stalled while {phase}: nothing for {quiet_secs} s; stopping this attempt"
            )),
            BackupEvent::WaitingForPhone { wait_secs } => Some(format!(
                "The iPhone went away: plug it back in (or bring it back to the Wi-Fi) and unlock it. The backup goes on when it is back (waiting up to {}).",
                humanize::duration(jiff::SignedDuration::from_secs(*wait_secs as i64))
            )),
            BackupEvent::Restarting { attempt, of } => Some(format!(
                "Starting again (attempt {} of {})",
                attempt + 1,
                of + 1
            )),
        };
        if let Some(line) = line {
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
