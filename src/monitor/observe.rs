//! Reads the world into an [`Observation`]: backup folders (cheaply: only
//! the hashed sub-folders that changed since the last poll are listed
//! again), backup programs (sysinfo: alive, CPU, bytes written) and the free
//! space under each folder. Phones come from the device layer, given in.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::model::*;
use crate::backup_folder::{self, SnapshotState, plists};
use crate::device::{AttachedDevice, DeviceFacts};

/// Programs that are always around but write backups for Apple's apps (the
/// programs whose presence means a backup is on are `engine::host`'s).
const HELPER_PROGRAMS: [&str; 4] = [
    "AMPDevicesAgent",
    "AppleMobileDeviceHelper",
    "iTunes",
    "AppleDevices",
];

/// What one hashed sub-folder held when last listed.
#[derive(Debug, Clone, Copy)]
struct DirSample {
    modified: SystemTime,
    files: u64,
    bytes: u64,
}

#[derive(Debug, Default)]
struct FolderCache {
    dirs: HashMap<String, DirSample>,
    status: Option<(SystemTime, Option<plists::StatusPlist>)>,
    name: Option<String>,
    /// Bytes when Status.plist last said finished.
    complete_bytes: Option<u64>,
}

/// Keeps what makes the next poll cheap.
#[derive(Default)]
pub struct Sampler {
    folders: HashMap<PathBuf, FolderCache>,
    system: Option<System>,
    /// `--version` of each backup program, by executable.
    versions: HashMap<PathBuf, Option<String>>,
    /// Where `unstuck backup` keeps its run records.
    runs: Option<PathBuf>,
    /// The history file, and what it said of each phone's last complete
    /// backup (asked again after a minute).
    history: Option<PathBuf>,
    remembered: HashMap<String, (std::time::Instant, Option<Timestamp>)>,
    /// The history, opened once (its open checks the whole file) and
    /// kept; dropped after a failed query, to be opened again.
    opened: Option<crate::history::History>,
}

/// Which program the process called `name` with command line `args` is:
/// its name as the monitor spells it, whether it is one of Apple's helpers,
/// and the phone its command line names. `None` for the rest. Names are
/// compared by `engine::is_program` (".exe" and case ignored: Windows names
/// processes by file, ".exe" included), so another process's
/// `unstuck.exe backup` is seen on Windows too.
fn recognise(name: &str, args: &[String]) -> Option<(&'static str, bool, Option<String>)> {
    use crate::engine::is_program;
    if let Some(b) = crate::engine::backup_program_named(name, args) {
        Some((b.name, false, b.udid))
    } else if let Some(h) = HELPER_PROGRAMS
        .iter()
        .copied()
        .find(|h| is_program(name, h))
    {
        Some((h, true, None))
    } else if is_program(name, "unstuck") && backs_up(args) {
        Some(("unstuck", false, crate::engine::named_udid(args)))
    } else {
        None
    }
}

/// Whether an `unstuck` command line makes a backup: `unstuck backup`, or
/// `unstuck fix restart`, which backs up once it has cleared the way.
fn backs_up(args: &[String]) -> bool {
    let words: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    words.contains(&"backup") || words.windows(2).any(|w| w == ["fix", "restart"])
}

/// Gives `watched` the last complete backup of `other` when that one is
/// newer: one phone's backups in two roots.
fn keep_newest_complete(watched: &mut FolderSample, other: &FolderSample) {
    if other.last_complete > watched.last_complete {
        watched.last_complete = other.last_complete;
        watched.last_complete_bytes = other.last_complete_bytes;
    }
}

/// An attached phone and what it said when asked for its facts.
pub type AttachedPhones = HashMap<String, (AttachedDevice, Facts)>;

/// What an attached phone answered when asked for its facts.
#[derive(Debug, Clone)]
pub enum Facts {
    /// Not asked yet, or no answer yet.
    Pending,
    Known(Box<DeviceFacts>),
    /// It refused: locked, not trusted, or usbmuxd has no pairing for it.
    Refused(crate::device::DeviceError),
}

impl Facts {
    pub fn known(&self) -> Option<&DeviceFacts> {
        match self {
            Facts::Known(f) => Some(f),
            _ => None,
        }
    }
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler::default()
    }

    /// A sampler that also reads Unstuck's data folder: `unstuck backup`'s
    /// run records, and the history for a phone whose folder has no
    /// complete backup now.
    pub fn with_data_dir(data_dir: &Path) -> Sampler {
        Sampler {
            runs: Some(data_dir.join("runs")),
            history: Some(crate::history::History::path_in(data_dir)),
            ..Sampler::default()
        }
    }

    /// The last complete backup of `udid` the history remembers.
    fn remembered(&mut self, udid: &str) -> Option<Timestamp> {
        let path = self.history.as_ref()?;
        if let Some((asked, known)) = self.remembered.get(udid)
            && asked.elapsed() < std::time::Duration::from_secs(60)
        {
            return *known;
        }
        if self.opened.is_none() {
            self.opened = crate::history::History::open_existing(path).ok().flatten();
        }
        let known = match self.opened.as_ref().map(|h| h.last_complete(udid)) {
            Some(Ok(known)) => known,
            Some(Err(_)) => {
                self.opened = None;
                None
            }
            None => None,
        };
        self.remembered
            .insert(udid.to_owned(), (std::time::Instant::now(), known));
        known
    }

    /// One observation of every backup folder in `roots`, every phone in
    /// `attached`, and the backup programs running.
    pub fn sample(&mut self, roots: &[PathBuf], attached: &AttachedPhones) -> Observation {
        let mut phones: HashMap<String, PhoneObservation> = HashMap::new();
        for root in roots {
            let Ok(entries) = fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !path.is_dir() {
                    continue;
                }
                let Some(udid) = backup_folder::normalize_udid(&name) else {
                    continue;
                };
                let mut folder = self.sample_folder(&path);
                let cache = self.folders.get(&path);
                if let Some(other) = phones.get_mut(&udid).and_then(|p| p.folder.as_mut()) {
                    // The same phone in two roots: the folder written last
                    // is the one to watch, and the newest complete backup
                    // in either is the phone's last complete one.
                    if folder.last_activity > other.last_activity {
                        std::mem::swap(other, &mut folder);
                    }
                    keep_newest_complete(other, &folder);
                    continue;
                }
                phones.insert(
                    udid.clone(),
                    PhoneObservation {
                        udid,
                        name: cache.and_then(|c| c.name.clone()),
                        folder: Some(folder),
                        device: None,
                        engine: None,
                    },
                );
            }
        }
        for (udid, (device, facts)) in attached {
            let entry = phones
                .entry(udid.clone())
                .or_insert_with(|| PhoneObservation {
                    udid: udid.clone(),
                    name: None,
                    folder: None,
                    device: None,
                    engine: None,
                });
            let refused = match facts {
                Facts::Refused(e) => Some(e.to_string()),
                _ => None,
            };
            let facts = facts.known();
            if let Some(f) = facts {
                entry.name = f.name.clone().or(entry.name.take());
            }
            entry.device = Some(DeviceSample {
                link: Some(device.link),
                ios_version: facts.and_then(|f| f.ios_version.clone()),
                free: facts.and_then(|f| f.storage.map(|s| s.free)),
                used: facts.and_then(|f| f.storage.map(|s| s.used())),
                will_encrypt: facts.and_then(|f| f.backup.will_encrypt),
                refused,
            });
        }
        let mut processes = self.processes();
        let records = self
            .runs
            .as_deref()
            .map(crate::engine::record::read_all)
            .unwrap_or_default();
        for record in records {
            // The `unstuck backup` process of a record works for its phone,
            // and has written what the record says.
            if let Some(p) = processes.iter_mut().find(|p| {
                p.pid == record.pid
                    && p.name == "unstuck"
                    && record.state == crate::engine::record::RunState::Running
            }) {
                p.udid = Some(record.udid.clone());
                p.written_bytes = record.bytes;
            }
            // The tray backs up inside this very process, which the
            // process list leaves out: its record stands for it.
            if record.pid == std::process::id()
                && record.state == crate::engine::record::RunState::Running
            {
                processes.push(BackupProcess {
                    name: "unstuck".into(),
                    pid: record.pid,
                    cpu_percent: 0.0,
                    written_bytes: record.bytes,
                    udid: Some(record.udid.clone()),
                    version: None,
                    helper: false,
                });
            }
            if let Some(phone) = phones.get_mut(&record.udid) {
                phone.engine = Some(EngineRun {
                    state: record.state,
                    percent: record.percent,
                    bytes: record.bytes,
                    error_code: record.error_code,
                    failure: record.failure,
                    cause: record.cause,
                    updated: record.updated,
                });
            }
        }
        if self.runs.is_some() {
            // Every Unstuck backup keeps a run record from its first moments;
            // one whose record is not among ours (another user's, another
            // data folder's) backs up a phone this watch cannot name, so it
            // is not pinned on every phone here that backed up lately.
            processes.retain(|p| p.name != "unstuck" || p.udid.is_some());
        }
        for phone in phones.values_mut() {
            if let Some(folder) = phone.folder.as_mut()
                && folder.last_complete.is_none()
            {
                folder.remembered_complete = self.remembered(&phone.udid);
            }
        }
        let mut phones: Vec<PhoneObservation> = phones.into_values().collect();
        phones.sort_by(|a, b| a.udid.cmp(&b.udid));
        Observation {
            phones,
            processes,
            network_up: network_up(),
        }
    }

    fn sample_folder(&mut self, path: &Path) -> FolderSample {
        let cache = self.folders.entry(path.to_path_buf()).or_default();
        let mut last_activity: Option<SystemTime> = None;
        let mut note = |t: SystemTime| {
            if last_activity.is_none_or(|l| t > l) {
                last_activity = Some(t);
            }
        };
        // The 256 hashed sub-folders: list again only those that changed.
        for b in 0..=255u8 {
            let name = format!("{b:02x}");
            let dir = path.join(&name);
            let Ok(meta) = fs::metadata(&dir) else {
                cache.dirs.remove(&name);
                continue;
            };
            let Ok(modified) = meta.modified() else {
                continue;
            };
            note(modified);
            if cache
                .dirs
                .get(&name)
                .is_some_and(|d| d.modified == modified)
            {
                continue;
            }
            let (files, bytes) = list(&dir);
            cache.dirs.insert(
                name,
                DirSample {
                    modified,
                    files,
                    bytes,
                },
            );
        }
        let snapshot = path.join("Snapshot");
        let stale_snapshot = snapshot.is_dir();
        let (mut files, mut bytes) = cache
            .dirs
            .values()
            .fold((0, 0), |(f, b), d| (f + d.files, b + d.bytes));
        if stale_snapshot {
            // Old iOS writes into Snapshot/ first; count it (small, rare).
            let (f, b) = list(&snapshot);
            files += f;
            bytes += b;
            if let Ok(m) = fs::metadata(&snapshot).and_then(|m| m.modified()) {
                note(m);
            }
        }
        let status_path = path.join("Status.plist");
        let status_modified = fs::metadata(&status_path).and_then(|m| m.modified()).ok();
        if let Some(m) = status_modified {
            note(m);
            if cache.status.as_ref().is_none_or(|(seen, _)| *seen != m) {
                // Capped and regular files only: a Status.plist that is a
                // symlink to a device must not be read without end.
                let parsed = plists::read_status(&status_path).ok();
                cache.status = Some((m, parsed));
            }
        } else {
            cache.status = None;
        }
        let mut empty_manifest_plist = false;
        for name in ["Manifest.db", "Manifest.plist", "Info.plist"] {
            let Ok(meta) = fs::metadata(path.join(name)) else {
                continue;
            };
            if name == "Manifest.plist" {
                empty_manifest_plist = meta.len() == 0;
            }
            if let Ok(m) = meta.modified() {
                note(m);
            }
        }
        if cache.name.is_none() {
            cache.name = plists::read_info(&path.join("Info.plist"))
                .ok()
                .and_then(|i| i.device_name);
        }
        let status = cache.status.as_ref().and_then(|(_, s)| s.clone());
        let snapshot_state = status.as_ref().and_then(|s| s.snapshot_state.clone());
        let finished = snapshot_state == Some(SnapshotState::Finished);
        if finished {
            cache.complete_bytes = Some(bytes);
        }
        let to_ts = |t: SystemTime| Timestamp::try_from(t).ok();
        FolderSample {
            path: path.to_path_buf(),
            snapshot_state,
            status_modified: status_modified.and_then(to_ts),
            last_complete: if finished {
                status.and_then(|s| s.date)
            } else {
                None
            },
            // Filled from the history by `sample` when wanted.
            remembered_complete: None,
            last_complete_bytes: cache.complete_bytes,
            bytes,
            files,
            empty_manifest_plist,
            stale_snapshot: stale_snapshot && !finished,
            host_free: Some(crate::backup_folder::free_space(path)),
            last_activity: last_activity.and_then(to_ts),
        }
    }

    fn processes(&mut self) -> Vec<BackupProcess> {
        if self.system.is_none() {
            self.system = System::new().ok();
        }
        let Some(system) = self.system.as_mut() else {
            return Vec::new();
        };
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cmd(UpdateKind::OnlyIfNotSet)
                .with_cpu()
                .with_disk_usage(),
        );
        let me = std::process::id();
        let versions = &mut self.versions;
        let mut found: Vec<BackupProcess> = system
            .processes()
            .values()
            // A zombie has exited; only its parent has not noticed yet.
            .filter(|p| p.pid().as_u32() != me && p.thread_kind().is_none())
            .filter(|p| p.status() != sysinfo::ProcessStatus::Zombie)
            .filter_map(|p| {
                let name = p.name().to_string_lossy().into_owned();
                let args: Vec<String> = p
                    .cmd()
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                let (program, helper, udid) = recognise(&name, &args)?;
                // Only programs known to answer --version harmlessly are asked.
                let version = if helper || !matches!(program, "idevicebackup2" | "pymobiledevice3")
                {
                    None
                } else {
                    p.exe().and_then(|exe| {
                        versions
                            .entry(exe.to_path_buf())
                            .or_insert_with(|| version_of(exe))
                            .clone()
                    })
                };
                Some(BackupProcess {
                    name: program.to_owned(),
                    version,
                    pid: p.pid().as_u32(),
                    cpu_percent: p.cpu_usage(),
                    written_bytes: p.disk_usage().total_written_bytes,
                    udid,
                    helper,
                })
            })
            .collect();
        found.sort_by_key(|p| p.pid);
        found
    }
}

/// What `<exe> --version` says, as its last word ("idevicebackup2 1.3.0").
fn version_of(exe: &Path) -> Option<String> {
    let out = std::process::Command::new(exe)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text.split_whitespace().last()?;
    word.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
        .then(|| word.to_owned())
}

/// Whether an interface other than loopback has an address.
fn network_up() -> Option<bool> {
    let networks = sysinfo::Networks::new_with_refreshed_list().ok()?;
    Some(networks.iter().any(|(name, data)| {
        // "lo" on Linux, "lo0" on macOS, "Loopback Pseudo-Interface" on Windows.
        let loopback = name
            .to_string_lossy()
            .to_ascii_lowercase()
            .starts_with("lo");
        !loopback && !data.ip_networks().is_empty()
    }))
}

/// Files and bytes directly in `dir` (the hashed sub-folders are flat).
fn list(dir: &Path) -> (u64, u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .fold((0, 0), |(f, b), m| (f + 1, b + m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Finish, SyntheticBackup};

    #[test]
    fn programs_are_recognised_by_name_with_or_without_exe() {
        fn args(line: &str) -> Vec<String> {
            line.split(' ').map(str::to_owned).collect()
        }
        let udid = "00008150-001A2B3C4D5E6F70";
        let backup = args(&format!("unstuck backup -u {udid}"));
        for name in ["unstuck", "unstuck.exe", "Unstuck.EXE"] {
            assert_eq!(
                recognise(name, &backup),
                Some(("unstuck", false, Some(udid.to_owned()))),
                "{name}"
            );
            assert_eq!(recognise(name, &args("unstuck status")), None, "{name}");
        }
        for name in [
            "iTunes",
            "iTunes.exe",
            "AppleDevices.exe",
            "AMPDevicesAgent",
        ] {
            let (_, helper, _) = recognise(name, &[]).expect(name);
            assert!(helper, "{name}");
        }
        // A name that only begins like a helper's is another program.
        assert_eq!(recognise("iTunesHelper.exe", &[]), None);
        assert_eq!(
            recognise("AppleMobileBackup.exe", &[]),
            Some(("AppleMobileBackup", false, None))
        );
    }

    #[test]
    fn folders_are_sampled_and_only_changed_dirs_relisted() {
        let root = tempfile::tempdir().unwrap();
        let udid = "00008120-001A2B3C4D5E6F70";
        let mut b = SyntheticBackup::new(udid, Timestamp::now());
        b.finish = Finish::Uploading;
        b.files = 30;
        b.file_size = 100;
        let folder = b.write(root.path()).unwrap();
        let mut sampler = Sampler::new();
        let roots = vec![root.path().to_path_buf()];
        let first = sampler.sample(&roots, &AttachedPhones::new());
        let phone = &first.phones[0];
        assert_eq!(phone.udid, udid);
        assert_eq!(phone.name.as_deref(), Some("Test iPhone"));
        let f = phone.folder.as_ref().unwrap();
        assert_eq!(f.snapshot_state, Some(SnapshotState::Uploading));
        assert_eq!(f.files, 30 + 1, "content and the partial file in Snapshot/");
        assert!(f.host_free.unwrap() > 0);
        assert!(f.last_activity.is_some());
        // A new file in one hashed folder is seen.
        let dir = fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().len() == 2)
            .unwrap()
            .path();
        fs::write(dir.join("new-file"), vec![0u8; 1000]).unwrap();
        let second = sampler.sample(&roots, &AttachedPhones::new());
        let g = second.phones[0].folder.as_ref().unwrap();
        assert_eq!(g.files, f.files + 1);
        assert_eq!(g.bytes, f.bytes + 1000);
        assert!(!g.empty_manifest_plist);
        // An emptied Manifest.plist (the "backup corrupt" cause) is seen.
        fs::write(folder.join("Manifest.plist"), b"").unwrap();
        let third = sampler.sample(&roots, &AttachedPhones::new());
        assert!(
            third.phones[0]
                .folder
                .as_ref()
                .unwrap()
                .empty_manifest_plist
        );
    }

    /// One phone in two roots: a complete backup 27 minutes old in one, a
    /// newer attempt that failed in the other. The phone has a complete
    /// backup (no reminder), and the newer folder is the one watched.
    #[test]
    fn one_phone_in_two_roots_keeps_its_newest_complete_backup() {
        let udid = "00008120-001A2B3C4D5E6F70";
        let when = Timestamp::now() - jiff::SignedDuration::from_mins(27);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let complete = SyntheticBackup::new(udid, when).write(a.path()).unwrap();
        // Written a moment later, so its folder is the newer one.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut failed = SyntheticBackup::new(udid, Timestamp::now());
        failed.finish = Finish::EmptyManifestPlist;
        let attempt = failed.write(b.path()).unwrap();
        fs::remove_file(attempt.join("Status.plist")).unwrap();
        for roots in [
            vec![a.path().to_path_buf(), b.path().to_path_buf()],
            vec![b.path().to_path_buf(), a.path().to_path_buf()],
        ] {
            let seen = Sampler::new().sample(&roots, &AttachedPhones::new());
            assert_eq!(seen.phones.len(), 1);
            let f = seen.phones[0].folder.as_ref().unwrap();
            assert_eq!(f.path, attempt, "the folder written last is watched");
            let last = f
                .last_complete
                .expect("the complete backup in the other root");
            assert!(last.duration_since(when).abs() < jiff::SignedDuration::from_secs(2));
            assert_ne!(f.path, complete);
        }
    }

    /// A folder left interrupted has no complete backup; the history in
    /// the data folder remembers one, and the sampler says so (from one
    /// open of the history, kept).
    #[test]
    fn an_interrupted_folder_gets_the_remembered_complete_backup() {
        let udid = "00008120-001A2B3C4D5E6F70";
        let (root, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut b = SyntheticBackup::new(udid, Timestamp::now());
        b.finish = Finish::Uploading;
        b.write(root.path()).unwrap();
        let roots = vec![root.path().to_path_buf()];
        let mut sampler = Sampler::with_data_dir(data.path());
        let none = sampler.sample(&roots, &AttachedPhones::new());
        assert_eq!(
            none.phones[0].folder.as_ref().unwrap().remembered_complete,
            None
        );

        let at = Timestamp::from_second(1_790_000_000).unwrap();
        let history =
            crate::history::History::open(&crate::history::History::path_in(data.path())).unwrap();
        history.complete_seen(udid, at).unwrap();
        // What the sampler learnt is kept for a minute; a new one asks.
        let mut sampler = Sampler::with_data_dir(data.path());
        for _ in 0..2 {
            let seen = sampler.sample(&roots, &AttachedPhones::new());
            let folder = seen.phones[0].folder.as_ref().unwrap();
            assert_eq!(folder.last_complete, None);
            assert_eq!(folder.remembered_complete, Some(at));
        }
    }

    #[cfg(unix)]
    #[test]
    fn hostile_status_and_info_plists_are_passed_over() {
        let root = tempfile::tempdir().unwrap();
        let udid = "00008120-001A2B3C4D5E6F70";
        let folder = SyntheticBackup::new(udid, Timestamp::now())
            .write(root.path())
            .unwrap();
        fs::remove_file(folder.join("Status.plist")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", folder.join("Status.plist")).unwrap();
        // A name, and arrays nested deeper than any plist Apple writes.
        let xml = format!(
            r#"<plist version="1.0"><dict><key>Device Name</key><string>x</string><key>Junk</key>{}</dict></plist>"#,
            "<array>".repeat(70) + &"</array>".repeat(70)
        );
        fs::write(folder.join("Info.plist"), xml).unwrap();
        let mut sampler = Sampler::new();
        let roots = vec![root.path().to_path_buf()];
        let seen = sampler.sample(&roots, &AttachedPhones::new());
        let phone = &seen.phones[0];
        assert_eq!(phone.name, None, "Info.plist nests too deep to be read");
        let f = phone.folder.as_ref().unwrap();
        assert_eq!(f.snapshot_state, None, "Status.plist is a device");
    }
}
