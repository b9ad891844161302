use std::fs;

use unstuck::synthetic::{Finish, ListFormat, SyntheticBackup};

use crate::util::{self, Home};

const ANN: &str = "00008120-001A2B3C4D5E6F70";
const BEN: &str = "3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a";

#[test]
fn table_shows_each_backup_and_where_it_looked() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let mut ann = SyntheticBackup::new(ANN, util::days_ago(2));
    ann.device_name = "Ann's iPhone".into();
    ann.encrypted = true;
    ann.write(root.path()).unwrap();
    let mut ben = SyntheticBackup::new(BEN, util::days_ago(1));
    ben.device_name = "Ben's iPhone".into();
    ben.finish = Finish::Uploading;
    ben.write(root.path()).unwrap();

    let run = home.run(&["status", "--backup-root", root.path().to_str().unwrap()]);
    run.success();
    let out = run.stdout();
    let ann_row = out.lines().find(|l| l.starts_with("Ann's iPhone")).unwrap();
    assert!(ann_row.contains("18.1"), "{out}");
    assert!(ann_row.contains("2 days ago"), "{out}");
    assert!(ann_row.contains("complete"), "{out}");
    assert!(ann_row.contains("yes"), "{out}");
    let ben_row = out.lines().find(|l| l.starts_with("Ben's iPhone")).unwrap();
    assert!(ben_row.contains("interrupted"), "{out}");
    assert!(ben_row.contains("Snapshot/"), "{out}");
    assert!(out.contains("stopped while uploading"), "{out}");
    assert!(
        out.contains(&format!(
            "{} (--backup-root): 2 backups",
            root.path().display()
        )),
        "{out}"
    );
    // The platform folder is listed too; on a fresh machine it does not exist.
    assert!(
        out.contains("(standard folder): does not exist yet"),
        "{out}"
    );
}

#[test]
fn json_schema() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let mut ann = SyntheticBackup::new(ANN, util::days_ago(2));
    ann.files = 12;
    ann.file_size = 100;
    let folder = ann.write(root.path()).unwrap();
    let mut old = SyntheticBackup::new(BEN, util::days_ago(900));
    old.format = ListFormat::ManifestMbdb;
    old.ios_version = "9.3.5".into();
    old.write(root.path()).unwrap();

    let doc = home.status_json(root.path().to_str().unwrap());
    assert_eq!(doc["schema_version"], 1);
    assert!(doc["generated_at"].as_str().unwrap().ends_with('Z'));
    let roots = doc["roots"].as_array().unwrap();
    let ours = roots
        .iter()
        .find(|r| r["origin"] == "command_line")
        .unwrap();
    assert_eq!(ours["status"], "read");
    assert_eq!(ours["backups"], 2);
    assert_eq!(ours["error"], serde_json::Value::Null);
    assert!(
        roots
            .iter()
            .any(|r| r["origin"] == "platform" && r["status"] == "missing")
    );

    let b = util::backup_named(&doc, ANN);
    assert_eq!(b["udid"], ANN);
    assert_eq!(b["device_name"], "Test iPhone");
    assert_eq!(b["product_type"], "iPhone15,2");
    assert_eq!(b["ios_version"], "18.1");
    assert_eq!(b["build_version"], "22B83");
    assert_eq!(b["state"], "complete");
    assert_eq!(b["phase"], serde_json::Value::Null);
    assert_eq!(b["encrypted"], false);
    assert_eq!(b["format"], "manifest_db");
    assert_eq!(b["file_count"], 12);
    assert_eq!(b["manifest_entries"], 12);
    assert_eq!(b["archived"], false);
    assert_eq!(b["leftovers"], serde_json::json!([]));
    let last: jiff::Timestamp = b["last_complete"].as_str().unwrap().parse().unwrap();
    assert!((last.duration_since(util::days_ago(2))).abs() < jiff::SignedDuration::from_secs(5));
    assert_eq!(b["size_bytes"], util::bytes_on_disk(&folder));

    let old = util::backup_named(&doc, BEN);
    assert_eq!(old["format"], "manifest_mbdb");
    assert_eq!(old["manifest_entries"], 20);
    assert_eq!(old["state"], "complete");
}

#[test]
fn archived_copies_are_marked() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    SyntheticBackup::new(ANN, util::days_ago(30))
        .write(root.path())
        .unwrap();
    fs::rename(
        root.path().join(ANN),
        root.path().join(format!("{ANN}-20251005-134501")),
    )
    .unwrap();
    let doc = home.status_json(root.path().to_str().unwrap());
    let b = util::backup_named(&doc, "-20251005-134501");
    assert_eq!(b["archived"], true);
    assert_eq!(b["udid"], ANN);
}

#[test]
fn root_that_is_itself_a_backup_is_read_as_one() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let folder = SyntheticBackup::new(ANN, util::days_ago(1))
        .write(root.path())
        .unwrap();
    let doc = home.status_json(folder.to_str().unwrap());
    assert_eq!(doc["backups"].as_array().unwrap().len(), 1);
    assert_eq!(doc["backups"][0]["state"], "complete");
}

#[test]
fn leftovers_are_listed_with_their_size() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let mut b = SyntheticBackup::new(ANN, util::days_ago(1));
    b.finish = Finish::EmptyManifestPlist;
    let folder = b.write(root.path()).unwrap();
    fs::create_dir(folder.join("Snapshot")).unwrap();
    fs::write(folder.join("Snapshot/part"), vec![0u8; 5000]).unwrap();
    util::set_mtime(&folder.join("Snapshot"), util::hours_ago(5));
    let doc = home.status_json(root.path().to_str().unwrap());
    let b = util::backup_named(&doc, ANN);
    assert_eq!(b["state"], "interrupted");
    let kinds: Vec<&str> = b["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["snapshot_folder", "empty_manifest_plist"]);
    assert!(b["reasons"][1]["message"].as_str().unwrap().contains("205"));
    assert_eq!(b["leftovers"][0]["kind"], "snapshot_folder");
    assert_eq!(b["leftovers"][0]["bytes"], 5000);
    assert_eq!(b["leftovers"][1]["kind"], "empty_manifest_plist");
    assert_eq!(b["last_complete"], serde_json::Value::Null);
}

#[test]
fn sizes_are_cached_until_the_metadata_changes() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    let folder = SyntheticBackup::new(ANN, util::days_ago(1))
        .write(root.path())
        .unwrap();
    let arg = root.path().to_str().unwrap();
    let size = || {
        home.status_json(arg)["backups"][0]["size_bytes"]
            .as_u64()
            .unwrap()
    };
    let first = size();
    // A file added behind the metadata's back is not seen: the cache answered.
    let extra = folder.join("ab/extra");
    fs::create_dir_all(extra.parent().unwrap()).unwrap();
    fs::write(&extra, vec![1u8; 1000]).unwrap();
    assert_eq!(size(), first);
    // A new Status.plist (as every finished backup writes) invalidates it.
    let status = folder.join("Status.plist");
    let bytes = fs::read(&status).unwrap();
    fs::write(&status, bytes).unwrap();
    util::set_mtime(&status, util::hours_ago(1));
    assert_eq!(size(), first + 1000);
}

#[test]
fn no_backups_anywhere_is_not_an_error() {
    let home = Home::new();
    let run = home.run(&["status"]);
    run.success();
    assert!(
        run.stdout().contains("No iPhone backups found."),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_root_that_cannot_be_read_fails_with_its_name() {
    let home = Home::new();
    let missing = home.path().join("no-such-folder");
    let run = home.run(&["status", "--backup-root", missing.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1));
    let err = run.stderr();
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
    assert!(err.contains("does not exist"), "{err}");

    let file = home.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let run = home.run(&["status", "--backup-root", file.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1));
    assert!(run.stderr().contains("not a folder"), "{}", run.stderr());
}

#[test]
fn one_bad_root_does_not_hide_the_others() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    SyntheticBackup::new(ANN, util::days_ago(1))
        .write(root.path())
        .unwrap();
    let missing = home.path().join("gone");
    let run = home.run(&[
        "status",
        "--backup-root",
        missing.to_str().unwrap(),
        "--backup-root",
        root.path().to_str().unwrap(),
    ]);
    run.success();
    assert!(
        run.stdout()
            .contains("gone (--backup-root): cannot be read: it does not exist")
    );
    assert!(run.stdout().contains("Test iPhone"));
}

#[test]
fn config_roots_are_read() {
    let home = Home::new();
    let root = tempfile::tempdir().unwrap();
    SyntheticBackup::new(ANN, util::days_ago(1))
        .write(root.path())
        .unwrap();
    home.write_config(&format!("backup_roots = [{:?}]\n", root.path()));
    let doc = home.run(&["status", "--json"]).json();
    let ours = doc["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["origin"] == "config")
        .unwrap();
    assert_eq!(ours["backups"], 1);
}

#[test]
fn demo_runs_without_a_phone() {
    let home = Home::new();
    let run = home.run(&["demo"]);
    run.success();
    let out = run.stdout();
    assert!(out.contains("No iPhone is involved"), "{out}");
    assert!(
        run.stderr()
            .contains("No graphical session (DISPLAY and WAYLAND_DISPLAY are unset): showing the demo in the terminal."),
        "{}",
        run.stderr()
    );
    for expected in [
        "complete",
        "interrupted",
        "backing up (uploading)",
        "error 205",
        "9.3.5",
    ] {
        assert!(out.contains(expected), "{expected:?} missing:\n{out}");
    }
    // The demo's stall and restart as the history remembers them: a run by
    // unstuck, complete after one restart, its stall while copying ended
    // by the restart.
    let history = out
        .split("What Unstuck remembers of it")
        .nth(1)
        .unwrap_or_else(|| panic!("no history in the demo:\n{out}"));
    assert!(history.contains("by unstuck: complete"), "{history}");
    assert!(history.contains("1 restart"), "{history}");
    assert!(history.contains("stalled while copying files"), "{history}");
    assert!(history.contains("; restarted"), "{history}");
    // It was the demo's: the user's own history has nothing of it.
    assert!(!home.path().join("data/unstuck/history.db").exists());
}

/// Without a display the demo plays the scenario it is given, not the
/// stall story: a phone that says the disk is short ends with error 105.
#[test]
fn the_terminal_demo_plays_the_scenario_it_is_given() {
    let home = Home::new();
    let run = home.run(&["demo", "--scenario", "host-disk-full"]);
    run.success();
    let out = run.stdout();
    assert!(out.contains("error 105"), "{out}");
    assert!(out.contains("exit code 12 for `unstuck backup`"), "{out}");
    assert!(!out.contains("stalled"), "{out}");
}

#[test]
fn closed_stdout_is_not_an_error() {
    use std::process::Stdio;
    let home = Home::new();
    let mut child = home
        .command(&["demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
