//! The server's process tree as numbers, measured so that they can be trusted.
//!
//! A single sample of `/proc` lies in both directions: a pre-fork server
//! listens before it has forked all its workers, an arbiter opens its
//! control socket a little after it listens, a child that has just exited is
//! a zombie for the instant before its parent reaps it, and a child that
//! lives a millisecond is never seen at all. So every before/after figure
//! here is *settled* (unchanged over a window), a zombie is *persistent*
//! (the same process is still a zombie in a later sample), and children are
//! *watched* during a load (sampled every few milliseconds, so that one that
//! came and went is still counted as forked).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::procfs::{self, ProcStat};

/// A process, across pid reuse: its pid and its start time.
pub type ProcId = (i32, u64);

/// The identity of a sampled process.
pub fn id_of(process: &ProcStat) -> ProcId {
    (process.pid, process.start_time)
}

/// The server's tree at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every descendant of the leader, zombies included.
    pub descendants: Vec<ProcStat>,
    /// Threads of the leader.
    pub leader_threads: u32,
}

impl Snapshot {
    /// Samples the tree of `pid` now.
    pub fn take(pid: i32) -> Snapshot {
        Snapshot {
            descendants: procfs::descendants(pid),
            leader_threads: procfs::stat(pid).map(|s| s.num_threads).unwrap_or(0),
        }
    }

    /// Descendants that are still running code.
    pub fn live(&self) -> impl Iterator<Item = &ProcStat> {
        self.descendants.iter().filter(|p| p.is_live())
    }

    /// Descendants in state Z.
    pub fn zombies(&self) -> impl Iterator<Item = &ProcStat> {
        self.descendants.iter().filter(|p| p.state == 'Z')
    }

    /// Pids of the live descendants, sorted.
    pub fn live_pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self.live().map(|p| p.pid).collect();
        pids.sort_unstable();
        pids
    }

    /// Threads of the leader and of every live descendant.
    pub fn threads(&self) -> u32 {
        self.leader_threads + self.live().map(|p| p.num_threads).sum::<u32>()
    }

    /// Threads of the leader and of the live descendants among `pids`: a
    /// threaded server grows threads in the processes it already had.
    pub fn threads_of(&self, pids: &[i32]) -> u32 {
        self.leader_threads
            + self
                .live()
                .filter(|p| pids.contains(&p.pid))
                .map(|p| p.num_threads)
                .sum::<u32>()
    }
}

/// A value that was sampled until it stopped changing.
#[derive(Debug, Clone)]
pub struct Settled<T> {
    /// The last value sampled.
    pub value: T,
    /// Whether it held for the whole window before the limit.
    pub settled: bool,
    /// How long the sampling took.
    pub waited: Duration,
}

/// The window a settled value must hold for.
pub const WINDOW: Duration = Duration::from_millis(500);

/// Samples `measure` every 25 ms until its value has not changed for
/// `window`, or `limit` has passed.
pub fn settle<T: PartialEq>(
    window: Duration,
    limit: Duration,
    mut measure: impl FnMut() -> T,
) -> Settled<T> {
    let started = Instant::now();
    let mut value = measure();
    let mut since = Instant::now();
    loop {
        if since.elapsed() >= window {
            return Settled {
                value,
                settled: true,
                waited: started.elapsed(),
            };
        }
        if started.elapsed() >= limit {
            return Settled {
                value,
                settled: false,
                waited: started.elapsed(),
            };
        }
        std::thread::sleep(Duration::from_millis(25));
        let now = measure();
        if now != value {
            value = now;
            since = Instant::now();
        }
    }
}

/// The live descendants of `pid` that serve no connection on `port`: the
/// server's resident processes (pre-fork workers, helpers), as opposed to
/// children serving a connection, which come and go with the load. A child
/// still lingering over an earlier connection (even one the client has
/// closed) is not part of the idle state.
pub fn resident_pids(pid: i32, port: u16) -> Vec<i32> {
    let live = Snapshot::take(pid).live_pids();
    if live.is_empty() {
        return live;
    }
    let accepted: HashSet<u64> = procfs::accepted_inodes(port)
        .unwrap_or_default()
        .into_iter()
        .collect();
    // One read of each child's descriptor table, not one per connection:
    // under a burst, 50 children and 50 connections would be 2,500 reads.
    live.into_iter()
        .filter(|&child| !procfs::holds_any_inode(child, &accepted))
        .collect()
}

/// Waits up to `limit` until the server's end of every connection to `port`
/// is closed (TIME_WAIT aside): a connection an earlier probe closed stays
/// open there (CLOSE_WAIT) until the server reads its end, and a server that
/// answers by how many clients it has would count it. Whether it got there.
pub fn connections_closed(port: u16, limit: Duration) -> bool {
    crate::poll::poll_until(limit, || {
        procfs::accepted_inodes(port).is_ok_and(|inodes| inodes.is_empty())
    })
}

/// The resident processes of `pid` (see [`resident_pids`]) once the set has
/// held for [`WINDOW`] (bounded by `limit`).
pub fn settled_residents(pid: i32, port: u16, limit: Duration) -> Settled<Vec<i32>> {
    settle(WINDOW, limit, || resident_pids(pid, port))
}

/// One process of the tree and its open descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdCount {
    /// Its command name.
    pub comm: String,
    /// Whether it is the leader (else a worker or child).
    pub leader: bool,
    /// Open descriptors.
    pub count: usize,
}

/// Descriptors per resident process (see [`resident_pids`]): the leader
/// and each worker, keyed by process identity. Children serving a
/// connection are left out: they come and go with the load, and what they
/// hold ends with them.
pub fn fd_counts(pid: i32, port: u16) -> BTreeMap<ProcId, FdCount> {
    let mut counts = BTreeMap::new();
    let mut tree: Vec<(ProcStat, bool)> = Vec::new();
    if let Ok(leader) = procfs::stat(pid) {
        tree.push((leader, true));
    }
    let residents = resident_pids(pid, port);
    tree.extend(
        procfs::descendants(pid)
            .into_iter()
            .filter(|p| p.is_live() && residents.contains(&p.pid))
            .map(|p| (p, false)),
    );
    for (process, leader) in tree {
        // A process that exits between the scan and the count is not counted.
        if let Ok(count) = procfs::fd_count(process.pid) {
            counts.insert(
                id_of(&process),
                FdCount {
                    comm: process.comm.clone(),
                    leader,
                    count,
                },
            );
        }
    }
    counts
}

/// Zombies of `pid`'s tree that are still zombies `recheck` later: a child
/// caught between its exit and its parent's waitpid is not a zombie left
/// behind.
pub fn persistent_zombies(pid: i32, recheck: Duration) -> Vec<ProcStat> {
    let first: BTreeSet<ProcId> = Snapshot::take(pid).zombies().map(id_of).collect();
    if first.is_empty() {
        return Vec::new();
    }
    std::thread::sleep(recheck);
    Snapshot::take(pid)
        .zombies()
        .filter(|z| first.contains(&id_of(z)))
        .cloned()
        .collect()
}

/// The processes of `leader`'s tree (the leader included) that hold the
/// server's end of the connection from `client_port`: the one serving that
/// request, found by the request itself rather than guessed as "the first
/// new child". Empty while the connection waits in the accept queue.
pub fn holders_of_connection(leader: i32, server_port: u16, client_port: u16) -> Vec<ProcStat> {
    let Ok(Some(inode)) = procfs::accepted_inode(server_port, client_port) else {
        return Vec::new();
    };
    let mut tree: Vec<ProcStat> = procfs::stat(leader).into_iter().collect();
    tree.extend(
        procfs::descendants(leader)
            .into_iter()
            .filter(ProcStat::is_live),
    );
    tree.into_iter()
        .filter(|p| procfs::holds_inode(p.pid, inode))
        .collect()
}

/// How long [`serving_process`] waits for a connection to be accepted. An
/// accept takes microseconds; on a loaded CI machine (or a server whose
/// leader has thousands of descriptors to walk) a scheduling delay of a
/// second is no defect, so the limit is generous.
pub const SERVING_LIMIT: Duration = Duration::from_secs(3);

/// The process serving the connection from `client_port`, waited for up to
/// [`SERVING_LIMIT`]: the first holder other than the leader (a forking parent holds the
/// connection only for the moment between accept and closing its copy), or
/// the leader once it alone has held it for 300 ms. `None` if the
/// connection was never accepted. A holder once seen is kept, so a request
/// that ends meanwhile does not erase what was observed.
pub fn serving_process(leader: i32, server_port: u16, client_port: u16) -> Option<ProcStat> {
    const LEADER_ALONE: Duration = Duration::from_millis(300);
    const LIMIT: Duration = SERVING_LIMIT;
    let started = Instant::now();
    let mut leader_since: Option<Instant> = None;
    let mut seen_leader = None;
    while started.elapsed() < LIMIT {
        let holders = holders_of_connection(leader, server_port, client_port);
        if let Some(child) = holders.iter().find(|p| p.pid != leader) {
            return Some(child.clone());
        }
        match holders.into_iter().next() {
            Some(process) => {
                let since = *leader_since.get_or_insert_with(Instant::now);
                seen_leader = Some(process);
                if since.elapsed() >= LEADER_ALONE {
                    break;
                }
            }
            None => leader_since = None,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen_leader
}

/// What a [`watch`] saw of the tree while its work ran.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every descendant seen that was not there at the start, live or zombie.
    pub new: BTreeSet<ProcId>,
    /// Those of them seen as zombies.
    pub new_zombies: BTreeSet<ProcId>,
    /// Most live descendants at once.
    pub max_live: usize,
    /// Most threads (leader and live descendants) at once.
    pub max_threads: u32,
    /// Samples taken.
    pub samples: usize,
    /// Whether the leader reaped a child meanwhile (its `cminflt` grew).
    pub reaped: bool,
}

impl Seen {
    /// Whether the server forked during the work: a new child was seen, live
    /// or zombie, or one was reaped too fast to be seen.
    pub fn forked(&self) -> bool {
        !self.new.is_empty() || self.reaped
    }
}

/// Runs `work` while a sampler records, every 5 ms, which descendants of
/// `pid` exist: children that live only a few milliseconds are still seen
/// (zombies count too: a child that was never reaped is a child that was
/// forked).
pub fn watch<T: Send>(pid: i32, work: impl FnOnce() -> T + Send) -> (T, Seen) {
    let before: BTreeSet<ProcId> = Snapshot::take(pid).descendants.iter().map(id_of).collect();
    let reaped_before = procfs::stat(pid).map(|s| s.child_minflt).ok();
    let done = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    let output = std::thread::scope(|scope| {
        scope.spawn(|| {
            // One more sample after the work ends catches what it left.
            let mut last = false;
            loop {
                let snapshot = Snapshot::take(pid);
                if let Ok(mut seen) = seen.lock() {
                    seen.samples += 1;
                    seen.max_live = seen.max_live.max(snapshot.live().count());
                    seen.max_threads = seen.max_threads.max(snapshot.threads());
                    for process in &snapshot.descendants {
                        let id = id_of(process);
                        if !before.contains(&id) {
                            seen.new.insert(id);
                            if process.state == 'Z' {
                                seen.new_zombies.insert(id);
                            }
                        }
                    }
                }
                if last {
                    return;
                }
                last = done.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let output = work();
        done.store(true, Ordering::SeqCst);
        output
    });
    let mut seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    let reaped_after = procfs::stat(pid).map(|s| s.child_minflt).ok();
    seen.reaped = matches!((reaped_before, reaped_after), (Some(a), Some(b)) if b > a);
    (output, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_waits_for_a_value_that_holds_for_the_window() {
        let mut calls = 0;
        let settled = settle(Duration::from_millis(100), Duration::from_secs(5), || {
            calls += 1;
            (calls / 4).min(2)
        });
        assert!(settled.settled);
        assert_eq!(settled.value, 2);
    }

    #[test]
    fn settle_gives_up_at_the_limit_and_says_so() {
        let mut calls = 0;
        let settled = settle(
            Duration::from_millis(200),
            Duration::from_millis(150),
            || {
                calls += 1;
                calls
            },
        );
        assert!(!settled.settled);
    }

    #[test]
    fn watch_sees_a_child_that_lives_a_few_milliseconds() {
        let me = std::process::id() as i32;
        let ((), seen) = watch(me, || {
            let mut child = std::process::Command::new("sleep")
                .arg("0.05")
                .spawn()
                .expect("sleep is on every test machine");
            let _ = child.wait();
        });
        assert!(!seen.new.is_empty(), "{seen:?}");
        assert!(seen.samples >= 2);
        assert!(seen.forked());
    }

    #[test]
    fn watch_knows_a_child_was_forked_when_it_was_reaped_unseen() {
        let me = std::process::id() as i32;
        let ((), seen) = watch(me, || {
            // `true` exits at once; waiting reaps it, and its page faults
            // land in this process's cminflt.
            for _ in 0..3 {
                let _ = std::process::Command::new("true").status();
            }
        });
        assert!(seen.reaped, "{seen:?}");
        assert!(seen.forked());
    }

    #[test]
    fn a_process_without_zombies_has_no_persistent_ones() {
        assert!(
            persistent_zombies(std::process::id() as i32, Duration::from_millis(10)).is_empty()
        );
    }
}
