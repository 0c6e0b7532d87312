//! One guard for every process a test starts: [`ProcessGroup`].
//!
//! The harness's end-to-end tests, the reference server's tests and the
//! harness's unit tests all start programs that may fork. Each such program
//! runs in a process group of its own, led by the process the test started,
//! and the guard kills the whole group on drop, panics included.
//!
//! The leader is not reaped until the guard is done with the group: its exit
//! is seen with `waitid(WNOWAIT)`, which leaves it a zombie, and a zombie
//! leader keeps its pid, the group's id, from being reused. So a `killpg`
//! from the guard can only ever reach this group, never a stranger that got
//! the recycled number, even after the leader exited and left children
//! behind.
//!
//! Standard library and `nix` only, so that the reference server's tests can
//! include this file too (`#[path]`).

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How often [`ProcessGroup::wait_timeout`] looks.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// A started process leading a process group of its own; on drop the whole
/// group is killed and the leader reaped.
#[derive(Debug)]
pub struct ProcessGroup {
    /// The leader; in a mutex so that `&self` methods can take its pipes.
    child: Mutex<Child>,
    /// The leader's pid, which is also the group's id.
    pid: i32,
    /// What is known of the leader's end (see [`Ended`]).
    ended: Mutex<Ended>,
}

/// The leader's end, as far as it is known.
#[derive(Clone, Copy, Debug, Default)]
struct Ended {
    /// How it ended, once it did.
    status: Option<ExitStatus>,
    /// Its peak resident set in KiB, from `wait4`, once reaped.
    peak_rss_kb: Option<u64>,
    /// Set once reaped: from then on its pid may belong to someone else.
    reaped: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent across a panic elsewhere (plain values).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ProcessGroup {
    /// Spawns `command` as the leader of a new process group. Stdio is as
    /// the caller configured it.
    pub fn spawn(command: &mut Command) -> io::Result<ProcessGroup> {
        let child = command.process_group(0).spawn()?;
        Ok(ProcessGroup {
            pid: child.id() as i32,
            child: Mutex::new(child),
            ended: Mutex::new(Ended::default()),
        })
    }

    /// The leader's pid, which is also the group's id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The leader's stdout pipe, if it was piped and not taken yet.
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        lock(&self.child).stdout.take()
    }

    /// The leader's stderr pipe, if it was piped and not taken yet.
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        lock(&self.child).stderr.take()
    }

    /// How the leader ended, if it did; it is not reaped by looking.
    pub fn status(&self) -> Option<ExitStatus> {
        let mut ended = lock(&self.ended);
        if ended.status.is_none() && !ended.reaped {
            ended.status = peek(self.pid);
        }
        ended.status
    }

    /// Whether the leader still runs (neither exited nor a zombie).
    pub fn is_alive(&self) -> bool {
        self.status().is_none()
    }

    /// Waits up to `timeout` for the leader to end; how it ended, or `None`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(LOOK_EVERY);
        }
    }

    /// Sends `signal` to the leader alone. Refused once it was reaped.
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        self.unreaped()?;
        kill(Pid::from_raw(self.pid), signal)
    }

    /// Sends `signal` to the whole group, as a terminal does for Ctrl-C.
    /// Refused once the leader was reaped.
    pub fn signal_group(&self, signal: Signal) -> nix::Result<()> {
        self.unreaped()?;
        killpg(Pid::from_raw(self.pid), signal)
    }

    /// `ESRCH` once the leader was reaped: its pid is no longer ours.
    fn unreaped(&self) -> nix::Result<()> {
        if lock(&self.ended).reaped {
            Err(nix::errno::Errno::ESRCH)
        } else {
            Ok(())
        }
    }

    /// Kills the whole group and reaps the leader; how it ended. Idempotent.
    pub fn kill_and_reap(&self) -> Option<ExitStatus> {
        let mut ended = lock(&self.ended);
        if !ended.reaped {
            // Still unreaped, so the group id cannot be anyone else's.
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            if let Some((status, peak)) = reap(self.pid) {
                ended.status = Some(status);
                ended.peak_rss_kb = peak;
            }
            ended.reaped = true;
        }
        ended.status
    }

    /// Reaps the leader if it has ended, leaving the rest of the group
    /// alone, so that a test looking for leftovers afterwards still sees
    /// them; how it ended. From then on the group is not killed on drop (its
    /// id may be reused), so leftovers are the leftover scan's to find.
    pub fn reap_ended(&self) -> Option<ExitStatus> {
        let status = self.status()?;
        let mut ended = lock(&self.ended);
        if !ended.reaped {
            if let Some((_, peak)) = reap(self.pid) {
                ended.peak_rss_kb = peak;
            }
            ended.reaped = true;
        }
        Some(status)
    }

    /// The leader's peak resident set in KiB, as the kernel counted it
    /// (`ru_maxrss`: exact, not sampled; the largest of the leader and of
    /// the descendants it reaped itself), once [`Self::kill_and_reap`] ran.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        lock(&self.ended).peak_rss_kb
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// The exit of `pid`, our child, without reaping it (`WNOWAIT`).
fn peek(pid: i32) -> Option<ExitStatus> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        // The raw values are those of a wait status word (sys/wait.h).
        Ok(WaitStatus::Exited(_, code)) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
        Ok(WaitStatus::Signaled(_, signal, core)) => Some(ExitStatus::from_raw(
            signal as i32 | if core { 0x80 } else { 0 },
        )),
        _ => None,
    }
}

/// Reaps `pid`, our child, blocking until it has ended; its status and
/// peak resident set. `None` if it cannot be waited for (already reaped).
fn reap(pid: i32) -> Option<(ExitStatus, Option<u64>)> {
    let mut raw = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 writes only to the two out-parameters, which live
        // across the call; the pid is our child's, not reaped yet.
        let reaped = unsafe { nix::libc::wait4(pid, &mut raw, 0, &mut usage) };
        if reaped == pid {
            // Linux reports ru_maxrss in KiB.
            return Some((
                ExitStatus::from_raw(raw),
                u64::try_from(usage.ru_maxrss).ok(),
            ));
        }
        if io::Error::last_os_error().raw_os_error() != Some(nix::libc::EINTR) {
            return None;
        }
    }
}
