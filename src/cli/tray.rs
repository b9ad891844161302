//! `unstuck` with no command: the tray in a desktop session; `watch`, with
//! one line saying so, where there is none (unless `--tray` insists).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::Context;
use super::devices::mux_address;
use crate::device::MuxAddress;
use crate::monitor::MonitorConfig;
use crate::monitor::shell::ShellOptions;
use crate::tray::{self, Demo, Setup, TrayError};

pub fn run(ctx: &Context, force: bool) -> Result<ExitCode> {
    if !force && !tray::graphical_session_here() {
        eprintln!(
            "No graphical session (DISPLAY and WAYLAND_DISPLAY are unset): watching backups here instead of in the tray."
        );
        return super::watch::run(ctx, &[], false, false, true);
    }
    let runtime = super::runtime()?;
    let setup = setup(
        ctx,
        ctx.root_paths(&[]),
        mux_address(ctx).ok(),
        ctx.config.monitor.monitor_config(),
        None,
    )?;
    start(ctx, runtime, setup, force, || {
        super::watch::run(ctx, &[], false, false, true)
    })
}

/// Runs the tray on `runtime` (shut down when it ends); when it cannot reach
/// the display, `fallback` runs instead (or, with `force`, a clear error).
pub fn start(
    _ctx: &Context,
    runtime: tokio::runtime::Runtime,
    setup: Setup,
    force: bool,
    fallback: impl FnOnce() -> Result<ExitCode>,
) -> Result<ExitCode> {
    let ran = tray::run(&runtime, setup);
    // A backup thread still waiting for an answer must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match ran {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(TrayError::NoDisplay(why)) if force => bail!(
            "cannot start the tray: no display to show it on ({why}). Run Unstuck inside a desktop session, or use `unstuck watch`"
        ),
        Err(TrayError::NoDisplay(why)) => {
            eprintln!("Cannot open the display ({why}): watching backups here instead.");
            fallback()
        }
        Err(e @ TrayError::Icon(_)) => {
            bail!("{e}. Is a DBus session running? `unstuck watch` works without a tray")
        }
    }
}

/// The tray's settings from the context: the monitor over `roots` and
/// `usbmuxd`, the tray's own backups into the standard folder.
pub fn setup(
    ctx: &Context,
    roots: Vec<PathBuf>,
    usbmuxd: Option<MuxAddress>,
    monitor: MonitorConfig,
    demo: Option<Demo>,
) -> Result<Setup> {
    Ok(Setup {
        shell: ShellOptions {
            roots,
            usbmuxd,
            config: monitor,
            busy_poll: Duration::from_secs(ctx.config.monitor.poll_seconds_busy),
            idle_poll: Duration::from_secs(ctx.config.monitor.poll_seconds_idle),
            notify: true,
            data_dir: Some(ctx.dirs.data_dir.clone()),
        },
        backup: ctx.backup_options(None, None)?,
        platform_command: ctx.config.backup.platform_command.clone(),
        data_dir: ctx.dirs.data_dir.clone(),
        log_file: ctx.dirs.log_file(),
        config_file: ctx.config_path.clone(),
        exe: std::env::current_exe().context("cannot find this program's path")?,
        demo,
    })
}
