//! `unstuck demo`: writes a few made-up backups to a temporary folder, shows
//! what `status` says of them, and removes the folder. No phone is involved,
//! and the output says so.

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
    })
}
