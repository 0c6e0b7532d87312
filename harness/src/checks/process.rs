//! Zombies and children that do not go away.
//!
//! A forking server must collect every child's exit status with waitpid, or
//! the child stays in the process table as a zombie. Signals of one kind do
//! not queue, so a SIGCHLD handler that reaps one child per signal leaves
//! zombies behind whenever children exit together.

use std::time::{Duration, Instant};

use super::{load, Answers, CheckDef, Ctx};
use crate::census::{self, Snapshot};
use crate::check::CheckResult;
use crate::model::Model;
use crate::poll::poll_until;
use crate::procfs::ProcStat;
use crate::target::start_failed;

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "process/zombies",
        requirement: "After sequential requests and a burst of 50 simultaneous connections whose children exit \
                      together, no descendant of the server is left in state Z once the load settles (a zombie \
                      counts when the same process is still one in a later sample).",
        hint: "Reap every child: in the SIGCHLD handler call waitpid(-1, &status, WNOHANG) in a loop until it \
               returns 0 or -1. One SIGCHLD can stand for many exited children.",
        needs: &[],
        answers: Answers::Many,
        run: zombies,
    },
    CheckDef {
        id: "process/children-exit",
        requirement: "After load, the number of live descendants of the server returns to its settled number \
                      at idle within the settle time (warn if they exit later).",
        hint: "A child must end when its connection ends: call _exit() after serving, so that it never falls \
               back into the parent's accept loop, and time out clients that go silent.",
        needs: &[],
        answers: Answers::Many,
        run: children_exit,
    },
];

/// Sequential requests before the burst.
const SEQUENTIAL: usize = 20;
/// Simultaneous connections in the burst.
const BURST: usize = 50;
/// How long after a zombie is seen it must still be one to count.
const RECHECK: Duration = Duration::from_millis(300);
/// How much longer than the settle time children may take to exit before
/// the check stops waiting: exiting late is a warning, never exiting a fail.
const LATE_LIMIT: Duration = Duration::from_secs(5);

/// A burst of `n` simultaneous connections, whose children exit together;
/// for an iterative server, whose accept queue is small as a rule, the same
/// requests one after another.
fn burst_or_sequence(model: Model, addr: std::net::SocketAddr, n: usize) -> load::LoadOutcome {
    if model.is_iterative() {
        load::sequential(addr, "/", n)
    } else {
        load::burst(addr, n)
    }
}

/// How the load's children were seen, for a summary.
fn children_note(seen: &census::Seen) -> String {
    match seen.new.len() {
        0 => "children forked and reaped too fast to be seen alive".into(),
        n => format!("{n} children seen"),
    }
}

/// `, 3 of 70 requests unanswered (see concurrency/burst)` when the load
/// was partly refused, else nothing.
fn unanswered_note(load: &load::LoadOutcome) -> String {
    if load.complete() {
        String::new()
    } else {
        format!(
            "; {} of {} requests unanswered (see concurrency/burst)",
            load.unanswered,
            load.answered + load.unanswered
        )
    }
}

fn zombies(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let settle = ctx.settings.settle;
    let model = ctx.model.model;
    let (pid, addr) = match ctx.server() {
        Ok(server) => (server.pid(), server.addr()),
        Err(error) => return start_failed(result, &error),
    };
    let (load, seen) = census::watch(pid, || {
        let mut load = load::sequential(addr, "/", SEQUENTIAL);
        // A server that stopped answering would make the burst wait out
        // every timeout for nothing.
        if load.complete() {
            load = load.merge(burst_or_sequence(model, addr, BURST));
        }
        load
    });
    let result = load
        .describe(result)
        .figure("children_seen", seen.new.len())
        .figure("settle_ms", settle.as_millis() as u64);
    if load.answered == 0 {
        return load.incomplete(result.figure("zombies", 0));
    }
    // Zombies are children that were forked: a server in which none was
    // ever seen, live or zombie, has none to reap.
    let now_zombies = Snapshot::take(pid).zombies().count();
    if !seen.forked() && now_zombies == 0 {
        return result.figure("zombies", 0).pass(format!(
            "no children were created: {} requests served without a fork{}",
            load.answered,
            unanswered_note(&load)
        ));
    }
    poll_until(settle, || Snapshot::take(pid).zombies().next().is_none());
    let left = census::persistent_zombies(pid, RECHECK);
    let result = result.figure("zombies", left.len());
    if left.is_empty() {
        return result.pass(format!(
            "no zombies after {} requests ({}){}",
            load.answered,
            children_note(&seen),
            unanswered_note(&load)
        ));
    }
    let pids: Vec<String> = left.iter().take(20).map(|p| p.pid.to_string()).collect();
    result
        .evidence(format!("zombie pids: {}", pids.join(" ")))
        .fail(format!(
            "{} zombies left {} ms after the load, still zombies {} ms later",
            left.len(),
            settle.as_millis(),
            RECHECK.as_millis()
        ))
}

fn children_exit(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let settle = ctx.settings.settle;
    let model = ctx.model.model;
    let (pid, addr, port) = match ctx.server() {
        Ok(server) => (server.pid(), server.addr(), server.port()),
        Err(error) => return start_failed(result, &error),
    };
    // The idle number, settled: a child still finishing an earlier
    // connection is not idle.
    let idle = census::settled_residents(pid, port, Duration::from_secs(3))
        .value
        .len();
    let (load, seen) = census::watch(pid, || {
        let load = burst_or_sequence(model, addr, 20);
        if !load.complete() {
            return load;
        }
        load.merge(load::sequential(addr, "/", 10))
    });
    let result = load
        .describe(result)
        .figure("idle", idle)
        .figure("children_seen", seen.new.len())
        .figure("settle_ms", settle.as_millis() as u64);
    if load.answered == 0 {
        return load.incomplete(result.figure("after", idle));
    }
    let live = || Snapshot::take(pid).live().count();
    if !seen.forked() && live() <= idle {
        return result.figure("after", live()).pass(format!(
            "no children were created: {} requests served without a fork{}",
            load.answered,
            unanswered_note(&load)
        ));
    }
    let started = Instant::now();
    let returned = poll_until(settle, || live() <= idle);
    if returned {
        return result.figure("after", live()).pass(format!(
            "{} live descendants after load, {idle} at idle ({}){}",
            live(),
            children_note(&seen),
            unanswered_note(&load)
        ));
    }
    // Late is not never: children that exit after the settle time warn.
    let late = poll_until(LATE_LIMIT, || live() <= idle);
    let waited = started.elapsed();
    if late {
        return result
            .figure("after", live())
            .figure("exit_ms", waited.as_millis() as u64)
            .warn(format!(
                "the children exited {} ms after the load, beyond the {} ms settle time",
                waited.as_millis(),
                settle.as_millis()
            ));
    }
    let still: Vec<ProcStat> = Snapshot::take(pid).live().cloned().collect();
    let listing: Vec<String> = still
        .iter()
        .take(10)
        .map(|p| format!("{} ({}, ppid {})", p.pid, p.state, p.ppid))
        .collect();
    result
        .figure("after", still.len())
        .evidence(format!("still alive: {}", listing.join(", ")))
        .fail(format!(
            "{} live descendants {} ms after load, {idle} at idle",
            still.len(),
            waited.as_millis()
        ))
}
