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
