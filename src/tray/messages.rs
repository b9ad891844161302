//! The notifications the tray's fixes answer with, built from plain data:
//! network advice, storage clean-up, encryption, the details of a stall.
//! Button identifiers are constants here, so the controller and the tests
//! agree on them.

use crate::actions::storage::{self, StorageReport};
use crate::actions::{self, network::Advice};
use crate::device::DeviceFacts;
use crate::humanize;
use crate::monitor::PhoneSummary;
use crate::notify::Message;

pub const WIFI_SYNC_ON: &str = "wifi-sync-on";
pub const TRASH_LEFTOVERS: &str = "trash-leftovers";
pub const YES: &str = "yes";

/// How many items a storage notification lists (largest first).
const LISTED: usize = 5;

/// Network advice, most likely fix first; a button turns Wi-Fi sync on when
/// the advice says so.
pub fn network(phone: &str, advice: &[Advice]) -> Message {
    let body = advice
        .iter()
        .enumerate()
        .map(|(n, a)| format!("{}. {}", n + 1, a.text))
        .collect::<Vec<_>>()
        .join("\n");
    let mut m = Message::new(format!("Network advice for {phone}"), body);
    if advice.iter().any(|a| a.toggle_wifi_sync == Some(true)) {
        m = m.button(WIFI_SYNC_ON, "Turn On Wi-Fi Sync");
    }
    m
}

/// What takes space, with sizes, free space per backup folder and the
/// phone's own hints; a button moves the leftovers (never a whole backup)
/// to the trash.
pub fn storage(report: &StorageReport) -> Message {
    let StorageReport { free, items, hints } = report;
    let mut lines: Vec<String> = free
        .iter()
        .map(|(root, bytes)| format!("{} free on {}", humanize::bytes(*bytes), root.display()))
        .collect();
    if items.is_empty() {
        lines.push("Nothing to clean up in the backup folders.".into());
    }
    for item in items.iter().take(LISTED) {
        lines.push(format!(
            "{} — {}: {}",
            humanize::bytes(item.bytes),
            item.device_name.as_deref().unwrap_or("unknown phone"),
            item.why
        ));
    }
    if items.len() > LISTED {
        lines.push(format!(
            "… and {} more (unstuck fix storage lists them all).",
            items.len() - LISTED
        ));
    }
    lines.extend(hints.iter().map(|h| format!("iPhone: {h}")));
    let mut m = Message::new("Storage clean-up", lines.join("\n"));
    let leftovers = storage::leftovers(items);
    if !leftovers.is_empty() {
        let bytes: u64 = leftovers.iter().map(|i| i.bytes).sum();
        m = m.button(
            TRASH_LEFTOVERS,
            &format!(
                "Move {} Leftover{} to Trash ({})",
                leftovers.len(),
                if leftovers.len() == 1 { "" } else { "s" },
                humanize::bytes(bytes)
            ),
        );
    }
    m
}

/// Whether backups are encrypted, and the way out of a forgotten password.
pub fn encryption(facts: &DeviceFacts) -> Message {
    let name = facts.name.as_deref().unwrap_or("the iPhone");
    let body = match facts.backup.will_encrypt {
        Some(true) => {
            let steps = actions::forgotten_password_steps("");
            format!(
                "Backups of {name} are encrypted. To change the password or turn it off: unstuck encryption change | off.\n{}\nForgot the password?\n{steps}",
                actions::TRY_PASSWORDS_FIRST
            )
        }
        Some(false) => format!(
            "Backups of {name} are not encrypted. Encrypted backups also keep saved passwords, Health data and Wi-Fi settings: turn it on with unstuck encryption on."
        ),
        None => format!("{name} did not say whether its backups are encrypted."),
    };
    Message::new(format!("Encryption — {name}"), body)
}

/// The evidence behind a phone's state, cause by cause.
pub fn details(phone: &PhoneSummary) -> Message {
    let name = phone.name.as_deref().unwrap_or("the iPhone");
    let mut lines = Vec::new();
    for f in &phone.findings {
        lines.push(format!("{}: {}", f.cause.headline(), f.evidence.join("; ")));
        let fixes: Vec<&str> = f.actions.iter().map(|a| a.label()).collect();
        if !fixes.is_empty() {
            lines.push(format!("  Fix: {}", fixes.join(", ")));
        }
    }
    if lines.is_empty() {
        lines.push(format!("Nothing is wrong with the backups of {name} now."));
    }
    Message::new(format!("Details — {name}"), lines.join("\n"))
}

/// A yes-or-no question, with Yes and No buttons.
pub fn question(text: &str) -> Message {
    Message::new("Unstuck asks", text)
        .button(YES, "Yes")
        .button("no", "No")
}

/// The phone waits for its passcode before the backup starts (iOS 16.1
/// and later): say so while there is still time to enter it.
pub fn passcode(phone: Option<&str>) -> Message {
    let phone = phone.unwrap_or("the iPhone");
    Message::new(
        format!("Enter the passcode on {phone}"),
        format!(
            "{phone} asks for its passcode before a backup starts. Unlock it and enter the passcode now; without it the backup stops after a few minutes (error 208)."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::storage::{Item, ItemKind};
    use crate::monitor::{Action, Cause, Finding, PhoneState};

    fn item(kind: ItemKind, bytes: u64) -> Item {
        Item {
            id: "0000abcd".into(),
            kind,
            newest: kind.is_backup(),
            path: "/b/x".into(),
            bytes,
            udid: Some("u".into()),
            device_name: Some("Ann's iPhone".into()),
            why: "why".into(),
        }
    }

    #[test]
    fn storage_lists_sizes_and_offers_only_leftovers_to_the_trash() {
        let items = vec![
            item(ItemKind::Complete, 5_000_000_000),
            item(ItemKind::Interrupted { on_complete: false }, 2_100_000_000),
            item(ItemKind::FinishedWithLeftovers, 1_000_000_000),
            item(ItemKind::SnapshotFolder, 300_000_000),
            item(ItemKind::EngineFailed, 100_000_000),
        ];
        let m = storage(&StorageReport {
            free: vec![("/b".into(), 7_000_000_000)],
            items: items.clone(),
            hints: vec![],
        });
        assert!(
            m.body
                .starts_with("7.0 GB free on /b\n5.0 GB — Ann's iPhone: why"),
            "{}",
            m.body
        );
        assert_eq!(
            m.buttons,
            vec![(
                TRASH_LEFTOVERS.to_owned(),
                "Move 2 Leftovers to Trash (400 MB)".to_owned()
            )]
        );
    }

    #[test]
    fn storage_with_only_backups_offers_no_button() {
        let m = storage(&StorageReport {
            free: vec![],
            items: vec![item(ItemKind::Complete, 1)],
            hints: vec![],
        });
        assert!(m.buttons.is_empty());
        let m = storage(&StorageReport {
            free: vec![],
            items: vec![],
            hints: vec!["low".into()],
        });
        assert_eq!(
            m.body,
            "Nothing to clean up in the backup folders.\niPhone: low"
        );
    }

    #[test]
    fn network_advice_is_numbered_and_offers_the_switch() {
        let advice = vec![
            Advice {
                text: "Use another cable.".into(),
                toggle_wifi_sync: None,
            },
            Advice {
                text: "Turn on Wi-Fi sync.".into(),
                toggle_wifi_sync: Some(true),
            },
        ];
        let m = network("Ann's iPhone", &advice);
        assert_eq!(m.title, "Network advice for Ann's iPhone");
        assert_eq!(m.body, "1. Use another cable.\n2. Turn on Wi-Fi sync.");
        assert_eq!(m.buttons[0].0, WIFI_SYNC_ON);
        assert!(network("x", &advice[..1]).buttons.is_empty());
    }

    #[test]
    fn details_give_evidence_and_fixes() {
        let p = PhoneSummary {
            udid: "u".into(),
            name: Some("Ann's iPhone".into()),
            state: PhoneState::Idle,
            findings: vec![Finding {
                cause: Cause::Detached,
                evidence: vec!["usbmuxd reported the phone gone".into()],
                actions: vec![Action::RestartBackup, Action::NetworkAdvice],
            }],
            last_complete: None,
            attached: false,
            link: None,
            recent_detaches: 1,
            folder: None,
        };
        assert_eq!(
            details(&p).body,
            "the iPhone was disconnected: usbmuxd reported the phone gone\n  Fix: Restart Backup, Network Advice"
        );
    }
}
