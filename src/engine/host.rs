//! What the engine learns from and leaves on the host: other backup programs
//! running (sysinfo), the lock that keeps two Unstuck backups of one phone
//! apart, and the Info.plist a backup folder starts with.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use plist::{Dictionary, Value};
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use crate::device::DeviceFacts;
use crate::process::{self, Holder, Identity, Recorded};

/// Programs that make iPhone backups, by process name.
const BACKUP_PROGRAMS: [&str; 3] = ["AppleMobileBackup", "idevicebackup2", "pymobiledevice3"];

/// A backup program seen among the running processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupProgram {
    pub name: &'static str,
    /// The phone its command line names (`-u`/`--udid`), if any.
    pub udid: Option<String>,
}

/// Whether `p` is a program making an iPhone backup, and for which phone.
/// pymobiledevice3 counts only when its command line says "backup"; a
/// zombie has exited (only its parent has not noticed yet) and does not
/// count. The monitor and pre-flight both ask this.
pub(crate) fn backup_program(p: &sysinfo::Process) -> Option<BackupProgram> {
    if p.status() == sysinfo::ProcessStatus::Zombie {
        return None;
    }
    let name = p.name().to_string_lossy();
    let program = BACKUP_PROGRAMS.iter().find(|b| name.starts_with(*b))?;
    let args: Vec<String> = p
        .cmd()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if *program == "pymobiledevice3" && !args.iter().any(|a| a == "backup") {
        return None;
    }
    Some(BackupProgram {
        name: program,
        udid: named_udid(&args),
    })
}

/// The phone a command line names with `-u`/`--udid`.
pub(crate) fn named_udid(args: &[String]) -> Option<String> {
    args.windows(2)
        .find(|w| w[0] == "-u" || w[0] == "--udid")
        .and_then(|w| crate::backup_folder::normalize_udid(&w[1]))
}

/// Backup programs running now for the phone `udid`, other than this
/// process: (name, pid). A program whose command line names another phone
/// is not counted; one that names none may be backing up this one.
pub fn other_backups(udid: &str) -> Vec<(String, u32)> {
    let Ok(mut system) = System::new() else {
        tracing::warn!("cannot list processes; not checking for other backups");
        return Vec::new();
    };
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always),
    );
    let me = std::process::id();
    let this_phone = crate::backup_folder::normalize_udid(udid);
    let mut found: Vec<(String, u32)> = system
        .processes()
        .values()
        .filter(|p| p.pid().as_u32() != me)
        .filter_map(|p| {
            let program = backup_program(p)?;
            let ours = program.udid.is_none() || program.udid == this_phone;
            ours.then(|| (program.name.to_owned(), p.pid().as_u32()))
        })
        .collect();
    found.sort();
    found
}

/// The lock file of `udid` in `dest`.
fn lock_path(dest: &Path, udid: &str) -> PathBuf {
    dest.join(format!(".unstuck-{udid}.lock"))
}

/// What the lock records: the holder's PID, start time and program as JSON;
/// a lock written by an older Unstuck holds only a PID. `None`: not a lock
/// Unstuck wrote.
fn parse_lock(text: &str) -> Option<Recorded> {
    if let Ok(identity) = serde_json::from_str::<Identity>(text) {
        return Some(Recorded::Known(identity));
    }
    text.trim().parse::<u32>().ok().map(Recorded::PidOnly)
}

/// Who holds the lock at `path` now. A lock that cannot be read, or names
/// a process that is gone or whose PID another process has since, is held
/// by nobody.
fn holder_of(path: &Path) -> Option<Holder> {
    let record = parse_lock(&fs::read_to_string(path).ok()?)?;
    let pid = match &record {
        Recorded::Known(identity) => identity.pid,
        Recorded::PidOnly(pid) => *pid,
    };
    process::judge(&record, process::look(pid).as_ref())
}

/// Held while Unstuck backs up one phone into one destination; a second
/// run is refused while the first is alive. Removed on drop.
#[derive(Debug)]
pub struct BackupLock {
    path: PathBuf,
}

impl BackupLock {
    /// Takes the lock, or says which process holds it. A stale lock (see
    /// [`process::judge`]) is taken over; one of an older Unstuck whose PID
    /// is alive is respected, since nothing tells whose it is.
    pub fn acquire(dest: &Path, udid: &str) -> io::Result<Result<BackupLock, u32>> {
        let path = lock_path(dest, udid);
        let me = process::me().unwrap_or(Identity {
            pid: std::process::id(),
            start: 0,
            exe: None,
        });
        let text = serde_json::to_string(&me).map_err(io::Error::other)?;
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    io::Write::write_all(&mut file, text.as_bytes())?;
                    return Ok(Ok(BackupLock { path }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match holder_of(&path) {
                    Some(holder) if holder.pid() != me.pid => return Ok(Err(holder.pid())),
                    _ => fs::remove_file(&path)?,
                },
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("the backup lock keeps reappearing"))
    }
}

/// The process holding the lock for `udid` in `dest` (this one, too):
/// `None` when there is no lock or it is stale.
pub fn lock_holder(dest: &Path, udid: &str) -> Option<Holder> {
    holder_of(&lock_path(dest, udid))
}

impl Drop for BackupLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `<folder>/Info.plist` from the phone's facts, as iTunes and
/// idevicebackup2 do before a backup, through a temporary file and a rename.
pub fn write_info_plist(
    folder: &Path,
    facts: &DeviceFacts,
    now: jiff::Timestamp,
) -> io::Result<()> {
    let mut d = Dictionary::new();
    let mut text = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            d.insert(k.into(), Value::String(v.clone()));
        }
    };
    text("Build Version", &facts.build_version);
    text("Device Name", &facts.name);
    text("Display Name", &facts.name);
    text("Product Type", &facts.product_type);
    text("Product Version", &facts.ios_version);
    text("Serial Number", &facts.serial);
    d.insert("GUID".into(), guid(&facts.udid).into());
    d.insert("Last Backup Date".into(), crate::synthetic::plist_date(now));
    d.insert("Target Identifier".into(), facts.udid.clone().into());
    d.insert("Target Type".into(), "Device".into());
    d.insert(
        "Unique Identifier".into(),
        facts.udid.to_ascii_uppercase().into(),
    );
    fs::create_dir_all(folder)?;
    let part = folder.join("Info.plist.unstuck-part");
    Value::Dictionary(d)
        .to_file_xml(&part)
        .map_err(io::Error::other)?;
    fs::rename(&part, folder.join("Info.plist"))
}

/// A stable 32-hex-digit GUID for this phone (iTunes writes one per host).
fn guid(udid: &str) -> String {
    crate::synthetic::file_id("Unstuck", udid)[..32].to_ascii_uppercase()
}
