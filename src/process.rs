//! Which process a number stands for: its PID, when it started and which
//! program it runs. A PID written down earlier (the backup lock) names a
//! process only while all three still agree, and they are read again right
//! before a signal, so a number the system has since given to another
//! program is never signalled. Judging a record is pure; `look` and `stop`
//! ask the system.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

/// A process as the system describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: u32,
    /// When it started, in seconds since the epoch.
    pub start: u64,
    /// The program it runs; `None` when the system does not say (a process
    /// of another user).
    pub exe: Option<PathBuf>,
}

/// What an earlier record says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Known(Identity),
    /// Only a process number (a lock written by an older Unstuck).
    PidOnly(u32),
}

/// The process a record names, judged against what runs under its PID now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The very process that was recorded, still running.
    Alive(Identity),
    /// Something runs under the recorded PID, but the record holds nothing
    /// else to tell whether it is the process that wrote it.
    Unknown(u32),
}

impl Holder {
    pub fn pid(&self) -> u32 {
        match self {
            Holder::Alive(identity) => identity.pid,
            Holder::Unknown(pid) => *pid,
        }
    }
}

/// Who a record names now, given `now`, the process found under its PID
/// (`None` when there is none). `None`: the record is stale — the process is
/// gone, or its PID now belongs to a process with another start time or
/// another program.
pub fn judge(record: &Recorded, now: Option<&Identity>) -> Option<Holder> {
    let now = now?;
    match record {
        Recorded::Known(was) => (was == now).then(|| Holder::Alive(now.clone())),
        Recorded::PidOnly(pid) => (*pid == now.pid).then_some(Holder::Unknown(*pid)),
    }
}

/// The process running under `pid` now; `None` when there is none, or it
/// has exited and only its parent has not noticed yet (a zombie), or the
/// processes cannot be listed.
pub fn look(pid: u32) -> Option<Identity> {
    let mut system = System::new().ok()?;
    let sys_pid = Pid::from_u32(pid);
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[sys_pid]),
        true,
        ProcessRefreshKind::nothing().with_exe(UpdateKind::Always),
    );
    let p = system.process(sys_pid)?;
    if p.status() == sysinfo::ProcessStatus::Zombie {
        return None;
    }
    Some(Identity {
        pid,
        start: p.start_time(),
        exe: p.exe().map(|e| e.to_path_buf()),
    })
}

/// This process.
pub fn me() -> Option<Identity> {
    look(std::process::id())
}

/// How [`stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The process is gone (it stopped, or had already exited).
    Gone,
    /// Its PID now names another process: nothing was signalled.
    Changed,
    /// It was asked to stop, then told, and still runs.
    StillRunning,
}

/// Stops the process `expected` names: SIGTERM, up to `grace` to exit, then
/// SIGKILL. Its identity is checked right before each signal; on Linux the
/// signal goes through a pidfd opened before that check, so it cannot reach a
/// process that took the number over in between.
pub async fn stop(expected: &Identity, grace: Duration) -> Stopped {
    let handle = match platform::Handle::open(expected.pid) {
        Ok(handle) => handle,
        Err(platform::OpenError::Gone) => return Stopped::Gone,
    };
    let verdict = |seen: Option<Identity>| match seen {
        None => Some(Stopped::Gone),
        Some(now) if now != *expected => Some(Stopped::Changed),
        Some(_) => None,
    };
    if let Some(done) = verdict(look(expected.pid)) {
        return done;
    }
    if handle.terminate().is_err() {
        return verdict(look(expected.pid)).unwrap_or(Stopped::StillRunning);
    }
    let gone = || !look(expected.pid).is_some_and(|now| now == *expected);
    let until = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < until {
        if gone() {
            return Stopped::Gone;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Checked again: the number may have changed hands while we waited.
    match verdict(look(expected.pid)) {
        Some(Stopped::Changed) | Some(Stopped::Gone) => return Stopped::Gone,
        _ => {}
    }
    let _ = handle.kill();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if gone() {
            return Stopped::Gone;
        }
    }
    Stopped::StillRunning
}

/// A handle on one process that signals exactly it.
///
/// # Platform specific behavior
/// On Linux, a pidfd (`pidfd_open`, `pidfd_send_signal`, Linux 5.3 and
/// later); on an older kernel, and elsewhere, the PID, checked just before.
#[cfg(target_os = "linux")]
mod platform {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    pub enum OpenError {
        Gone,
    }

    pub struct Handle {
        pid: u32,
        fd: Option<OwnedFd>,
    }

    impl Handle {
        pub fn open(pid: u32) -> Result<Handle, OpenError> {
            let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
                return Err(OpenError::Gone);
            };
            // SAFETY: pidfd_open takes a PID and flags and returns a new file
            // descriptor or -1; it reads and writes no memory of ours.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
            if fd >= 0 {
                // SAFETY: the kernel just returned this descriptor; nothing else
                // owns it, so OwnedFd may close it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                return Ok(Handle { pid, fd: Some(fd) });
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::ESRCH) => Err(OpenError::Gone),
                // ENOSYS (before Linux 5.3) and the rest: signal by PID.
                _ => Ok(Handle { pid, fd: None }),
            }
        }

        pub fn terminate(&self) -> io::Result<()> {
            self.send(libc::SIGTERM)
        }

        pub fn kill(&self) -> io::Result<()> {
            self.send(libc::SIGKILL)
        }

        fn send(&self, signal: libc::c_int) -> io::Result<()> {
            let result = match &self.fd {
                // SAFETY: the descriptor is open (owned by self); a null
                // siginfo is allowed and means "as kill(2) would send it".
                Some(fd) => unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        signal,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                },
                // SAFETY: kill takes two integers and touches no memory of ours.
                None => libc::c_long::from(unsafe { libc::kill(self.pid as libc::pid_t, signal) }),
            };
            if result == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use std::io;

    use sysinfo::{Pid, ProcessesToUpdate, Signal, System};

    pub enum OpenError {
        Gone,
    }

    /// Without a pidfd the PID is all there is; `stop` checks the identity
    /// just before each signal, which leaves only the instant in between.
    pub struct Handle {
        pid: u32,
    }

    impl Handle {
        pub fn open(pid: u32) -> Result<Handle, OpenError> {
            if super::look(pid).is_none() {
                return Err(OpenError::Gone);
            }
            Ok(Handle { pid })
        }

        /// On Windows there is no SIGTERM: `send` falls back to ending the
        /// process (TerminateProcess) at once.
        pub fn terminate(&self) -> io::Result<()> {
            self.send(Signal::Term)
        }

        pub fn kill(&self) -> io::Result<()> {
            self.send(Signal::Kill)
        }

        fn send(&self, signal: Signal) -> io::Result<()> {
            let mut system = System::new().map_err(io::Error::other)?;
            let pid = Pid::from_u32(self.pid);
            system.refresh_processes(ProcessesToUpdate::Some(&[pid]), true);
            let sent = system
                .process(pid)
                .and_then(|p| p.kill_with(signal).or_else(|| Some(p.kill())))
                .unwrap_or(false);
            if sent {
                Ok(())
            } else {
                Err(io::Error::other("the signal was not sent"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pid: u32, start: u64, exe: &str) -> Identity {
        Identity {
            pid,
            start,
            exe: Some(exe.into()),
        }
    }

    fn check(record: Recorded, now: Option<Identity>, expect: Option<Holder>) {
        assert_eq!(
            judge(&record, now.as_ref()),
            expect,
            "{record:?} vs {now:?}"
        );
    }

    #[test]
    fn a_record_names_a_process_only_while_pid_start_and_program_agree() {
        let unstuck = id(42, 1_000, "/usr/bin/unstuck");
        check(
            Recorded::Known(unstuck.clone()),
            Some(unstuck.clone()),
            Some(Holder::Alive(unstuck.clone())),
        );
        // Gone.
        check(Recorded::Known(unstuck.clone()), None, None);
        // The PID was reused: another start time, or another program.
        check(
            Recorded::Known(unstuck.clone()),
            Some(id(42, 2_000, "/usr/bin/unstuck")),
            None,
        );
        check(
            Recorded::Known(unstuck.clone()),
            Some(id(42, 1_000, "/usr/bin/sleep")),
            None,
        );
        // The system no longer says which program: not proven the same.
        check(
            Recorded::Known(unstuck),
            Some(Identity {
                pid: 42,
                start: 1_000,
                exe: None,
            }),
            None,
        );
        // An old lock: a live PID is all it can say.
        check(
            Recorded::PidOnly(42),
            Some(id(42, 5, "/usr/bin/sleep")),
            Some(Holder::Unknown(42)),
        );
        check(Recorded::PidOnly(42), None, None);
    }

    #[test]
    fn this_process_is_looked_up_the_same_way_twice() {
        let a = me().expect("this process is listed");
        assert_eq!(a.pid, std::process::id());
        assert!(a.exe.is_some());
        assert_eq!(look(a.pid), Some(a));
    }

    #[tokio::test]
    async fn stop_leaves_a_process_whose_identity_changed_alone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let real = look(child.id()).unwrap();
        let other = Identity {
            start: real.start.wrapping_sub(100),
            ..real.clone()
        };
        assert_eq!(stop(&other, Duration::from_secs(1)).await, Stopped::Changed);
        assert!(child.try_wait().unwrap().is_none(), "it was signalled");
        assert_eq!(stop(&real, Duration::from_secs(5)).await, Stopped::Gone);
        assert!(child.wait().is_ok());
    }
}
