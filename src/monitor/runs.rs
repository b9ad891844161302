//! The runs the monitor saw other programs make, for the history: one
//! [`RunBuilder`] per phone fed from the monitor's effects. Unstuck's own
//! runs are recorded by the engine (`engine::record`), exactly. Pure: the
//! caller gives the time.

use std::collections::HashMap;

use jiff::Timestamp;

use super::{Effect, Finding, PhoneState};
use crate::cause::Cause;
use crate::history::builder::RunBuilder;
use crate::history::{Outcome, Run, Stall, StallEnd};

/// Follows other programs' runs, one per phone, through the monitor's
/// effects. Unstuck's own runs are the engine's to record.
#[derive(Debug, Default)]
pub struct MonitorTracker {
    open: HashMap<String, RunBuilder>,
}

impl MonitorTracker {
    /// Takes one effect; returns a run that ended with it.
    pub fn effect(&mut self, now: Timestamp, effect: &Effect) -> Option<Run> {
        match effect {
            Effect::Progress { udid, running, .. } => {
                if let Some(open) = self.open.get_mut(udid) {
                    open.phase = running.phase;
                    open.moved(now, running.bytes);
                }
                None
            }
            Effect::StateChanged {
                udid,
                name,
                state,
                findings,
            } => self.changed(now, udid, name, state, findings),
            Effect::Notify(_) => None,
        }
    }

    fn changed(
        &mut self,
        now: Timestamp,
        udid: &str,
        name: &Option<String>,
        state: &PhoneState,
        findings: &[Finding],
    ) -> Option<Run> {
        let cause = findings.first().map_or(Cause::Unknown, |f| f.cause);
        match state {
            PhoneState::Running(r) => {
                if r.tool == "unstuck" {
                    return None;
                }
                let open = self
                    .open
                    .entry(udid.to_owned())
                    .or_insert_with(|| RunBuilder::new(udid, name.clone(), &r.tool, r.since));
                open.close_stall(now, StallEnd::Resumed);
                open.phase = r.phase;
                open.moved(now, r.bytes);
                None
            }
            PhoneState::Stalled { since, phase, tool } => {
                if tool == "unstuck" {
                    return None;
                }
                let open = self
                    .open
                    .entry(udid.to_owned())
                    .or_insert_with(|| RunBuilder::new(udid, name.clone(), tool, *since));
                open.close_stall(now, StallEnd::Resumed);
                open.phase = *phase;
                open.stall = Some(Stall {
                    phase: *phase,
                    started: *since,
                    secs: 0,
                    cause,
                    ended_by: StallEnd::RunEnded,
                });
                None
            }
            PhoneState::Completed { .. } => {
                let open = self.open.remove(udid)?;
                Some(open.finish(now, Outcome::Complete))
            }
            PhoneState::Failed { code, .. } => {
                let open = self.open.remove(udid)?;
                let mut run = open.finish(now, Outcome::Failed);
                run.error_code = *code;
                run.cause = Some(cause);
                Some(run)
            }
            // Gone quiet without a word of how it ended.
            PhoneState::Idle | PhoneState::Refused { .. } => {
                let open = self.open.remove(udid)?;
                let mut run = open.finish(now, Outcome::Failed);
                run.cause = Some(Cause::Unknown);
                Some(run)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Running;
    use crate::stall::Phase;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + secs).unwrap()
    }

    fn running(tool: &str, bytes: u64) -> PhoneState {
        PhoneState::Running(Running {
            tool: tool.into(),
            phase: Phase::Copying,
            since: at(0),
            bytes,
            percent: None,
            estimated: true,
            rate: 0.0,
            eta_secs: None,
        })
    }

    fn changed(state: PhoneState, findings: Vec<Finding>) -> Effect {
        Effect::StateChanged {
            udid: "U".into(),
            name: Some("Ann's iPhone".into()),
            state,
            findings,
        }
    }

    #[test]
    fn another_programs_run_as_the_monitor_saw_it() {
        let mut t = MonitorTracker::default();
        assert!(
            t.effect(at(2), &changed(running("idevicebackup2", 0), vec![]))
                .is_none()
        );
        let stalled = PhoneState::Stalled {
            since: at(30),
            phase: Phase::Copying,
            tool: "idevicebackup2".into(),
        };
        let hung = Finding {
            cause: Cause::ProcessHung,
            evidence: vec![],
            actions: vec![],
        };
        assert!(t.effect(at(150), &changed(stalled, vec![hung])).is_none());
        assert!(
            t.effect(
                at(200),
                &changed(running("idevicebackup2", 9_000_000), vec![])
            )
            .is_none()
        );
        let run = t
            .effect(
                at(260),
                &changed(PhoneState::Completed { at: at(259) }, vec![]),
            )
            .unwrap();
        assert_eq!(run.program, "idevicebackup2");
        assert_eq!((run.started, run.ended), (at(0), at(260)));
        assert_eq!(run.stalls.len(), 1);
        assert_eq!(run.stalls[0].cause, Cause::ProcessHung);
        assert_eq!(
            (run.stalls[0].secs, run.stalls[0].ended_by),
            (170, StallEnd::Resumed)
        );
        // Unstuck's own runs are not the monitor's to record.
        assert!(
            t.effect(at(300), &changed(running("unstuck", 5), vec![]))
                .is_none()
        );
        assert!(
            t.effect(
                at(310),
                &changed(
                    PhoneState::Failed {
                        at: at(310),
                        code: Some(1)
                    },
                    vec![]
                )
            )
            .is_none()
        );
    }
}
