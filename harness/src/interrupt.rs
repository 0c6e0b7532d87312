//! Ctrl-C never leaves a server behind.
//!
//! Destructors do not run when a process dies of a signal, so the
//! `Drop for ServerInstance` guarantee needs help: [`install`] blocks SIGINT,
//! SIGTERM and SIGHUP in the calling thread (every thread spawned later
//! inherits the mask) and starts one thread that takes them with `sigwait`.
//! That thread runs ordinary Rust code, not a signal handler, so it may lock
//! the registry of live process groups (see [`crate::target`]), signal them,
//! wait, and exit with the conventional status `128 + signal number`.
//!
//! Servers must not inherit the blocked mask: `target.rs` resets the mask and
//! the dispositions between fork and exec.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, SigSet, Signal};
use nix::unistd::Pid;

use crate::procfs;
use crate::target;

/// How long servers get to exit on SIGTERM before SIGKILL when interrupted.
const PATIENCE: Duration = Duration::from_secs(1);
/// Pause between checks for live group members.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Set by the first successful [`install`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The stop signal that arrived (0: none yet). Set before any server is
/// stopped, so that the main thread can tell a server killed by the
/// interrupt from a server that failed.
static INTERRUPTED_BY: AtomicI32 = AtomicI32::new(0);

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
                write!(f, "blocking SIGINT/SIGTERM/SIGHUP: {}", errno.desc())
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

/// The signals that end the harness.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
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

/// Stops every registered server and exits with `128 + signal number`.
fn on_signal(sig: Signal) -> ! {
    INTERRUPTED_BY.store(sig as i32, Ordering::SeqCst);
    let count = target::lock_registry(target::registry()).len();
    eprintln!(
        "\nharness: {} received, stopping {count} server(s)",
        sig.as_str()
    );
    kill_all_registered();
    std::process::exit(128 + sig as i32);
}

/// Never returns once a stop signal has arrived: from then on the interrupt
/// thread owns the ending (it stops the servers, then exits with 128 + the
/// signal number). The main thread calls this before it reports anything or
/// exits; otherwise it could see its servers die of the interrupt, report
/// them as failed, and exit with 1 or 2 before the interrupt thread is done.
pub fn wait_if_interrupted() {
    if INTERRUPTED_BY.load(Ordering::SeqCst) == 0 {
        return;
    }
    loop {
        thread::park();
    }
}

/// SIGTERM to every registered server group, up to ~1 s for them to exit,
/// then SIGKILL to all of them. The groups stay registered: their owners
/// still reap them (or the process exits).
pub fn kill_all_registered() {
    stop_groups(target::registry(), PATIENCE);
}

/// The work of [`kill_all_registered`] on any registry.
///
/// Signals are only sent while holding the registry lock: teardown removes a
/// group from the registry before reaping its leader, so a pgid found under
/// the lock cannot have been reused by an unrelated process.
fn stop_groups(registry: &Mutex<Vec<i32>>, patience: Duration) {
    signal_all(registry, Signal::SIGTERM);
    let deadline = Instant::now() + patience;
    loop {
        let any_alive = target::lock_registry(registry).iter().any(|&pgid| {
            procfs::group_members(pgid)
                .iter()
                .any(procfs::ProcStat::is_live)
        });
        if !any_alive || Instant::now() >= deadline {
            break;
        }
        thread::sleep(POLL_INTERVAL);
    }
    signal_all(registry, Signal::SIGKILL);
}

fn signal_all(registry: &Mutex<Vec<i32>>, sig: Signal) {
    for &pgid in target::lock_registry(registry).iter() {
        // ESRCH (group already empty) is the expected outcome for many groups.
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command, Stdio};

    /// Kills the group and reaps the leader on drop, panics included.
    struct GroupGuard(Child);
    impl Drop for GroupGuard {
        fn drop(&mut self) {
            let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }

    fn spawn_group(script: &str) -> GroupGuard {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        GroupGuard(child)
    }

    fn live_members(pgid: i32) -> usize {
        procfs::group_members(pgid)
            .iter()
            .filter(|p| p.is_live())
            .count()
    }

    #[test]
    fn stop_groups_kills_polite_and_stubborn_groups() {
        let polite = spawn_group("sleep 300 & sleep 300");
        // Ignored in the shell before forking, so both processes ignore SIGTERM.
        let stubborn = spawn_group("trap '' TERM; sleep 300 & sleep 300");
        let pgids = [polite.0.id() as i32, stubborn.0.id() as i32];
        // Let both shells fork their sleeps (bounded wait for a condition, not a timing assumption).
        let deadline = Instant::now() + Duration::from_secs(10);
        while pgids.iter().any(|&g| live_members(g) < 3) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        let registry = Mutex::new(pgids.to_vec());
        stop_groups(&registry, Duration::from_millis(300));
        for pgid in pgids {
            let deadline = Instant::now() + Duration::from_secs(10);
            while live_members(pgid) > 0 {
                assert!(Instant::now() < deadline, "group {pgid} survived");
                thread::sleep(POLL_INTERVAL);
            }
        }
    }

    /// Environment variable that turns `interrupted_child_process` into the child side.
    const CHILD_MODE: &str = "HARNESS_INTERRUPT_TEST_CHILD";

    /// Child side of `a_signal_kills_registered_servers_and_exits_128_plus_signo`:
    /// starts a server, prints its pgid, then acts as if SIGINT arrived.
    #[test]
    fn interrupted_child_process() {
        if std::env::var_os(CHILD_MODE).is_none() {
            return;
        }
        let mut spec = target::TargetSpec::new("sh");
        spec.args = vec![
            "-c".into(),
            "sleep 300 & exec python3 -c 'import socket,os; s=socket.socket(); \
             s.bind((os.environ[\"HOST\"], int(os.environ[\"PORT\"]))); s.listen(); \
             [s.accept()[0].close() for _ in iter(int, 1)]'"
                .into(),
        ];
        let server = target::ServerInstance::start(&spec).expect("start");
        println!("PGID={}", server.pgid());
        // Leak it: a signal does not run destructors either.
        std::mem::forget(server);
        on_signal(Signal::SIGINT);
    }

    #[test]
    fn a_signal_kills_registered_servers_and_exits_128_plus_signo() {
        let out =
            target::run_test_in_child("interrupt::tests::interrupted_child_process", CHILD_MODE);
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
        let pgid: i32 = stdout
            .lines()
            // libtest prints the test name on the same line, before the output.
            .find_map(|l| l.split_once("PGID=").map(|(_, rest)| rest))
            .and_then(|p| p.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no PGID line in {stdout}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while live_members(pgid) > 0 {
            if Instant::now() >= deadline {
                // Clean up before failing; the group is still alive, so the pgid is its own.
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                panic!("server group {pgid} outlived the harness");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}
