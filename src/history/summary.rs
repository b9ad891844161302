//! The figures a person wants from the history, per phone: a verdict in
//! one sentence, stalls by cause, how long since the last complete backup,
//! streaks. Pure: runs and the time in, plain data out.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::{Outcome, Run};
use crate::cause::Cause;
use crate::humanize;

/// "This month" in a verdict: the last 30 days.
const MONTH: SignedDuration = SignedDuration::from_hours(24 * 30);

/// One phone's history, summed up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhoneHistory {
    pub udid: String,
    pub name: Option<String>,
    pub verdict: String,
    pub runs: usize,
    pub last_complete: Option<Timestamp>,
    /// Whole days since the last complete backup.
    pub days_since_complete: Option<i64>,
    pub overdue: bool,
    pub stalls_this_month: usize,
    pub unrecovered_this_month: usize,
    /// Stalls of every run by cause, most first.
    pub stalls_by_cause: Vec<(Cause, usize)>,
    /// Complete runs in a row, counting back from the newest; and failed
    /// (or stopped) ones in a row.
    pub complete_streak: usize,
    pub failed_streak: usize,
}

/// Each phone in `runs` (oldest first), summed up at `now`. `known_complete`
/// gives a phone's last complete backup known elsewhere (its folder).
pub fn per_phone(
    now: Timestamp,
    runs: &[Run],
    overdue_days: i64,
    known_complete: impl Fn(&str) -> Option<Timestamp>,
) -> Vec<PhoneHistory> {
    let mut phones: Vec<&str> = runs.iter().map(|r| r.udid.as_str()).collect();
    phones.sort_unstable();
    phones.dedup();
    phones
        .into_iter()
        .map(|udid| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.udid == udid).collect();
            phone(now, udid, &mine, overdue_days, known_complete(udid))
        })
        .collect()
}

fn phone(
    now: Timestamp,
    udid: &str,
    runs: &[&Run],
    overdue_days: i64,
    known: Option<Timestamp>,
) -> PhoneHistory {
    let name = runs.iter().rev().find_map(|r| r.name.clone());
    let last_complete = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Complete)
        .map(|r| r.ended)
        .chain(known)
        .max();
    let days_since_complete = last_complete.map(|t| now.duration_since(t).as_hours() / 24);
    let overdue = days_since_complete.is_none_or(|d| d >= overdue_days);
    let month: Vec<_> = runs
        .iter()
        .flat_map(|r| r.stalls.iter())
        .filter(|s| now.duration_since(s.started) <= MONTH)
        .collect();
    let unrecovered = month.iter().filter(|s| !s.ended_by.recovered()).count();
    let mut by_cause: Vec<(Cause, usize)> = Vec::new();
    for stall in runs.iter().flat_map(|r| r.stalls.iter()) {
        match by_cause.iter_mut().find(|(c, _)| *c == stall.cause) {
            Some((_, n)) => *n += 1,
            None => by_cause.push((stall.cause, 1)),
        }
    }
    by_cause.sort_by_key(|c| std::cmp::Reverse(c.1));
    let streak = |pred: &dyn Fn(&Run) -> bool| runs.iter().rev().take_while(|r| pred(r)).count();
    PhoneHistory {
        udid: udid.to_owned(),
        name,
        verdict: verdict(now, last_complete, overdue_days, month.len(), unrecovered),
        runs: runs.len(),
        last_complete,
        days_since_complete,
        overdue,
        stalls_this_month: month.len(),
        unrecovered_this_month: unrecovered,
        stalls_by_cause: by_cause,
        complete_streak: streak(&|r| r.outcome == Outcome::Complete),
        failed_streak: streak(&|r| r.outcome != Outcome::Complete),
    }
}

/// The verdict in one sentence: "Backed up 2 days ago; 3 stalls this month,
/// all recovered."
pub fn verdict(
    now: Timestamp,
    last_complete: Option<Timestamp>,
    overdue_days: i64,
    stalls: usize,
    unrecovered: usize,
) -> String {
    let backed = match last_complete {
        None => "Never backed up completely".to_owned(),
        Some(t) if now.duration_since(t).as_hours() / 24 >= overdue_days => format!(
            "Not backed up for {} (the reminder comes after {overdue_days} days)",
            days(now.duration_since(t).as_hours() / 24)
        ),
        Some(t) => format!("Backed up {}", humanize::ago(now, t)),
    };
    let stalled = match (stalls, unrecovered) {
        (0, _) => "no stalls this month".to_owned(),
        (1, 0) => "1 stall this month, recovered".to_owned(),
        (1, _) => "1 stall this month, not recovered".to_owned(),
        (n, 0) => format!("{n} stalls this month, all recovered"),
        (n, u) if u == n => format!("{n} stalls this month, none recovered"),
        (n, u) => format!("{n} stalls this month, {u} not recovered"),
    };
    format!("{backed}; {stalled}.")
}

fn days(n: i64) -> String {
    format!("{n} day{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Stall, StallEnd};
    use crate::stall::Phase;

    fn at(days: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + days * 86_400).unwrap()
    }

    fn run(udid: &str, day: i64, outcome: Outcome, stalls: &[(Cause, StallEnd)]) -> Run {
        Run {
            udid: udid.into(),
            name: Some(format!("{udid}'s iPhone")),
            program: "unstuck".into(),
            started: at(day),
            ended: at(day) + SignedDuration::from_mins(20),
            outcome,
            bytes: 1,
            files: None,
            average_rate: None,
            slowest_rate: None,
            error_code: None,
            cause: None,
            restarts: 0,
            size: None,
            stalls: stalls
                .iter()
                .map(|(cause, end)| Stall {
                    phase: Phase::Copying,
                    started: at(day) + SignedDuration::from_mins(5),
                    secs: 130,
                    cause: *cause,
                    ended_by: *end,
                })
                .collect(),
        }
    }

    #[test]
    fn verdicts_in_one_sentence() {
        let now = at(10);
        assert_eq!(
            verdict(now, Some(at(8)), 7, 3, 0),
            "Backed up 2 days ago; 3 stalls this month, all recovered."
        );
        assert_eq!(
            verdict(now, Some(at(1)), 7, 1, 1),
            "Not backed up for 9 days (the reminder comes after 7 days); 1 stall this month, not recovered."
        );
        assert_eq!(
            verdict(now, None, 7, 0, 0),
            "Never backed up completely; no stalls this month."
        );
        assert_eq!(
            verdict(now, Some(at(9)), 7, 4, 1),
            "Backed up 1 day ago; 4 stalls this month, 1 not recovered."
        );
    }

    #[test]
    fn per_phone_counts_causes_streaks_and_the_month() {
        use Cause::*;
        use StallEnd::*;
        let runs = vec![
            run("A", -60, Outcome::Complete, &[(Detached, PhoneBack)]),
            run("A", 1, Outcome::Failed, &[(HostDiskFull, RunEnded)]),
            run("B", 2, Outcome::Complete, &[]),
            run(
                "A",
                3,
                Outcome::Complete,
                &[(Detached, Restarted), (Unknown, Resumed)],
            ),
            run("A", 4, Outcome::Complete, &[]),
        ];
        let got = per_phone(at(5), &runs, 7, |_| None);
        assert_eq!(got.len(), 2);
        let a = &got[0];
        assert_eq!((a.udid.as_str(), a.runs), ("A", 4));
        assert_eq!(
            a.stalls_this_month, 3,
            "the one 65 days ago is not this month"
        );
        assert_eq!(a.unrecovered_this_month, 1);
        assert_eq!(a.stalls_by_cause[0], (Detached, 2));
        assert_eq!((a.complete_streak, a.failed_streak), (2, 0));
        assert_eq!(a.days_since_complete, Some(0));
        assert!(!a.overdue);
        assert!(a.verdict.starts_with("Backed up "), "{}", a.verdict);
        // A complete backup seen in the folder counts too.
        let b = per_phone(at(30), &runs[2..3], 7, |_| Some(at(29)));
        assert_eq!(b[0].days_since_complete, Some(1));
        assert!(!b[0].overdue);
    }
}
