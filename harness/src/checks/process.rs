//! Zombies and children that do not go away.
//!
//! A forking server must collect every child's exit status with waitpid, or
//! the child stays in the process table as a zombie. Signals of one kind do
//! not queue, so a SIGCHLD handler that reaps one child per signal leaves
//! zombies behind whenever children exit together.

use super::{load, poll_until, start_failed, CheckDef, Ctx};
use crate::check::CheckResult;
use crate::probe::Model;
use crate::procfs::{self, ProcStat};

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "process/zombies",
        requirement: "After sequential requests and a burst of 50 simultaneous connections whose children exit \
                      together, no descendant of the server is left in state Z once the load settles.",
        hint: "Reap every child: in the SIGCHLD handler call waitpid(-1, &status, WNOHANG) in a loop until it \
               returns 0 or -1. One SIGCHLD can stand for many exited children.",
        needs: &[],
        run: zombies,
    },
    CheckDef {
        id: "process/children-exit",
        requirement: "After load, the number of live descendants of the server returns to its number at idle \
                      within the settle time.",
        hint: "A child must end when its connection ends: call _exit() after serving, so that it never falls \
               back into the parent's accept loop, and time out clients that go silent.",
        needs: &[],
        run: children_exit,
    },
];

/// Sequential requests before the burst.
const SEQUENTIAL: usize = 20;
/// Simultaneous connections in the burst.
const BURST: usize = 50;

fn zombies_of(pid: i32) -> Vec<ProcStat> {
    procfs::descendants(pid)
        .into_iter()
        .filter(|p| p.state == 'Z')
        .collect()
}

fn live_descendants(pid: i32) -> Vec<ProcStat> {
    procfs::descendants(pid)
        .into_iter()
        .filter(|p| p.state != 'Z')
        .collect()
}

/// A burst of `n` simultaneous connections, whose children exit together;
/// for an iterative server, which has no children and a small accept queue
/// as a rule, the same requests one after another.
fn burst_or_sequence(model: Model, addr: std::net::SocketAddr, n: usize) -> load::LoadOutcome {
    if model == Model::Iterative {
        load::sequential(addr, "/", n)
    } else {
        load::burst(addr, n)
    }
}

fn zombies(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let settle = ctx.settings.settle;
    let (pid, addr) = match ctx.server() {
        Ok(server) => (server.pid(), server.addr()),
        Err(error) => return start_failed(result, &error),
    };
    let mut load = load::sequential(addr, "/", SEQUENTIAL);
    if load.complete() {
        load = burst_or_sequence(ctx.model.model, addr, BURST);
        load.answered += SEQUENTIAL;
    }
    let settled = poll_until(settle, || zombies_of(pid).is_empty());
    let left = zombies_of(pid);
    let result = load
        .describe(result)
        .figure("zombies", left.len())
        .figure("settle_ms", settle.as_millis() as u64);
    if settled && left.is_empty() {
        if !load.complete() {
            return load.incomplete(result);
        }
        return result.pass(format!("no zombies after {} requests", SEQUENTIAL + BURST));
    }
    let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
    result
        .evidence(format!("zombie pids: {}", pids.join(" ")))
        .fail(format!(
            "{} zombies left {} ms after the load",
            left.len(),
            settle.as_millis()
        ))
}

fn children_exit(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let settle = ctx.settings.settle;
    let (pid, addr) = match ctx.server() {
        Ok(server) => (server.pid(), server.addr()),
        Err(error) => return start_failed(result, &error),
    };
    // The idle number: wait until two samples agree, so that a child still
    // finishing an earlier connection is not counted as idle.
    let idle = crate::probe::settled_descendants(pid).len();
    let mut load = burst_or_sequence(ctx.model.model, addr, 20);
    if load.complete() {
        let more = load::sequential(addr, "/", 10);
        load.answered += more.answered;
        load.unanswered += more.unanswered;
        load.errors.extend(more.errors);
    }
    let returned = poll_until(settle, || live_descendants(pid).len() <= idle);
    let live = live_descendants(pid);
    let result = load
        .describe(result)
        .figure("idle", idle)
        .figure("after", live.len())
        .figure("settle_ms", settle.as_millis() as u64);
    if returned {
        if !load.complete() {
            return load.incomplete(result);
        }
        return result.pass(format!(
            "{} live descendants after load, {idle} at idle",
            live.len()
        ));
    }
    let listing: Vec<String> = live
        .iter()
        .take(10)
        .map(|p| format!("{} ({}, ppid {})", p.pid, p.state, p.ppid))
        .collect();
    result
        .evidence(format!("still alive: {}", listing.join(", ")))
        .fail(format!(
            "{} live descendants {} ms after load, {idle} at idle",
            live.len(),
            settle.as_millis()
        ))
}
