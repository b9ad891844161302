use std::fs;

use unstuck::synthetic::{Finish, ListFormat, SyntheticBackup};

use crate::util::{self, Home};

/// Every file's bytes and modification time, and the set of entries, are the
/// same after `status` as before, for complete, running, interrupted and
/// old-format backups, and for the real WAL-mode Manifest.db (no `-wal` or
/// `-shm` appears beside it).
#[test]
fn status_changes_nothing_inside_a_backup() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let cases = [
        (
            "00008120-001A2B3C4D5E6F70",
            Finish::Complete,
            ListFormat::ManifestDb,
        ),
        (
            "00008030-0016354E1A2B3C4D",
            Finish::Uploading,
            ListFormat::ManifestDb,
        ),
        (
            "00008110-000C1D2E3F405162",
            Finish::EmptyManifestPlist,
            ListFormat::ManifestDb,
        ),
        (
            "9b1e7c3a5d2f4e6a8b0c1d3e5f7a9b2c4d6e8f0a",
            Finish::Complete,
            ListFormat::ManifestMbdb,
        ),
    ];
    for (udid, finish, format) in cases {
        let mut b = SyntheticBackup::new(udid, util::days_ago(3));
        b.finish = finish;
        b.format = format;
        b.write(root.path()).unwrap();
    }
    if let Some(fixtures) =
        util::fixtures("status_changes_nothing_inside_a_backup (real Manifest.db part)")
    {
        util::copy_tree(
            &fixtures.join("mvt-project_mvt/ios_backup"),
            &root.path().join("1cb128eafa77c5be74283e9a3a2130af36a3c059"),
        );
    }
    // Make one file read-only, as on a read-only volume.
    let db = root.path().join("00008120-001A2B3C4D5E6F70/Manifest.db");
    let mut perms = fs::metadata(&db).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(&db, perms).unwrap();

    let before = util::snapshot_tree(root.path());
    let arg = root.path().to_str().unwrap();
    home.run(&["status", "--backup-root", arg]).success();
    home.run(&["status", "--json", "--backup-root", arg])
        .success();
    home.run(&["status", "--backup-root", arg]).success();
    let after = util::snapshot_tree(root.path());

    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(added.is_empty(), "status created {added:?}");
    for (path, was) in &before {
        let now = &after[path];
        assert_eq!(was.0, now.0, "{} changed kind", path.display());
        if !was.0 {
            assert_eq!(was.1, now.1, "{} changed length", path.display());
            assert_eq!(was.2, now.2, "{} changed mtime", path.display());
            assert!(was.3 == now.3, "{} changed bytes", path.display());
        }
    }
}
