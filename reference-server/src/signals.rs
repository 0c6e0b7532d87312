//! The other signals: SIGPIPE, the ones that stop the server gracefully,
//! and the ones it ignores.
//!
//! Every signal whose default action would end the parent gets a deliberate
//! one, because a parent killed on the spot leaves its children serving as
//! orphans with no listener (the `orphan-children` fault shows it):
//!
//! | signal | action | why |
//! | --- | --- | --- |
//! | SIGTERM, SIGINT | graceful shutdown | what service managers and Ctrl-C send to stop |
//! | SIGHUP | graceful shutdown | the terminal went away; there is no configuration to reload |
//! | SIGQUIT | graceful shutdown | Ctrl-\\ means quit; a core dump would orphan the children |
//! | SIGUSR1, SIGUSR2 | ignored | they mean nothing here, and a stray `kill -USR1` must not end it |
//! | SIGALRM | ignored | the server sets no alarm, so one can only be stray |
//! | SIGPIPE | ignored | a write to a vanished client fails with EPIPE instead |
//!
//! In a child a shutdown signal means: finish the request in progress with
//! `Connection: close`, or close an idle connection at once. The parent sends
//! SIGTERM to every child when it shuts down, waits up to the grace, then
//! SIGKILLs the rest. Children keep the ignored signals ignored.
//!
//! SIGPIPE is raised when writing to a socket whose peer has gone away; its
//! default action kills the process. A server must ignore it and treat the
//! EPIPE error from write instead, or one impatient client kills it.
//!
//! The shutdown signals must stop the accept loop. A flag alone races: the
//! signal can land after the loop checked the flag and before it blocks in
//! poll, and then nothing wakes it. So the handler also writes a byte to a
//! pipe that the loop polls beside the listener: the self-pipe trick.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{
    sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};

use crate::error::ServerError;

/// The signals that stop the server gracefully.
pub const SHUTDOWN_SIGNALS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The signals the server ignores, besides SIGPIPE.
pub const IGNORED_SIGNALS: [Signal; 3] = [Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGALRM];

/// Set by the shutdown handler.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// Write end of the self-pipe, for the handler; -1 when not installed.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Ignores SIGPIPE, so that writing to a vanished client returns EPIPE.
pub fn ignore_sigpipe() -> Result<(), ServerError> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    unsafe { sigaction(Signal::SIGPIPE, &ignore) }
        .map(drop)
        .map_err(|errno| ServerError::Signal {
            what: "sigaction(SIGPIPE)",
            errno,
        })
}

/// The `sigpipe` fault: SIGPIPE back to its default action, which kills the
/// process. Explicitly, because Rust's runtime ignores SIGPIPE before `main`
/// runs (as Python's does): a C server starts with the default.
pub fn default_sigpipe() -> Result<(), ServerError> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    unsafe { sigaction(Signal::SIGPIPE, &default) }
        .map(drop)
        .map_err(|errno| ServerError::Signal {
            what: "sigaction(SIGPIPE)",
            errno,
        })
}

/// The pipe the accept loop polls to learn of a shutdown request.
#[derive(Debug)]
pub struct ShutdownPipe {
    /// Read end, polled by the accept loop.
    read: OwnedFd,
    /// Write end, written by the handler (through `WAKE_FD`).
    _write: OwnedFd,
}

impl ShutdownPipe {
    /// Creates the pipe, installs the handler of [`SHUTDOWN_SIGNALS`] and
    /// ignores [`IGNORED_SIGNALS`]. `handle` is false only under the
    /// `orphan-children` fault: then every one of them keeps its default
    /// action and kills the parent on the spot, leaving its children to
    /// finish (or not) as orphans.
    pub fn install(handle: bool) -> Result<ShutdownPipe, ServerError> {
        // Non-blocking: a handler must never block, even on a full pipe.
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(|errno| {
                ServerError::Signal {
                    what: "pipe2",
                    errno,
                }
            })?;
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        // No SA_RESTART: we want poll interrupted, though the pipe wakes it anyway.
        let action = SigAction::new(
            SigHandler::Handler(on_shutdown_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let plan = SHUTDOWN_SIGNALS
            .iter()
            .map(|&signal| (signal, &action))
            .chain(IGNORED_SIGNALS.iter().map(|&signal| (signal, &ignore)));
        for (signal, action) in plan.filter(|_| handle) {
            // SAFETY: the handler stores to an atomic and calls write(2), both
            // async-signal-safe, and restores errno; SIG_IGN runs no code.
            unsafe { sigaction(signal, action) }.map_err(|errno| ServerError::Signal {
                what: "sigaction(shutdown and ignored signals)",
                errno,
            })?;
        }
        Ok(ShutdownPipe {
            read,
            _write: write,
        })
    }

    /// The descriptor to poll.
    pub fn raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

extern "C" fn on_shutdown_signal(_: libc::c_int) {
    let saved = Errno::last_raw();
    SHUTDOWN.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a static byte.
        // A full pipe (EAGAIN) is fine: one byte already wakes the loop.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    }
    Errno::set_raw(saved);
}

/// Whether a shutdown signal has arrived.
pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::SeqCst)
}

/// Blocks SIGCHLD and returns the previous mask, to restore with [`restore`].
/// The parent forks with SIGCHLD blocked so that the handler cannot reap a
/// child before the parent has recorded it.
pub fn block_sigchld() -> Result<SigSet, ServerError> {
    let mut block = SigSet::empty();
    block.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&block), Some(&mut old)).map_err(|errno| {
        ServerError::Signal {
            what: "sigprocmask(SIG_BLOCK)",
            errno,
        }
    })?;
    Ok(old)
}

/// Restores a mask saved by [`block_sigchld`].
pub fn restore(mask: &SigSet) -> Result<(), ServerError> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None).map_err(|errno| ServerError::Signal {
        what: "sigprocmask(SIG_SETMASK)",
        errno,
    })
}

/// The mask a child waits for input with: the one it inherited, in which the
/// shutdown signals are not blocked. Set once, in the child.
static WAIT_MASK: OnceLock<SigSet> = OnceLock::new();

/// In a child, the signal mask to wait for input with (set by [`reset_in_child`]); `None`
/// in the parent, which waits with its own mask.
pub fn wait_mask() -> Option<SigSet> {
    WAIT_MASK.get().copied()
}

/// In a child, whether a shutdown was asked for: the flag, or a shutdown
/// signal that came while the child was busy and waits, blocked, to be
/// delivered at its next wait for input. One `sigpending` call, so that the
/// response being written can say `Connection: close`.
pub fn shutdown_asked() -> bool {
    if shutdown_requested() {
        return true;
    }
    if wait_mask().is_none() {
        return false;
    }
    // SAFETY: an empty set is a valid sigset_t; sigpending writes only to it,
    // and sigismember only reads it.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pending);
        libc::sigpending(&mut pending) == 0
            && SHUTDOWN_SIGNALS
                .iter()
                .any(|&signal| libc::sigismember(&pending, signal as libc::c_int) == 1)
    }
}

/// In a freshly forked child: a shutdown signal asks it to finish the request
/// it serves and close (the parent sends SIGTERM to every child when it shuts
/// down, and SIGKILL after the grace); SIGCHLD is not handled (it has no
/// children). The shutdown signals are then blocked except while the child
/// waits for input, so they can end an idle connection at once but never
/// cut a request short. The ignored signals stay ignored.
pub fn reset_in_child(mask: &SigSet) {
    // The parent's shutdown handler, inherited, is the child's too: with no
    // pipe to write to it only sets the flag. No sigaction needed per fork.
    WAKE_FD.store(-1, Ordering::SeqCst);
    SHUTDOWN.store(false, Ordering::SeqCst);
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: restoring SIG_DFL installs no code of ours.
    let _ = unsafe { sigaction(Signal::SIGCHLD, &default) };
    let mut wait = *mask;
    let mut working = *mask;
    for signal in SHUTDOWN_SIGNALS {
        wait.remove(signal);
        working.add(signal);
    }
    let _ = WAIT_MASK.set(wait);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&working), None);
}

/// Under the `no-exit` fault, a child that falls back into its copy of the
/// accept loop: the shutdown signals and SIGCHLD back at their default (it
/// is no parent, and nothing of it waits for a shutdown), the inherited mask
/// restored, as a child of the classic buggy server has them.
pub fn default_in_child(mask: &SigSet) {
    WAKE_FD.store(-1, Ordering::SeqCst);
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in SHUTDOWN_SIGNALS.into_iter().chain([Signal::SIGCHLD]) {
        // SAFETY: restoring SIG_DFL installs no code of ours.
        let _ = unsafe { sigaction(signal, &default) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
}
