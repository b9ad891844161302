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

/// Programs that make iPhone backups, by process name as [`is_program`]
/// compares it. AppleMobileBackup does the work for Finder and iTunes on
/// macOS (…/MobileDevice.framework/…/AppleMobileDeviceHelper.app/Contents/
/// Resources/AppleMobileBackup, https://github.com/wazuh/wazuh/issues/16023)
/// and on Windows, as AppleMobileBackup.exe, "Backs up the data on your
/// iPhone" (Apple, https://support.apple.com/en-us/102018).
const BACKUP_PROGRAMS: [&str; 3] = ["AppleMobileBackup", "idevicebackup2", "pymobiledevice3"];

/// A backup program seen among the running processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupProgram {
    pub name: &'static str,
    /// The phone its command line names ([`named_udid`]), if any.
    pub udid: Option<String>,
}

/// Whether `p` is a program making an iPhone backup, and for which phone.
/// pymobiledevice3 counts only when its command line says "backup"; a
/// zombie has exited (only its parent has not noticed yet) and does not
/// count. The monitor and pre-flight both ask this.
pub(crate) fn backup_program(p: &sysinfo::Process) -> Option<BackupProgram> {
    // A zombie has exited; a thread (Linux lists each with a PID of its
    // own) is part of a program already counted.
    if p.status() == sysinfo::ProcessStatus::Zombie || p.thread_kind().is_some() {
        return None;
    }
    let args: Vec<String> = p
        .cmd()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    backup_program_named(&p.name().to_string_lossy(), &args)
}

/// `backup_program` for a live process whose name and command line the
/// caller has read already (the monitor reads them for other programs too).
pub(crate) fn backup_program_named(name: &str, args: &[String]) -> Option<BackupProgram> {
    let program = BACKUP_PROGRAMS
        .iter()
        .copied()
        .find(|b| is_program(name, b))?;
    if program == "pymobiledevice3" && !args.iter().any(|a| a == "backup") {
        return None;
    }
    Some(BackupProgram {
        name: program,
        udid: named_udid(args),
    })
}

/// Whether the process the OS calls `name` runs `program` (a name as this
/// crate spells it, with no ".exe"): a trailing ".exe" and the case are
/// ignored.
///
/// # Platform specific behavior
/// sysinfo names a Windows process by its file, `PROCESSENTRY32W.szExeFile`,
/// ".exe" included and in the case it has on disk (sysinfo 0.40.4
/// src/windows/process.rs:386); Windows' and macOS's usual file systems
/// ignore case, so the same program may be spelt either way. On macOS the
/// name is the executable's file name (src/unix/apple/macos/process.rs:532);
/// on Linux the kernel's `comm`, which is the name of a program run under
/// wine too (`unstuck.exe`).
pub(crate) fn is_program(name: &str, program: &str) -> bool {
    program_stem(name).eq_ignore_ascii_case(program)
}

/// `name` without a trailing ".exe" (in any case).
fn program_stem(name: &str) -> &str {
    match name.len().checked_sub(".exe".len()) {
        Some(at)
            if at > 0
                && name
                    .get(at..)
                    .is_some_and(|ext| ext.eq_ignore_ascii_case(".exe")) =>
        {
            &name[..at]
        }
        _ => name,
    }
}

/// The phone a command line names with `-u`/`--udid` (idevicebackup2,
/// pymobiledevice3, `unstuck`) or `--target` (AppleMobileBackup's
/// `--backup --target <UDID>`; undocumented by Apple,
/// seen at keepmurmuring.blogspot.com/2009).
pub(crate) fn named_udid(args: &[String]) -> Option<String> {
    args.windows(2)
        .find(|w| matches!(w[0].as_str(), "-u" | "--udid" | "--target"))
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

/// Who holds the lock at `path` now: nobody when the file is missing or
/// the system's lock on it is free (its holder ended, however it ended).
/// The record inside names the holder, judged against the process that has
/// its PID now.
fn holder_of(path: &Path) -> Option<Holder> {
    let file = crate::regular_file::open(path, crate::regular_file::Links::Refuse).ok()?;
    match file.try_lock_shared() {
        // Free: whoever wrote it is gone.
        Ok(()) => return None,
        Err(fs::TryLockError::WouldBlock) => {}
        Err(fs::TryLockError::Error(_)) => {}
    }
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(&file, 4096), &mut text).ok()?;
    let record = parse_lock(&text)?;
    let pid = match &record {
        Recorded::Known(identity) => identity.pid,
        Recorded::PidOnly(pid) => *pid,
    };
    process::judge(&record, process::look(pid).as_ref())
}

/// Held while Unstuck backs up one phone into one destination: the
/// system's exclusive lock on `.unstuck-<UDID>.lock`, which ends with the
/// process however it ends (so no lock is ever stale), and inside it the
/// holder's identity for whoever must name or stop it. A second run, in
/// this process or another, is refused while it is held. The file is
/// removed on drop.
#[derive(Debug)]
pub struct BackupLock {
    path: PathBuf,
    /// Holds the system's lock until dropped.
    _file: fs::File,
}

impl BackupLock {
    /// Takes the lock, or says which process holds it (0 when its record
    /// cannot be read).
    pub fn acquire(dest: &Path, udid: &str) -> io::Result<Result<BackupLock, u32>> {
        let path = lock_path(dest, udid);
        for _ in 0..3 {
            let mut options = fs::OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
            }
            let mut file = options.open(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Ok(Err(holder_of(&path).map_or(0, |h| h.pid())));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            // The previous holder may have removed the file between our
            // open and our lock: then this lock is on a file no one else
            // can find, and the path is tried again.
            if !same_file(&file, &path) {
                continue;
            }
            let me = process::me().unwrap_or(Identity {
                pid: std::process::id(),
                start: 0,
                exe: None,
            });
            let text = serde_json::to_string(&me).map_err(io::Error::other)?;
            file.set_len(0)?;
            io::Write::write_all(&mut file, text.as_bytes())?;
            return Ok(Ok(BackupLock { path, _file: file }));
        }
        Err(io::Error::other("the backup lock keeps being replaced"))
    }
}

/// Whether the open `file` is still the one at `path`.
fn same_file(file: &fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        // Windows does not let a file that is open without delete sharing be
        // removed, so the path still names it.
        let _ = (file, path);
        true
    }
}

/// The process holding the lock for `udid` in `dest` (this one, too):
/// `None` when there is no lock or no one holds it.
pub fn lock_holder(dest: &Path, udid: &str) -> Option<Holder> {
    holder_of(&lock_path(dest, udid))
}

impl Drop for BackupLock {
    fn drop(&mut self) {
        // Removed while still locked, so no one can lock the old file after
        // it is gone; the system's lock ends with `_file`.
        let _ = fs::remove_file(&self.path);
    }
}

/// The Info.plist a backup folder starts with, from the phone's facts and
/// apps, with the keys Finder, iTunes and idevicebackup2 write before a
/// backup (libimobiledevice `tools/idevicebackup2.c`, `mobilebackup_factory_info_plist_new`).
pub fn info_plist(
    facts: &DeviceFacts,
    apps: &[crate::device::AppRecord],
    now: jiff::Timestamp,
) -> Value {
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
    text("IMEI", &facts.cellular.imei);
    text("MEID", &facts.cellular.meid);
    text("ICCID", &facts.cellular.iccid);
    text("Phone Number", &facts.cellular.phone_number);
    d.insert("GUID".into(), guid(&facts.udid).into());
    d.insert("Last Backup Date".into(), crate::synthetic::plist_date(now));
    d.insert("Target Identifier".into(), facts.udid.clone().into());
    d.insert("Target Type".into(), "Device".into());
    d.insert(
        "Unique Identifier".into(),
        facts.udid.to_ascii_uppercase().into(),
    );
    d.insert(
        "Installed Applications".into(),
        Value::Array(apps.iter().map(|a| a.bundle_id.clone().into()).collect()),
    );
    // Licensed apps with their licence, metadata and icon: what a restore
    // reinstalls them from.
    let mut applications = Dictionary::new();
    for app in apps {
        let (Some(sinf), Some(metadata)) = (&app.sinf, &app.metadata) else {
            continue;
        };
        let mut entry = Dictionary::new();
        entry.insert("ApplicationSINF".into(), Value::Data(sinf.clone()));
        entry.insert("iTunesMetadata".into(), Value::Data(metadata.clone()));
        if let Some(icon) = &app.icon {
            entry.insert("PlaceholderIcon".into(), Value::Data(icon.clone()));
        }
        applications.insert(app.bundle_id.clone(), Value::Dictionary(entry));
    }
    d.insert("Applications".into(), Value::Dictionary(applications));
    // Unstuck syncs no iTunes media or settings: both are empty, as
    // idevicebackup2 writes them for a phone without them.
    d.insert("iTunes Files".into(), Value::Dictionary(Dictionary::new()));
    d.insert(
        "iTunes Settings".into(),
        Value::Dictionary(Dictionary::new()),
    );
    // The phone's MinITunesVersion; idevicebackup2 writes "10.0.1" when the
    // phone does not say.
    d.insert(
        "iTunes Version".into(),
        facts
            .min_itunes_version
            .clone()
            .unwrap_or_else(|| "10.0.1".to_owned())
            .into(),
    );
    Value::Dictionary(d)
}

/// A stable 32-hex-digit GUID for this phone (iTunes writes one per host).
fn guid(udid: &str) -> String {
    crate::synthetic::file_id("Unstuck", udid)[..32].to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    /// The program `name` running `line` is taken for, if any.
    fn check(name: &str, line: &str, expected: Option<(&str, Option<&str>)>) {
        let found = backup_program_named(name, &args(line));
        let found = found.as_ref().map(|b| (b.name, b.udid.as_deref()));
        assert_eq!(found, expected, "{name} {line}");
    }

    const UDID: &str = "00008150-001A2B3C4D5E6F70";

    #[test]
    fn backup_programs_are_known_by_name_on_every_platform() {
        let backup = format!("idevicebackup2 -u {UDID} backup /bk");
        check(
            "idevicebackup2",
            &backup,
            Some(("idevicebackup2", Some(UDID))),
        );
        // Windows: the file name with ".exe", in the case it has on disk.
        check(
            "idevicebackup2.exe",
            &backup,
            Some(("idevicebackup2", Some(UDID))),
        );
        check(
            "IDeviceBackup2.EXE",
            &backup,
            Some(("idevicebackup2", Some(UDID))),
        );
        // Apple's own, on macOS and Windows, naming its phone with --target.
        let apple = format!("AppleMobileBackup --backup --target {UDID}");
        check(
            "AppleMobileBackup",
            &apple,
            Some(("AppleMobileBackup", Some(UDID))),
        );
        check(
            "AppleMobileBackup.exe",
            "AppleMobileBackup.exe",
            Some(("AppleMobileBackup", None)),
        );
        check(
            "applemobilebackup.exe",
            "",
            Some(("AppleMobileBackup", None)),
        );
        // pymobiledevice3 only when it backs up.
        check(
            "pymobiledevice3.exe",
            "pymobiledevice3 backup2 backup /bk",
            Some(("pymobiledevice3", None)),
        );
        check("pymobiledevice3", "pymobiledevice3 usbmux list", None);
        check(
            "pymobiledevice3",
            "pymobiledevice3 backup /bk",
            Some(("pymobiledevice3", None)),
        );
        // A name that only begins like one is another program.
        check("idevicebackup2-gui", &backup, None);
        check("AppleMobileBackupHelper.exe", "", None);
        check(".exe", "", None);
        check("", "", None);
    }

    #[test]
    fn process_names_lose_exe_and_case() {
        assert!(is_program("unstuck", "unstuck"));
        assert!(is_program("unstuck.exe", "unstuck"));
        assert!(is_program("Unstuck.EXE", "unstuck"));
        assert!(!is_program("unstuck.exe.bak", "unstuck"));
        assert!(!is_program("unstuckd", "unstuck"));
        assert!(!is_program("exe", "unstuck"));
        assert_eq!(program_stem(".exe"), ".exe");
        assert_eq!(program_stem("iTunes.exe"), "iTunes");
        // ".exe"'s length from the end falls inside '€': not cut there.
        assert_eq!(program_stem("Ph€one"), "Ph€one");
        assert_eq!(program_stem("ö.exe"), "ö");
    }
}
