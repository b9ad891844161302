//! Start at login, through the `auto-launch` crate: an XDG autostart entry
//! on Linux, a LaunchAgent on macOS, the Run key of the current user on
//! Windows. Two gaps of the crate are closed here: the path in the Linux
//! entry's `Exec=` and in the Windows Run key is quoted (a path with spaces
//! would break), and `status` checks that the entry starts *this* binary,
//! not one moved or deleted since.

use std::path::{Path, PathBuf};

use auto_launch::{AutoLaunch, AutoLaunchBuilder};
use thiserror::Error;

const APP_NAME: &str = "Unstuck";

#[derive(Debug, Error)]
pub enum AutostartError {
    #[error("cannot change start at login: {0}")]
    Failed(String),
    #[error("the path of this program ({}) is not valid text; move it to a plain path", .0.display())]
    BadPath(PathBuf),
}

/// Whether Unstuck starts at login, and which binary it would start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Off,
    On,
    /// An entry exists but starts another binary (or one that is gone).
    Elsewhere(String),
}

fn launcher(exe: &Path) -> Result<AutoLaunch, AutostartError> {
    let path = exe
        .to_str()
        .ok_or_else(|| AutostartError::BadPath(exe.to_path_buf()))?;
    // auto-launch writes the Run value as `format!("{} {}", app_path, args)`
    // (auto-launch 0.6.0 src/windows.rs:74-78), so the quotes go in here.
    #[cfg(windows)]
    let path = &quote_run_path(path);
    AutoLaunchBuilder::new()
        .set_app_name(APP_NAME)
        .set_app_path(path)
        .set_macos_launch_mode(auto_launch::MacOSLaunchMode::LaunchAgent)
        .set_windows_enable_mode(auto_launch::WindowsEnableMode::CurrentUser)
        .build()
        .map_err(|e| AutostartError::Failed(e.to_string()))
}

/// Makes `exe` start at login.
pub fn enable(exe: &Path) -> Result<(), AutostartError> {
    launcher(exe)?
        .enable()
        .map_err(|e| AutostartError::Failed(e.to_string()))?;
    platform::after_enable(exe)
}

pub fn disable(exe: &Path) -> Result<(), AutostartError> {
    let launcher = launcher(exe)?;
    if launcher.is_enabled().unwrap_or(false) {
        launcher
            .disable()
            .map_err(|e| AutostartError::Failed(e.to_string()))?;
    }
    Ok(())
}

pub fn status(exe: &Path) -> Result<Status, AutostartError> {
    let enabled = launcher(exe)?
        .is_enabled()
        .map_err(|e| AutostartError::Failed(e.to_string()))?;
    if !enabled {
        return Ok(Status::Off);
    }
    Ok(match platform::registered_path() {
        Some(path) if same_file(Path::new(&path), exe) => Status::On,
        Some(path) => Status::Elsewhere(path),
        // The platform gives no way to read the entry back: trust it.
        None => Status::On,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Quotes a path for a desktop entry's `Exec=` key (the Desktop Entry
/// specification: double quotes, with `"`, `` ` ``, `$` and `\` escaped).
pub fn quote_exec(path: &str) -> String {
    let mut out = String::from("\"");
    for c in path.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes a program's path for the Windows Run key, whose value is a
/// command line. Unquoted, a path with spaces is ambiguous:
/// `C:\Program Files\Unstuck\unstuck.exe` is first tried as
/// `C:\Program.exe` (CreateProcessW, `lpApplicationName`:
/// https://learn.microsoft.com/windows/win32/api/processthreadsapi/nf-processthreadsapi-createprocessw).
/// A Windows path cannot hold `"`, and the program name of a command line
/// is read up to the closing quote with no escapes, so plain quotes do.
pub fn quote_run_path(path: &str) -> String {
    format!("\"{path}\"")
}

/// The program of an `Exec=` value: its first argument, unquoted.
pub fn exec_program(value: &str) -> String {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        value.split_whitespace().next().unwrap_or("").to_owned()
    }
}

#[cfg(not(any(target_os = "macos", windows)))]
mod platform {
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::{AutostartError, quote_exec};

    fn entry() -> Option<PathBuf> {
        Some(
            directories::BaseDirs::new()?
                .home_dir()
                .join(".config/autostart/Unstuck.desktop"),
        )
    }

    /// Rewrites the entry auto-launch wrote, with the path quoted and the
    /// keys a desktop shows.
    pub fn after_enable(exe: &Path) -> Result<(), AutostartError> {
        let path = entry().ok_or_else(|| AutostartError::Failed("no home folder".into()))?;
        let exe = exe.to_string_lossy();
        let text = format!(
            "[Desktop Entry]\nType=Application\nVersion=1.0\nName=Unstuck\nComment=Keeps iPhone backups moving\nExec={}\nIcon=unstuck\nTerminal=false\nStartupNotify=false\nX-GNOME-Autostart-enabled=true\n",
            quote_exec(&exe)
        );
        let part = path.with_extension("desktop.part");
        fs::write(&part, text)
            .and_then(|()| fs::rename(&part, &path))
            .map_err(|e| AutostartError::Failed(e.to_string()))
    }

    pub fn registered_path() -> Option<String> {
        let text = fs::read_to_string(entry()?).ok()?;
        let exec = text.lines().find_map(|l| l.strip_prefix("Exec="))?;
        Some(super::exec_program(exec))
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use std::path::Path;

    use super::AutostartError;

    pub fn after_enable(_exe: &Path) -> Result<(), AutostartError> {
        Ok(())
    }

    /// ProgramArguments[0] of the LaunchAgent auto-launch wrote.
    pub fn registered_path() -> Option<String> {
        let home = directories::BaseDirs::new()?.home_dir().to_path_buf();
        let plist = crate::plist_budget::read_file(
            &home.join("Library/LaunchAgents/Unstuck.plist"),
            crate::plist_budget::Budget::FILE,
        )
        .ok()?;
        let args = plist.as_dictionary()?.get("ProgramArguments")?.as_array()?;
        Some(args.first()?.as_string()?.to_owned())
    }
}

#[cfg(windows)]
mod platform {
    use std::path::Path;

    use super::AutostartError;

    pub fn after_enable(_exe: &Path) -> Result<(), AutostartError> {
        Ok(())
    }

    /// The Run key's value is not read back here; `status` trusts it.
    pub fn registered_path() -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_paths_round_trip_through_quoting() {
        for path in [
            "/usr/bin/unstuck",
            "/home/ann/My Apps/unstuck",
            "/tmp/we$ird \"name\"/un`stuck\\x",
        ] {
            assert_eq!(exec_program(&quote_exec(path)), path);
        }
        assert_eq!(exec_program("/usr/bin/unstuck --tray"), "/usr/bin/unstuck");
    }

    #[test]
    fn run_key_paths_are_quoted_whole() {
        assert_eq!(
            quote_run_path(r"C:\Program Files\Unstuck\unstuck.exe"),
            r#""C:\Program Files\Unstuck\unstuck.exe""#
        );
        // Backslashes stay as they are: they escape nothing in a program
        // name, and a path ending in one is still one token.
        assert_eq!(quote_run_path(r"C:\Unstuck\"), r#""C:\Unstuck\""#);
        assert_eq!(
            quote_run_path(r"D:\Ann's Apps\unstuck.exe"),
            "\"D:\\Ann's Apps\\unstuck.exe\""
        );
    }
}
