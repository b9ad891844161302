//! `unstuck watch`: the monitor without a tray — each state change printed
//! (text or JSON lines), desktop notifications shown; `--once` prints the
//! current diagnosis and says in its exit code whether all is well.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::Context;
use super::devices::mux_address;
use crate::backup_folder::SnapshotState;
use crate::device;
use crate::humanize;
use crate::monitor::observe::{AttachedPhones, Facts, Sampler};
use crate::monitor::shell::{self, MonitorEvent, ShellOptions};
use crate::monitor::{Effect, Finding, Monitor, PhoneState, PhoneSummary};

pub fn run(
    ctx: &Context,
    extra_roots: &[PathBuf],
    json: bool,
    once: bool,
    notify: bool,
) -> Result<ExitCode> {
    let roots = ctx.root_paths(extra_roots);
    let usbmuxd = mux_address(ctx).ok();
    let runtime = super::runtime()?;
    if once {
        return runtime.block_on(run_once(ctx, &roots, usbmuxd, json));
    }
    let options = ShellOptions {
        roots,
        usbmuxd,
        config: ctx.config.monitor.monitor_config(),
        busy_poll: Duration::from_secs(ctx.config.monitor.poll_seconds_busy),
        idle_poll: Duration::from_secs(ctx.config.monitor.poll_seconds_idle),
        notify,
        data_dir: Some(ctx.dirs.data_dir.clone()),
    };
    runtime.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(shell::run(options, tx, Default::default()));
        if !json {
            eprintln!("Watching iPhone backups; Ctrl-C stops.");
        }
        // Progress lines at most every few seconds per phone; every other
        // effect at once.
        let every = Duration::from_secs(if json { 1 } else { 5 });
        let mut last_progress: std::collections::HashMap<String, std::time::Instant> =
            Default::default();
        // The picture it starts with: where things stand once usbmuxd has
        // named the attached phones and they answered, a moment after the
        // first look.
        let picture = tokio::time::sleep(START_PICTURE);
        tokio::pin!(picture);
        // (A first look that takes longer than that, over large folders,
        // is waited for.)
        let (mut due, mut started) = (false, false);
        let mut latest: Option<Vec<PhoneSummary>> = None;
        loop {
            if due
                && !started
                && let Some(phones) = &latest
            {
                started = true;
                if print_start(phones, json).is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            tokio::select! {
                _ = &mut picture, if !due => due = true,
                Some(event) = rx.recv() => {
                    // Devices are the tray's; notices' buttons are not
                    // listened to here.
                    let effect = match event {
                        MonitorEvent::Effect(effect) => effect,
                        MonitorEvent::Summaries(phones) => {
                            latest = Some(phones);
                            continue;
                        }
                        _ => continue,
                    };
                    if let Effect::Progress { udid, .. } = &effect {
                        let due = last_progress.get(udid).is_none_or(|t| t.elapsed() >= every);
                        if !due {
                            continue;
                        }
                        last_progress.insert(udid.clone(), std::time::Instant::now());
                    }
                    if print_effect(&effect, json).is_err() {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    })
}

/// How long after starting `watch` prints where every phone stands.
const START_PICTURE: Duration = Duration::from_millis(1500);

/// One look: exit 0 when all is well, 2 when a backup is stalled, 3 when
/// the last backup of a phone did not finish, 4 when a phone refuses this
/// computer (locked, not trusted); the highest that applies.
async fn run_once(
    ctx: &Context,
    roots: &[PathBuf],
    usbmuxd: Option<device::MuxAddress>,
    json: bool,
) -> Result<ExitCode> {
    let mut attached = AttachedPhones::new();
    // Why no phone can be seen, when none can: said, not passed over.
    let mut unreachable = None;
    if let Some(addr) = &usbmuxd {
        match device::list(addr, device::DEADLINE).await {
            Ok(list) => {
                for d in list {
                    let facts = match device::facts(addr, Some(&d.udid), device::DEADLINE).await {
                        Ok(f) => Facts::Known(Box::new(f)),
                        Err(e) if e.is_refusal() => Facts::Refused(e),
                        Err(_) => Facts::Pending,
                    };
                    attached.insert(d.udid.clone(), (d, facts));
                }
            }
            Err(e) => unreachable = Some(e.to_string()),
        }
    }
    if let Some(why) = &unreachable {
        if json {
            println!(
                "{}",
                serde_json::json!({"effect": "usbmuxd_unavailable", "error": why})
            );
        } else {
            println!("No phone can be seen: {why}");
        }
    }
    let roots = roots.to_vec();
    // Unstuck's own runs (their records) say exactly how they ended.
    let data_dir = ctx.dirs.data_dir.clone();
    let observation = tokio::task::spawn_blocking(move || {
        Sampler::with_data_dir(&data_dir).sample(&roots, &attached)
    })
    .await?;
    let mut monitor = Monitor::new(ctx.config.monitor.monitor_config());
    monitor.observe(Timestamp::now(), &observation);
    // usbmuxd down is said, not counted: the backups may all be well.
    let mut worst = 0u8;
    let now = Timestamp::now();
    for summary in monitor.summaries(now) {
        let PhoneSummary {
            udid,
            name,
            state,
            findings,
            ..
        } = summary.clone();
        let interrupted = observation
            .phones
            .iter()
            .find(|p| p.udid == udid)
            .and_then(|p| p.folder.as_ref())
            .is_some_and(|f| {
                f.empty_manifest_plist
                    || f.snapshot_state
                        .as_ref()
                        .is_some_and(SnapshotState::is_unfinished)
            });
        let code = match &state {
            PhoneState::Stalled { .. } => 2,
            PhoneState::Failed { .. } => 3,
            PhoneState::Refused { .. } => 4,
            PhoneState::Idle if interrupted => 3,
            _ => 0,
        };
        worst = worst.max(code);
        let effect = Effect::StateChanged {
            udid,
            name,
            state,
            findings,
        };
        if json {
            println!("{}", serde_json::to_string(&effect)?);
        } else if code == 3
            && matches!(
                effect,
                Effect::StateChanged {
                    state: PhoneState::Idle,
                    ..
                }
            )
        {
            if let Effect::StateChanged { udid, name, .. } = &effect {
                println!("{}: the last backup did not finish", label(name, udid));
            }
        } else if matches!(summary.state, PhoneState::Idle) {
            println!("{}", quiet_line(&summary, now));
        } else {
            let _ = print_effect(&effect, false);
        }
    }
    if monitor.states().is_empty() {
        if json {
            println!("{}", serde_json::json!({"effect": "nothing_found"}));
        } else if unreachable.is_some() {
            println!("No iPhone backups found.");
        } else {
            println!("No iPhone backups or phones found.");
        }
    }
    Ok(ExitCode::from(worst))
}

/// Where every phone stands when the watch starts: the state, and for a
/// quiet phone when it was last backed up.
fn print_start(phones: &[PhoneSummary], json: bool) -> std::io::Result<()> {
    if phones.is_empty() {
        if json {
            println!("{}", serde_json::json!({"effect": "nothing_found"}));
        } else {
            println!("No iPhone backups or phones found yet; watching for them.");
        }
        return std::io::stdout().flush();
    }
    for p in phones {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "effect": "phone",
                    "udid": p.udid,
                    "name": p.name,
                    "attached": p.attached,
                    "last_complete": p.last_complete,
                    "state": p.state,
                    "findings": p.findings,
                })
            );
            continue;
        }
        if matches!(p.state, PhoneState::Idle) {
            println!("{}", quiet_line(p, Timestamp::now()));
            continue;
        }
        print_effect(
            &Effect::StateChanged {
                udid: p.udid.clone(),
                name: p.name.clone(),
                state: p.state.clone(),
                findings: p.findings.clone(),
            },
            json,
        )?;
    }
    std::io::stdout().flush()
}

/// A phone with no backup going: attached or not, and its last complete
/// backup.
fn quiet_line(p: &PhoneSummary, now: Timestamp) -> String {
    let last = match p.last_complete {
        Some(t) => format!("last complete backup {}", humanize::ago(now, t)),
        None => "no complete backup yet".to_owned(),
    };
    let attached = if p.attached {
        "attached"
    } else {
        "not attached"
    };
    format!("{}: {attached}, {last}", label(&p.name, &p.udid))
}

fn label(name: &Option<String>, udid: &str) -> String {
    match name {
        Some(n) => format!("{n} ({udid})"),
        None => udid.to_owned(),
    }
}

fn print_effect(effect: &Effect, json: bool) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(effect).map_err(std::io::Error::other)?
        )?;
        return out.flush();
    }
    let time = Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%H:%M:%S")
        .to_string();
    match effect {
        Effect::StateChanged {
            udid,
            name,
            state,
            findings,
        } => {
            let who = label(name, udid);
            let line = match state {
                PhoneState::Idle => "idle".to_owned(),
                PhoneState::Refused { why } => humanize::upper_first(why),
                PhoneState::Running(r) => running_line(r),
                PhoneState::Stalled { since, phase, tool } => format!(
                    "STALLED while {phase} ({tool}), nothing since {}",
                    since
                        .to_zoned_datetime(jiff::tz::TimeZone::system())
                        .strftime("%H:%M:%S")
                ),
                PhoneState::Completed { .. } => "backup complete".to_owned(),
                PhoneState::Failed { code, .. } => match code {
                    Some(c) => format!("backup FAILED (error {c})"),
                    None => "backup FAILED".to_owned(),
                },
            };
            writeln!(out, "[{time}] {who}: {line}")?;
            for finding in findings {
                write_finding(&mut out, finding)?;
            }
        }
        Effect::Progress {
            udid,
            name,
            running,
        } => writeln!(
            out,
            "[{time}] {}: {}",
            label(name, udid),
            running_line(running)
        )?,
        // The notice itself: whether a desktop showed it too is not known
        // here (`--no-notify`, no notification server).
        Effect::Notify(n) => writeln!(out, "[{time}] notice: {} — {}", n.title, n.body)?,
    }
    out.flush()
}

fn running_line(r: &crate::monitor::Running) -> String {
    let percent = r
        .percent
        .map(|p| format!(", {p:.0} %{}", if r.estimated { " (estimate)" } else { "" }))
        .unwrap_or_default();
    let eta = r
        .eta_secs
        .map(|s| {
            format!(
                ", ETA {}",
                humanize::duration(jiff::SignedDuration::from_secs(s as i64))
            )
        })
        .unwrap_or_default();
    // No rate is known from one look, nor while nothing moves.
    let rate = if r.rate > 0.0 {
        format!(" at {}/s", humanize::bytes(r.rate as u64))
    } else {
        String::new()
    };
    format!(
        "backing up ({}) — {}{percent}, {}{rate}{eta}",
        r.tool,
        r.phase,
        humanize::bytes(r.bytes)
    )
}

fn write_finding(out: &mut impl Write, f: &Finding) -> std::io::Result<()> {
    writeln!(
        out,
        "    likely cause: {} — {}",
        f.cause.headline(),
        f.evidence.join("; ")
    )?;
    // In a terminal a fix is the command that runs it, not a menu label.
    let fixes: Vec<String> = f.actions.iter().map(|a| a.command().to_owned()).collect();
    writeln!(out, "    fix: {}", fixes.join(", "))
}
