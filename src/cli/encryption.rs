//! `unstuck encryption`: whether the iPhone encrypts its backups, the
//! backup password (on, off, change, through the phone), and `check`,
//! which tries passwords against a backup's keybag with no phone attached.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

use super::Context;
use super::devices::mux_address;
use crate::backup_folder::keybag::Keybag;
use crate::backup_folder::plists;
use crate::device;
use crate::engine::{self, EngineError};
use crate::humanize;

/// Exit code when no candidate is the password (as for the phone's 207).
const NOT_THE_PASSWORD: u8 = 13;
/// Candidates read from standard input: at most this many, each at most
/// `MAX_LINE` bytes (at about a second each, more would take days), and
/// never more than `MAX_INPUT` bytes in all.
const MAX_CANDIDATES: usize = 100_000;
const MAX_LINE: usize = 1024;
const MAX_INPUT: usize = 16 * 1024 * 1024;

/// What `unstuck encryption` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncryptionAction {
    /// Say whether backups of the iPhone are encrypted.
    Status,
    /// Turn encryption on with a new password.
    On,
    /// Turn encryption off (needs the current password).
    Off,
    /// Change the password (needs the current one).
    Change,
    /// Try passwords against a backup on this computer (no phone needed):
    /// typed at a prompt, or one per line on standard input.
    Check,
}

pub fn encryption(
    ctx: &Context,
    action: EncryptionAction,
    udid: Option<String>,
    stdin: bool,
    backup: Option<PathBuf>,
) -> Result<ExitCode> {
    if action == EncryptionAction::Check {
        return check(ctx, udid, backup, stdin);
    } else if backup.is_some() {
        bail!(
            "--backup names a backup for `unstuck encryption check` only; the other actions ask the iPhone"
        );
    }
    let addr = mux_address(ctx)?;
    let runtime = super::runtime()?;
    let facts = runtime.block_on(device::facts(&addr, udid.as_deref(), device::DEADLINE))?;
    let name = facts.name.clone().unwrap_or_else(|| "the iPhone".into());
    let encrypted = facts.backup.will_encrypt;
    let mut passwords = Passwords::new(stdin);
    let (old, new) = match action {
        EncryptionAction::Status => {
            println!(
                "Backups of {name} are {}.",
                match encrypted {
                    Some(true) => "encrypted",
                    Some(false) => "not encrypted",
                    None => "of unknown encryption (the iPhone did not say)",
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        EncryptionAction::On => {
            if encrypted == Some(true) {
                bail!(
                    "backups of {name} are already encrypted; use `unstuck encryption change` to change the password"
                );
            }
            (None, Some(passwords.new_password()?))
        }
        EncryptionAction::Off | EncryptionAction::Change if encrypted == Some(false) => {
            // Asking for a password here would end in the phone's 207 and
            // advice to reset the phone's settings, all for nothing.
            bail!(
                "backups of {name} are not encrypted, so there is no password to {}; `unstuck encryption on` turns encryption on",
                if action == EncryptionAction::Off {
                    "turn off"
                } else {
                    "change"
                }
            );
        }
        EncryptionAction::Off => (Some(passwords.ask("Current backup password: ")?), None),
        // Answered above, before the phone is asked anything.
        EncryptionAction::Check => return check(ctx, udid, None, stdin),
        EncryptionAction::Change => {
            let old = passwords.ask("Current backup password: ")?;
            (Some(old), Some(passwords.new_password()?))
        }
    };
    let done = runtime.block_on(engine::change_password(
        &addr,
        Some(&facts.udid),
        old.as_ref().map(|p| p.as_str()),
        new.as_ref().map(|p| p.as_str()),
        device::DEADLINE,
    ));
    // The passwords are wiped here (Zeroizing), before anything is printed.
    drop((old, new));
    match done {
        Ok(()) => {
            println!(
                "{}",
                match action {
                    EncryptionAction::On => format!(
                        "Backups of {name} are now encrypted. Keep the password safe: without it the backups cannot be restored."
                    ),
                    EncryptionAction::Off => format!("Backups of {name} are no longer encrypted."),
                    _ => "The backup password was changed.".to_owned(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::Phone { code: 207, .. }) => {
            eprintln!(
                "unstuck: that is not the backup password of {name}. Not sure which it was? `unstuck encryption check` tries candidates against a backup on this computer. Forgot it? On the iPhone: Settings → General → Transfer or Reset iPhone → Reset → Reset All Settings removes it (your data stays); then turn encryption on again with `unstuck encryption on`."
            );
            Ok(ExitCode::from(13))
        }
        Err(e) => {
            eprintln!("unstuck: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

/// Reads passwords from a prompt that does not echo, or one per line from
/// standard input with `--password-stdin`.
struct Passwords {
    lines: Option<io::Lines<io::StdinLock<'static>>>,
}

impl Passwords {
    fn new(stdin: bool) -> Passwords {
        Passwords {
            lines: stdin.then(|| io::stdin().lock().lines()),
        }
    }

    fn ask(&mut self, prompt: &str) -> Result<Zeroizing<String>> {
        let password = Zeroizing::new(match &mut self.lines {
            Some(lines) => lines
                .next()
                .context("standard input ended before the password")?
                .context("cannot read the password from standard input")?,
            None => {
                let _ = io::stderr().flush();
                rpassword::prompt_password(prompt)
                    .context("cannot read the password from the terminal")?
            }
        });
        if password.is_empty() {
            bail!("the password is empty");
        }
        Ok(password)
    }

    fn new_password(&mut self) -> Result<Zeroizing<String>> {
        let first = self.ask("New backup password: ")?;
        if self.lines.is_none() {
            let again = self.ask("Once more: ")?;
            if again != first {
                bail!("the two passwords differ; nothing was changed");
            }
        }
        Ok(first)
    }
}

/// `unstuck encryption check`: tries candidates against the keybag of an
/// encrypted backup on this computer and names the one that opens it.
fn check(
    ctx: &Context,
    udid: Option<String>,
    backup: Option<PathBuf>,
    stdin: bool,
) -> Result<ExitCode> {
    let folder = encrypted_backup(ctx, udid.as_deref(), backup.as_deref())?;
    let manifest_path = folder.path.join("Manifest.plist");
    let bag = folder.manifest.backup_key_bag.as_deref().with_context(|| {
        format!(
            "{} has no BackupKeyBag: the backup cannot be opened by any password",
            manifest_path.display()
        )
    })?;
    let bag = Keybag::parse(bag)
        .with_context(|| format!("cannot check passwords against {}", manifest_path.display()))?;
    let name = folder.name.clone();
    let rounds = bag
        .double_protection
        .as_ref()
        .map(|dp| dp.iterations)
        .unwrap_or(bag.iterations);
    eprintln!(
        "Checking passwords against the backup of {name} in {} (its keybag asks for {} rounds per password; nothing is sent to the iPhone).",
        folder.path.display(),
        humanize::count(u64::from(rounds))
    );
    let from_lines = stdin || !io::stdin().is_terminal();
    let outcome = if from_lines {
        check_lines(&bag, io::stdin().lock())?
    } else {
        check_prompted(&bag)?
    };
    match outcome {
        Checked::Found { line, tried, each } => {
            match line {
                Some(line) => println!(
                    "Line {line} is the backup password of {name} (found after {}, {} each).",
                    humanize::count_noun(tried as u64, "candidate"),
                    seconds(each)
                ),
                None => println!("That is the backup password of {name}."),
            }
            Ok(ExitCode::SUCCESS)
        }
        Checked::NoneTried => {
            eprintln!("No password was tried.");
            Ok(ExitCode::SUCCESS)
        }
        Checked::NotFound { tried, each } => {
            let steps = crate::actions::forgotten_password_steps("  ");
            eprintln!(
                "None of the {} is the backup password of {name} ({} each).\nIf the password is lost, the way out is on the iPhone (the backups made with it stay locked):\n{steps}",
                humanize::count_noun(tried as u64, "candidate"),
                seconds(each)
            );
            Ok(ExitCode::from(NOT_THE_PASSWORD))
        }
    }
}

/// What a check found.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// `line` is the candidate's line on standard input (none when typed).
    Found {
        line: Option<usize>,
        tried: usize,
        each: Duration,
    },
    NotFound {
        tried: usize,
        each: Duration,
    },
    /// Enter alone at the first prompt.
    NoneTried,
}

/// Tries each line of `input` (a line is a candidate as it stands, without
/// its line ending; empty lines are skipped), with a progress bar.
fn check_lines(bag: &Keybag, mut input: impl BufRead) -> Result<Checked> {
    let mut candidates: Vec<(usize, Zeroizing<String>)> = Vec::new();
    let mut total = 0usize;
    for n in 0.. {
        // A line is read no further than its bound, so input without line
        // ends cannot fill memory.
        let mut line = Zeroizing::new(Vec::new());
        let read = input
            .by_ref()
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut line)
            .context("cannot read the candidates from standard input")?;
        if read == 0 {
            break;
        }
        total += read;
        if total > MAX_INPUT {
            bail!(
                "standard input holds more than {} of candidates; split the list",
                humanize::bytes(MAX_INPUT as u64)
            );
        }
        let ended = line.last() == Some(&b'\n');
        if ended {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > MAX_LINE || (!ended && read > MAX_LINE) {
            bail!(
                "line {} of standard input is longer than {MAX_LINE} bytes: it is not a password",
                n + 1
            );
        }
        if line.is_empty() {
            continue;
        }
        if candidates.len() == MAX_CANDIDATES {
            bail!(
                "standard input holds more than {} candidates; split the list",
                humanize::count(MAX_CANDIDATES as u64)
            );
        }
        let text = String::from_utf8(std::mem::take(&mut *line)).map_err(|e| {
            // The bytes are wiped before the error goes up.
            drop(Zeroizing::new(e.into_bytes()));
            anyhow::anyhow!("line {} of standard input is not UTF-8 text", n + 1)
        })?;
        candidates.push((n + 1, Zeroizing::new(text)));
    }
    if candidates.is_empty() {
        bail!("standard input held no candidates: give one password per line");
    }
    let bar = ProgressBar::new(candidates.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} candidates, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = Instant::now();
    for (tried, (line, candidate)) in candidates.iter().enumerate() {
        let found = bag.unlock(candidate.as_bytes()).is_some();
        let tried = tried + 1;
        let each = started.elapsed() / tried as u32;
        bar.set_position(tried as u64);
        let left = each * (candidates.len() - tried) as u32;
        bar.set_message(format!(
            "{} each, about {} left",
            seconds(each),
            humanize::duration(jiff::SignedDuration::try_from(left).unwrap_or_default())
        ));
        if found {
            bar.finish_and_clear();
            return Ok(Checked::Found {
                line: Some(*line),
                tried,
                each,
            });
        }
    }
    bar.finish_and_clear();
    let tried = candidates.len();
    Ok(Checked::NotFound {
        tried,
        each: started.elapsed() / tried as u32,
    })
}

/// Asks for candidates at a prompt that does not echo, until one opens the
/// keybag or an empty answer ends the check.
fn check_prompted(bag: &Keybag) -> Result<Checked> {
    let mut tried = 0usize;
    let mut spent = Duration::ZERO;
    loop {
        let _ = io::stderr().flush();
        let candidate = Zeroizing::new(
            rpassword::prompt_password("Password to try (Enter alone to stop): ")
                .context("cannot read the password from the terminal")?,
        );
        if candidate.is_empty() {
            if tried == 0 {
                return Ok(Checked::NoneTried);
            }
            let each = spent.checked_div(tried as u32).unwrap_or_default();
            return Ok(Checked::NotFound { tried, each });
        }
        let started = Instant::now();
        let found = bag.unlock(candidate.as_bytes()).is_some();
        spent += started.elapsed();
        tried += 1;
        let each = spent / tried as u32;
        if found {
            return Ok(Checked::Found {
                line: None,
                tried,
                each,
            });
        }
        eprintln!("Not that one ({}).", seconds(started.elapsed()));
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// An encrypted backup folder on this computer, with what its
/// Manifest.plist says.
struct EncryptedBackup {
    path: PathBuf,
    name: String,
    manifest: plists::ManifestPlist,
}

/// The encrypted backup to check: the one `--backup` names (a phone's
/// folder, or a folder of them), else the one of `udid` or the only
/// encrypted one in the backup folders Unstuck knows.
fn encrypted_backup(
    ctx: &Context,
    udid: Option<&str>,
    backup: Option<&Path>,
) -> Result<EncryptedBackup> {
    let roots: Vec<PathBuf> = match backup {
        Some(path) if path.join("Manifest.plist").exists() => {
            let found = read_encrypted(path)?;
            return match found {
                Some(found) => Ok(found),
                None => bail!(
                    "the backup in {} is not encrypted: it has no password to check",
                    path.display()
                ),
            };
        }
        Some(path) if !path.exists() => bail!(
            "{} does not exist; name the backup folder of the phone (the one named by its UDID)",
            path.display()
        ),
        Some(path) if path.is_dir() => vec![path.to_owned()],
        Some(path) => bail!(
            "{} is not a backup folder (it has no Manifest.plist); name the phone's folder, the one named by its UDID",
            path.display()
        ),
        None => ctx.root_paths(&[]),
    };
    let wanted =
        udid.map(|u| crate::backup_folder::normalize_udid(u).unwrap_or_else(|| u.to_owned()));
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for root in &roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let folder_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(wanted) = &wanted
                && !folder_name.eq_ignore_ascii_case(wanted)
            {
                continue;
            }
            if !path.join("Manifest.plist").is_file() {
                continue;
            }
            match read_encrypted(&path) {
                Ok(Some(backup)) => found.push(backup),
                Ok(None) => {}
                Err(e) => unreadable.push(e.to_string()),
            }
        }
    }
    let place = roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match found.len() {
        0 => bail!(
            "no encrypted backup{} in {place}; name one with --backup FOLDER{}",
            wanted.map(|u| format!(" of {u}")).unwrap_or_default(),
            unreadable
                .iter()
                .map(|e| format!("\n  {e}"))
                .collect::<String>()
        ),
        1 => Ok(found.remove(0)),
        _ => bail!(
            "{} encrypted backups are here ({}); choose one with --udid or --backup",
            found.len(),
            found
                .iter()
                .map(|b| format!("{} in {}", b.name, b.path.display()))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// Reads `folder`'s Manifest.plist: `None` when the backup is not encrypted.
fn read_encrypted(folder: &Path) -> Result<Option<EncryptedBackup>> {
    let path = folder.join("Manifest.plist");
    let manifest = plists::read_manifest(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if manifest.is_encrypted != Some(true) {
        return Ok(None);
    }
    let name = manifest
        .device_name
        .clone()
        .or_else(|| manifest.unique_device_id.clone())
        .unwrap_or_else(|| "the iPhone".to_owned());
    Ok(Some(EncryptedBackup {
        path: folder.to_owned(),
        name,
        manifest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup_folder::keybag::ClassKeys;

    fn bag() -> Keybag {
        let mut keys = ClassKeys::default();
        keys.insert(3, [3; 32]);
        Keybag::build(b"correct horse", &keys, b"test", 10, 10)
    }

    /// "pw\n" for ever.
    struct RepeatLines;

    impl std::io::Read for RepeatLines {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = b"pw\n"[i % 3];
            }
            Ok(buf.len() - buf.len() % 3)
        }
    }

    #[test]
    fn the_right_line_is_named_and_blank_lines_are_skipped() {
        let input = b"hunter2\r\n\nTr0ub4dor&3\ncorrect horse\nnever tried\n";
        match check_lines(&bag(), &input[..]).unwrap() {
            Checked::Found { line, tried, .. } => {
                assert_eq!(line, Some(4));
                assert_eq!(tried, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_right_line_says_how_many_were_tried() {
        let input = b"a\nb\nc";
        assert!(matches!(
            check_lines(&bag(), &input[..]).unwrap(),
            Checked::NotFound { tried: 3, .. }
        ));
    }

    #[test]
    fn empty_long_and_binary_input_get_words() {
        let err = check_lines(&bag(), &b"\n\n"[..]).unwrap_err().to_string();
        assert!(err.contains("no candidates"), "{err}");
        let long = vec![b'x'; MAX_LINE + 1];
        let err = check_lines(&bag(), &long[..]).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("longer"), "{err}");
        // Endless input without a line end stops at the first line's bound.
        let endless = std::io::BufReader::new(std::io::repeat(b'x'));
        let err = check_lines(&bag(), endless).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("longer"), "{err}");
        // Endless short lines stop at the count of candidates.
        let err = check_lines(&bag(), std::io::BufReader::new(RepeatLines))
            .unwrap_err()
            .to_string();
        assert!(err.contains("split the list"), "{err}");
        let err = check_lines(&bag(), &b"ok\n\xff\xfe\n"[..])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
    }
}
