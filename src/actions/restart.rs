//! Restart the backup and restart the iPhone. A stuck program of another
//! tool is named (process, how long it wrote nothing) and stopped only after
//! a yes; leftovers that would make the next run fail go to the trash; then
//! Unstuck's own engine backs up.

use std::time::Duration;

use sysinfo::{Pid, ProcessesToUpdate, Signal, System};
use thiserror::Error;
use tokio::sync::mpsc;

use super::Confirm;
use super::storage::{self, ItemKind};
use crate::device::{self, DeviceError, MuxAddress};
use crate::engine::{self, BackupEvent, BackupOptions, BackupReport, EngineError};

#[derive(Debug, Error)]
pub enum RestartError {
    #[error("nothing was changed: you said no")]
    Declined,
    #[error("{name} (process {pid}) did not stop: stop it yourself, then try again")]
    StillRunning { name: String, pid: u32 },
    #[error(transparent)]
    Cleanup(#[from] storage::CleanupError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Stops other backup programs working for the phone (after a yes each),
/// moves the leftovers that make the phone fail to the trash, and backs up
/// with Unstuck's engine.
pub async fn restart_backup(
    addr: &MuxAddress,
    options: &BackupOptions,
    confirm: &mut dyn Confirm,
    events: &mpsc::UnboundedSender<BackupEvent>,
) -> Result<BackupReport, RestartError> {
    let udid = prepare(addr, options, confirm).await?;
    let mut options = options.clone();
    options.udid = Some(udid);
    Ok(engine::backup(addr, &options, events).await?)
}

/// What every restart does first: stop what is stuck (after a yes) and clear
/// the leftovers that make the phone fail. Returns the phone's UDID.
pub async fn prepare(
    addr: &MuxAddress,
    options: &BackupOptions,
    confirm: &mut dyn Confirm,
) -> Result<String, RestartError> {
    let facts = device::facts(addr, options.udid.as_deref(), options.deadline).await?;
    let udid = facts.udid.clone();
    // Unstuck's own backup in another process: cancel it and start again.
    if let Some(pid) = engine::lock_holder(&options.dest, &udid) {
        if !confirm.confirm(&format!(
            "Unstuck is already backing up this iPhone (process {pid}). Stop that backup and start again?"
        )) {
            return Err(RestartError::Declined);
        }
        if !stop(pid).await {
            return Err(RestartError::StillRunning {
                name: "unstuck".into(),
                pid,
            });
        }
    }
    for (name, pid) in engine::other_backups(&udid) {
        let question = format!(
            "{name} (process {pid}) is backing up this iPhone but is stuck. Stop it and start again with Unstuck?"
        );
        if !confirm.confirm(&question) {
            return Err(RestartError::Declined);
        }
        stop(pid)
            .await
            .then_some(())
            .ok_or(RestartError::StillRunning { name, pid })?;
    }
    let leftovers: Vec<storage::Item> = storage::survey(
        std::slice::from_ref(&options.dest),
        jiff::Timestamp::now(),
        jiff::SignedDuration::from_hours(24 * 365 * 10),
    )
    .into_iter()
    .filter(|i| i.udid.as_deref() == Some(udid.as_str()))
    .filter(|i| {
        matches!(
            i.kind,
            ItemKind::SnapshotFolder | ItemKind::EmptyManifestPlist
        )
    })
    .collect();
    for item in &leftovers {
        storage::move_to_trash(item, confirm)?;
    }
    Ok(udid)
}

/// Runs the platform's own backup tool instead of Unstuck's engine: the
/// command from the config file (`[backup] platform_command`), with
/// `{udid}` and `{dest}` filled in. Its flags are configuration, not
/// something Unstuck knows for certain.
pub async fn run_platform_command(
    command: &[String],
    udid: &str,
    dest: &std::path::Path,
) -> Result<std::process::ExitStatus, std::io::Error> {
    let fill = |a: &String| {
        a.replace("{udid}", udid)
            .replace("{dest}", &dest.to_string_lossy())
    };
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("platform_command is empty"))?;
    tokio::process::Command::new(fill(program))
        .args(args.iter().map(fill))
        .status()
        .await
}

/// Asks a process to stop (SIGTERM), waits up to 5 s, then insists.
async fn stop(pid: u32) -> bool {
    let Ok(mut system) = System::new() else {
        return false;
    };
    let pid = Pid::from_u32(pid);
    let gone = |system: &mut System| {
        system.refresh_processes(ProcessesToUpdate::Some(&[pid]), true);
        system
            .process(pid)
            .is_none_or(|p| p.status() == sysinfo::ProcessStatus::Zombie)
    };
    if gone(&mut system) {
        return true;
    }
    if let Some(p) = system.process(pid) {
        p.kill_with(Signal::Term).unwrap_or_else(|| p.kill());
    }
    for _ in 0..50 {
        if gone(&mut system) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(p) = system.process(pid) {
        p.kill();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    gone(&mut system)
}

/// Restarts the iPhone (the fix for error 3, and often for a phone that
/// stopped answering), after a yes.
pub async fn restart_phone(
    addr: &MuxAddress,
    udid: Option<&str>,
    confirm: &mut dyn Confirm,
) -> Result<(), RestartError> {
    let facts = device::facts(addr, udid, device::DEADLINE).await?;
    let name = facts.name.unwrap_or_else(|| "the iPhone".into());
    if !confirm.confirm(&format!(
        "Restart {name} now? It will be away for a minute."
    )) {
        return Err(RestartError::Declined);
    }
    device::restart_phone(addr, Some(&facts.udid), device::DEADLINE).await?;
    Ok(())
}
