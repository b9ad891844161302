//! Where log lines go: a file in Unstuck's data folder, and stderr when the
//! user asks (`--verbose`). A log that cannot be opened is reported once and
//! the program goes on without it.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// A log file past this size is moved to `unstuck.log.1` at start-up, so the
/// log never grows without bound.
const ROTATE_BYTES: u64 = 5 * 1024 * 1024;

/// Installs the global subscriber. `level` is a `tracing` filter ("info",
/// "debug", …); `RUST_LOG`, when set, overrides it.
pub fn init(log_file: Option<&Path>, level: &str, stderr: bool) {
    let filter =
        capped(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)));
    let file = log_file.and_then(|path| match open(path) {
        Ok(file) => Some(Mutex::new(file)),
        Err(e) => {
            eprintln!("unstuck: cannot write the log file {}: {e}", path.display());
            None
        }
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false);
    // `try_init` fails only when a subscriber is already set (tests): keep it.
    let _ = match (file, stderr) {
        (Some(file), true) => builder.with_writer(file.and(std::io::stderr)).try_init(),
        (Some(file), false) => builder.with_writer(file).try_init(),
        (None, true) => builder.with_writer(std::io::stderr).try_init(),
        (None, false) => builder.with_writer(std::io::sink).try_init(),
    };
}

/// At its debug level the device library writes whole device plists
/// (serial number, UDID, MAC addresses) to the log: it says no more than
/// its warnings, whatever the level asked for.
fn capped(filter: EnvFilter) -> EnvFilter {
    use tracing_subscriber::filter::LevelFilter;
    let verbose = filter
        .max_level_hint()
        .is_none_or(|level| level > LevelFilter::WARN);
    match "idevice=warn".parse() {
        Ok(directive) if verbose => filter.add_directive(directive),
        _ => filter,
    }
}

fn open(path: &Path) -> std::io::Result<fs::File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    if fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
        fs::rename(path, path.with_extension("log.1"))?;
    }
    let mut options = fs::OpenOptions::new();
    options.create(true).append(true);
    // Only the user reads it: it names phones and folders.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A log made by an older version may be readable by others.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}
