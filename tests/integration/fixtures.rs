use std::fs;

use jiff::{SignedDuration, Timestamp};
use unstuck::backup_folder::{BackupState, Interruption, ManifestFormat, SnapshotState, plists};

use crate::util::{self, Home};

#[test]
fn ios14_backup_info_plist_and_manifest_db() {
    let Some(fixtures) = util::fixtures("ios14_backup_info_plist_and_manifest_db") else {
        return;
    };
    let folder = fixtures.join("mvt-project_mvt/ios_backup");
    let backup = util::read(&folder);
    assert_eq!(backup.device_name.as_deref(), Some("iPhone"));
    assert_eq!(backup.product_type.as_deref(), Some("iPhone9,3"));
    assert_eq!(backup.ios_version.as_deref(), Some("14.3"));
    assert_eq!(backup.build_version.as_deref(), Some("18C66"));
    assert_eq!(
        backup.udid.as_deref(),
        Some("1cb128eafa77c5be74283e9a3a2130af36a3c059")
    );
    assert_eq!(
        backup.last_attempt,
        Some("2021-12-03T19:33:13Z".parse().unwrap())
    );
    // PROVENANCE.md: 3,721 rows, 1,089 of them regular files.
    assert_eq!(backup.format, Some(ManifestFormat::ManifestDb));
    assert_eq!(backup.manifest_entries, Some(3721));
    assert_eq!(backup.file_count, Some(1089));
    // MVT removed Status.plist, so nothing proves the backup finished.
    assert_eq!(backup.last_complete, None);
    assert_eq!(
        backup.state,
        BackupState::Interrupted {
            reasons: vec![Interruption::NoStatusPlist]
        }
    );
    assert_eq!(backup.size_bytes, Some(util::bytes_on_disk(&folder)));
}

#[test]
fn trimmed_real_manifest_db_in_wal_mode() {
    let Some(fixtures) = util::fixtures("trimmed_real_manifest_db_in_wal_mode") else {
        return;
    };
    let folder = fixtures.join("greatvovan_ios-backup-browser/sample_backup");
    let backup = util::read(&folder);
    assert_eq!(backup.manifest_entries, Some(6));
    assert_eq!(backup.file_count, Some(1));
    // The file list alone says nothing of the device.
    assert_eq!(backup.udid, None);
    assert_eq!(backup.ios_version, None);
}

#[test]
fn encrypted_ios9_manifest_plists() {
    let Some(fixtures) = util::fixtures("encrypted_ios9_manifest_plists") else {
        return;
    };
    let samples = fixtures.join("openwall_john-samples/iTunes_Backup");
    let cases = [
        (
            "Manifest-9-test123.plist",
            "Mike's iPhone",
            "iPhone7,2",
            "9.3",
            "13E233",
            Some(true),
            "2016-12-12T18:49:16.847454Z",
        ),
        (
            "Manifest-9-123456.plist",
            "",
            "iPad2,2",
            "9.3.5",
            "13G36",
            Some(false),
            "2016-12-20T20:35:39.342197Z",
        ),
    ];
    for (file, name, product, ios, build, passcode, date) in cases {
        let bytes = fs::read(samples.join(file)).unwrap();
        let manifest = plists::parse_manifest(&bytes).unwrap();
        assert_eq!(manifest.is_encrypted, Some(true), "{file}");
        assert_eq!(manifest.was_passcode_set, passcode, "{file}");
        assert_eq!(manifest.version.as_deref(), Some("9.1"), "{file}");
        assert_eq!(manifest.product_type.as_deref(), Some(product), "{file}");
        assert_eq!(manifest.product_version.as_deref(), Some(ios), "{file}");
        assert_eq!(manifest.build_version.as_deref(), Some(build), "{file}");
        let expected_date: Timestamp = date.parse().unwrap();
        let got = manifest.date.unwrap();
        assert!(
            got.duration_since(expected_date).abs() < SignedDuration::from_millis(1),
            "{file}: {got}"
        );
        if !name.is_empty() {
            assert_eq!(manifest.device_name.as_deref(), Some(name), "{file}");
        }

        // As a backup folder: encrypted, identified from the Lockdown record.
        let dir = tempfile::tempdir().unwrap();
        fs::copy(samples.join(file), dir.path().join("Manifest.plist")).unwrap();
        let backup = util::read(dir.path());
        assert_eq!(backup.encrypted, Some(true), "{file}");
        assert_eq!(backup.ios_version.as_deref(), Some(ios), "{file}");
        assert!(backup.udid.is_some(), "{file}");
        assert!(
            matches!(backup.state, BackupState::Interrupted { .. }),
            "{file}: {:?}",
            backup.state
        );
    }
}

#[test]
fn ios26_status_plist_caught_uploading() {
    let Some(fixtures) = util::fixtures("ios26_status_plist_caught_uploading") else {
        return;
    };
    let source = fixtures.join("bxthre3inc_irrig8/Status.plist");
    let status = plists::parse_status(&fs::read(&source).unwrap()).unwrap();
    assert_eq!(status.snapshot_state, Some(SnapshotState::Uploading));
    assert_eq!(status.backup_state.as_deref(), Some("empty"));
    assert_eq!(status.is_full_backup, Some(true));
    assert_eq!(status.version.as_deref(), Some("3.3"));
    assert_eq!(
        status.uuid.as_deref(),
        Some("1D4CFCD6-C8C8-4F48-9B39-A79FCDABBD25")
    );
    let expected: Timestamp = "2026-04-27T11:14:36.601241Z".parse().unwrap();
    assert!(status.date.unwrap().duration_since(expected).abs() < SignedDuration::from_millis(1));

    // In a folder: in progress while it is fresh, interrupted once quiet.
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("00008150-001A2B3C4D5E6F70");
    fs::create_dir(&folder).unwrap();
    fs::copy(&source, folder.join("Status.plist")).unwrap();
    let fresh = util::read(&folder);
    assert_eq!(
        fresh.state,
        BackupState::InProgress {
            phase: SnapshotState::Uploading
        }
    );
    assert_eq!(fresh.udid.as_deref(), Some("00008150-001A2B3C4D5E6F70"));
    util::set_mtime(&folder.join("Status.plist"), util::hours_ago(3));
    util::set_mtime(&folder, util::hours_ago(3));
    let quiet = util::read(&folder);
    assert_eq!(
        quiet.state,
        BackupState::Interrupted {
            reasons: vec![Interruption::Unfinished {
                phase: SnapshotState::Uploading
            }]
        }
    );
}

#[test]
fn status_lists_every_fixture_backup() {
    let Some(fixtures) = util::fixtures("status_lists_every_fixture_backup") else {
        return;
    };
    let home = Home::new();
    let mvt = fixtures.join("mvt-project_mvt");
    let run = home.run(&["status", "--json", "--backup-root", mvt.to_str().unwrap()]);
    run.success();
    let doc = run.json();
    let backup = util::backup_named(&doc, "ios_backup");
    assert_eq!(backup["ios_version"], "14.3");
    assert_eq!(backup["state"], "interrupted");
    assert_eq!(backup["reasons"][0]["kind"], "no_status_plist");
    assert_eq!(backup["file_count"], 1089);
}
