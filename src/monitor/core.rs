//! The monitor's state machine: from a stream of observations and the time,
//! each phone's state and the effects of each change. Why a run stopped is
//! `diagnose`'s to say, and what to tell the user `notices`'. No I/O, no
//! clock of its own.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::diagnose::{Stop, asks_for_passcode, diagnose, expected_bytes, finding_for_run};
use super::model::*;
use super::notices::{self, Shown};
use crate::backup_folder::SnapshotState;
use crate::stall::StallThresholds;

/// Thresholds and preferences; defaults documented in README (`[stall]`,
/// `[monitor]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorConfig {
    /// How long each phase may stay quiet; a run with nothing written yet
    /// is `Starting`.
    pub stall: StallThresholds,
    /// No complete backup for this long is a finding.
    pub overdue: SignedDuration,
    pub notify_completion: bool,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            stall: StallThresholds::default(),
            overdue: SignedDuration::from_hours(24 * 7),
            notify_completion: true,
        }
    }
}

/// What the shell should do after an observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    StateChanged {
        udid: String,
        name: Option<String>,
        state: PhoneState,
        findings: Vec<Finding>,
    },
    /// A running backup moved on (same state, same phase).
    Progress {
        udid: String,
        name: Option<String>,
        running: Running,
    },
    Notify(Notice),
}

/// Whether two states differ in more than a running backup's figures.
fn same_kind(a: &PhoneState, b: &PhoneState) -> bool {
    match (a, b) {
        (PhoneState::Running(x), PhoneState::Running(y)) => x.phase == y.phase && x.tool == y.tool,
        _ => a == b,
    }
}

#[derive(Debug, Clone)]
struct Track {
    state: PhoneState,
    name: Option<String>,
    bytes: u64,
    files: u64,
    status_modified: Option<Timestamp>,
    written_by_processes: u64,
    last_progress: Timestamp,
    run: Option<Run>,
    last_complete_seen: Option<Timestamp>,
    /// The failed run record already reported (its time), so that it is
    /// not announced again when the phone leaves another state.
    reported_failure: Option<Timestamp>,
    /// Recent (time, bytes) points, for the rate.
    points: Vec<(Timestamp, u64)>,
    attached: bool,
    link: Option<crate::device::Link>,
    findings: Vec<Finding>,
    /// When the phone went away, most recent last (a few kept).
    detaches: Vec<Timestamp>,
    /// The phone's backup folder, once one was seen.
    folder: Option<std::path::PathBuf>,
}

/// The run under way: when it began, the folder's bytes then, and whether a
/// backup program was seen making it.
#[derive(Debug, Clone, Copy)]
struct Run {
    since: Timestamp,
    baseline: u64,
    had_process: bool,
    /// The phone was attached at some point during the run.
    saw_device: bool,
}

/// Per-phone state across polls, and the notifications already shown.
#[derive(Debug, Default)]
pub struct Monitor {
    config: MonitorConfig,
    phones: BTreeMap<String, Track>,
    shown: Shown,
}

impl Monitor {
    pub fn new(config: MonitorConfig) -> Monitor {
        Monitor {
            config,
            ..Monitor::default()
        }
    }

    /// The current state of every phone seen.
    pub fn states(&self) -> Vec<(String, Option<String>, PhoneState, Vec<Finding>)> {
        self.phones
            .iter()
            .map(|(udid, t)| {
                (
                    udid.clone(),
                    t.name.clone(),
                    t.state.clone(),
                    t.findings.clone(),
                )
            })
            .collect()
    }

    /// Every phone seen, as the tray shows it; drops are counted over the
    /// last hour before `now`.
    pub fn summaries(&self, now: Timestamp) -> Vec<PhoneSummary> {
        self.phones
            .iter()
            .map(|(udid, t)| PhoneSummary {
                udid: udid.clone(),
                name: t.name.clone(),
                state: t.state.clone(),
                findings: t.findings.clone(),
                last_complete: t.last_complete_seen,
                attached: t.attached,
                link: t.link,
                recent_detaches: self.recent_detaches(udid, now, SignedDuration::from_hours(1)),
                folder: t.folder.clone(),
            })
            .collect()
    }

    /// How often `udid` went away within `window` before `now`: a loose
    /// cable or a hub shows as several drops (network advice uses it).
    pub fn recent_detaches(&self, udid: &str, now: Timestamp, window: SignedDuration) -> u32 {
        self.phones.get(udid).map_or(0, |t| {
            t.detaches
                .iter()
                .filter(|d| now.duration_since(**d) <= window)
                .count() as u32
        })
    }

    /// Whether any phone is backing up (the shell polls faster then).
    pub fn busy(&self) -> bool {
        self.phones
            .values()
            .any(|t| matches!(t.state, PhoneState::Running(_) | PhoneState::Stalled { .. }))
    }

    /// Takes one poll's observation at `now` and returns what changed.
    pub fn observe(&mut self, now: Timestamp, observation: &Observation) -> Vec<Effect> {
        let mut effects = Vec::new();
        for phone in &observation.phones {
            let processes = programs_for(&self.config, now, phone, &observation.processes);
            let first_sight = !self.phones.contains_key(&phone.udid);
            let track = self
                .phones
                .entry(phone.udid.clone())
                .or_insert_with(|| Track {
                    state: PhoneState::Idle,
                    name: phone.name.clone(),
                    bytes: phone.folder.as_ref().map_or(0, |f| f.bytes),
                    files: phone.folder.as_ref().map_or(0, |f| f.files),
                    status_modified: phone.folder.as_ref().and_then(|f| f.status_modified),
                    written_by_processes: processes.iter().map(|p| p.written_bytes).sum(),
                    last_progress: now,
                    run: None,
                    last_complete_seen: phone.folder.as_ref().and_then(|f| f.last_complete),
                    reported_failure: None,
                    points: Vec::new(),
                    attached: phone.device.is_some(),
                    link: phone.device.as_ref().and_then(|d| d.link),
                    findings: Vec::new(),
                    detaches: Vec::new(),
                    folder: None,
                });
            if phone.name.is_some() {
                track.name = phone.name.clone();
            }
            if let Some(folder) = &phone.folder {
                track.folder = Some(folder.path.clone());
            }
            let before = track.state.clone();
            step(
                &self.config,
                track,
                now,
                phone,
                &processes,
                first_sight,
                observation.network_up,
            );
            if let (PhoneState::Running(running), true) =
                (&track.state, same_kind(&track.state, &before))
            {
                if track.state != before {
                    effects.push(Effect::Progress {
                        udid: phone.udid.clone(),
                        name: track.name.clone(),
                        running: running.clone(),
                    });
                }
            } else if track.state != before {
                let findings = track.findings.clone();
                effects.push(Effect::StateChanged {
                    udid: phone.udid.clone(),
                    name: track.name.clone(),
                    state: track.state.clone(),
                    findings,
                });
                let notice = notices::on_change(
                    self.config.notify_completion,
                    &phone.udid,
                    track.name.as_deref(),
                    &track.state,
                    &track.findings,
                );
                effects.extend(self.shown.changed(now, notice).map(Effect::Notify));
            }
            let reminder = notices::overdue(
                self.config.overdue,
                now,
                phone,
                track.name.as_deref(),
                &track.state,
            );
            effects.extend(self.shown.reminder(now, reminder).map(Effect::Notify));
        }
        effects
    }
}

/// The programs working for `phone`: those that name it, and those that
/// name no phone while its folder shows a backup on (unfinished, or changed
/// within the starting threshold). A program that names no phone is not
/// pinned on every phone there is.
fn programs_for<'a>(
    config: &MonitorConfig,
    now: Timestamp,
    phone: &PhoneObservation,
    processes: &'a [BackupProcess],
) -> Vec<&'a BackupProcess> {
    let folder = phone.folder.as_ref();
    let unfinished = folder
        .and_then(|f| f.snapshot_state.as_ref())
        .is_some_and(SnapshotState::is_unfinished);
    let recent = folder
        .and_then(|f| f.last_activity)
        .is_some_and(|a| now.duration_since(a) <= config.stall.starting);
    processes
        .iter()
        .filter(|p| match &p.udid {
            Some(u) => *u == phone.udid,
            None => unfinished || recent,
        })
        .collect()
}

fn step(
    config: &MonitorConfig,
    t: &mut Track,
    now: Timestamp,
    phone: &PhoneObservation,
    processes: &[&BackupProcess],
    first_sight: bool,
    network_up: Option<bool>,
) {
    let folder = phone.folder.as_ref();
    let bytes = folder.map_or(t.bytes, |f| f.bytes);
    let files = folder.map_or(t.files, |f| f.files);
    let status_modified = folder.and_then(|f| f.status_modified);
    let written: u64 = processes.iter().map(|p| p.written_bytes).sum();
    let moved = bytes != t.bytes
        || files != t.files
        || status_modified != t.status_modified
        || written > t.written_by_processes;
    t.bytes = bytes;
    t.files = files;
    t.status_modified = status_modified;
    t.written_by_processes = written;
    let was_attached = t.attached;
    t.attached = phone.device.is_some();
    if was_attached && !t.attached {
        t.detaches.push(now);
        if t.detaches.len() > 16 {
            t.detaches.remove(0);
        }
    }
    if let Some(link) = phone.device.as_ref().and_then(|d| d.link) {
        t.link = Some(link);
    }

    let snapshot = folder.and_then(|f| f.snapshot_state.clone());
    let unfinished = snapshot.as_ref().is_some_and(SnapshotState::is_unfinished);
    let programs: Vec<&BackupProcess> = processes.iter().copied().filter(|p| !p.helper).collect();
    let tool = programs
        .first()
        .map(|p| p.name.clone())
        .unwrap_or_else(|| "unknown".to_owned());
    let last_complete = folder.and_then(|f| f.last_complete);
    let newly_complete = last_complete.is_some() && last_complete != t.last_complete_seen;
    t.last_complete_seen = last_complete
        .or(t.last_complete_seen)
        .or(folder.and_then(|f| f.remembered_complete));

    let running_before = matches!(t.state, PhoneState::Running(_) | PhoneState::Stalled { .. });
    if newly_complete && snapshot == Some(SnapshotState::Finished) && !first_sight {
        t.state = PhoneState::Completed {
            at: last_complete.unwrap_or(now),
        };
        t.run = None;
        t.findings.clear();
        return;
    }
    // A run is on while a backup program works for the phone, or while the
    // folder says unfinished and moves. A program seen making the run that
    // is gone now ended it. On first sight a quiet unfinished folder is an
    // old interruption, not a run.
    let program_gone = t.run.is_some_and(|r| r.had_process) && processes.is_empty();
    let active =
        !program_gone && (!processes.is_empty() || (unfinished && (moved || running_before)));
    if !active {
        if running_before {
            let saw_device = was_attached || t.run.is_some_and(|r| r.saw_device);
            // Unstuck's own run, when it was this one, says how it ended.
            let own = phone
                .engine
                .as_ref()
                .filter(|e| e.state == crate::engine::record::RunState::Failed)
                .filter(|e| t.run.is_none_or(|r| e.updated >= r.since));
            let code = own.and_then(|e| e.error_code);
            t.reported_failure = own.map(|e| e.updated).or(t.reported_failure);
            t.state = PhoneState::Failed { at: now, code };
            let stop = stopped(t, now, None, saw_device, network_up);
            t.findings = diagnose(phone, processes, &stop);
            if let Some(said) = own.and_then(finding_for_run) {
                // What the run said beats a guess of the same cause, and
                // "cause unknown".
                t.findings
                    .retain(|f| f.cause != said.cause && f.cause != Cause::Unknown);
                t.findings.insert(0, said);
            }
            t.run = None;
        } else if let Some(why) = phone.device.as_ref().and_then(|d| d.refused.clone()) {
            // Attached but refusing this computer: no backup can start
            // until someone unlocks it or taps Trust, which is what to say.
            t.state = PhoneState::Refused { why };
            t.findings.clear();
        } else if let Some(failed) = phone
            .engine
            .as_ref()
            .filter(|e| e.state == crate::engine::record::RunState::Failed)
            .filter(|e| last_complete.is_none_or(|c| e.updated > c))
            && !matches!(t.state, PhoneState::Failed { .. })
            && t.reported_failure != Some(failed.updated)
        {
            t.reported_failure = Some(failed.updated);
            // Unstuck's own run failed when no one was watching (a watch
            // started after it, `watch --once`): its record says how.
            t.state = PhoneState::Failed {
                at: failed.updated,
                code: failed.error_code,
            };
            t.findings = finding_for_run(failed).into_iter().collect();
        } else if !matches!(
            t.state,
            PhoneState::Failed { .. } | PhoneState::Completed { .. }
        ) {
            t.state = PhoneState::Idle;
        }
        return;
    }
    if t.run.is_none() {
        t.run = Some(Run {
            since: now,
            baseline: bytes,
            had_process: false,
            saw_device: was_attached,
        });
        // Quiet time counts from the folder's last change when that is
        // known (a run found already under way), else from now.
        t.last_progress = folder
            .and_then(|f| f.last_activity)
            .filter(|a| *a <= now && first_sight)
            .unwrap_or(now);
        t.points.clear();
    }
    if let Some(run) = &mut t.run {
        run.had_process |= !programs.is_empty();
        run.saw_device |= phone.device.is_some();
    }
    if moved {
        t.last_progress = now;
    }
    let Run {
        since,
        baseline,
        saw_device,
        ..
    } = t.run.unwrap_or(Run {
        since: now,
        baseline: bytes,
        had_process: false,
        saw_device: false,
    });
    let run_bytes = bytes.saturating_sub(baseline).max(written);
    let phase = match snapshot {
        Some(SnapshotState::Moving | SnapshotState::Removing) => Phase::Finishing,
        _ if run_bytes == 0 => Phase::Starting,
        _ => Phase::Copying,
    };
    let threshold = config.stall.for_phase(phase, asks_for_passcode(phone));
    let quiet = now.duration_since(t.last_progress);
    // A phone that went away stalls the run at once: nothing can move.
    let unplugged = saw_device && phone.device.is_none();
    if quiet > threshold || unplugged {
        if !matches!(t.state, PhoneState::Stalled { .. }) {
            t.state = PhoneState::Stalled {
                since: t.last_progress,
                phase,
                tool,
            };
            let stop = stopped(t, now, Some(phase), saw_device, network_up);
            t.findings = diagnose(phone, processes, &stop);
        }
        return;
    }
    // Rate over the last minute of points.
    t.points.push((now, run_bytes));
    t.points
        .retain(|(at, _)| now.duration_since(*at) <= SignedDuration::from_secs(60));
    // A run quiet for a while has no rate now: a minute's average would
    // decay slowly and promise an ETA while nothing moves.
    let rate = match (t.points.first(), t.points.last()) {
        _ if quiet >= QUIET_RATE => 0.0,
        (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
            b1.saturating_sub(*b0) as f64 / t1.duration_since(*t0).as_secs_f64()
        }
        _ => 0.0,
    };
    let expected = expected_bytes(phone);
    let exact = phone
        .engine
        .as_ref()
        .filter(|e| e.state == crate::engine::record::RunState::Running)
        .and_then(|e| e.percent);
    let percent = exact.or_else(|| {
        expected
            .filter(|e| *e > 0)
            .map(|e| (run_bytes as f64 * 100.0 / e as f64).min(99.0))
    });
    // What is left: by the exact per cent when the run's own record gives
    // it (the estimate of the size can be far off), else by the estimate.
    let left = match exact {
        Some(p) if p > 0.0 => Some(run_bytes as f64 * (100.0 - p.min(100.0)) / p),
        Some(_) => None,
        None => expected.map(|e| e.saturating_sub(run_bytes) as f64),
    };
    let eta_secs = match (left, rate > 0.0) {
        (Some(left), true) => Some((left / rate) as u64),
        _ => None,
    };
    t.state = PhoneState::Running(Running {
        tool,
        phase,
        since,
        bytes: run_bytes,
        percent,
        estimated: exact.is_none(),
        rate,
        eta_secs,
    });
    t.findings.clear();
}

/// How long a run may be quiet before it is shown with no rate and no ETA.
const QUIET_RATE: SignedDuration = SignedDuration::from_secs(10);

/// What diagnosis needs of a run that stopped: plain values, not the track.
fn stopped(
    t: &Track,
    now: Timestamp,
    phase: Option<Phase>,
    was_attached: bool,
    network_up: Option<bool>,
) -> Stop {
    Stop {
        phase,
        quiet: now.duration_since(t.last_progress),
        link: t.link,
        baseline: t.run.map_or(0, |r| r.baseline),
        was_attached,
        network_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Link;
    use std::path::PathBuf;

    const A: &str = "00008120-000000000000000A";
    const B: &str = "00008120-000000000000000B";

    fn t0() -> Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        t0() + SignedDuration::from_secs(secs)
    }

    /// A phone whose folder holds `bytes`, with Status.plist in `state`.
    fn phone(udid: &str, state: SnapshotState, bytes: u64) -> PhoneObservation {
        PhoneObservation {
            udid: udid.to_owned(),
            name: Some("Ann's iPhone".into()),
            folder: Some(FolderSample {
                path: PathBuf::from("/b").join(udid),
                snapshot_state: Some(state),
                bytes,
                files: bytes / 1000,
                last_complete_bytes: Some(100_000_000),
                host_free: Some(500_000_000_000),
                ..FolderSample::default()
            }),
            device: Some(DeviceSample {
                link: Some(Link::Usb),
                ios_version: Some("15.8".into()),
                free: Some(10_000_000_000),
                used: Some(100_000_000),
                will_encrypt: Some(false),
                refused: None,
            }),
            engine: None,
        }
    }

    fn process(written: u64) -> BackupProcess {
        BackupProcess {
            name: "idevicebackup2".into(),
            pid: 4242,
            cpu_percent: 0.0,
            written_bytes: written,
            udid: None,
            version: None,
            helper: false,
        }
    }

    fn obs(phones: Vec<PhoneObservation>, processes: Vec<BackupProcess>) -> Observation {
        Observation {
            phones,
            processes,
            network_up: Some(true),
        }
    }

    /// What one step of `check` saw.
    #[derive(Debug)]
    struct Seen {
        secs: i64,
        /// Phone A's state, if it was seen.
        phone: Option<PhoneState>,
        /// The kinds of notices shown.
        notices: Vec<NoticeKind>,
        /// Phone A's findings, and their causes alone.
        findings: Vec<Finding>,
        causes: Vec<Cause>,
        /// Every phone's state name, by UDID.
        all: Vec<(String, &'static str)>,
        effects: Vec<Effect>,
    }

    impl Seen {
        fn state(&self) -> &'static str {
            self.phone.as_ref().map_or("none", PhoneState::name)
        }
    }

    /// Feeds (seconds, observation) pairs to a monitor with the default
    /// settings and returns what each step left: phone A's state, findings
    /// and causes, the notices shown and every phone's state.
    fn check(steps: Vec<(i64, Observation)>) -> Vec<Seen> {
        let mut monitor = Monitor::new(MonitorConfig::default());
        steps
            .into_iter()
            .map(|(secs, o)| {
                let effects = monitor.observe(at(secs), &o);
                let states = monitor.states();
                let a = states.iter().find(|(u, ..)| u == A);
                let findings = a.map(|(.., f)| f.clone()).unwrap_or_default();
                let notices = effects
                    .iter()
                    .filter_map(|e| match e {
                        Effect::Notify(n) => Some(n.kind),
                        _ => None,
                    })
                    .collect();
                Seen {
                    secs,
                    phone: a.map(|(_, _, s, _)| s.clone()),
                    notices,
                    causes: findings.iter().map(|f| f.cause).collect(),
                    findings,
                    all: states
                        .iter()
                        .map(|(u, _, s, _)| (u.clone(), s.name()))
                        .collect(),
                    effects,
                }
            })
            .collect()
    }

    /// Each step as (seconds, state name, notices), for tables.
    fn brief(got: &[Seen]) -> Vec<(i64, &'static str, Vec<NoticeKind>)> {
        got.iter()
            .map(|s| (s.secs, s.state(), s.notices.clone()))
            .collect()
    }

    fn finished(bytes: u64, when: i64) -> PhoneObservation {
        let mut p = phone(A, SnapshotState::Finished, bytes);
        p.folder.as_mut().unwrap().last_complete = Some(at(when));
        p
    }

    /// A folder left interrupted has no complete backup now, but the
    /// history remembers one from an hour ago: no "back up soon", and the
    /// summary says when it was.
    #[test]
    fn a_remembered_complete_backup_counts_while_the_folder_has_none() {
        let mut p = phone(A, SnapshotState::Uploading, 1_000);
        p.folder.as_mut().unwrap().remembered_complete = Some(at(-3600));
        let mut monitor = Monitor::new(MonitorConfig::default());
        let effects = monitor.observe(at(0), &obs(vec![p.clone()], vec![]));
        assert!(
            !effects
                .iter()
                .any(|e| matches!(e, Effect::Notify(n) if n.kind == NoticeKind::Overdue)),
            "{effects:?}"
        );
        assert_eq!(monitor.summaries(at(0))[0].last_complete, Some(at(-3600)));
        // Without it, the same folder earns the reminder.
        p.folder.as_mut().unwrap().remembered_complete = None;
        let mut monitor = Monitor::new(MonitorConfig::default());
        let effects = monitor.observe(at(0), &obs(vec![p], vec![]));
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Notify(n) if n.kind == NoticeKind::Overdue))
        );
    }

    /// A failure of Unstuck's own run is announced once: not again when the
    /// phone, locked after a restart, is unlocked.
    #[test]
    fn an_old_failure_is_not_announced_again_after_a_refusal() {
        use crate::engine::record::RunState;
        let failed = || {
            let mut p = phone(A, SnapshotState::Uploading, 1_000);
            p.engine = Some(EngineRun {
                state: RunState::Failed,
                percent: None,
                bytes: 0,
                error_code: Some(105),
                failure: None,
                cause: None,
                updated: at(-600),
            });
            p
        };
        let locked = || {
            let mut p = failed();
            p.device.as_mut().unwrap().refused = Some("the iPhone is locked".into());
            p
        };
        let got = check(vec![
            (0, obs(vec![failed()], vec![])),
            (60, obs(vec![locked()], vec![])),
            (120, obs(vec![failed()], vec![])),
        ]);
        assert_eq!(got[0].state(), "failed");
        assert_eq!(got[1].state(), "refused");
        assert_eq!(got[2].state(), "idle", "{:?}", got[2].effects);
        assert!(got[2].notices.is_empty());
    }

    #[test]
    fn a_phone_that_refuses_says_what_to_do_until_it_answers() {
        let locked = || {
            let mut p = finished(100, -86_400);
            p.device.as_mut().unwrap().refused = Some("the iPhone is locked: unlock it".into());
            p
        };
        let got = check(vec![
            (0, obs(vec![locked()], vec![])),
            (60, obs(vec![locked()], vec![])),
            (120, obs(vec![finished(100, -86_400)], vec![])),
        ]);
        assert_eq!(
            got[0].phone,
            Some(PhoneState::Refused {
                why: "the iPhone is locked: unlock it".into()
            })
        );
        assert_eq!(got[1].state(), "refused");
        assert!(got[1].effects.is_empty(), "said once: {:?}", got[1].effects);
        assert_eq!(got[2].state(), "idle");
    }

    #[test]
    fn a_backup_that_runs_and_finishes() {
        use SnapshotState::*;
        let got = check(vec![
            (0, obs(vec![finished(100, -86_400)], vec![])),
            (5, obs(vec![phone(A, Uploading, 100)], vec![process(0)])),
            (
                10,
                obs(
                    vec![phone(A, Uploading, 5_000_000)],
                    vec![process(4_900_000)],
                ),
            ),
            (
                15,
                obs(
                    vec![phone(A, Moving, 90_000_000)],
                    vec![process(89_000_000)],
                ),
            ),
            (20, obs(vec![finished(100_000_000, 20)], vec![])),
            (25, obs(vec![finished(100_000_000, 20)], vec![])),
        ]);
        assert!(got.iter().all(|s| s.causes.is_empty()), "{got:?}");
        assert_eq!(
            brief(&got),
            [
                (0, "idle", vec![]),
                (5, "running", vec![]),
                (10, "running", vec![]),
                (15, "running", vec![]),
                (20, "completed", vec![NoticeKind::Completed]),
                (25, "completed", vec![]),
            ]
        );
    }

    #[test]
    fn a_stall_is_one_notice_per_episode() {
        use SnapshotState::*;
        let mut steps = vec![(
            0,
            obs(vec![phone(A, Uploading, 1_000)], vec![process(1_000)]),
        )];
        // Quiet for 115 s: not yet (the copying threshold is 120 s).
        steps.push((
            115,
            obs(vec![phone(A, Uploading, 1_000)], vec![process(1_000)]),
        ));
        steps.push((
            121,
            obs(vec![phone(A, Uploading, 1_000)], vec![process(1_000)]),
        ));
        steps.push((
            300,
            obs(vec![phone(A, Uploading, 1_000)], vec![process(1_000)]),
        ));
        // It moves again, then stalls again: a second episode.
        steps.push((
            310,
            obs(vec![phone(A, Uploading, 9_000)], vec![process(9_000)]),
        ));
        steps.push((
            500,
            obs(vec![phone(A, Uploading, 9_000)], vec![process(9_000)]),
        ));
        let got = check(steps);
        let states: Vec<_> = got
            .iter()
            .map(|s| (s.secs, s.state(), s.notices.len()))
            .collect();
        assert_eq!(
            states,
            [
                (0, "running", 0),
                (115, "running", 0),
                (121, "stalled", 1),
                (300, "stalled", 0),
                (310, "running", 0),
                (500, "stalled", 1),
            ]
        );
        // A program that writes nothing and idles is the likely cause.
        assert_eq!(got[2].causes.first(), Some(&Cause::ProcessHung));
    }

    #[test]
    fn flapping_progress_never_stalls() {
        let steps: Vec<_> = (0..100)
            .map(|i| {
                let bytes = if i % 2 == 0 { 1_000 } else { 2_000 };
                (
                    i * 60,
                    obs(
                        vec![phone(A, SnapshotState::Uploading, bytes)],
                        vec![process(0)],
                    ),
                )
            })
            .collect();
        assert!(check(steps).iter().all(|s| s.state() == "running"));
    }

    #[test]
    fn a_waiting_program_is_hung_and_a_spinning_one_is_not() {
        for (cpu, hung) in [(0.0, true), (1.0, true), (3.0, true), (90.0, false)] {
            let p = phone(A, SnapshotState::Uploading, 1_000);
            let mut program = process(1_000);
            program.cpu_percent = cpu;
            let got = check(vec![
                (0, obs(vec![p.clone()], vec![program.clone()])),
                (121, obs(vec![p], vec![program])),
            ]);
            assert_eq!(got[1].state(), "stalled");
            let causes = &got[1].causes;
            assert_eq!(
                causes.contains(&Cause::ProcessHung),
                hung,
                "{cpu} %: {causes:?}"
            );
        }
    }

    #[test]
    fn an_unplug_stalls_at_once_and_says_so() {
        for (link, cause) in [(Link::Usb, Cause::Detached), (Link::Wifi, Cause::WifiLost)] {
            let mut p = phone(A, SnapshotState::Uploading, 1_000);
            p.device.as_mut().unwrap().link = Some(link);
            let attached = obs(vec![p.clone()], vec![process(1_000)]);
            p.device = None;
            let got = check(vec![(0, attached), (2, obs(vec![p], vec![process(1_000)]))]);
            assert_eq!(got[1].notices, [NoticeKind::Stalled]);
            let causes = &got[1].causes;
            assert_eq!(causes.first(), Some(&cause), "{causes:?}");
            // The program waits for its phone: not "hung, written nothing
            // for 0 s". See: issue #20.
            assert!(!causes.contains(&Cause::ProcessHung), "{causes:?}");
        }
    }

    #[test]
    fn a_program_that_exits_unfinished_is_a_failure() {
        use SnapshotState::*;
        let got = check(vec![
            (
                0,
                obs(vec![phone(A, Uploading, 1_000)], vec![process(1_000)]),
            ),
            (
                5,
                obs(vec![phone(A, Uploading, 2_000)], vec![process(2_000)]),
            ),
            (10, obs(vec![phone(A, Uploading, 2_000)], vec![])),
        ]);
        assert_eq!(brief(&got)[2], (10, "failed", vec![NoticeKind::Failed]));
        assert_eq!(got[2].causes, [Cause::Unknown]);
    }

    #[test]
    fn host_disk_full_leads_when_it_is_the_reason() {
        let mut p = phone(A, SnapshotState::Uploading, 1_000);
        let folder = p.folder.as_mut().unwrap();
        folder.host_free = Some(50_000_000);
        folder.last_complete_bytes = None;
        p.device.as_mut().unwrap().used = Some(60_000_000_000);
        let got = check(vec![
            (0, obs(vec![p.clone()], vec![process(1_000)])),
            (200, obs(vec![p], vec![process(1_000)])),
        ]);
        let causes = &got[1].causes;
        assert_eq!(causes.first(), Some(&Cause::HostDiskFull), "{causes:?}");
        let f = &got[1].findings;
        assert!(
            f[0].evidence[0].contains("50.0 MB free"),
            "{:?}",
            f[0].evidence
        );
        assert_eq!(f[0].actions[0], Action::StorageCleanup);
    }

    #[test]
    fn the_passcode_wait_gets_longer_and_is_named() {
        let mut p = phone(A, SnapshotState::Uploading, 1_000);
        p.device.as_mut().unwrap().ios_version = Some("17.4".into());
        let steps = vec![
            (0, obs(vec![p.clone()], vec![process(0)])),
            (200, obs(vec![p.clone()], vec![process(0)])),
            (301, obs(vec![p.clone()], vec![process(0)])),
        ];
        let got = check(steps);
        assert_eq!(got[1].state(), "running");
        assert_eq!(got[2].state(), "stalled");
        assert_eq!(got[2].causes.first(), Some(&Cause::PasscodeWait));
    }

    #[test]
    fn an_old_interruption_is_not_a_run() {
        let got = check(vec![
            (
                0,
                obs(vec![phone(A, SnapshotState::Uploading, 1_000)], vec![]),
            ),
            (
                600,
                obs(vec![phone(A, SnapshotState::Uploading, 1_000)], vec![]),
            ),
        ]);
        assert!(got.iter().all(|s| s.state() == "idle"), "{got:?}");
    }

    #[test]
    fn overdue_reminders_come_at_most_daily() {
        let old = finished(100, -86_400 * 30);
        let steps: Vec<_> = [0, 3_600, 86_399, 86_401, 90_000]
            .into_iter()
            .map(|s| (s, obs(vec![old.clone()], vec![])))
            .collect();
        let got = check(steps);
        assert!(got.iter().all(|s| s.causes.is_empty()), "{got:?}");
        let kinds: Vec<_> = got.into_iter().map(|s| (s.secs, s.notices)).collect();
        assert_eq!(
            kinds,
            [
                (0, vec![NoticeKind::Overdue]),
                (3_600, vec![]),
                (86_399, vec![]),
                (86_401, vec![NoticeKind::Overdue]),
                (90_000, vec![]),
            ]
        );
    }

    #[test]
    fn two_phones_are_tracked_apart() {
        let procs = |w| {
            vec![BackupProcess {
                udid: Some(A.into()),
                ..process(w)
            }]
        };
        let mut b = phone(B, SnapshotState::Finished, 5);
        b.folder.as_mut().unwrap().last_complete = Some(at(-10));
        let got = check(vec![
            (
                0,
                obs(
                    vec![phone(A, SnapshotState::Uploading, 1), finished(0, -10)],
                    procs(1),
                ),
            ),
            (0, obs(vec![b.clone()], vec![])),
            (
                30,
                obs(
                    vec![phone(A, SnapshotState::Uploading, 9), b.clone()],
                    procs(9),
                ),
            ),
        ]);
        assert_eq!(
            got[2].all,
            [(A.to_owned(), "running"), (B.to_owned(), "idle")]
        );
    }

    #[test]
    fn a_clock_that_jumps_back_is_neither_a_stall_nor_a_panic() {
        let p = phone(A, SnapshotState::Uploading, 1_000);
        let got = check(vec![
            (1_000, obs(vec![p.clone()], vec![process(1)])),
            (10, obs(vec![p.clone()], vec![process(1)])),
            (20, obs(vec![p], vec![process(1)])),
        ]);
        assert!(got.iter().all(|s| s.state() == "running"), "{got:?}");
    }

    #[test]
    fn leftovers_are_named_after_a_failure() {
        let mut p = phone(A, SnapshotState::Uploading, 1_000);
        let running = obs(vec![p.clone()], vec![process(1)]);
        p.folder.as_mut().unwrap().empty_manifest_plist = true;
        let got = check(vec![(0, running), (5, obs(vec![p], vec![]))]);
        assert_eq!(got[1].causes, [Cause::Leftovers]);
    }

    #[test]
    fn an_old_backup_program_for_a_new_ios_is_named() {
        let mut p = phone(A, SnapshotState::Uploading, 1_000);
        p.device.as_mut().unwrap().ios_version = Some("17.5".into());
        let old = BackupProcess {
            version: Some("1.3.0".into()),
            ..process(1_000)
        };
        let got = check(vec![
            (0, obs(vec![p.clone()], vec![old.clone()])),
            (200, obs(vec![p.clone()], vec![old.clone()])),
        ]);
        let outdated = got[1]
            .findings
            .iter()
            .find(|f| f.cause == Cause::OutdatedSoftware)
            .expect("named");
        assert!(
            outdated.evidence[0]
                .contains("idevicebackup2 1.3.0 (2020) is older than iOS 17.5 (2023)")
        );
        // The same program with an iOS it predates nothing of: no such finding.
        p.device.as_mut().unwrap().ios_version = Some("13.7".into());
        let got = check(vec![
            (0, obs(vec![p.clone()], vec![old.clone()])),
            (200, obs(vec![p], vec![old])),
        ]);
        assert_eq!(got[1].state(), "stalled");
        assert!(!got[1].causes.contains(&Cause::OutdatedSoftware));
    }

    #[test]
    fn a_lost_wifi_link_says_when_the_computer_is_offline() {
        let mut p = phone(A, SnapshotState::Uploading, 1_000);
        p.device.as_mut().unwrap().link = Some(Link::Wifi);
        let online = obs(vec![p.clone()], vec![process(1)]);
        p.device = None;
        let mut offline = obs(vec![p], vec![process(1)]);
        offline.network_up = Some(false);
        let got = check(vec![(0, online), (2, offline)]);
        let f = &got[1].findings;
        assert_eq!(f[0].cause, Cause::WifiLost);
        assert!(
            f[0].evidence
                .iter()
                .any(|e| e.contains("no network connection"))
        );
    }

    /// A watch that starts after Unstuck's own run failed still says so,
    /// with the cause from the record's error code; a failure older than
    /// the last complete backup is history, not the state.
    #[test]
    fn an_own_run_that_failed_before_the_watch_is_reported() {
        use crate::engine::record::RunState;
        let mut p = phone(A, SnapshotState::Finished, 1_000);
        p.engine = Some(EngineRun {
            state: RunState::Failed,
            percent: Some(3.0),
            bytes: 0,
            error_code: Some(105),
            failure: None,
            cause: None,
            updated: at(0),
        });
        let got = check(vec![(5, obs(vec![p.clone()], vec![]))]);
        assert!(
            matches!(
                got[0].phone,
                Some(PhoneState::Failed {
                    code: Some(105),
                    ..
                })
            ),
            "{:?}",
            got[0].phone
        );
        assert_eq!(got[0].causes.first(), Some(&Cause::HostDiskFull));

        if let Some(folder) = &mut p.folder {
            folder.last_complete = Some(at(1));
        }
        let got = check(vec![(5, obs(vec![p], vec![]))]);
        assert_eq!(got[0].phone, Some(PhoneState::Idle));
    }

    /// The ETA agrees with the exact per cent of Unstuck's own run (the
    /// estimate of the size says 100 MB; the run is 96 % done after 2 MB),
    /// and a run quiet for a while shows no rate and no ETA.
    #[test]
    fn the_eta_follows_the_exact_per_cent_and_a_quiet_run_has_no_rate() {
        use crate::engine::record::RunState;
        let at_percent = |bytes, percent| {
            let mut p = phone(A, SnapshotState::Uploading, bytes);
            p.engine = Some(EngineRun {
                state: RunState::Running,
                percent: Some(percent),
                bytes,
                error_code: None,
                failure: None,
                cause: None,
                updated: at(0),
            });
            obs(vec![p], vec![process(0)])
        };
        let got = check(vec![
            (0, at_percent(1_000_000, 50.0)),
            (2, at_percent(3_000_000, 96.0)),
            (15, at_percent(3_000_000, 96.0)),
        ]);
        let running = |s: &Seen| match &s.phone {
            Some(PhoneState::Running(r)) => r.clone(),
            other => panic!("{other:?}"),
        };
        let moving = running(&got[1]);
        assert_eq!(moving.rate, 1_000_000.0);
        assert!(moving.eta_secs.is_some_and(|s| s <= 1), "{moving:?}");
        let quiet = running(&got[2]);
        assert_eq!((quiet.rate, quiet.eta_secs), (0.0, None), "{quiet:?}");
    }

    #[test]
    fn unstucks_own_backup_is_exact_and_its_error_code_names_the_cause() {
        use crate::engine::record::RunState;
        let own = |bytes| BackupProcess {
            name: "unstuck".into(),
            udid: Some(A.into()),
            ..process(bytes)
        };
        let mut p = phone(A, SnapshotState::Uploading, 1_000);
        p.engine = Some(EngineRun {
            state: RunState::Running,
            percent: Some(42.0),
            bytes: 1_000,
            error_code: None,
            failure: None,
            cause: None,
            updated: at(0),
        });
        let running = obs(vec![p.clone()], vec![own(1_000)]);
        p.engine = Some(EngineRun {
            state: RunState::Failed,
            percent: Some(42.0),
            bytes: 1_000,
            error_code: Some(207),
            failure: None,
            cause: None,
            updated: at(3),
        });
        let got = check(vec![(0, running), (3, obs(vec![p], vec![]))]);
        let running = got[0]
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::StateChanged {
                    state: PhoneState::Running(r),
                    ..
                } => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(running.percent, Some(42.0));
        assert!(!running.estimated);
        let state = &got[1].phone;
        assert!(
            matches!(
                state,
                Some(PhoneState::Failed {
                    code: Some(207),
                    ..
                })
            ),
            "{state:?}"
        );
        assert_eq!(got[1].causes.first(), Some(&Cause::WrongPassword));
        assert_eq!(got[1].findings[0].actions, [Action::EncryptionReset]);
    }

    #[test]
    fn drops_are_counted_for_network_advice() {
        let mut monitor = Monitor::new(MonitorConfig::default());
        let on = finished(100, -10);
        let mut off = on.clone();
        off.device = None;
        for (i, p) in [&on, &off, &on, &off, &on, &off].into_iter().enumerate() {
            monitor.observe(at(i as i64 * 30), &obs(vec![p.clone()], vec![]));
        }
        assert_eq!(
            monitor.recent_detaches(A, at(150), SignedDuration::from_mins(10)),
            3
        );
        assert_eq!(
            monitor.recent_detaches(A, at(150), SignedDuration::from_secs(59)),
            1
        );
        assert_eq!(
            monitor.recent_detaches(B, at(150), SignedDuration::from_mins(10)),
            0
        );
    }
}
