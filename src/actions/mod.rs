//! The one-click fixes the tray's menu, notification buttons and
//! `unstuck fix` offer: restart the backup (stopping a stuck program first),
//! restart the iPhone, network advice with the Wi-Fi sync switch, storage
//! clean-up into the trash, and the encryption reset path. Each says what it
//! will do and asks through [`Confirm`] before anything that cannot be
//! undone; the deciding parts are plain functions over facts.

/// Before resetting anything: the passwords one might have used, tried
/// against a backup on this computer, with no phone.
pub const TRY_PASSWORDS_FIRST: &str = "Not sure? Try the passwords you might have used against a backup on this computer first: `unstuck encryption check` (no phone needed; a second or more per password).";

/// What to do when the backup password is forgotten: Apple's own path, which
/// removes the password without erasing data.
pub const FORGOTTEN_PASSWORD_STEPS: [&str; 3] = [
    "On the iPhone: Settings → General → Transfer or Reset iPhone → Reset → Reset All Settings (your data stays; settings such as Wi-Fi passwords and wallpaper are reset).",
    "Unlock the iPhone and enter its passcode when asked: this removes the backup password.",
    "Turn encryption back on with a new password (`unstuck encryption on`).",
];

/// [`FORGOTTEN_PASSWORD_STEPS`] numbered, one per line, each line starting
/// with `indent`.
pub fn forgotten_password_steps(indent: &str) -> String {
    FORGOTTEN_PASSWORD_STEPS
        .iter()
        .enumerate()
        .map(|(n, s)| format!("{indent}{}. {s}", n + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fixes by name; defined with the monitor's plain data, which
/// recommends them, and used by the menu, notifications and `unstuck fix`.
pub use crate::monitor::Action;

pub mod network;
pub mod restart;
pub mod storage;

/// Asks the user to agree before an action goes ahead. The CLI asks at a
/// prompt (or takes `--yes`), the tray asks by notification, tests answer.
pub trait Confirm {
    fn confirm(&mut self, question: &str) -> bool;

    /// A second, explicit yes for what cannot be had back easily (the
    /// newest complete backup of a phone). A blanket "yes to all" must not
    /// answer it.
    fn confirm_again(&mut self, question: &str) -> bool {
        self.confirm(question)
    }

    /// A yes to a step whose grounds fall short (stopping a program that
    /// may not be the stuck one): only someone who read the question, which
    /// says why, can give it; no flag answers it.
    fn confirm_unsure(&mut self, question: &str) -> bool {
        self.confirm(question)
    }
}

/// Opens a file or folder with the desktop's default program: `open` on
/// macOS, Explorer on Windows, `xdg-open` (freedesktop.org's xdg-utils)
/// elsewhere. It does not wait for the program.
pub fn show(path: &std::path::Path) -> Result<(), String> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if !path.exists() {
        return Err(format!("{} does not exist (yet)", path.display()));
    }
    std::process::Command::new(program)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("{program} could not be started ({e})"))
}
