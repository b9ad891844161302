//! `unstuck fix`: the tray's one-click fixes, headless. Each says what it
//! will do and asks first (a prompt, or `--yes`).

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use tokio::sync::mpsc;

use super::Context;
use super::devices::mux_address;
use crate::actions::restart::Restarted;
use crate::actions::{self, Action, Confirm, network, restart, storage};
use crate::device;
use crate::engine::record::Failure;
use crate::humanize;

/// The fix's help on the command line.
fn help(action: Action) -> &'static str {
    match action {
        Action::RestartBackup => {
            "Stop a backup program stuck on this phone (after a yes; a typed yes when unsure), clear leftovers, back up again"
        }
        Action::RestartPhone => "Restart the iPhone (the fix for error 3)",
        Action::NetworkAdvice => "Advice for the cable or Wi-Fi, and the Wi-Fi sync switch",
        Action::StorageCleanup => "What takes space, and moving items to the trash",
        Action::EncryptionReset => {
            "Whether backups are encrypted, and what to do about a forgotten password"
        }
    }
}

/// The fix's name after `unstuck fix` (its command says it once).
fn cli_name(action: Action) -> &'static str {
    let command = action.command();
    command.strip_prefix("unstuck fix ").unwrap_or(command)
}

/// `unstuck fix <FIX>` names the same fixes as the menu and the
/// notifications, in the order the help lists them.
impl clap::ValueEnum for Action {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Action::RestartBackup,
            Action::RestartPhone,
            Action::NetworkAdvice,
            Action::StorageCleanup,
            Action::EncryptionReset,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(cli_name(*self)).help(help(*self)))
    }
}

/// Options of `unstuck fix`, as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FixOptions {
    /// The iPhone's UDID; the only attached one when left out.
    #[arg(long)]
    pub udid: Option<String>,
    /// Answer yes to the questions (not to moving what may hold a phone's
    /// newest data, nor to stopping a program Unstuck is unsure about).
    #[arg(long)]
    pub yes: bool,
    /// Also answer yes to moving what may hold a phone's newest data.
    #[arg(long)]
    pub yes_newest: bool,
    /// restart: the folder of backups to write into.
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// storage: also look in this folder of backups (repeatable).
    #[arg(long = "backup-root", value_name = "DIR")]
    pub backup_roots: Vec<PathBuf>,
    /// storage: move this item to the trash, named by the id the list shows
    /// or by its path (repeatable).
    #[arg(long = "trash", value_name = "ID|PATH")]
    pub trash: Vec<String>,
    /// network: turn the iPhone's Wi-Fi sync on or off.
    #[arg(long, value_name = "on|off", value_parser = super::on_off)]
    pub wifi_sync: Option<bool>,
}

/// Asks at the terminal; `--yes` answers the ordinary questions, only
/// `--yes-newest` (or a typed yes) the second one about a phone's newest
/// data, and only a typed yes stopping a program Unstuck is unsure about.
struct Prompt {
    yes: bool,
    yes_newest: bool,
}

impl Prompt {
    fn ask(question: &str) -> bool {
        Prompt::ask_or(question, "use --yes")
    }

    /// Asks at the terminal; elsewhere the answer is no, and `hint` says
    /// what would answer it.
    fn ask_or(question: &str, hint: &str) -> bool {
        if !io::stdin().is_terminal() {
            eprintln!("{question} (no: not asked at a terminal; {hint})");
            return false;
        }
        eprint!("{question} [y/N] ");
        let _ = io::stderr().flush();
        let mut line = String::new();
        let _ = io::stdin().lock().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
    }
}

impl Confirm for Prompt {
    fn confirm(&mut self, question: &str) -> bool {
        if self.yes {
            eprintln!("{question} yes (--yes)");
            return true;
        }
        Prompt::ask(question)
    }

    fn confirm_again(&mut self, question: &str) -> bool {
        if self.yes_newest {
            eprintln!("{question} yes (--yes-newest)");
            return true;
        }
        Prompt::ask_or(
            question,
            "this needs --yes-newest besides --yes, or a typed yes",
        )
    }

    fn confirm_unsure(&mut self, question: &str) -> bool {
        Prompt::ask_or(
            question,
            "--yes does not answer this; only a typed yes does",
        )
    }
}

/// A restart the user declined changed nothing and says so; a backup that
/// failed exits as `unstuck backup` would for the same failure; any other
/// failure is an error.
fn refused(e: restart::RestartError) -> Result<ExitCode> {
    match e {
        restart::RestartError::Declined => {
            println!("Nothing was changed.");
            Ok(ExitCode::from(1))
        }
        restart::RestartError::Engine(e) => {
            eprintln!("unstuck: backup failed: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
        // Kept as itself, so the exit code says the phone was not reached.
        restart::RestartError::Device(e) => Err(e.into()),
        e => bail!("{e}"),
    }
}

pub fn run(ctx: &Context, fix: Action, o: FixOptions) -> Result<ExitCode> {
    let mut prompt = Prompt {
        yes: o.yes,
        yes_newest: o.yes_newest,
    };
    let runtime = super::runtime()?;
    match fix {
        Action::RestartBackup => {
            let addr = mux_address(ctx)?;
            let options = ctx.backup_options(o.udid.clone(), o.dest.clone())?;
            let stuck_after = restart::stuck_after(&ctx.config.monitor.monitor_config());
            let command = ctx.config.backup.platform_command.clone();
            let (tx, rx) = mpsc::unbounded_channel();
            // Shown and recorded as `unstuck backup` shows and records it.
            let result = runtime.block_on(super::backup::follow(
                ctx,
                false,
                rx,
                restart::restart(
                    &addr,
                    &options,
                    stuck_after,
                    command.as_deref(),
                    &mut prompt,
                    &tx,
                ),
                |r| match r {
                    Ok(_) => None,
                    Err(restart::RestartError::Engine(e)) => Some(Failure::of(e)),
                    Err(e) => Some(Failure::unknown(e.to_string())),
                },
            ));
            match result {
                Ok(Restarted::Backup(report)) => {
                    println!(
                        "Backup complete: {} files, {} — {}",
                        report.files,
                        humanize::bytes(report.bytes),
                        report.folder.display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Restarted::Command { program, status }) => {
                    println!("{program} ended with {status}.");
                    Ok(if status.success() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => refused(e),
            }
        }
        Action::RestartPhone => {
            let addr = mux_address(ctx)?;
            match runtime.block_on(restart::restart_phone(
                &addr,
                o.udid.as_deref(),
                &mut prompt,
            )) {
                Ok(()) => {
                    println!("The iPhone is restarting; it will be back in a minute.");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => refused(e),
            }
        }
        Action::NetworkAdvice => {
            let addr = mux_address(ctx)?;
            let found = runtime.block_on(network::gather(Some(&addr), o.udid.as_deref(), 0));
            for (n, a) in found.advice.iter().enumerate() {
                println!("{}. {}", n + 1, a.text);
            }
            if let (Some(on), Some(udid)) = (o.wifi_sync, &found.udid) {
                let what = if on { "on" } else { "off" };
                if prompt.confirm(&format!("Turn Wi-Fi sync {what} on the iPhone?")) {
                    runtime.block_on(device::set_wifi_sync(
                        &addr,
                        Some(udid),
                        on,
                        device::DEADLINE,
                    ))?;
                    println!("Wi-Fi sync is now {what}.");
                }
            }
            // 4 as everywhere when usbmuxd cannot be reached; 1 when no
            // phone is attached (the advice says how to attach it).
            Ok(match (&found.blocker, found.link) {
                (Some(network::Blocker::Usbmuxd(_)), _) => ExitCode::from(4),
                (_, Some(_)) => ExitCode::SUCCESS,
                (_, None) => ExitCode::from(1),
            })
        }
        Action::StorageCleanup => {
            let roots = ctx.root_paths(&o.backup_roots);
            let addr = mux_address(ctx).ok();
            let report = runtime.block_on(storage::report(
                &roots,
                ctx.now,
                addr.as_ref(),
                o.udid.as_deref(),
            ));
            for (root, free) in &report.free {
                println!("{}: {} free", root.display(), humanize::bytes(*free));
            }
            if report.items.is_empty() {
                println!("Nothing to clean up.");
            }
            for item in &report.items {
                // Whose it is, when its Info.plist says.
                let whose = item
                    .device_name
                    .as_deref()
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default();
                println!(
                    "{}  {:>9}  {}  — {whose}{}",
                    item.id,
                    humanize::bytes(item.bytes),
                    item.path.display(),
                    item.why
                );
            }
            if !report.hints.is_empty() {
                println!("On the iPhone:");
            }
            for hint in &report.hints {
                println!("  {hint}");
            }
            let mut freed = 0;
            for wanted in &o.trash {
                let Some(item) = storage::find(&report.items, wanted) else {
                    bail!(
                        "{wanted} is not in the list above: name an item by the id at the start of its line, or by its path"
                    );
                };
                match storage::move_to_trash(item, &mut prompt) {
                    Ok(bytes) => {
                        freed += bytes;
                        println!("Moved {} to the trash.", item.path.display());
                    }
                    Err(e) => eprintln!("{e}"),
                }
            }
            if freed > 0 {
                println!(
                    "Freed {} (empty the trash to get it back on the disk).",
                    humanize::bytes(freed)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::EncryptionReset => {
            let addr = mux_address(ctx)?;
            let facts =
                runtime.block_on(device::facts(&addr, o.udid.as_deref(), device::DEADLINE))?;
            let name = facts.name.clone().unwrap_or_else(|| "the iPhone".into());
            match facts.backup.will_encrypt {
                Some(true) => {
                    println!("Backups of {name} are encrypted.");
                    println!(
                        "Know the password? Turn encryption off: unstuck encryption off; change it: unstuck encryption change."
                    );
                    println!("{}", actions::TRY_PASSWORDS_FIRST);
                    println!("Forgot it?");
                    println!("{}", actions::forgotten_password_steps("  "));
                }
                Some(false) => println!(
                    "Backups of {name} are not encrypted. Encrypted backups also keep passwords, Health and Wi-Fi settings: unstuck encryption on"
                ),
                None => println!("{name} did not say whether its backups are encrypted."),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
