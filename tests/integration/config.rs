use std::fs;

use crate::util::Home;

#[test]
fn first_run_writes_commented_defaults_and_config_path_prints_it() {
    let home = Home::new();
    let run = home.run(&["config", "path"]);
    run.success();
    assert_eq!(run.stdout().trim(), home.config_file().to_str().unwrap());
    home.run(&["status"]).success();
    let text = fs::read_to_string(home.config_file()).unwrap();
    assert_eq!(text, unstuck::config::DEFAULT_CONFIG);
    // Never overwritten.
    fs::write(home.config_file(), "log_level = \"debug\"\n").unwrap();
    home.run(&["status"]).success();
    assert_eq!(
        fs::read_to_string(home.config_file()).unwrap(),
        "log_level = \"debug\"\n"
    );
}

#[test]
fn a_mistake_names_the_file_the_key_and_the_line() {
    let home = Home::new();
    home.write_config("log_level = \"info\"\ninterrupted_after_minutes = 99999\n");
    let run = home.run(&["status"]);
    assert_eq!(run.code(), Some(1));
    let err = run.stderr();
    assert!(err.contains(home.config_file().to_str().unwrap()), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("interrupted_after_minutes"), "{err}");
    assert!(err.contains("1 to 1440"), "{err}");
    // `config path` still answers, so the user can find the file to fix.
    home.run(&["config", "path"]).success();
}

#[test]
fn a_config_given_with_flag_must_exist() {
    let home = Home::new();
    let missing = home.path().join("nope.toml");
    let run = home.run(&["--config", missing.to_str().unwrap(), "status"]);
    assert_eq!(run.code(), Some(1));
    assert!(run.stderr().contains("does not exist"), "{}", run.stderr());
    assert!(!missing.exists());
}

#[test]
fn the_log_file_is_in_the_data_folder() {
    let home = Home::new();
    home.run(&["--verbose", "status"]).success();
    let log = home.path().join("data/unstuck/unstuck.log");
    assert!(log.is_file(), "no log at {}", log.display());
}

#[test]
fn an_empty_platform_command_is_refused_at_load() {
    let home = Home::new();
    home.write_config("[backup]\nplatform_command = []\n");
    let run = home.run(&["status"]);
    assert_eq!(run.code(), Some(1));
    let err = run.stderr();
    assert!(err.contains("platform_command"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("name the program first"), "{err}");
    home.write_config("[backup]\nplatform_command = [\"\", \"--backup\"]\n");
    assert_eq!(home.run(&["status"]).code(), Some(1));
}

/// The config file and the log name phones and folders: only the user
/// reads them, and a log left readable by an older version is tightened.
#[cfg(unix)]
#[test]
fn the_config_file_and_the_log_are_the_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let log = home.path().join("data/unstuck/unstuck.log");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    fs::write(&log, "older lines\n").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
    home.run(&["status"]).success();
    for file in [home.config_file(), log] {
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

/// At log_level = "debug" the device library would write whole device
/// plists (serial number, UDID) into the log: it is held to warnings.
#[test]
fn device_plists_never_reach_the_log() {
    let (_runtime, sim) = crate::util::sim_on_runtime(super::sim::config());
    let home = Home::new();
    home.write_config("log_level = \"debug\"\n");
    home.run_on(&sim.usbmuxd_address(), &["devices"]).success();
    let log = home.log();
    assert!(log.contains("DEBUG"), "the log level was not debug: {log}");
    assert!(
        !log.contains("SIMULATED01"),
        "the serial number is in the log:\n{log}"
    );
    assert!(!log.contains("Received plist"), "{log}");
}
