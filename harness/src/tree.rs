//! Every process a server starts stays the harness's to find and to stop,
//! whatever session, process group or parent it moves to.
//!
//! A process group is not enough: a daemon's double fork and `setsid()`, or a
//! child's `setpgid()`, leaves the group, and a kill of the group misses it.
//! Parent links are not enough either: when a process's parent exits, the
//! kernel gives it to a reaper, and the path from the server to it is gone.
//! So three things hold the tree together:
//!
//! - **The harness is a child subreaper** (`prctl(PR_SET_CHILD_SUBREAPER)`):
//!   an orphan anywhere below a server is re-parented to the harness, not to
//!   init, so it stays in the harness's tree and its exit is ours to reap.
//! - **Every server carries a tag in its environment**
//!   (`HARNESS_SERVER_TAG=<run>/<instance>`). Every process it forks, and
//!   every program those exec, inherits it, so a process is attributed to its
//!   instance from `/proc/PID/environ` wherever it went. A process that
//!   clears its environment is still found through its parent links while
//!   they last, and the harness binary reaps any orphan it is given.
//! - **A parent-death signal** (`PR_SET_PDEATHSIG`, SIGKILL) on every server
//!   as the backstop for the one ending the harness cannot catch: SIGKILL.
//!   The kernel sends it when the *thread* that forked the server exits, so
//!   every server is spawned by one thread that lives as long as the harness:
//!   the keeper, which also reaps the orphans the harness adopts.
//!
//! The registry of live instances lets [`stop_all`] (interrupts, a panic in
//! `main`) stop every server at once, and refuses new servers from then on.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::procfs::{self, ProcStat};

/// The environment variable that carries an instance's tag.
pub const TAG_VAR: &str = "HARNESS_SERVER_TAG";

/// How often the keeper looks for adopted orphans to reap.
const REAP_EVERY: Duration = Duration::from_millis(250);
/// Pause between rounds of a kill.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long [`kill_until_gone`] keeps killing a tree that keeps forking.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);

/// A server instance that is running, as [`stop_all`] and the keeper see it.
#[derive(Debug, Clone)]
struct Live {
    /// The started process. Its pid is the process group id, and stays ours
    /// while it is our unreaped zombie.
    leader: i32,
    /// The process judged as the server: the leader, or the process a
    /// launcher left listening when it exited.
    server: i32,
}

/// Live instances, and whether the harness is stopping.
#[derive(Debug, Default)]
struct Registry {
    live: Vec<Live>,
    /// Set by [`stop_all`]: no server starts after it.
    stopping: bool,
}

/// Invariant: an instance is removed from here before its leader is reaped,
/// so whoever holds the lock and finds a leader here may signal its group.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: Vec::new(),
    stopping: false,
});

/// Every critical section is a push, a retain, an update or a copy, so a
/// poisoned lock still guards a consistent registry.
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether [`reap_every_orphan`] was called (the harness binary).
static REAP_ANY: AtomicBool = AtomicBool::new(false);
/// Instance numbers within this run.
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// This run's part of every tag: the harness's pid and start time, so that
/// two harnesses running at once never take each other's processes.
fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let pid = std::process::id() as i32;
        let start = procfs::stat(pid).map(|s| s.start_time).unwrap_or(0);
        format!("{pid}.{start}")
    })
}

/// A new tag for one instance.
pub(crate) fn new_tag() -> String {
    format!("{}/{}", run_id(), SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

/// The tag `pid` carries, if any (see [`procfs::environ_var`] for when it cannot be read).
fn tag_of(pid: i32) -> Option<Vec<u8>> {
    procfs::environ_var(pid, TAG_VAR)
}

/// In the harness binary every child is a server or an orphan adopted from
/// one, so any zombie child that is not a registered server may be reaped.
/// A library user (a test binary) has children of its own whose status it
/// will wait for; there only orphans seen carrying a tag are reaped.
pub fn reap_every_orphan() {
    REAP_ANY.store(true, Ordering::SeqCst);
}

/// Why a server was not started.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// The harness is stopping ([`stop_all`] ran).
    Stopping,
    /// `fork`/`exec` failed.
    Io(std::io::Error),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Stopping => write!(f, "the harness is stopping"),
            SpawnError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A job for the keeper thread.
type Job = Box<dyn FnOnce() + Send>;

/// The keeper's queue, started on first use.
fn keeper() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static KEEPER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    KEEPER
        .get_or_init(|| {
            // Best effort: without it orphans go to init and are found only
            // by their tag. Both calls only fail on kernels before 3.4.
            let _ = nix::sys::prctl::set_child_subreaper(true);
            let (sender, jobs) = mpsc::channel::<Job>();
            thread::Builder::new()
                .name("keeper".into())
                .spawn(move || loop {
                    match jobs.recv_timeout(REAP_EVERY) {
                        Ok(job) => job(),
                        Err(mpsc::RecvTimeoutError::Timeout) => reap_orphans(),
                        // Never: the sender lives in a static.
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                })
                .ok()
                .map(|_| Mutex::new(sender))
        })
        .as_ref()
}

/// Spawns `command` as a new instance tagged `tag`, on the keeper thread,
/// and registers it. Registration happens under the registry lock together
/// with the spawn, so [`stop_all`] either sees the instance or refuses it.
pub(crate) fn spawn(mut command: Command, tag: &str) -> Result<Child, SpawnError> {
    command.env(TAG_VAR, tag);
    let mut job = move || -> Result<Child, SpawnError> {
        let mut registry = registry();
        if registry.stopping {
            return Err(SpawnError::Stopping);
        }
        let child = command.spawn().map_err(SpawnError::Io)?;
        let pid = child.id() as i32;
        registry.live.push(Live {
            leader: pid,
            server: pid,
        });
        Ok(child)
    };
    let Some(keeper) = keeper() else {
        // No keeper thread could be started: spawn here, without the
        // guarantee that the parent-death signal waits for the harness.
        return job();
    };
    let (reply, answer) = mpsc::sync_channel(1);
    let sent = keeper
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send(Box::new(move || {
            let _ = reply.send(job());
        }));
    if sent.is_err() {
        return Err(SpawnError::Io(std::io::Error::other(
            "the keeper thread is gone",
        )));
    }
    answer.recv().unwrap_or_else(|_| {
        Err(SpawnError::Io(std::io::Error::other(
            "the keeper thread dropped the spawn",
        )))
    })
}

/// The pid of the process that spawns every server (the harness itself),
/// for the parent-death check in the child.
pub(crate) fn harness_pid() -> i32 {
    std::process::id() as i32
}

/// Runs in the child between fork and exec: SIGKILL when the harness dies,
/// and if it died already (between fork and this call), give up now.
/// Only async-signal-safe calls.
pub(crate) fn die_with_harness(harness: i32) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
    if nix::unistd::getppid().as_raw() != harness {
        return Err(std::io::Error::other("the harness exited during spawn"));
    }
    Ok(())
}

/// The server process of a live instance changed (a launcher handed over).
pub(crate) fn set_server(leader: i32, server: i32) {
    for live in registry().live.iter_mut().filter(|l| l.leader == leader) {
        live.server = server;
    }
}

/// Forgets an instance and runs `reap` (which reaps its leader) under the
/// registry's lock, so that nobody signals its group after the leader is
/// reaped and the keeper does not reap the leader first.
pub(crate) fn unregister_and<T>(leader: i32, reap: impl FnOnce() -> T) -> T {
    let mut registry = registry();
    registry.live.retain(|l| l.leader != leader);
    reap()
}

/// Is the instance led by `leader` registered?
#[cfg(test)]
pub(crate) fn is_registered(leader: i32) -> bool {
    registry().live.iter().any(|l| l.leader == leader)
}

/// How many instances are live.
pub fn live_count() -> usize {
    registry().live.len()
}

/// `seeds` and every descendant of them in `all`, zombies included.
fn closure(all: Vec<ProcStat>, mut seeds: HashSet<i32>) -> Vec<ProcStat> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in &all {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut queue: Vec<i32> = seeds.iter().copied().collect();
    // Every pid enters the queue at most once, so this ends even if a racy
    // scan produced a parent cycle.
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            if seeds.insert(child) {
                queue.push(child);
            }
        }
    }
    all.into_iter().filter(|p| seeds.contains(&p.pid)).collect()
}

/// Every process of one instance's tree, zombies included: the leader (while
/// its pid is ours), every process carrying `tag`, and every descendant of
/// these. One scan of `/proc`.
pub fn members(tag: &str, leader: i32) -> Vec<ProcStat> {
    let all = procfs::all_processes();
    let me = harness_pid();
    // A process carrying the tag was started after the leader: only those
    // need their environment read (the leader is ours until teardown, so
    // its start time is there; if not, every process is read).
    let since = all
        .iter()
        .find(|p| p.pid == leader)
        .map_or(0, |p| p.start_time);
    let seeds: HashSet<i32> = all
        .iter()
        .filter(|p| p.pid != me)
        .filter(|p| {
            p.pid == leader
                || (p.is_live()
                    && p.start_time >= since
                    && tag_of(p.pid).as_deref() == Some(tag.as_bytes()))
        })
        .map(|p| p.pid)
        .collect();
    let found = closure(all, seeds);
    note_adopted(&found);
    found
}

/// Every process of every instance of this run, live or not: the registered
/// leaders and servers, everything carrying this run's tags, and their
/// descendants.
fn run_members() -> Vec<ProcStat> {
    let prefix = format!("{}/", run_id());
    let registered: HashSet<i32> = registry()
        .live
        .iter()
        .flat_map(|l| [l.leader, l.server])
        .collect();
    let all = procfs::all_processes();
    let me = harness_pid();
    // Only processes started after the harness can carry its tags.
    let since = all.iter().find(|p| p.pid == me).map_or(0, |p| p.start_time);
    let seeds: HashSet<i32> = all
        .iter()
        .filter(|p| p.pid != me)
        .filter(|p| {
            registered.contains(&p.pid)
                || (p.is_live()
                    && p.start_time >= since
                    && tag_of(p.pid).is_some_and(|t| t.starts_with(prefix.as_bytes())))
        })
        .map(|p| p.pid)
        .collect();
    closure(all, seeds)
}

/// Is the process seen as `before` still there, alive, and not a reused pid?
pub(crate) fn still_same_process(before: &ProcStat) -> bool {
    procfs::stat(before.pid).is_ok_and(|now| now.start_time == before.start_time && now.is_live())
}

/// Sends `sig` to every process of `procs` that is still the one seen.
pub(crate) fn signal_each(procs: &[ProcStat], sig: Signal) {
    for p in procs.iter().filter(|p| p.is_live()) {
        if still_same_process(p) {
            // ESRCH: it exited after the check, which is what we want anyway.
            let _ = signal::kill(Pid::from_raw(p.pid), sig);
        }
    }
}

/// SIGKILL to everything `find` returns, again and again until it returns
/// nothing live or `within` passes (a tree that forks while it is killed is
/// caught in a later round). Returns what still lived at the end.
pub(crate) fn kill_until_gone(find: impl Fn() -> Vec<ProcStat>, within: Duration) -> Vec<ProcStat> {
    let deadline = Instant::now() + within;
    loop {
        let live: Vec<ProcStat> = find().into_iter().filter(ProcStat::is_live).collect();
        if live.is_empty() || Instant::now() >= deadline {
            return live;
        }
        signal_each(&live, Signal::SIGKILL);
        thread::sleep(POLL_INTERVAL);
    }
}

/// Orphans adopted from servers, seen alive with a tag of this run, waiting
/// to be reaped when they exit: `(pid, start time)`.
static ADOPTED: Mutex<Vec<(i32, u64)>> = Mutex::new(Vec::new());

fn adopted() -> MutexGuard<'static, Vec<(i32, u64)>> {
    ADOPTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Remembers the members of a tree that are our children but not a
/// registered server: orphans the subreaper adopted, ours to reap.
fn note_adopted(found: &[ProcStat]) {
    let me = harness_pid();
    let registered: HashSet<i32> = registry()
        .live
        .iter()
        .flat_map(|l| [l.leader, l.server])
        .collect();
    let mut adopted = adopted();
    for p in found {
        if p.ppid == me && p.is_live() && !registered.contains(&p.pid) {
            let id = (p.pid, p.start_time);
            if !adopted.contains(&id) {
                adopted.push(id);
            }
        }
    }
}

/// Reaps zombie children that are orphans adopted from servers (or, in the
/// harness binary, any zombie child that is not a registered server), and
/// notes tagged children for later. A registered leader or server stays a
/// zombie: its pid pins its process group until teardown.
pub(crate) fn reap_orphans() {
    let me = harness_pid();
    let children: Vec<ProcStat> = procfs::all_processes()
        .into_iter()
        .filter(|p| p.ppid == me)
        .collect();
    if children.is_empty() {
        return;
    }
    // Held while reaping, so that no instance registers or unregisters a
    // pid we are about to reap.
    let registry = registry();
    let registered: HashSet<i32> = registry
        .live
        .iter()
        .flat_map(|l| [l.leader, l.server])
        .collect();
    let prefix = format!("{}/", run_id());
    let reap_any = REAP_ANY.load(Ordering::SeqCst);
    let mut adopted = adopted();
    for child in children.iter().filter(|c| !registered.contains(&c.pid)) {
        let id = (child.pid, child.start_time);
        if child.is_live() {
            if !adopted.contains(&id)
                && tag_of(child.pid).is_some_and(|t| t.starts_with(prefix.as_bytes()))
            {
                adopted.push(id);
            }
        } else if reap_any || adopted.contains(&id) {
            // A zombie cannot change identity before it is reaped, so this
            // is the process just seen.
            let _ = waitpid(Pid::from_raw(child.pid), Some(WaitPidFlag::WNOHANG));
            adopted.retain(|&a| a != id);
        }
    }
    // Forget entries whose process is gone (reaped by someone else).
    adopted.retain(|&(pid, start)| procfs::stat(pid).is_ok_and(|p| p.start_time == start));
    drop(registry);
}

/// Reaps every zombie among `procs` that is our child: the followed server
/// and adopted orphans of one instance at teardown. The leader is not in
/// `procs`' reach here: call after it was unregistered, and it is reaped
/// through its `Child`.
pub(crate) fn reap_members(procs: &[ProcStat], except: i32) {
    let me = harness_pid();
    for p in procs.iter().filter(|p| p.pid != except) {
        let Ok(now) = procfs::stat(p.pid) else {
            continue;
        };
        if now.ppid == me && now.start_time == p.start_time && !now.is_live() {
            let _ = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
        }
    }
    let ids: Vec<(i32, u64)> = procs.iter().map(|p| (p.pid, p.start_time)).collect();
    adopted().retain(|id| !ids.contains(id));
}

/// Stops every server of this run, whatever group or session its processes
/// are in: SIGTERM to all, up to `patience` for them to exit, then SIGKILL
/// until none is left. From the first call on, no new server starts.
pub fn stop_all(patience: Duration) {
    registry().stopping = true;
    let signal_groups = |sig: Signal| {
        // Under the lock: a registered leader is unreaped, so its pgid is ours.
        let registry = registry();
        for live in &registry.live {
            let _ = signal::killpg(Pid::from_raw(live.leader), sig);
        }
    };
    signal_groups(Signal::SIGTERM);
    signal_each(&run_members(), Signal::SIGTERM);
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline && run_members().iter().any(ProcStat::is_live) {
        thread::sleep(POLL_INTERVAL);
    }
    signal_groups(Signal::SIGKILL);
    kill_until_gone(run_members, KILL_WAIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc_(pid: i32, ppid: i32) -> ProcStat {
        ProcStat {
            pid,
            ppid,
            pgrp: pid,
            state: 'S',
            num_threads: 1,
            comm: "x".into(),
            start_time: 1,
            child_minflt: 0,
        }
    }

    #[test]
    fn the_closure_holds_the_seeds_and_all_their_descendants() {
        let all = vec![
            proc_(1, 0),
            proc_(10, 1),
            proc_(11, 10),
            proc_(12, 11),
            proc_(20, 1),
            proc_(21, 20),
            proc_(30, 1),
        ];
        let found: Vec<i32> = closure(all, HashSet::from([10, 20]))
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(found, [10, 11, 12, 20, 21]);
    }

    #[test]
    fn tags_of_one_run_share_its_prefix_and_differ() {
        let (a, b) = (new_tag(), new_tag());
        assert_ne!(a, b);
        let prefix = format!("{}/", run_id());
        assert!(a.starts_with(&prefix) && b.starts_with(&prefix), "{a} {b}");
    }
}
