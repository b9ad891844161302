//! `unstuck demo`. In a desktop session: a simulated iPhone (scenario
//! `stall-at-40` by default) that Unstuck's tray backs up into a temporary
//! folder — the backup holds still at 40 %, the tray turns to "stalled" and
//! says why, and Restart Backup (menu or notification) brings it home.
//! Without a display, in the terminal: a few made-up backups and what
//! `status` says of them, then an engine backup of the simulated iPhone
//! through the same stall, restarted by the watchdog. Everything is
//! temporary and removed afterwards; no real phone is involved, and the
//! output says so.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use jiff::SignedDuration;

use super::{Context, print};
use crate::backup_folder::{self, BackupRoot, MeasureCache, RootOrigin};
use crate::synthetic::{Finish, ListFormat, SyntheticBackup};

#[cfg(feature = "sim")]
pub fn run(ctx: &Context, scenario: &str, force_tray: bool) -> Result<ExitCode> {
    if force_tray || crate::tray::graphical_session_here() {
        return tray(ctx, scenario, force_tray);
    }
    eprintln!(
        "No graphical session (DISPLAY and WAYLAND_DISPLAY are unset): showing the demo in the terminal."
    );
    terminal(ctx, scenario)
}

#[cfg(not(feature = "sim"))]
pub fn run(ctx: &Context) -> Result<ExitCode> {
    terminal(ctx, "")
}

/// The tray on a simulated iPhone whose backup stalls until Restart Backup.
#[cfg(feature = "sim")]
fn tray(ctx: &Context, scenario: &str, force: bool) -> Result<ExitCode> {
    use std::time::Duration;

    use jiff::SignedDuration;

    use crate::sim::{Sim, Stall};
    use crate::stall::StallThresholds;

    let mut config = crate::sim::scenario(scenario)
        .with_context(|| format!("there is no scenario {scenario:?}"))?;
    if scenario == "stall-at-40" {
        // Held still until the user restarts the backup.
        config.content.files = 600;
        config.throughput = Some(2_000_000);
        config.stall = Some(Stall {
            at_percent: 40.0,
            duration: Duration::from_secs(3600),
        });
        config.fit_storage_to_content();
    }
    let dir = tempfile::Builder::new()
        .prefix("unstuck-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo backups")?;
    let runtime = super::runtime()?;
    let sim = std::sync::Arc::new(
        runtime
            .block_on(Sim::start(config))
            .context("cannot start the simulated iPhone")?,
    );
    eprintln!(
        "Demo: a simulated iPhone (no real phone) backed up into {}; Quit in the tray's menu ends it.",
        dir.path().display()
    );
    // Quick thresholds, so the stall shows within seconds.
    let monitor = crate::monitor::MonitorConfig {
        stall: StallThresholds {
            starting: SignedDuration::from_secs(20),
            passcode: SignedDuration::from_secs(20),
            copying: SignedDuration::from_secs(6),
            finishing: SignedDuration::from_secs(20),
        },
        ..Default::default()
    };
    let mut backup = crate::engine::BackupOptions::new(dir.path().to_path_buf());
    backup.check_other_programs = false;
    backup.stall = StallThresholds {
        copying: SignedDuration::from_secs(4),
        ..StallThresholds::default()
    };
    let mut first = backup.clone();
    // The first run's own watchdog waits, so that the tray shows the stall.
    first.stall.copying = SignedDuration::from_secs(3600);
    let on_restart = {
        let sim = sim.clone();
        Box::new(move || sim.update(|c| c.stall = None))
    };
    let mut setup = super::tray::setup(
        ctx,
        vec![dir.path().to_path_buf()],
        Some(crate::device::MuxAddress::Tcp(sim.addr())),
        monitor,
        Some(crate::tray::Demo {
            first_backup: first,
            on_restart,
        }),
    )?;
    setup.backup = backup;
    setup.platform_command = None;
    setup.data_dir = dir.path().to_owned();
    setup.shell.data_dir = Some(setup.data_dir.clone());
    setup.shell.busy_poll = Duration::from_secs(1);
    setup.shell.idle_poll = Duration::from_secs(5);
    super::tray::start(ctx, runtime, setup, force, || {
        eprintln!("Showing the demo in the terminal instead.");
        terminal(ctx, scenario)
    })
}

/// Made-up backups, then an engine backup through a stall, in the terminal.
fn terminal(ctx: &Context, scenario: &str) -> Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("unstuck-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo backups")?;
    let now = ctx.now;
    let hours = |n: i64| now - SignedDuration::from_hours(n);

    let mut complete = SyntheticBackup::new("00008120-001A2B3C4D5E6F70", hours(50));
    complete.device_name = "Ann's iPhone".into();
    complete.files = 400;
    complete.file_size = 4096;
    complete.encrypted = true;

    let mut stalled = SyntheticBackup::new("00008110-000C1D2E3F405162", hours(3));
    stalled.device_name = "Ben's iPhone".into();
    stalled.ios_version = "26.1".into();
    stalled.finish = Finish::Uploading;

    let mut running = SyntheticBackup::new("00008030-0016354E1A2B3C4D", now);
    running.device_name = "Family iPad".into();
    running.product_type = "iPad13,18".into();
    running.finish = Finish::Uploading;

    let mut broken =
        SyntheticBackup::new("3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a", hours(24 * 40));
    broken.device_name = "Old iPhone".into();
    broken.ios_version = "16.7.10".into();
    broken.finish = Finish::EmptyManifestPlist;

    let mut ios9 =
        SyntheticBackup::new("9b1e7c3a5d2f4e6a8b0c1d3e5f7a9b2c4d6e8f0a", hours(24 * 900));
    ios9.device_name = "iPhone 6s".into();
    ios9.ios_version = "9.3.5".into();
    ios9.format = ListFormat::ManifestMbdb;

    for backup in [&complete, &stalled, &running, &broken, &ios9] {
        backup
            .write(dir.path())
            .with_context(|| format!("cannot write a demo backup in {}", dir.path().display()))?;
    }

    let roots = [BackupRoot {
        path: dir.path().to_path_buf(),
        origin: RootOrigin::CommandLine,
    }];
    let reports = backup_folder::read_roots(
        &roots,
        super::status::read_options(ctx),
        &mut MeasureCache::in_memory(),
    );
    print(|out| {
        writeln!(
            out,
            "Demo: five made-up backups, written to a temporary folder and removed afterwards.\n\
             No iPhone is involved. Run `unstuck status` to see the backups on this computer.\n"
        )?;
        super::status::render_table(&reports, &Default::default(), now, out)
    })?;
    #[cfg(feature = "sim")]
    simulated_backup(dir.path(), scenario)?;
    #[cfg(not(feature = "sim"))]
    let _ = scenario;
    Ok(ExitCode::SUCCESS)
}

/// A simulated iPhone backed up by Unstuck's engine. In the default story
/// (`stall-at-40`) the phone stalls once (held still at 40 %) and the
/// watchdog starts the transfer again; any other scenario plays as it is,
/// with a smaller phone so that it is quick, and ends as it ends.
#[cfg(feature = "sim")]
fn simulated_backup(dir: &std::path::Path, scenario: &str) -> Result<()> {
    use std::time::Duration;

    use crate::engine::{self, BackupEvent, BackupOptions};
    use crate::sim::{SimConfig, Stall};
    use crate::stall::StallThresholds;

    let story = scenario == "stall-at-40";
    let mut config = if story {
        let mut c = SimConfig::new("00008150-0011223344556677");
        c.device_name = "Demo iPhone".into();
        c.stall = Some(Stall {
            at_percent: 40.0,
            duration: Duration::from_secs(30),
        });
        c
    } else {
        crate::sim::scenario(scenario)
            .with_context(|| format!("there is no scenario {scenario:?}"))?
    };
    config.content.files = 120;
    config.content.file_size = 32 * 1024;
    config.throughput = config
        .throughput
        .map(|r| r.min(2_000_000))
        .or(Some(2_000_000));
    if config.passcode_wait.is_some() {
        // A real phone gives up after minutes; the demo after seconds.
        config.passcode_wait = Some(Duration::from_secs(5));
    }
    if let Some(stall) = &mut config.stall
        && !story
    {
        // Long enough for the watchdog (2 s here) to see it.
        stall.duration = Duration::from_secs(5);
    }
    config.fit_storage_to_content();
    // Lines go out without failing on a closed pipe, like the rest.
    let say = |line: String| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let sim = crate::sim::Sim::start(config).await?;
        say(format!(
            "\nNow a simulated iPhone (no real phone), backed up by Unstuck into {}:",
            dir.join("backups").display()
        ));
        let mut options = BackupOptions::new(dir.join("backups"));
        options.stall = StallThresholds {
            copying: jiff::SignedDuration::from_secs(2),
            ..StallThresholds::default()
        };
        options.restart_backoff = Duration::from_millis(500);
        // An unplugged demo phone is waited for seconds, not minutes.
        options.reattach_wait = Duration::from_secs(5);
        options.tick = Duration::from_millis(250);
        // Nothing else can be backing up a phone that exists only here.
        options.check_other_programs = false;
        // The phone is held still once; after the restart it goes on.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = crate::device::MuxAddress::Tcp(sim.addr());
        let work = engine::backup(&addr, &options, &tx);
        tokio::pin!(work);
        let mut last_percent = -10.0;
        // Remembered as every backup is, in the demo's own data folder.
        let data = dir.join("data");
        let mut recorder = engine::record::Recorder::new(&data);
        let report = loop {
            tokio::select! {
                result = &mut work => {
                    while let Ok(event) = rx.try_recv() {
                        recorder.event(&event);
                    }
                    recorder.finish(result.as_ref().err().map(engine::record::Failure::of));
                    break result;
                }
                Some(event) = rx.recv() => {
                    recorder.event(&event);
                    match event {
                    BackupEvent::Progress { percent: Some(p), phase, .. } if p - last_percent >= 20.0 => {
                        last_percent = p;
                        say(format!("  {p:>3.0} % — {phase}"));
                    }
                    BackupEvent::Stalled { phase, quiet_secs } => {
                        say(format!("  stalled while {phase}: nothing for {quiet_secs} s — stopping this attempt"));
                        if story {
                            sim.update(|c| c.stall = None);
                        }
                    }
                    BackupEvent::Restarting { attempt, .. } => say(format!("  starting again (attempt {})", attempt + 1)),
                    BackupEvent::Started { asks_for_passcode: true, .. } => {
                        say("  the iPhone asks for its passcode before a backup: enter it on the iPhone now".into());
                    }
                    _ => {}
                }},
            }
        };
        let remembered = || {
            say("\nWhat Unstuck remembers of it (`unstuck history` shows every backup it made or watched):".into());
            let runs = crate::history::History::open(&crate::history::History::path_in(&data))
                .and_then(|h| h.runs(&Default::default()))
                .unwrap_or_default();
            let mut text = Vec::new();
            let _ = super::history::table(&mut text, jiff::Timestamp::now(), &runs);
            say(String::from_utf8_lossy(&text).trim_end().to_owned());
        };
        let report = match report {
            Ok(report) => report,
            // Another scenario may end as a phone would: that is the story.
            Err(e) if !story => {
                say(format!("  the backup did not finish: {e}"));
                say(format!("  (exit code {} for `unstuck backup`; the last complete backup, if there was one, is unchanged)", e.exit_code()));
                remembered();
                return Ok(());
            }
            Err(e) => return Err(anyhow::anyhow!("the demo backup failed: {e}")),
        };
        say(format!(
            "  done: {} files, {} after {} restart{} — a complete backup, as `unstuck status` would say.",
            report.files,
            crate::humanize::bytes(report.bytes),
            report.restarts,
            if report.restarts == 1 { "" } else { "s" }
        ));
        remembered();
        Ok::<(), anyhow::Error>(())
    })
}
