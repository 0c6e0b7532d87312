//! A signal that ends the harness never leaves a server behind, and never
//! loses the results that were finished.
//!
//! Destructors do not run when a process dies of a signal, so the
//! `Drop for ServerInstance` guarantee needs help: [`install`] blocks every
//! signal that would end the harness and that it can catch (SIGINT, SIGTERM,
//! SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE: a server can send
//! any of them to its parent) in the calling thread, so every thread spawned
//! later inherits the mask, and starts one thread that takes them with
//! `sigwait`. That thread runs ordinary Rust code, not a signal handler, so
//! it may stop every server of the run ([`crate::tree::stop_all`]), wait,
//! and exit with the conventional status `128 + signal number`.
//!
//! A run in progress ([`expect_reports`]) gets a few seconds, once the
//! servers are stopped, to write its JSON and JUnit documents with what
//! finished and the rest marked interrupted ([`reports_written`]).
//!
//! SIGKILL cannot be caught: for it, every server has a parent-death signal
//! (see [`crate::tree`]). Servers must not inherit the blocked mask:
//! `target.rs` resets the mask and the dispositions between fork and exec.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};

use crate::tree;

/// How long servers get to exit on SIGTERM before SIGKILL when interrupted.
const PATIENCE: Duration = Duration::from_secs(1);
/// How long a run may take, after its servers were stopped, to write its reports.
const REPORT_WAIT: Duration = Duration::from_secs(5);
/// Pause between checks of the flags below.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Set by the first successful [`install`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The stop signal that arrived (0: none yet). Set before any server is
/// stopped, so that the run can tell a server killed by the interrupt from
/// a server that failed.
static INTERRUPTED_BY: AtomicI32 = AtomicI32::new(0);
/// Every server was stopped after the interrupt.
static SERVERS_STOPPED: AtomicBool = AtomicBool::new(false);
/// A run is in progress that will write reports.
static REPORTS_PENDING: AtomicBool = AtomicBool::new(false);
/// The run wrote its reports after the interrupt.
static REPORTS_WRITTEN: AtomicBool = AtomicBool::new(false);

/// Why the interrupt handling could not be set up.
#[derive(Debug)]
pub enum InterruptError {
    /// `pthread_sigmask` failed.
    Mask(Errno),
    /// The signal-waiting thread could not be spawned.
    Spawn(std::io::Error),
}

impl fmt::Display for InterruptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterruptError::Mask(errno) => {
                write!(f, "blocking the stop signals: {}", errno.desc())
            }
            InterruptError::Spawn(e) => write!(f, "spawning the signal thread: {e}"),
        }
    }
}

impl std::error::Error for InterruptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InterruptError::Mask(errno) => Some(errno),
            InterruptError::Spawn(e) => Some(e),
        }
    }
}

/// The signals that end the harness, all taken by the interrupt thread.
///
/// SIGPIPE is among them for a `kill(2)` only: a write to a closed socket
/// raises it in the writing thread, where it stays pending (blocked) while
/// the write returns EPIPE, which the client handles.
pub const STOP_SIGNALS: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGPIPE,
];

fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in STOP_SIGNALS {
        set.add(sig);
    }
    set
}

/// Sets up interrupt handling. Call once at the start of `main`, before any
/// thread is spawned: threads spawned earlier keep an unblocked mask, and a
/// signal delivered to one of them would kill the harness the default way,
/// leaving servers running. Later calls do nothing.
pub fn install() -> Result<(), InterruptError> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let set = stop_signals();
    if let Err(errno) = set.thread_block() {
        INSTALLED.store(false, Ordering::SeqCst);
        return Err(InterruptError::Mask(errno));
    }
    let spawned = thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || loop {
            // sigwait only fails for an invalid set, which `stop_signals` is not;
            // retry anyway rather than lose the guarantee.
            if let Ok(sig) = set.wait() {
                on_signal(sig);
            }
        });
    if let Err(e) = spawned {
        // Without the thread, blocked signals would never be acted on: unblock them again.
        let _ = set.thread_unblock();
        INSTALLED.store(false, Ordering::SeqCst);
        return Err(InterruptError::Spawn(e));
    }
    Ok(())
}

/// Stops every server, gives a run in progress its moment to write its
/// reports, and exits with `128 + signal number`.
fn on_signal(sig: Signal) -> ! {
    INTERRUPTED_BY.store(sig as i32, Ordering::SeqCst);
    eprintln!(
        "\nharness: {} received, stopping {} server(s)",
        sig.as_str(),
        tree::live_count()
    );
    tree::stop_all(PATIENCE);
    SERVERS_STOPPED.store(true, Ordering::SeqCst);
    if REPORTS_PENDING.load(Ordering::SeqCst) {
        let deadline = Instant::now() + REPORT_WAIT;
        while !REPORTS_WRITTEN.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
    }
    std::process::exit(128 + sig as i32);
}

/// The stop signal that arrived, if one did.
pub fn interrupted() -> Option<Signal> {
    Signal::try_from(INTERRUPTED_BY.load(Ordering::SeqCst)).ok()
}

/// Waits (bounded) until every server was stopped after an interrupt: from
/// then on nothing a check sees is the server's doing. Returns at once if no
/// interrupt arrived.
pub fn wait_for_servers_stopped() {
    if interrupted().is_none() {
        return;
    }
    let deadline = Instant::now() + PATIENCE + tree::KILL_WAIT + REPORT_WAIT;
    while !SERVERS_STOPPED.load(Ordering::SeqCst) && Instant::now() < deadline {
        thread::sleep(POLL_INTERVAL);
    }
}

/// A run has started that writes reports at its end: an interrupt waits
/// (up to a few seconds) for [`reports_written`] before exiting.
pub fn expect_reports() {
    REPORTS_PENDING.store(true, Ordering::SeqCst);
}

/// The run's reports are written; after an interrupt this never returns,
/// since the interrupt thread owns the ending (exit with 128 + the signal
/// number).
pub fn reports_written() {
    REPORTS_WRITTEN.store(true, Ordering::SeqCst);
    wait_if_interrupted();
}

/// Never returns once a stop signal has arrived: from then on the interrupt
/// thread owns the ending (it stops the servers, then exits with 128 + the
/// signal number). The main thread calls this before it reports anything or
/// exits; otherwise it could see its servers die of the interrupt, report
/// them as failed, and exit with 1 or 2 before the interrupt thread is done.
pub fn wait_if_interrupted() {
    if interrupted().is_none() {
        return;
    }
    loop {
        thread::park();
    }
}

/// Stops every server of the run: SIGTERM, about a second, then SIGKILL.
/// For endings that are not signals (a panic in `main`).
pub fn kill_all_registered() {
    tree::stop_all(PATIENCE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{procfs, target};
    use std::os::unix::process::ExitStatusExt;

    /// Live processes carrying `tag`, wherever they are.
    fn tagged(tag: &str) -> Vec<procfs::ProcStat> {
        procfs::all_processes()
            .into_iter()
            .filter(|p| {
                p.is_live()
                    && procfs::environ_var(p.pid, tree::TAG_VAR).as_deref() == Some(tag.as_bytes())
            })
            .collect()
    }

    /// Environment variable that turns `interrupted_child_process` into the child side.
    const CHILD_MODE: &str = "HARNESS_INTERRUPT_TEST_CHILD";

    /// Child side of `a_signal_stops_every_process_of_every_server_and_exits_128_plus_signo`:
    /// starts a server with a child in a session of its own, prints its tag,
    /// then acts as if SIGINT arrived.
    #[test]
    #[ignore = "child half of a_signal_stops_every_process_of_every_server_and_exits_128_plus_signo; run by it"]
    fn interrupted_child_process() {
        if std::env::var_os(CHILD_MODE).is_none() {
            return;
        }
        let mut spec = target::TargetSpec::new("sh");
        spec.args = vec![
            "-c".into(),
            "setsid sleep 300 & sleep 300 & exec python3 -c 'import socket,os; s=socket.socket(); \
             s.bind((os.environ[\"HOST\"], int(os.environ[\"PORT\"]))); s.listen(); \
             [s.accept()[0].close() for _ in iter(int, 1)]'"
                .into(),
        ];
        let server = target::ServerInstance::start(&spec).expect("start");
        println!("TAG={}", server.tag());
        // Leak it: a signal does not run destructors either.
        std::mem::forget(server);
        on_signal(Signal::SIGINT);
    }

    #[test]
    fn a_signal_stops_every_process_of_every_server_and_exits_128_plus_signo() {
        let out = crate::test_support::run_test_in_child(
            "interrupt::tests::interrupted_child_process",
            CHILD_MODE,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(130),
            "status {:?} signal {:?}\n{stdout}\n{stderr}",
            out.status,
            out.status.signal()
        );
        assert!(
            stderr.contains("SIGINT received, stopping 1 server(s)"),
            "{stderr}"
        );
        let tag = stdout
            .lines()
            // libtest prints the test name on the same line, before the output.
            .find_map(|l| l.split_once("TAG=").map(|(_, rest)| rest))
            .and_then(|t| t.split_whitespace().next())
            .unwrap_or_else(|| panic!("no TAG line in {stdout}"))
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = tagged(&tag);
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                // Clean up before failing: they carry the tag, so they are the test's.
                tree::signal_each(&left, Signal::SIGKILL);
                panic!("processes outlived the harness: {left:?}");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}
