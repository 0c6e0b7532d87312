//! Reaping children: the SIGCHLD handler and the table of live children.
//!
//! When a child exits, the kernel keeps its exit status (and a process-table
//! slot) until the parent collects it with waitpid; until then the child is a
//! zombie. The parent learns of exits through SIGCHLD, but signals of one kind
//! do not queue: ten children exiting together may produce one SIGCHLD. So the
//! handler must loop, `waitpid(-1, WNOHANG)` until nothing is left to reap.
//! Reaping one child per signal (the `single-wait` fault) leaves zombies.
//!
//! The handler only touches atomics and calls waitpid, both async-signal-safe,
//! and saves and restores errno, which waitpid may change under the feet of
//! whatever code the signal interrupted.

use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::ServerError;

/// Slots of the child table: each holds a live child's pid, or 0.
/// Allocated once by [`init`] and never freed, so the handler can read it.
static SLOTS: AtomicPtr<AtomicI32> = AtomicPtr::new(std::ptr::null_mut());
/// Number of slots behind `SLOTS`.
static CAPACITY: AtomicUsize = AtomicUsize::new(0);
/// Children recorded and not yet reaped.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Allocates the child table for at most `capacity` children.
pub fn init(capacity: usize) {
    let slots: Box<[AtomicI32]> = (0..capacity).map(|_| AtomicI32::new(0)).collect();
    // Leaked on purpose: the table lives as long as the process, and a signal
    // handler may read it at any moment.
    let slots = Box::leak(slots);
    CAPACITY.store(slots.len(), Ordering::SeqCst);
    SLOTS.store(slots.as_mut_ptr(), Ordering::SeqCst);
}

fn slots() -> &'static [AtomicI32] {
    let ptr = SLOTS.load(Ordering::SeqCst);
    if ptr.is_null() {
        return &[];
    }
    // SAFETY: `init` stored a pointer to a leaked slice of CAPACITY atomics,
    // which is never freed or moved.
    unsafe { std::slice::from_raw_parts(ptr, CAPACITY.load(Ordering::SeqCst)) }
}

/// Records a new child. Call with SIGCHLD blocked, so the handler cannot reap
/// the child before it is recorded. Returns false if the table is full.
pub fn record(pid: Pid) -> bool {
    for slot in slots() {
        if slot
            .compare_exchange(0, pid.as_raw(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            LIVE.fetch_add(1, Ordering::SeqCst);
            return true;
        }
    }
    false
}

/// Forgets a reaped child. Async-signal-safe.
fn forget(pid: Pid) {
    for slot in slots() {
        if slot
            .compare_exchange(pid.as_raw(), 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            LIVE.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    }
}

/// Children alive (or zombies) right now.
pub fn live() -> usize {
    LIVE.load(Ordering::SeqCst)
}

/// Pids of the children not yet reaped.
pub fn pids() -> Vec<Pid> {
    slots()
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .filter(|&p| p != 0)
        .map(Pid::from_raw)
        .collect()
}

/// Reaps every child that has exited, without blocking. Returns how many.
/// This is the whole body of the SIGCHLD handler; shutdown calls it too.
pub fn reap_exited() -> usize {
    let mut reaped = 0;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            // 0 from waitpid: children exist, none has exited.
            Ok(WaitStatus::StillAlive) => return reaped,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    forget(pid);
                }
                reaped += 1;
            }
            // ECHILD: no children at all. Anything else: nothing to do here.
            Err(_) => return reaped,
        }
    }
}

/// Blocks until `pid` is reaped, retrying on EINTR.
pub fn reap_blocking(pid: Pid) {
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            Ok(_) => {
                forget(pid);
                return;
            }
            // ECHILD: the handler got there first.
            Err(_) => {
                forget(pid);
                return;
            }
        }
    }
}

/// The SIGCHLD handler: reap in a loop, because one signal can stand for
/// many exited children.
extern "C" fn on_sigchld(_: libc::c_int) {
    let saved = Errno::last_raw();
    reap_exited();
    Errno::set_raw(saved);
}

/// The classic bug (`single-wait` fault): one waitpid per signal. When two
/// children exit before the handler runs, the kernel delivers one SIGCHLD and
/// the second child stays a zombie.
extern "C" fn on_sigchld_once(_: libc::c_int) {
    let saved = Errno::last_raw();
    if let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if let Some(pid) = status.pid() {
            forget(pid);
        }
    }
    Errno::set_raw(saved);
}

/// How the SIGCHLD handler is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaping {
    /// Loop over waitpid, with SA_RESTART: the correct handler.
    Loop,
    /// One waitpid per signal (`single-wait`).
    Once,
    /// Never install it (`no-reap`): every child becomes a zombie.
    Never,
}

/// Installs the SIGCHLD handler. `restart` is false only under the
/// `no-eintr-retry` fault: then any blocking syscall the signal interrupts
/// fails with EINTR instead of being restarted by the kernel.
pub fn install(reaping: Reaping, restart: bool) -> Result<(), ServerError> {
    let handler = match reaping {
        Reaping::Loop => on_sigchld as extern "C" fn(libc::c_int),
        Reaping::Once => on_sigchld_once,
        Reaping::Never => return Ok(()),
    };
    // SA_NOCLDSTOP: stopped children (SIGSTOP) are not exits; don't wake us.
    let mut flags = SaFlags::SA_NOCLDSTOP;
    if restart {
        flags |= SaFlags::SA_RESTART;
    }
    let action = SigAction::new(SigHandler::Handler(handler), flags, SigSet::empty());
    // SAFETY: the handler is async-signal-safe: it calls only waitpid and
    // atomic operations on a table that is never freed, and restores errno.
    unsafe { sigaction(Signal::SIGCHLD, &action) }
        .map(drop)
        .map_err(|errno| ServerError::Signal {
            what: "sigaction(SIGCHLD)",
            errno,
        })
}
