//! `unstuck demo`: writes a few made-up backups to a temporary folder and
//! shows what `status` says of them; then starts a simulated iPhone, backs
//! it up with Unstuck's engine (its phone stalls once, and the watchdog
//! starts it again), and shows the result. Everything is temporary and
//! removed afterwards; no real phone is involved, and the output says so.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use jiff::SignedDuration;

use super::{Context, print};
use crate::backup_folder::{self, BackupRoot, MeasureCache, RootOrigin};
use crate::synthetic::{Finish, ListFormat, SyntheticBackup};

pub fn run(ctx: &Context) -> Result<ExitCode> {
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
        super::status::render_table(&reports, now, out)
    })?;
    #[cfg(feature = "sim")]
    simulated_backup(dir.path())?;
    Ok(ExitCode::SUCCESS)
}

/// A simulated iPhone backed up by Unstuck's engine; the phone stalls once
/// (held still at 40 %) and the watchdog starts the transfer again.
#[cfg(feature = "sim")]
fn simulated_backup(dir: &std::path::Path) -> Result<()> {
    use std::time::Duration;

    use crate::engine::{self, BackupEvent, BackupOptions, WatchdogConfig};
    use crate::sim::{Sim, SimConfig, Stall};

    let mut config = SimConfig::new("00008150-0011223344556677");
    config.device_name = "Demo iPhone".into();
    config.content.files = 120;
    config.content.file_size = 32 * 1024;
    config.throughput = Some(2_000_000);
    config.stall = Some(Stall {
        at_percent: 40.0,
        duration: Duration::from_secs(30),
    });
    config.fit_storage_to_content();
    // Lines go out without failing on a closed pipe, like the rest.
    let say = |line: String| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let sim = Sim::start(config).await?;
        say(format!(
            "\nNow a simulated iPhone (no real phone), backed up by Unstuck into {}:",
            dir.join("backups").display()
        ));
        let mut options = BackupOptions::new(dir.join("backups"));
        options.watchdog = WatchdogConfig {
            transfer: Duration::from_secs(2),
            ..WatchdogConfig::default()
        };
        options.restart_backoff = Duration::from_millis(500);
        options.tick = Duration::from_millis(250);
        // Nothing else can be backing up a phone that exists only here.
        options.check_other_programs = false;
        // The phone is held still once; after the restart it goes on.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = crate::device::MuxAddress::Tcp(sim.addr());
        let work = engine::backup(&addr, &options, &tx);
        tokio::pin!(work);
        let mut last_percent = -10.0;
        let report = loop {
            tokio::select! {
                result = &mut work => break result,
                Some(event) = rx.recv() => match event {
                    BackupEvent::Progress { percent: Some(p), phase, .. } if p - last_percent >= 20.0 => {
                        last_percent = p;
                        say(format!("  {p:>3.0} % — {phase}"));
                    }
                    BackupEvent::Stalled { phase, quiet_secs } => {
                        say(format!("  stalled while {phase}: nothing for {quiet_secs} s — stopping this attempt"));
                        sim.update(|c| c.stall = None);
                    }
                    BackupEvent::Restarting { attempt, .. } => say(format!("  starting again (attempt {})", attempt + 1)),
                    _ => {}
                },
            }
        };
        let report = report.map_err(|e| anyhow::anyhow!("the demo backup failed: {e}"))?;
        say(format!(
            "  done: {} files, {} after {} restart{} — a complete backup, as `unstuck status` would say.",
            report.files,
            crate::humanize::bytes(report.bytes),
            report.restarts,
            if report.restarts == 1 { "" } else { "s" }
        ));
        Ok::<(), anyhow::Error>(())
    })
}
