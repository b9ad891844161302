//! Notices: the wording of each desktop notification the monitor decides to
//! show, and their de-duplication (one per change of state, an overdue
//! reminder at most daily per phone). Plain inputs and `now` in, `Notice`s
//! out; showing them is `notify`'s.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::model::*;
use crate::humanize;

/// The notice for a phone that just changed to `state`, if that state has one.
pub(super) fn on_change(
    notify_completion: bool,
    udid: &str,
    name: Option<&str>,
    state: &PhoneState,
    findings: &[Finding],
) -> Option<Notice> {
    let name = name.unwrap_or("iPhone");
    let first = findings.first();
    let because = first
        .map(|f| {
            format!(
                "Likely cause: {}. {}",
                f.cause.headline(),
                f.evidence.join("; ")
            )
        })
        .unwrap_or_default();
    let actions = first.map(|f| f.actions.clone()).unwrap_or_default();
    let (kind, title, body) = match state {
        PhoneState::Stalled { phase, tool, .. } => (
            NoticeKind::Stalled,
            format!("{name}: backup stalled"),
            format!("The backup ({tool}) stopped moving while {phase}. {because}"),
        ),
        PhoneState::Failed { .. } => (
            NoticeKind::Failed,
            format!("{name}: backup did not finish"),
            because,
        ),
        PhoneState::Completed { .. } if notify_completion => (
            NoticeKind::Completed,
            format!("{name}: backup complete"),
            "The backup finished.".to_owned(),
        ),
        _ => return None,
    };
    Some(Notice {
        udid: udid.to_owned(),
        kind,
        title,
        body,
        actions,
    })
}

/// A reminder to back up when the phone's last complete backup is older than
/// `after` (or there is none while it is attached).
pub(super) fn overdue(
    after: SignedDuration,
    now: Timestamp,
    phone: &PhoneObservation,
    name: Option<&str>,
    state: &PhoneState,
) -> Option<Notice> {
    // While a run is on, or after one failed (that was said), a reminder
    // adds nothing.
    if matches!(
        state,
        PhoneState::Running(_) | PhoneState::Stalled { .. } | PhoneState::Failed { .. }
    ) {
        return None;
    }
    // A folder being written or left interrupted has no complete backup
    // now; the history may remember the last one.
    let folder = phone.folder.as_ref()?;
    let last = folder.last_complete.or(folder.remembered_complete);
    let age = last.map(|l| now.duration_since(l));
    let overdue = match age {
        Some(age) => age > after,
        // A phone attached with no complete backup at all.
        None => phone.device.is_some(),
    };
    if !overdue {
        return None;
    }
    let name = name.unwrap_or("iPhone");
    let when = last
        .map(|l| format!("The last complete backup was {}.", humanize::ago(now, l)))
        .unwrap_or_else(|| "There is no complete backup of it.".to_owned());
    Some(Notice {
        udid: phone.udid.clone(),
        kind: NoticeKind::Overdue,
        title: format!("{name}: back up soon"),
        body: when,
        actions: vec![Action::RestartBackup],
    })
}

/// When each phone was last told each kind of notice.
#[derive(Debug, Default)]
pub(super) struct Shown {
    last: HashMap<(String, NoticeKind), Timestamp>,
}

impl Shown {
    /// A notice for a change of state is shown: the state machine only
    /// offers one when the state changed, so each stall episode gets one.
    pub fn changed(&mut self, now: Timestamp, notice: Option<Notice>) -> Option<Notice> {
        let notice = notice?;
        self.last.insert((notice.udid.clone(), notice.kind), now);
        Some(notice)
    }

    /// A reminder is shown at most once a day per phone and kind.
    pub fn reminder(&mut self, now: Timestamp, notice: Option<Notice>) -> Option<Notice> {
        let notice = notice?;
        let key = (notice.udid.clone(), notice.kind);
        let recent = self
            .last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < SignedDuration::from_hours(24));
        if recent {
            return None;
        }
        self.last.insert(key, now);
        Some(notice)
    }
}
