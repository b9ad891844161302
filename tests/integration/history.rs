//! The history and the report, end to end: `unstuck backup` through a
//! stall on the simulated iPhone, then `history` and `report` as a user
//! runs them; the report opened in headless Chromium.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use unstuck::sim::Stall;

use crate::util::{self, Home};

/// Thresholds of seconds: the stall is given up on within a few.
const CONFIG: &str = "[stall]\ncopying_seconds = 2\n[backup]\nmax_restarts = 1\n";

fn phone() -> unstuck::sim::SimConfig {
    let mut c = unstuck::sim::scenario("stall-at-40").unwrap();
    c.udid = "00008120-0000000000000B01".into();
    c.device_name = "History iPhone".into();
    c.content.files = 40;
    c.content.file_size = 16 * 1024;
    c.throughput = Some(400_000);
    c.stall = Some(Stall {
        at_percent: 40.0,
        duration: Duration::from_secs(120),
    });
    c.fit_storage_to_content();
    c
}

#[test]
fn a_stalled_run_and_a_complete_one_are_remembered_and_reported() {
    let _no_foreign = util::no_foreign_backup_programs();
    let (_runtime, sim) = util::sim_on_runtime(phone());
    let home = Home::new();
    home.write_config(CONFIG);
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let usbmuxd = sim.usbmuxd_address();

    let stalled = home.run_on(&usbmuxd, &["backup", "--dest", d]);
    assert_eq!(stalled.code(), Some(5), "{}", stalled.stderr());
    sim.update(|c| c.stall = None);
    home.run_on(&usbmuxd, &["backup", "--dest", d]).success();

    let doc = home.run(&["history", "--json"]);
    doc.success();
    let runs = doc.json()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let (first, second) = (&runs[0], &runs[1]);
    assert_eq!(first["program"], "unstuck");
    assert_eq!(first["outcome"], "failed");
    assert_eq!(first["restarts"], 1);
    let stalls = first["stalls"].as_array().unwrap();
    assert_eq!(stalls.len(), 2, "{first:#}");
    for s in stalls {
        assert_eq!(s["phase"], "copying", "{s:#}");
        assert_eq!(s["cause"], "unknown", "{s:#}");
    }
    assert_eq!(stalls[0]["ended_by"], "restarted");
    assert_eq!(stalls[1]["ended_by"], "run_ended");
    assert_eq!(second["outcome"], "complete");
    assert!(second["size"].as_u64().unwrap() > 600_000, "{second:#}");

    // The table says the same in words; a phone is found by its name.
    let table = home.run(&["history", "--phone", "history iphone"]);
    table.success();
    let text = table.stdout();
    assert!(text.contains("stalled while copying files"), "{text}");
    assert!(text.contains("restarted"), "{text}");
    let none = home.run(&["history", "--phone", "someone else's"]);
    assert!(none.stdout().contains("No runs"), "{}", none.stdout());

    // The report: one page, nothing outside it.
    let out = home.path().join("report.html");
    home.run(&["report", "--out", out.to_str().unwrap()])
        .success();
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.contains("History iPhone"));
    assert!(
        page.contains("Backed up just now; 2 stalls this month, 1 not recovered."),
        "{page}"
    );
    roxmltree::Document::parse(page.trim_start_matches("<!DOCTYPE html>\n")).unwrap();
    for outside in [
        "href=", "src=", "https://", "<script", "<link", "@import", "url(",
    ] {
        assert!(!page.contains(outside), "{outside}");
    }

    // No file name from the phone is kept (the simulated phone's files are
    // in HomeDomain, under Library/).
    let db = std::fs::read(home.path().join("data/unstuck/history.db")).unwrap();
    for name in [&b"HomeDomain"[..], b"Library/"] {
        assert!(!db.windows(name.len()).any(|w| w == name));
    }

    // Forgetting the phone leaves nothing of it.
    let forget = home.run(&["history", "--forget", "00008120-0000000000000B01"]);
    forget.success();
    assert!(
        forget.stdout().contains("2 runs removed"),
        "{}",
        forget.stdout()
    );
    let after = home.run(&["history", "--json"]);
    assert_eq!(after.json()["runs"].as_array().unwrap().len(), 0);
}

/// A month of two phones' backups, as the history would hold them.
fn a_month_of_runs() -> Vec<unstuck::history::Run> {
    use unstuck::cause::Cause;
    use unstuck::history::{Outcome, Run, Stall, StallEnd};
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 30);
    let mut runs = Vec::new();
    for (udid, name, every) in [
        ("00008120-0000000000000B02", "Ann's iPhone", 1),
        ("00008110-0000000000000B03", "Ben's iPhone", 3),
    ] {
        for day in (0..30).step_by(every) {
            let started = start + jiff::SignedDuration::from_hours(24 * day + 2);
            let failed = day % 11 == 5;
            let stalls = match day % 4 {
                1 => vec![(Cause::Detached, StallEnd::PhoneBack)],
                2 if every == 1 => vec![(Cause::ProcessHung, StallEnd::Restarted)],
                _ if failed => vec![(Cause::HostDiskFull, StallEnd::RunEnded)],
                _ => vec![],
            };
            runs.push(Run {
                udid: udid.into(),
                name: Some(name.into()),
                program: if day % 5 == 0 {
                    "AppleMobileBackup"
                } else {
                    "unstuck"
                }
                .into(),
                started,
                ended: started + jiff::SignedDuration::from_mins(12 + (day % 7) * 3),
                outcome: if failed {
                    Outcome::Failed
                } else {
                    Outcome::Complete
                },
                bytes: 400_000_000 + (day as u64 % 6) * 150_000_000,
                files: Some(2_000),
                average_rate: Some(4e6 + (day % 5) as f64 * 1.5e6),
                slowest_rate: Some(1e6),
                error_code: failed.then_some(105),
                cause: failed.then_some(Cause::HostDiskFull),
                restarts: stalls.len() as u32,
                size: (!failed).then_some(38_000_000_000 + day as u64 * 120_000_000),
                stalls: stalls
                    .into_iter()
                    .map(|(cause, ended_by)| Stall {
                        phase: unstuck::stall::Phase::Copying,
                        started: started + jiff::SignedDuration::from_mins(4),
                        secs: 150,
                        cause,
                        ended_by,
                    })
                    .collect(),
            });
        }
    }
    runs.sort_by_key(|r| r.started);
    runs
}

/// The report of a month of two phones, opened in headless Chromium: its
/// charts are drawn (the screenshot is kept as `target/report.png`).
#[test]
fn the_report_of_a_month_is_drawn_in_a_browser() {
    let home = Home::new();
    let data = home.path().join("data/unstuck");
    let mut history =
        unstuck::history::History::open(&unstuck::history::History::path_in(&data)).unwrap();
    history.save(&a_month_of_runs()).unwrap();
    drop(history);
    let out = home.path().join("report.html");
    home.run(&["report", "--out", out.to_str().unwrap()])
        .success();
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.contains("Ann&#39;s iPhone") && page.contains("Ben&#39;s iPhone"));
    assert_eq!(page.matches("<svg").count(), 8, "four charts per phone");
    screenshot(&out);
}

/// Opens the report in headless Chromium and checks that its charts are
/// drawn: the blue of the run bars and the red of the stall bars cover a
/// share of the screenshot, which is kept as `target/report.png`.
fn screenshot(page: &Path) {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        eprintln!("SKIPPED the report's screenshot: chromium is not installed");
        return;
    };
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report.png");
    let profile = tempfile::tempdir().unwrap();
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium failed");
    // The bars' colours as drawn (blue and red at 60 % over white).
    for (colour, what) in [("#80a7d0", "the run bars"), ("#d98880", "the stall bars")] {
        let Some(share) = share_of(&shot, colour) else {
            eprintln!("SKIPPED reading the screenshot: ImageMagick is not installed");
            return;
        };
        assert!(share > 0.002, "{what} ({colour}) not drawn: {share}");
    }
}

/// The share of the image's pixels that are near `colour` (ImageMagick).
fn share_of(image: &Path, colour: &str) -> Option<f64> {
    let out = Command::new("convert")
        .arg(image)
        .args(["-alpha", "off", "-fuzz", "12%", "-fill", "black", "+opaque"])
        .arg(colour)
        .args(["-fill", "white", "-opaque"])
        .arg(colour)
        .args(["-format", "%[fx:mean]", "info:"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A history file that is damaged, or locked by another program for the
/// length of a backup, never stops the backup: the damaged one is moved
/// aside and the run kept in a new one; the locked one is left alone and
/// the log says the run was not added.
#[test]
fn a_damaged_or_locked_history_never_stops_a_backup() {
    let _no_foreign = util::no_foreign_backup_programs();
    let mut c = phone();
    c.stall = None;
    c.udid = "00008120-0000000000000B04".into();
    let (_runtime, sim) = util::sim_on_runtime(c);
    let usbmuxd = sim.usbmuxd_address();
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();

    let home = Home::new();
    let data = home.path().join("data/unstuck");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("history.db"), b"not a database at all").unwrap();
    home.run_on(&usbmuxd, &["backup", "--dest", d]).success();
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("history.db.damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept aside");
    let runs = home.run(&["history", "--json"]).json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);

    // Another program holds the history's write lock throughout.
    let locker = rusqlite::Connection::open(data.join("history.db")).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    home.run_on(&usbmuxd, &["backup", "--dest", d]).success();
    assert!(
        home.log().contains("the run was not added to the history"),
        "{}",
        home.log()
    );
    locker.execute_batch("ROLLBACK;").unwrap();
    drop(locker);
    let runs = home.run(&["history", "--json"]).json();
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "the locked run was passed over"
    );
}
