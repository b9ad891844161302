//! Start at login on Linux (XDG autostart), in a private HOME, including a
//! binary whose path has spaces.

use crate::util::{self, Home};

fn autostart_entry(home: &Home) -> std::path::PathBuf {
    home.path().join(".config/autostart/Unstuck.desktop")
}

#[cfg(target_os = "linux")]
#[test]
fn on_status_off_round_trip() {
    let home = Home::new();
    let status = home.run(&["autostart", "status"]);
    assert_eq!(status.code(), Some(1), "{}", status.stdout());
    assert!(status.stdout().starts_with("off"));

    home.run(&["autostart", "on"]).success();
    let entry = std::fs::read_to_string(autostart_entry(&home)).unwrap();
    assert!(
        entry.contains(&format!("Exec=\"{}\"", env!("CARGO_BIN_EXE_unstuck"))),
        "{entry}"
    );
    assert!(entry.contains("Icon=unstuck"), "{entry}");
    let status = home.run(&["autostart", "status"]);
    status.success();
    assert!(status.stdout().starts_with("on"), "{}", status.stdout());

    home.run(&["autostart", "off"]).success();
    assert!(!autostart_entry(&home).exists());
    assert_eq!(home.run(&["autostart", "status"]).code(), Some(1));
}

#[cfg(target_os = "linux")]
#[test]
fn a_path_with_spaces_is_quoted_and_a_moved_binary_is_noticed() {
    let home = Home::new();
    let dir = home.path().join("My Apps");
    std::fs::create_dir(&dir).unwrap();
    let copy = dir.join("unstuck");
    std::fs::copy(env!("CARGO_BIN_EXE_unstuck"), &copy).unwrap();
    let run = |bin: &std::path::Path, args: &[&str]| {
        util::Run(
            std::process::Command::new(bin)
                .args(args)
                .env("HOME", home.path())
                .env("XDG_CONFIG_HOME", home.path().join("config"))
                .env("XDG_DATA_HOME", home.path().join("data"))
                .output()
                .unwrap(),
        )
    };
    run(&copy, &["autostart", "on"]).success();
    let entry = std::fs::read_to_string(autostart_entry(&home)).unwrap();
    assert!(
        entry.contains(&format!("Exec=\"{}\"", copy.display())),
        "{entry}"
    );
    // The quoted line starts the binary: a desktop splits Exec= like a shell.
    let exec = entry.lines().find_map(|l| l.strip_prefix("Exec=")).unwrap();
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("{exec} --version")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("unstuck "),
        "{out:?}"
    );
    run(&copy, &["autostart", "status"]).success();
    // Another binary (the one cargo built) sees the entry points elsewhere.
    let other = home.run(&["autostart", "status"]);
    assert_eq!(other.code(), Some(2), "{}", other.stdout());
    assert!(
        other.stdout().contains("My Apps/unstuck"),
        "{}",
        other.stdout()
    );
}
