//! The simulated iPhone and Unstuck's backups checked by Python clients and
//! readers no one here wrote, pinned in `tests/peers/requirements.txt`:
//! pymobiledevice3 (backs up, restores, pairs, reads the lockdown clock),
//! iOSbackup, pyiosbackup, iphone-backup-decrypt and mvt (read and decrypt
//! backups through `tests/peers/read_backup.py`). They run from the virtual
//! environment `.ci/run` makes (`target/peers-venv`, or the interpreter in
//! `UNSTUCK_PEERS_PYTHON`); where there is none, each test says SKIPPED.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use unstuck::sim::{Sim, SimConfig, SimEvent};

use super::sim::{UDID, config};

const PASSWORD: &str = "correct horse ö";

/// The venv's python, when there is one.
fn python(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("UNSTUCK_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers-venv/bin/python")
        });
    if path.exists() {
        Some(path)
    } else {
        // CI makes the venv: there a missing one is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: no Python peers at {} in CI",
            path.display()
        );
        eprintln!(
            "SKIPPED {test}: no Python peers at {} (make them: python3 -m venv target/peers-venv && target/peers-venv/bin/pip install -r tests/peers/requirements.txt)",
            path.display()
        );
        None
    }
}

fn libimobiledevice(test: &str) -> bool {
    let there = Command::new("idevicebackup2")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !there {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: libimobiledevice-utils is not installed in CI"
        );
        eprintln!("SKIPPED {test}: libimobiledevice-utils is not installed");
    }
    there
}

struct Running {
    sim: Sim,
    runtime: tokio::runtime::Runtime,
    /// pymobiledevice3 keeps pair records in its home: one per test.
    home: tempfile::TempDir,
}

fn start(config: SimConfig) -> Running {
    let (runtime, sim) = crate::util::sim_on_runtime(config);
    Running {
        sim,
        runtime,
        home: tempfile::tempdir().unwrap(),
    }
}

/// Runs a program against the simulator; one that hangs is killed after
/// `limit` (a real wait: these are real processes, and a Python client
/// takes a second or two to start).
fn run(
    running: &Running,
    program: &Path,
    args: &[&str],
    stdin: Option<&str>,
    limit: Duration,
) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env("USBMUXD_SOCKET_ADDRESS", running.sim.usbmuxd_address())
        .env("HOME", running.home.path())
        // mvt and pymobiledevice3 look for updates online unless told not to.
        .env("MVT_DISABLE_UPDATE_CHECK", "1")
        .env("PYMOBILEDEVICE3_NO_VERSION_CHECK", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        let _ = pipe.write_all(text.as_bytes());
    }
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn pmd3(running: &Running, py: &Path, args: &[&str], limit: Duration) -> Output {
    let mut all = vec!["-m", "pymobiledevice3"];
    all.extend_from_slice(args);
    run(running, py, &all, None, limit)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Unstuck's own backup of the simulator into `dir`.
fn unstuck_backup(running: &Running, dir: &Path) {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let options = unstuck::engine::BackupOptions::new(dir.to_path_buf());
    let addr = unstuck::device::MuxAddress::Tcp(running.sim.addr());
    running
        .runtime
        .block_on(unstuck::engine::backup(&addr, &options, &tx))
        .unwrap();
}

/// The last restore the simulated phone finished.
fn restored(sim: &Sim) -> Option<unstuck::sim::RestoreReport> {
    sim.events().into_iter().rev().find_map(|e| match e {
        SimEvent::Restored(report) => Some(report),
        _ => None,
    })
}

/// `read_backup.py READER FOLDER`: its JSON line.
fn read_backup(
    running: &Running,
    py: &Path,
    reader: &str,
    folder: &Path,
    password: Option<&str>,
    out: &Path,
) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/read_backup.py");
    let pw_file = out.with_extension("password");
    let mut args = vec![
        script.to_str().unwrap().to_owned(),
        reader.to_owned(),
        folder.to_str().unwrap().to_owned(),
        "--out".to_owned(),
        out.to_str().unwrap().to_owned(),
    ];
    if let Some(password) = password {
        std::fs::write(&pw_file, password).unwrap();
        args.push("--password-file".to_owned());
        args.push(pw_file.to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(running, py, &args, None, Duration::from_secs(180));
    (output.status.success(), text(&output))
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn pymobiledevice3_backs_up_lists_and_restores_the_simulated_iphone() {
    let test = "pymobiledevice3_backs_up_lists_and_restores_the_simulated_iphone";
    let Some(py) = python(test) else { return };
    let _programs = crate::util::backup_programs_lock();
    let running = start(config());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    let out = pmd3(
        &running,
        &py,
        &["lockdown", "date"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));

    let out = pmd3(
        &running,
        &py,
        &["backup2", "backup", "--full", d],
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", text(&out));
    let folder = dir.path().join(UDID);
    let info = std::fs::read_to_string(folder.join("Info.plist")).unwrap();
    for key in [
        "Installed Applications",
        "Applications",
        "com.example.app3",
        "PlaceholderIcon",
    ] {
        assert!(
            info.contains(key),
            "{key} missing from pymobiledevice3's Info.plist"
        );
    }
    // `--full` (an emptied Manifest.plist) is honoured a second time.
    let out = pmd3(
        &running,
        &py,
        &["backup2", "backup", "--full", d],
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", text(&out));
    let full_runs: Vec<bool> = running
        .sim
        .events()
        .iter()
        .filter_map(|e| match e {
            SimEvent::BackupStarted { incremental } => Some(*incremental),
            _ => None,
        })
        .collect();
    assert_eq!(full_runs, [false, false]);

    let out = pmd3(
        &running,
        &py,
        &["backup2", "list", d],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Library/Data/file-000007.dat"),
        "{}",
        text(&out)
    );

    let out = pmd3(
        &running,
        &py,
        &["backup2", "restore", "--no-reboot", "--system", d],
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", text(&out));
    let report = restored(&running.sim).expect("the phone saw a restore");
    assert_eq!(report.files, 40, "{report:?}");
    assert_eq!(report.matching, 40, "{report:?}");
    assert!(
        running
            .sim
            .media_file("iTunesRestore/RestoreApplications.plist")
            .is_some()
    );
}

#[test]
fn both_restore_clients_take_back_a_backup_unstuck_made() {
    let test = "both_restore_clients_take_back_a_backup_unstuck_made";
    if !libimobiledevice(test) {
        return;
    }
    let py = python(test);
    let _programs = crate::util::backup_programs_lock();
    let running = start(config());
    let dir = tempfile::tempdir().unwrap();
    unstuck_backup(&running, dir.path());
    let d = dir.path().to_str().unwrap();

    let idevicebackup2 = Path::new("idevicebackup2");
    let out = run(
        &running,
        idevicebackup2,
        &["restore", "--system", "--settings", "--no-reboot", d],
        None,
        Duration::from_secs(120),
    );
    let said = text(&out);
    assert!(said.contains("Restore Successful"), "{said}");
    let report = restored(&running.sim).expect("the phone saw a restore");
    assert_eq!((report.files, report.matching, report.missing), (40, 40, 0));
    // idevicebackup2 hands the apps to the phone before the restore.
    let apps = running
        .sim
        .media_file("iTunesRestore/RestoreApplications.plist")
        .expect("RestoreApplications.plist");
    assert!(String::from_utf8_lossy(&apps).contains("com.example.app0"));

    let Some(py) = py else { return };
    let before = running.sim.events().len();
    let out = pmd3(
        &running,
        &py,
        &["backup2", "restore", "--no-reboot", d],
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", text(&out));
    let again = running.sim.events()[before..]
        .iter()
        .find_map(|e| match e {
            SimEvent::Restored(r) => Some(*r),
            _ => None,
        })
        .expect("a second restore");
    assert_eq!((again.files, again.matching), (40, 40));
}

#[test]
fn python_readers_open_unstuck_backups_as_they_open_idevicebackup2_ones() {
    let test = "python_readers_open_unstuck_backups_as_they_open_idevicebackup2_ones";
    let Some(py) = python(test) else { return };
    if !libimobiledevice(test) {
        return;
    }
    let _programs = crate::util::backup_programs_lock();
    // No file changes between the two backups, so both hold the same bytes.
    let mut c = config();
    c.content.changed_files = 0;
    let running = start(c);
    let ours = tempfile::tempdir().unwrap();
    unstuck_backup(&running, ours.path());
    let theirs = tempfile::tempdir().unwrap();
    let out = run(
        &running,
        Path::new("idevicebackup2"),
        &["backup", "--full", theirs.path().to_str().unwrap()],
        None,
        Duration::from_secs(120),
    );
    assert!(text(&out).contains("Backup Successful"), "{}", text(&out));

    // Unstuck's Info.plist has every key the two other clients write for
    // the same phone.
    let pmd3_dir = tempfile::tempdir().unwrap();
    let out = pmd3(
        &running,
        &py,
        &[
            "backup2",
            "backup",
            "--full",
            pmd3_dir.path().to_str().unwrap(),
        ],
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", text(&out));
    let keys = |root: &Path| -> std::collections::BTreeSet<String> {
        let value = plist::Value::from_file(root.join(UDID).join("Info.plist")).unwrap();
        value.into_dictionary().unwrap().keys().cloned().collect()
    };
    let unstucks = keys(ours.path());
    for (client, theirs) in [
        ("idevicebackup2", keys(theirs.path())),
        ("pymobiledevice3", keys(pmd3_dir.path())),
    ] {
        let missing: Vec<&String> = theirs.difference(&unstucks).collect();
        assert!(
            missing.is_empty(),
            "{client} writes {missing:?}, Unstuck does not"
        );
    }

    let work = tempfile::tempdir().unwrap();
    for reader in ["iosbackup", "pyiosbackup"] {
        let a = work.path().join(format!("{reader}-unstuck"));
        let b = work.path().join(format!("{reader}-idevicebackup2"));
        let (ok, said) = read_backup(&running, &py, reader, &ours.path().join(UDID), None, &a);
        assert!(ok, "{reader} on Unstuck's backup: {said}");
        let (ok, said) = read_backup(&running, &py, reader, &theirs.path().join(UDID), None, &b);
        assert!(ok, "{reader} on idevicebackup2's backup: {said}");
        let (ta, tb) = (tree(&a), tree(&b));
        assert_eq!(
            ta.len(),
            40,
            "{reader}: {:?}",
            ta.keys().collect::<Vec<_>>()
        );
        assert!(
            ta == tb,
            "{reader}: the files extracted from the two backups differ"
        );
    }
    let (ok, said) = read_backup(
        &running,
        &py,
        "mvt",
        &ours.path().join(UDID),
        None,
        &work.path().join("mvt"),
    );
    assert!(ok, "mvt check-backup on Unstuck's backup: {said}");
}

#[test]
fn an_encrypted_backup_unstuck_made_opens_with_its_password_only() {
    let test = "an_encrypted_backup_unstuck_made_opens_with_its_password_only";
    let Some(py) = python(test) else { return };
    let _programs = crate::util::backup_programs_lock();
    let mut c = config();
    c.will_encrypt = true;
    c.password = Some(PASSWORD.to_owned());
    let running = start(c);
    let dir = tempfile::tempdir().unwrap();
    unstuck_backup(&running, dir.path());
    let folder = dir.path().join(UDID);

    let work = tempfile::tempdir().unwrap();
    let mut trees = Vec::new();
    for reader in ["iphone-backup-decrypt", "iosbackup", "pyiosbackup"] {
        let out = work.path().join(reader);
        let (ok, said) = read_backup(&running, &py, reader, &folder, Some(PASSWORD), &out);
        assert!(ok, "{reader}: {said}");
        let files = tree(&out);
        assert_eq!(files.len(), 40, "{reader}");
        trees.push(files);
        let (ok, said) = read_backup(
            &running,
            &py,
            reader,
            &folder,
            Some("Tr0ub4dor&3"),
            &work.path().join(format!("{reader}-wrong")),
        );
        assert!(
            !ok,
            "{reader} opened the backup with a wrong password: {said}"
        );
        // It failed at the keybag, having extracted nothing.
        assert!(said.contains("\"files\": 0"), "{reader}: {said}");
    }
    assert!(
        trees.windows(2).all(|w| w[0] == w[1]),
        "the decryptors disagree"
    );
    // What they decrypted is what the phone holds.
    let (domain, path) =
        unstuck::synthetic::SyntheticBackup::new(UDID, jiff::Timestamp::now()).file_name(7);
    let expected = unstuck::synthetic::file_content(config().content.seed, 7, 3000);
    let got = trees[0]
        .iter()
        .find(|(k, _)| k.starts_with(&domain) && k.ends_with(&path))
        .map(|(_, v)| v.clone());
    assert_eq!(got.as_deref(), Some(&expected[..]));
    let (ok, said) = read_backup(
        &running,
        &py,
        "mvt",
        &folder,
        Some(PASSWORD),
        &work.path().join("mvt"),
    );
    assert!(ok, "mvt decrypt-backup and check-backup: {said}");

    // `unstuck encryption check` names the right line, with no phone.
    let unstuck = env!("CARGO_BIN_EXE_unstuck");
    let home = tempfile::tempdir().unwrap();
    let check = |input: &str| {
        let mut child = Command::new(unstuck)
            .args(["encryption", "check", "--backup", folder.to_str().unwrap()])
            .env("HOME", home.path())
            .env("USBMUXD_SOCKET_ADDRESS", "127.0.0.1:9")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = check(&format!("hunter2\n\n{PASSWORD}\nlast\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Line 3 is the backup password of"),
        "{}",
        text(&out)
    );
    let out = check("hunter2\nTr0ub4dor&3\n");
    assert_eq!(out.status.code(), Some(13), "{}", text(&out));
    assert!(
        text(&out).contains("None of the 2 candidates"),
        "{}",
        text(&out)
    );
}

#[test]
fn pymobiledevice3_pairs_once_the_user_taps_trust() {
    let test = "pymobiledevice3_pairs_once_the_user_taps_trust";
    let Some(py) = python(test) else { return };
    let mut c = config();
    c.pairing = unstuck::sim::Pairing::Revoked;
    // The simulated user taps Trust a second after the dialog shows.
    c.trust_after = Some(Duration::from_secs(1));
    let running = start(c);
    let out = pmd3(
        &running,
        &py,
        &["lockdown", "pair"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    let events = running.sim.events();
    let shown = events.iter().position(|e| *e == SimEvent::TrustDialogShown);
    let trusted = events.iter().position(|e| *e == SimEvent::Trusted);
    assert!(
        matches!((shown, trusted), (Some(s), Some(t)) if s < t),
        "{events:?}"
    );
    // The phone now trusts that host: a session and its TLS work.
    let out = pmd3(
        &running,
        &py,
        &["lockdown", "date"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    let dialogs = running
        .sim
        .events()
        .iter()
        .filter(|e| **e == SimEvent::TrustDialogShown)
        .count();
    assert_eq!(dialogs, 1, "a second Trust dialog after pairing");
    // And Unstuck, reading the pair record usbmuxd now keeps, backs up.
    let _programs = crate::util::backup_programs_lock();
    let dir = tempfile::tempdir().unwrap();
    unstuck_backup(&running, dir.path());
}

#[test]
fn pymobiledevice3_backs_up_in_every_scenario_a_phone_would_allow() {
    let test = "pymobiledevice3_backs_up_in_every_scenario_a_phone_would_allow";
    let Some(py) = python(test) else { return };
    let _programs = crate::util::backup_programs_lock();
    // (scenario, whether the backup finishes): a phone that does not trust
    // the computer yet lets it pair (the simulated user taps Trust).
    let cases = [
        ("healthy", true),
        ("slow", true),
        ("stall-at-40", true),
        ("wrong-password", true),
        ("untrusted", true),
        ("unpaired", true),
        ("unplug-at-70", false),
        ("host-disk-full", false),
        ("passcode-wait", false),
        ("locked", false),
    ];
    let mut wrong = Vec::new();
    for (name, finishes) in cases {
        let mut c = unstuck::sim::scenario(name).unwrap();
        c.content.files = 40;
        c.content.file_size = 3000;
        // Waits of seconds instead of minutes.
        c.throughput = (name == "slow").then_some(60_000);
        if let Some(stall) = &mut c.stall {
            stall.duration = Duration::from_secs(3);
        }
        if let Some(wait) = &mut c.passcode_wait {
            *wait = Duration::from_secs(2);
        }
        c.trust_after = Some(Duration::from_secs(1));
        c.fit_storage_to_content();
        let udid = c.udid.clone();
        let encrypted = c.will_encrypt;
        let running = start(c);
        let dir = tempfile::tempdir().unwrap();
        let out = pmd3(
            &running,
            &py,
            &["backup2", "backup", "--full", dir.path().to_str().unwrap()],
            Duration::from_secs(90),
        );
        let status = std::fs::read(dir.path().join(&udid).join("Status.plist"))
            .ok()
            .and_then(|b| unstuck::backup_folder::plists::parse_status(&b).ok());
        let complete = out.status.success()
            && status.is_some_and(|s| {
                s.snapshot_state == Some(unstuck::backup_folder::SnapshotState::Finished)
            })
            && running.sim.events().iter().any(
                |e| matches!(e, SimEvent::BackupFinished { error_code: 0, files } if *files == 40),
            );
        if complete != finishes {
            wrong.push(format!(
                "{name}: expected finished={finishes}\n{}",
                text(&out)
            ));
            continue;
        }
        if encrypted {
            let manifest = unstuck::backup_folder::plists::read_manifest(
                &dir.path().join(&udid).join("Manifest.plist"),
            )
            .unwrap();
            assert_eq!(manifest.is_encrypted, Some(true), "{name}");
        }
        if matches!(name, "untrusted" | "unpaired")
            && !running.sim.events().contains(&SimEvent::Trusted)
        {
            wrong.push(format!("{name}: finished without pairing"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
