use std::fs;
use std::path::Path;

use unstuck::synthetic::SyntheticBackup;

use crate::util::{self, Home};

const GOOD: &str = "00008120-001A2B3C4D5E6F70";
const BAD: &str = "00008030-0016354E1A2B3C4D";

/// Writes a good backup and a bad one (spoiled by `spoil`), runs `status
/// --json`, and returns the bad backup's unreadable reason after checking
/// that the good one was still read and the exit code is 0.
fn unreadable_reason(spoil: impl FnOnce(&Path)) -> String {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    SyntheticBackup::new(GOOD, util::days_ago(1))
        .write(root.path())
        .unwrap();
    let bad = SyntheticBackup::new(BAD, util::days_ago(1))
        .write(root.path())
        .unwrap();
    spoil(&bad);
    let doc = home.status_json(root.path().to_str().unwrap());
    assert_eq!(util::backup_named(&doc, GOOD)["state"], "complete");
    let b = util::backup_named(&doc, BAD);
    assert_eq!(b["state"], "unreadable", "{b:#}");
    // The table says the same and does not stop at the bad row.
    let table = home.run(&["status", "--backup-root", root.path().to_str().unwrap()]);
    table.success();
    assert!(table.stdout().contains("unreadable"), "{}", table.stdout());
    assert!(table.stdout().contains("complete"), "{}", table.stdout());
    b["unreadable_reason"].as_str().unwrap().to_owned()
}

#[test]
fn garbage_info_plist() {
    let why =
        unreadable_reason(|b| fs::write(b.join("Info.plist"), b"\x00\xffnot a plist").unwrap());
    assert!(why.contains("Info.plist is not a valid plist"), "{why}");
}

#[test]
fn truncated_binary_status_plist() {
    let why = unreadable_reason(|b| {
        let path = b.join("Status.plist");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    });
    assert!(why.contains("Status.plist is not a valid plist"), "{why}");
}

#[test]
fn truncated_xml_info_plist() {
    let why = unreadable_reason(|b| {
        let path = b.join("Info.plist");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(why.contains("Info.plist is not a valid plist"), "{why}");
}

#[test]
fn manifest_plist_that_is_not_a_dictionary() {
    let why = unreadable_reason(|b| {
        fs::write(
            b.join("Manifest.plist"),
            br#"<?xml version="1.0"?><plist version="1.0"><string>x</string></plist>"#,
        )
        .unwrap()
    });
    assert!(why.contains("not a dictionary"), "{why}");
}

#[test]
fn truncated_manifest_db() {
    let why = unreadable_reason(|b| {
        let path = b.join("Manifest.db");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    });
    assert!(why.contains("Manifest.db cannot be read"), "{why}");
}

#[test]
fn garbage_manifest_db() {
    let why = unreadable_reason(|b| fs::write(b.join("Manifest.db"), vec![0x5a; 8192]).unwrap());
    assert!(why.contains("Manifest.db cannot be read"), "{why}");
    assert!(why.contains("not a database"), "{why}");
}

#[test]
fn manifest_db_without_a_files_table() {
    let why = unreadable_reason(|b| {
        let path = b.join("Manifest.db");
        fs::remove_file(&path).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE Other (x)").unwrap();
    });
    assert!(why.contains("no such table: Files"), "{why}");
}

#[test]
fn manifest_db_whose_files_is_a_recursive_view() {
    let why = unreadable_reason(|b| {
        let path = b.join("Manifest.db");
        fs::remove_file(&path).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Counting its rows would never end.
        conn.execute_batch(
            "CREATE VIEW Files AS WITH RECURSIVE r(flags) AS \
             (SELECT 1 UNION ALL SELECT flags FROM r) SELECT flags FROM r",
        )
        .unwrap();
    });
    assert!(
        why.contains("Manifest.db cannot be read: its Files is a view, not a table"),
        "{why}"
    );
}

#[test]
fn truncated_manifest_mbdb() {
    let why = unreadable_reason(|b| {
        fs::remove_file(b.join("Manifest.db")).unwrap();
        let bytes = unstuck::backup_folder::mbdb::encode(&[("a", 0o100644, 1), ("b", 0o100644, 2)]);
        fs::write(b.join("Manifest.mbdb"), &bytes[..bytes.len() - 5]).unwrap();
    });
    assert!(why.contains("Manifest.mbdb cannot be read"), "{why}");
    assert!(why.contains("truncated"), "{why}");
}

#[test]
fn folder_where_a_file_should_be() {
    let why = unreadable_reason(|b| {
        fs::remove_file(b.join("Info.plist")).unwrap();
        fs::create_dir(b.join("Info.plist")).unwrap();
    });
    assert!(
        why.contains("Info.plist is a folder where a file should be"),
        "{why}"
    );
}

#[test]
fn file_where_a_backup_folder_should_be() {
    let why = unreadable_reason(|b| {
        fs::remove_dir_all(b).unwrap();
        fs::write(b, b"oops").unwrap();
    });
    assert!(
        why.contains("is a file where a backup folder should be"),
        "{why}"
    );
}

#[cfg(unix)]
#[test]
fn symlink_loop() {
    let why = unreadable_reason(|b| {
        fs::remove_dir_all(b).unwrap();
        std::os::unix::fs::symlink(b, b).unwrap();
    });
    assert!(why.contains("symlink loop"), "{why}");
}

#[cfg(unix)]
#[test]
fn symlink_loop_inside_a_backup_is_not_followed() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let folder = SyntheticBackup::new(GOOD, util::days_ago(1))
        .write(root.path())
        .unwrap();
    std::os::unix::fs::symlink(&folder, folder.join("ab")).unwrap();
    let doc = home.status_json(root.path().to_str().unwrap());
    assert_eq!(doc["backups"][0]["state"], "complete");
}

#[cfg(unix)]
#[test]
fn folder_without_permission() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let probe = root.path().join("probe");
    fs::create_dir(&probe).unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read_dir(&probe).is_ok() {
        // Root (as in CI) reads through permissions; nothing to test here.
        eprintln!("SKIPPED folder_without_permission: this user ignores file permissions");
        return;
    }
    let why = unreadable_reason(|b| {
        fs::set_permissions(b.join("Info.plist"), fs::Permissions::from_mode(0o000)).unwrap()
    });
    assert!(why.contains("Permission denied"), "{why}");
}

#[test]
fn oversized_plist_is_refused_without_reading_it_all() {
    let why = unreadable_reason(|b| {
        let file = fs::File::create(b.join("Info.plist")).unwrap();
        // Sparse: costs no disk.
        file.set_len(65 * 1024 * 1024).unwrap();
    });
    assert!(
        why.contains("Info.plist is refused: it is 65 MiB, more than the 64 MiB Unstuck reads"),
        "{why}"
    );
}

#[test]
fn named_like_a_phone_but_empty() {
    let why = unreadable_reason(|b| {
        fs::remove_dir_all(b).unwrap();
        fs::create_dir(b).unwrap();
    });
    assert!(why.contains("not an iPhone backup folder"), "{why}");
}

#[test]
fn other_folders_and_hidden_files_are_passed_over() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    SyntheticBackup::new(GOOD, util::days_ago(1))
        .write(root.path())
        .unwrap();
    fs::create_dir(root.path().join("Photos")).unwrap();
    fs::write(root.path().join(".DS_Store"), b"junk").unwrap();
    fs::write(root.path().join("notes.txt"), b"junk").unwrap();
    let doc = home.status_json(root.path().to_str().unwrap());
    assert_eq!(doc["backups"].as_array().unwrap().len(), 1, "{doc:#}");
}

/// Random bytes in every metadata file never panic the reader.
mod fuzz {
    use proptest::prelude::*;
    use unstuck::backup_folder::{MeasureCache, ReadOptions, read_backup};

    use super::*;

    fn spoil(bytes: &[u8], cut: usize, flips: &[(usize, u8)]) -> Vec<u8> {
        let mut out = bytes[..cut.min(bytes.len())].to_vec();
        for &(at, xor) in flips {
            if !out.is_empty() {
                let i = at % out.len();
                out[i] ^= xor;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn mangled_metadata_never_panics(
            which in 0usize..4,
            cut in 0usize..40_000,
            flips in proptest::collection::vec((any::<usize>(), 1u8..), 0..8),
        ) {
            let root = tempfile::tempdir().unwrap();
            let folder = SyntheticBackup::new(GOOD, util::days_ago(1)).write(root.path()).unwrap();
            let name = ["Info.plist", "Status.plist", "Manifest.plist", "Manifest.db"][which];
            let path = folder.join(name);
            let bytes = fs::read(&path).unwrap();
            fs::write(&path, spoil(&bytes, cut, &flips)).unwrap();
            let options = ReadOptions {
                now: jiff::Timestamp::now(),
                active_window: jiff::SignedDuration::from_mins(10),
            };
            let backup = read_backup(&folder, options, &mut MeasureCache::in_memory());
            prop_assert_eq!(&backup.path, &folder);
        }
    }
}

/// A binary plist of a few hundred bytes whose 30 nested arrays each list
/// the one below four times: 4^30 values once expanded.
fn billion_laughs() -> Vec<u8> {
    let mut out = b"bplist00".to_vec();
    let mut offsets = vec![out.len() as u8];
    out.extend(b"\x53lol");
    for k in 0..30u8 {
        offsets.push(out.len() as u8);
        out.extend([0xa4, k, k, k, k]);
    }
    let table_at = out.len() as u64;
    out.extend(&offsets);
    out.extend([0, 0, 0, 0, 0, 0, 1, 1]);
    for n in [offsets.len() as u64, 30, table_at] {
        out.extend(n.to_be_bytes());
    }
    out
}

/// Like `unreadable_reason`, for one run of `status --json` whose peak
/// memory is measured: the bad backup's reason and the peak in bytes.
#[cfg(target_os = "linux")]
// The child is reaped by `wait4`, which `Child::wait` cannot replace: only
// it reports the child's own peak memory.
#[allow(clippy::zombie_processes)]
fn unreadable_reason_and_peak_memory(spoil: impl FnOnce(&Path)) -> (String, u64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Output, Stdio};

    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    SyntheticBackup::new(GOOD, util::days_ago(1))
        .write(root.path())
        .unwrap();
    let bad = SyntheticBackup::new(BAD, util::days_ago(1))
        .write(root.path())
        .unwrap();
    spoil(&bad);
    let mut child = home
        .command(&[
            "status",
            "--json",
            "--backup-root",
            root.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr.read_to_end(&mut bytes).map(|_| bytes)
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let stderr = errors.join().unwrap().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; the pointers are to
    // live locals. wait4 (not `Child::wait`) reports this child's own peak.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let run = util::Run(Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout,
        stderr,
    });
    run.success();
    let doc = run.json();
    assert_eq!(util::backup_named(&doc, GOOD)["state"], "complete");
    let b = util::backup_named(&doc, BAD);
    assert_eq!(b["state"], "unreadable", "{b:#}");
    // ru_maxrss is in kilobytes on Linux.
    let peak = usage.ru_maxrss as u64 * 1024;
    (b["unreadable_reason"].as_str().unwrap().to_owned(), peak)
}

/// Far above what `status` needs for two small backups, far below what
/// expanding a hostile plist or reading a device would take.
#[cfg(target_os = "linux")]
const SMALL_PEAK: u64 = 200 * 1024 * 1024;

#[cfg(target_os = "linux")]
#[test]
fn billion_laughs_status_plist() {
    let (why, peak) = unreadable_reason_and_peak_memory(|b| {
        fs::write(b.join("Status.plist"), billion_laughs()).unwrap()
    });
    assert!(
        why.contains(
            "Status.plist is refused: the plist holds more than 1000000 values \
             (shared references counted each time they are used)"
        ),
        "{why}"
    );
    assert!(peak < SMALL_PEAK, "status peaked at {peak} bytes");
}

#[cfg(target_os = "linux")]
#[test]
fn status_plist_that_is_a_symlink_to_dev_zero() {
    let (why, peak) = unreadable_reason_and_peak_memory(|b| {
        fs::remove_file(b.join("Status.plist")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", b.join("Status.plist")).unwrap();
    });
    assert!(
        why.contains("Status.plist is a device where a file should be"),
        "{why}"
    );
    assert!(peak < SMALL_PEAK, "status peaked at {peak} bytes");
}
