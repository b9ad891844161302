//! What the tray shows, decided from plain data: the icon, the title and
//! tooltip, and the menu — every item present, the ones that do not apply
//! disabled with the reason in their label. No I/O; the caller gives `now`.

use jiff::{SignedDuration, Timestamp};

use crate::device::Link;
use crate::humanize;
use crate::monitor::{Action, PhoneState, PhoneSummary, Running};

/// Which icon the tray shows (files in `resources/icons`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Healthy,
    BackingUp,
    Stalled,
    Failed,
    NoPhone,
}

impl Look {
    /// The icon's name under `resources/icons`.
    pub fn icon_name(self) -> &'static str {
        match self {
            Look::Healthy => "healthy",
            Look::BackingUp => "backing-up",
            Look::Stalled => "stalled",
            Look::Failed => "failed",
            Look::NoPhone => "no-phone",
        }
    }
}

/// What a menu item does: one of the fixes, or one of the tray's own
/// items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Fix(Action),
    OpenBackupFolder,
    OpenLog,
    Report,
    Settings,
    StartAtLogin,
    Quit,
}

impl Command {
    pub const ALL: [Command; 11] = [
        Command::Fix(Action::RestartBackup),
        Command::Fix(Action::NetworkAdvice),
        Command::Fix(Action::StorageCleanup),
        Command::Fix(Action::EncryptionReset),
        Command::Fix(Action::RestartPhone),
        Command::OpenBackupFolder,
        Command::OpenLog,
        Command::Report,
        Command::Settings,
        Command::StartAtLogin,
        Command::Quit,
    ];

    /// The menu item's identifier (a fix's is the fix's own id).
    pub fn id(self) -> &'static str {
        match self {
            Command::Fix(action) => action.id(),
            Command::OpenBackupFolder => "open-backup-folder",
            Command::OpenLog => "open-log",
            Command::Report => "backup-report",
            Command::Settings => "settings",
            Command::StartAtLogin => "start-at-login",
            Command::Quit => "quit",
        }
    }

    pub fn from_id(id: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.id() == id)
    }
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// Disabled text: a phone's status, or why it is stuck.
    Line(String),
    Separator,
    Item {
        command: Command,
        label: String,
        enabled: bool,
    },
    Check {
        command: Command,
        label: String,
        checked: bool,
        enabled: bool,
    },
}

/// Everything the tray shows.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub look: Look,
    /// Short: the tray's title (shown beside the icon by some panels).
    pub title: String,
    /// Longer: one line per phone.
    pub tooltip: String,
    pub entries: Vec<Entry>,
}

/// What the view is made from.
#[derive(Debug, Clone, Default)]
pub struct Situation {
    pub phones: Vec<PhoneSummary>,
    pub now: Timestamp,
    /// Whether Unstuck starts at login; `None` when that cannot be read.
    pub start_at_login: Option<bool>,
    /// What Unstuck is doing itself ("backing up Ann's iPhone"), if anything.
    pub busy: Option<String>,
    /// Why phones cannot be seen at all (usbmuxd missing), if so.
    pub no_devices: Option<String>,
}

/// The phone the menu's actions are for: the one in trouble first, then a
/// running backup, then an attached phone, then the most recently backed up.
pub fn focus(phones: &[PhoneSummary]) -> Option<&PhoneSummary> {
    let rank = |p: &PhoneSummary| match p.state {
        PhoneState::Stalled { .. } => 0,
        PhoneState::Failed { .. } => 1,
        PhoneState::Running(_) => 2,
        _ if p.attached => 3,
        _ => 4,
    };
    phones.iter().min_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| b.last_complete.cmp(&a.last_complete))
    })
}

pub fn view(s: &Situation) -> View {
    let look = look(&s.phones);
    let lines: Vec<String> = s.phones.iter().map(|p| status_line(p, s.now)).collect();
    let focus = focus(&s.phones);
    let title = match focus {
        Some(p) => format!("Unstuck — {}", short_status(p, s.now)),
        None => "Unstuck — no iPhone seen".to_owned(),
    };
    let mut tooltip = if lines.is_empty() {
        match &s.no_devices {
            Some(why) => format!("No iPhone seen: {why}"),
            None => "No iPhone seen yet: connect one with a cable and tap Trust.".to_owned(),
        }
    } else {
        lines.join("\n")
    };
    if let Some(busy) = &s.busy {
        tooltip.push_str(&format!("\nUnstuck is {busy}."));
    }

    let mut entries = Vec::new();
    if lines.is_empty() {
        entries.push(Entry::Line(match &s.no_devices {
            Some(why) => format!("No iPhone seen: {why}"),
            None => "No iPhone seen yet".to_owned(),
        }));
    }
    for (phone, line) in s.phones.iter().zip(&lines) {
        entries.push(Entry::Line(line.clone()));
        if let Some(finding) = phone.findings.first()
            && matches!(
                phone.state,
                PhoneState::Stalled { .. } | PhoneState::Failed { .. }
            )
        {
            entries.push(Entry::Line(format!(
                "    Why: {}",
                finding.cause.headline()
            )));
        }
    }
    if let Some(busy) = &s.busy {
        entries.push(Entry::Line(format!("Unstuck is {busy}")));
    }
    entries.push(Entry::Separator);
    entries.extend(actions(s, focus));
    entries.push(Entry::Separator);
    let (folder_enabled, folder_label) = match focus.and_then(|p| p.folder.as_ref()) {
        Some(_) => (true, "Open Backup Folder".to_owned()),
        None => (false, "Open Backup Folder (no backup yet)".to_owned()),
    };
    entries.push(item(
        Command::OpenBackupFolder,
        folder_label,
        folder_enabled,
    ));
    entries.push(item(Command::Report, "Backup Report…".into(), true));
    entries.push(item(Command::OpenLog, "Open Log".into(), true));
    entries.push(item(Command::Settings, "Settings".into(), true));
    entries.push(match s.start_at_login {
        Some(on) => Entry::Check {
            command: Command::StartAtLogin,
            label: "Start at Login".into(),
            checked: on,
            enabled: true,
        },
        None => Entry::Check {
            command: Command::StartAtLogin,
            label: "Start at Login (cannot be read here)".into(),
            checked: false,
            enabled: false,
        },
    });
    entries.push(Entry::Separator);
    entries.push(item(Command::Quit, "Quit".into(), true));
    View {
        look,
        title,
        tooltip,
        entries,
    }
}

fn item(command: Command, label: String, enabled: bool) -> Entry {
    Entry::Item {
        command,
        label,
        enabled,
    }
}

/// The fixes, for the focus phone.
fn actions(s: &Situation, focus: Option<&PhoneSummary>) -> Vec<Entry> {
    let disabled =
        |command, label: &str, why: &str| item(command, format!("{label} ({why})"), false);
    let named = |label: &str, p: &PhoneSummary| {
        if s.phones.len() > 1 {
            format!("{label}: {}", name(p))
        } else {
            label.to_owned()
        }
    };
    let mut out = Vec::new();
    let no_phone = "no iPhone seen";
    let connect = "connect the iPhone";
    match focus {
        None => {
            out.push(disabled(
                Command::Fix(Action::RestartBackup),
                "Back Up Now",
                no_phone,
            ));
            out.push(item(
                Command::Fix(Action::NetworkAdvice),
                "Network Advice…".into(),
                true,
            ));
        }
        Some(p) => {
            // A stuck backup may be restarted even when it is Unstuck's own.
            let (label, why) = match &p.state {
                PhoneState::Stalled { .. } | PhoneState::Failed { .. } => ("Restart Backup", None),
                PhoneState::Running(r) => {
                    ("Back Up Now", Some(format!("backing up, {}", percent(r))))
                }
                _ => (
                    "Back Up Now",
                    s.busy.as_ref().map(|b| format!("Unstuck is {b}")),
                ),
            };
            let why = why.or_else(|| (!p.attached).then(|| connect.to_owned()));
            out.push(match why {
                Some(why) => disabled(Command::Fix(Action::RestartBackup), &named(label, p), &why),
                None => item(Command::Fix(Action::RestartBackup), named(label, p), true),
            });
            out.push(item(
                Command::Fix(Action::NetworkAdvice),
                named("Network Advice…", p),
                true,
            ));
        }
    }
    out.push(item(
        Command::Fix(Action::StorageCleanup),
        "Storage Clean-up…".into(),
        true,
    ));
    for (command, label) in [
        (Command::Fix(Action::EncryptionReset), "Encryption…"),
        (Command::Fix(Action::RestartPhone), "Restart iPhone…"),
    ] {
        out.push(match focus {
            None => disabled(command, label, no_phone),
            Some(p) if !p.attached => disabled(command, &named(label, p), connect),
            Some(p)
                if command == Command::Fix(Action::RestartPhone)
                    && (matches!(p.state, PhoneState::Running(_)) || s.busy.is_some()) =>
            {
                disabled(command, &named(label, p), "a backup is under way")
            }
            Some(p) => item(command, named(label, p), true),
        });
    }
    out
}

fn look(phones: &[PhoneSummary]) -> Look {
    let any = |f: &dyn Fn(&PhoneSummary) -> bool| phones.iter().any(f);
    if any(&|p| matches!(p.state, PhoneState::Stalled { .. })) {
        Look::Stalled
    } else if any(&|p| matches!(p.state, PhoneState::Failed { .. })) {
        Look::Failed
    } else if any(&|p| matches!(p.state, PhoneState::Running(_))) {
        Look::BackingUp
    } else if any(&|p| p.attached) {
        Look::Healthy
    } else {
        Look::NoPhone
    }
}

fn name(p: &PhoneSummary) -> String {
    p.name
        .clone()
        .unwrap_or_else(|| format!("iPhone {}", &p.udid[..p.udid.len().min(8)]))
}

fn percent(r: &Running) -> String {
    match r.percent {
        Some(p) if r.estimated => format!("about {p:.0} %"),
        Some(p) => format!("{p:.0} %"),
        None => r.phase.to_string(),
    }
}

/// A phone's line in the menu and tooltip.
pub fn status_line(p: &PhoneSummary, now: Timestamp) -> String {
    let link = match (p.attached, p.link) {
        (false, _) => " (not connected)",
        (true, Some(Link::Wifi)) => " (Wi-Fi)",
        (true, _) => "",
    };
    format!("{}{link}: {}", name(p), long_status(p, now))
}

/// The focus phone in the title: its name and a few words.
fn short_status(p: &PhoneSummary, now: Timestamp) -> String {
    let what = match &p.state {
        PhoneState::Running(r) => percent(r),
        PhoneState::Stalled { .. } => "stalled".to_owned(),
        PhoneState::Failed { .. } => "backup failed".to_owned(),
        PhoneState::Completed { .. } => "backed up".to_owned(),
        PhoneState::Refused { .. } => "needs your attention".to_owned(),
        PhoneState::Idle => match p.last_complete {
            Some(t) => format!("backed up {}", humanize::ago(now, t)),
            None => "never backed up".to_owned(),
        },
    };
    format!("{} {what}", name(p))
}

fn long_status(p: &PhoneSummary, now: Timestamp) -> String {
    let last = match p.last_complete {
        Some(t) => format!("last complete backup {}", humanize::ago(now, t)),
        None => "no complete backup yet".to_owned(),
    };
    match &p.state {
        PhoneState::Running(r) => {
            let mut s = format!("backing up {}", percent(r));
            if r.rate > 0.0 {
                s.push_str(&format!(" · {}/s", humanize::bytes(r.rate as u64)));
            }
            if let Some(eta) = r.eta_secs {
                s.push_str(&format!(
                    " · {} left",
                    humanize::duration(SignedDuration::from_secs(eta as i64))
                ));
            }
            // The backup it would replace, remembered even while the
            // folder is being written.
            if let Some(t) = p.last_complete {
                s.push_str(&format!(" · last complete {}", humanize::ago(now, t)));
            }
            s
        }
        PhoneState::Stalled { since, phase, .. } => format!(
            "stalled while {phase}, nothing for {}",
            humanize::duration(now.duration_since(*since))
        ),
        PhoneState::Failed { code, .. } => match code {
            Some(c) => format!("backup failed (error {c}); {last}"),
            None => format!("backup failed; {last}"),
        },
        PhoneState::Completed { .. } => "backup complete".to_owned(),
        PhoneState::Refused { why } => format!("{}; {last}", humanize::upper_first(why)),
        PhoneState::Idle => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::{Cause, Finding};
    use crate::stall::Phase;

    fn now() -> Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn phone(name: &str, state: PhoneState) -> PhoneSummary {
        PhoneSummary {
            udid: format!("00008120-{name}"),
            name: Some(name.to_owned()),
            state,
            findings: Vec::new(),
            last_complete: Some(now() - SignedDuration::from_hours(49)),
            attached: true,
            link: Some(Link::Usb),
            recent_detaches: 0,
            folder: Some("/backups/x".into()),
        }
    }

    fn running(percent: f64) -> PhoneState {
        PhoneState::Running(Running {
            tool: "unstuck".into(),
            phase: Phase::Copying,
            since: now(),
            bytes: 40_000_000,
            percent: Some(percent),
            estimated: false,
            rate: 2_100_000.0,
            eta_secs: Some(180),
        })
    }

    fn situation(phones: Vec<PhoneSummary>) -> Situation {
        Situation {
            phones,
            now: now(),
            start_at_login: Some(false),
            ..Situation::default()
        }
    }

    fn entry(v: &View, command: Command) -> (String, bool) {
        v.entries
            .iter()
            .find_map(|e| match e {
                Entry::Item {
                    command: c,
                    label,
                    enabled,
                }
                | Entry::Check {
                    command: c,
                    label,
                    enabled,
                    ..
                } if *c == command => Some((label.clone(), *enabled)),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn an_idle_phone_says_when_it_was_last_backed_up() {
        let v = view(&situation(vec![phone("Ann's iPhone", PhoneState::Idle)]));
        assert_eq!(v.look, Look::Healthy);
        assert_eq!(v.title, "Unstuck — Ann's iPhone backed up 2 days ago");
        assert_eq!(v.tooltip, "Ann's iPhone: last complete backup 2 days ago");
        assert_eq!(
            entry(&v, Command::Fix(Action::RestartBackup)),
            ("Back Up Now".into(), true)
        );
    }

    #[test]
    fn a_running_backup_shows_percent_rate_and_time_left() {
        let v = view(&situation(vec![phone("Ann's iPhone", running(40.0))]));
        assert_eq!(v.look, Look::BackingUp);
        assert_eq!(
            v.tooltip,
            "Ann's iPhone: backing up 40 % · 2.1 MB/s · 3 min left · last complete 2 days ago"
        );
        assert_eq!(
            entry(&v, Command::Fix(Action::RestartBackup)),
            ("Back Up Now (backing up, 40 %)".into(), false)
        );
        assert_eq!(
            entry(&v, Command::Fix(Action::RestartPhone)),
            ("Restart iPhone… (a backup is under way)".into(), false)
        );
    }

    #[test]
    fn a_stall_offers_restart_and_says_why() {
        let mut p = phone(
            "Ann's iPhone",
            PhoneState::Stalled {
                since: now() - SignedDuration::from_mins(4),
                phase: Phase::Copying,
                tool: "unstuck".into(),
            },
        );
        p.findings.push(Finding {
            cause: Cause::ProcessHung,
            evidence: vec![],
            actions: vec![Action::RestartBackup],
        });
        let phones = vec![p];
        let v_phones = |_: &View| phones.clone();
        let v = view(&situation(phones.clone()));
        assert_eq!(v.look, Look::Stalled);
        assert_eq!(
            entry(&v, Command::Fix(Action::RestartBackup)),
            ("Restart Backup".into(), true)
        );
        let mut busy = situation(v_phones(&v));
        busy.busy = Some("backing up Ann's iPhone".into());
        assert_eq!(
            entry(&view(&busy), Command::Fix(Action::RestartBackup)),
            ("Restart Backup".into(), true),
            "Unstuck's own stuck backup can be restarted"
        );
        assert!(v.entries.contains(&Entry::Line(
            "Ann's iPhone: stalled while copying files, nothing for 4 min".into()
        )));
        assert!(v.entries.contains(&Entry::Line(
            "    Why: the backup program is waiting and writing nothing".into()
        )));
    }

    #[test]
    fn items_that_need_the_phone_say_so_when_it_is_away() {
        let mut p = phone("Ann's iPhone", PhoneState::Idle);
        p.attached = false;
        let v = view(&situation(vec![p]));
        assert_eq!(v.look, Look::NoPhone);
        for (c, label) in [
            (
                Command::Fix(Action::RestartBackup),
                "Back Up Now (connect the iPhone)",
            ),
            (
                Command::Fix(Action::EncryptionReset),
                "Encryption… (connect the iPhone)",
            ),
            (
                Command::Fix(Action::RestartPhone),
                "Restart iPhone… (connect the iPhone)",
            ),
        ] {
            assert_eq!(entry(&v, c), (label.to_owned(), false));
        }
        assert_eq!(
            entry(&v, Command::Fix(Action::StorageCleanup)),
            ("Storage Clean-up…".into(), true)
        );
    }

    #[test]
    fn no_phone_at_all_keeps_every_item_with_its_reason() {
        let mut s = situation(vec![]);
        s.no_devices = Some("usbmuxd is not running".into());
        let v = view(&s);
        assert_eq!(v.look, Look::NoPhone);
        assert_eq!(v.title, "Unstuck — no iPhone seen");
        assert_eq!(
            v.entries[0],
            Entry::Line("No iPhone seen: usbmuxd is not running".into())
        );
        assert_eq!(
            entry(&v, Command::Fix(Action::RestartBackup)),
            ("Back Up Now (no iPhone seen)".into(), false)
        );
        assert_eq!(
            entry(&v, Command::OpenBackupFolder),
            ("Open Backup Folder (no backup yet)".into(), false)
        );
        // Every command has its item, enabled or not.
        for c in Command::ALL {
            entry(&v, c);
        }
    }

    #[test]
    fn the_phone_in_trouble_comes_first_and_names_the_actions() {
        let healthy = phone("Ann's iPhone", PhoneState::Idle);
        let failed = phone(
            "Ben's iPhone",
            PhoneState::Failed {
                at: now(),
                code: Some(105),
            },
        );
        let v = view(&situation(vec![healthy, failed]));
        assert_eq!(v.look, Look::Failed);
        assert_eq!(
            entry(&v, Command::Fix(Action::RestartBackup)),
            ("Restart Backup: Ben's iPhone".into(), true)
        );
        assert!(
            v.tooltip
                .contains("Ben's iPhone: backup failed (error 105)")
        );
    }

    #[test]
    fn start_at_login_is_a_checkbox_and_busy_disables_backing_up() {
        let mut s = situation(vec![phone("Ann's iPhone", PhoneState::Idle)]);
        s.start_at_login = Some(true);
        s.busy = Some("backing up Ann's iPhone".into());
        let v = view(&s);
        assert!(v.entries.contains(&Entry::Check {
            command: Command::StartAtLogin,
            label: "Start at Login".into(),
            checked: true,
            enabled: true,
        }));
        assert_eq!(
            entry(&v, Command::Fix(Action::RestartBackup)),
            (
                "Back Up Now (Unstuck is backing up Ann's iPhone)".into(),
                false
            )
        );
    }

    #[test]
    fn command_ids_round_trip() {
        for c in Command::ALL {
            assert_eq!(Command::from_id(c.id()), Some(c));
        }
        assert_eq!(Command::from_id("nope"), None);
    }
}
