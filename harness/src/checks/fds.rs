//! Descriptors: leaks, and sockets held open by the wrong process.
//!
//! After fork, parent and child each hold a copy of the client socket; the
//! connection only closes when both copies are closed. A parent that forgets
//! its copy leaks one descriptor per connection and its clients never see
//! EOF. A child that keeps the listening socket keeps the port alive after
//! the server is gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{load, Answers, CheckDef, Ctx};
use crate::census::{self, FdCount, ProcId};
use crate::check::CheckResult;
use crate::client::{self, Conn};
use crate::poll::poll_until;
use crate::probe::Route;
use crate::procfs::{self, FdInfo};
use crate::target::start_failed;
use crate::timed::REQUEST_TIMEOUT;

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "fds/leak",
        requirement: "No process of the server (the leader or a worker) gains descriptors with every round of \
                      requests: after a warm-up and a settled baseline, a process that grows in a round of 100 \
                      requests and again in a round of 200 leaks.",
        hint: "Close every descriptor you open per request: in a forking server the parent must close its copy \
               of the client socket right after fork, and files opened per request must be closed.",
        needs: &[],
        answers: Answers::Many,
        run: leak,
    },
    CheckDef {
        id: "fds/close-eof",
        requirement: "For a request with Connection: close, and for an HTTP/1.0 request, the client sees EOF \
                      within 1 s after the response is complete (RFC 9112 §9.6).",
        hint: "Close the connection after the response when the client asked for it; in a forking server the \
               parent must also close its own copy of the client socket, or the connection never closes.",
        needs: &[],
        answers: Answers::Many,
        run: close_eof,
    },
    CheckDef {
        id: "fds/child-listener",
        requirement: "In a fork-per-connection server, the child serving a connection (the process holding \
                      that connection's socket) does not hold the listening socket.",
        hint: "In the child, close the listening socket first thing after fork: the child never accepts, and \
               its copy keeps the port open after the parent is gone.",
        needs: &[],
        answers: Answers::NotNeeded,
        run: child_listener,
    },
];

/// Requests of the warm-up, before the baseline.
const WARM_UP: usize = 20;
/// Requests of the two rounds: a leak grows with each.
const ROUNDS: [usize; 2] = [100, 200];
/// Descriptors a process may gain in a round without it counting as growth.
const TOLERANCE: usize = 2;
/// The longest a descriptor count may take to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);

/// Descriptors per process of the tree, once they have held for the window.
fn settled_counts(pid: i32, port: u16, settle: Duration) -> BTreeMap<ProcId, FdCount> {
    census::settle(census::WINDOW, settle.max(SETTLE_LIMIT), || {
        census::fd_counts(pid, port)
    })
    .value
}

fn leak(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let settle = ctx.settings.settle;
    let (pid, addr, port) = match ctx.server() {
        Ok(server) => (server.pid(), server.addr(), server.port()),
        Err(error) => return start_failed(result, &error),
    };
    // A warm-up first: what a server opens once, on its first requests or a
    // moment after it listens (an arbiter's control socket, a log file, a
    // runtime's epoll), is not a leak. Then a baseline that has held for
    // the window.
    let warm_up = load::streams(addr, "/", 2, WARM_UP / 2);
    // Rounds against a server that stopped answering would only wait out
    // their timeouts; the counts need every request answered anyway.
    if !warm_up.complete() {
        return warm_up.incomplete(result);
    }
    let baseline = settled_counts(pid, port, settle);
    let baseline_fds: BTreeMap<ProcId, Vec<FdInfo>> = baseline
        .keys()
        .filter_map(|id| Some((*id, procfs::fds(id.0).ok()?)))
        .collect();
    let mut load = load::LoadOutcome::default();
    let mut rounds = Vec::new();
    for n in ROUNDS {
        load = load.merge(load::streams(addr, "/", 4, n / 4));
        rounds.push(settled_counts(pid, port, settle));
    }
    let total =
        |counts: &BTreeMap<ProcId, FdCount>| counts.values().map(|c| c.count).sum::<usize>();
    let after = &rounds[rounds.len() - 1];
    let mut result = load
        .describe(result)
        .figure("before", total(&baseline))
        .figure("after_round_1", total(&rounds[0]))
        .figure("after", total(after))
        .figure("processes", after.len())
        .figure("tolerance", TOLERANCE);
    // A process leaks when it grew in the first round and grew again in the
    // second: growth that scales with load. Each process is compared with
    // itself, so a worker's leak is not hidden behind a quiet leader.
    let mut leakers = Vec::new();
    for (id, before) in &baseline {
        let (Some(first), Some(second)) = (rounds[0].get(id), after.get(id)) else {
            continue;
        };
        if first.count > before.count + TOLERANCE && second.count > first.count + TOLERANCE {
            leakers.push((*id, before, first.count, second.count));
        }
    }
    let summary = format!(
        "{} descriptors before, {} after {} and {} after {} more requests, across {} process{}",
        total(&baseline),
        total(&rounds[0]),
        ROUNDS[0],
        total(after),
        ROUNDS[1],
        after.len(),
        if after.len() == 1 { "" } else { "es" }
    );
    if leakers.is_empty() {
        if !load.complete() {
            return load.incomplete(result);
        }
        return result.pass(summary);
    }
    let mut names = Vec::new();
    for (id, before, first, second) in &leakers {
        let role = if before.leader { "leader" } else { "worker" };
        let now = procfs::fds(id.0).unwrap_or_default();
        let kinds = leaked_kinds(baseline_fds.get(id).map_or(&[][..], Vec::as_slice), &now);
        let listing: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
        result = result.evidence(format!(
            "{role} {} ({}): {} -> {first} -> {second} descriptors; leaked kinds: {}",
            id.0,
            before.comm,
            before.count,
            listing.join(" ")
        ));
        for (kind, n) in &kinds {
            let key = format!("leaked_{kind}");
            let sum = result
                .figures
                .get(&key)
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            result = result.figure(key, sum + *n as u64);
        }
        names.push(format!("{role} {}", id.0));
    }
    result.fail(format!(
        "descriptors grow with every round of requests in {}: {summary}",
        names.join(", ")
    ))
}

/// Kinds of the descriptors open after but not before.
fn leaked_kinds(before: &[FdInfo], after: &[FdInfo]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for fd in after {
        if !before
            .iter()
            .any(|b| b.fd == fd.fd && b.target == fd.target)
        {
            *kinds.entry(fd.kind.to_string()).or_insert(0) += 1;
        }
    }
    kinds
}

/// How one close-eof probe ended.
enum Eof {
    /// EOF this long after the response was complete.
    After(Duration),
    /// The response was complete, then no EOF within the limit.
    Missing,
    /// No Content-Length: the body ends only at close, and the connection
    /// stayed open this long after the response head.
    HeldOpen(Duration),
}

fn close_eof(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    let limit = Duration::from_secs(1);
    let probes: [(&str, &[u8]); 2] = [
        (
            "connection_close",
            b"GET / HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n",
        ),
        ("http10", b"GET / HTTP/1.0\r\n\r\n"),
    ];
    let mut result = result.figure("limit_ms", limit.as_millis() as u64);
    let mut missing = Vec::new();
    let mut unanswered = 0;
    // Both at once: a server that never answers costs one timeout.
    let outcomes = crate::poll::in_parallel(probes.len(), |i| {
        let mut conn = Conn::connect(addr, REQUEST_TIMEOUT)?;
        conn.send(probes[i].1)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let Some(response) = conn.read_head(deadline, false)? else {
            return Err(client::ClientError::ClosedEarly { received: 0 });
        };
        let head_at = Instant::now();
        if response.framing == client::Framing::UntilClose {
            // The body ends at close: the close is the end of the response.
            return Ok(if conn.wait_eof(head_at + limit)? {
                Eof::After(Duration::ZERO)
            } else {
                Eof::HeldOpen(head_at.elapsed())
            });
        }
        // Only where the body ends matters, not what it holds.
        conn.skip_body(&response, deadline, head_at)?;
        let done = Instant::now();
        Ok(if conn.wait_eof(done + limit)? {
            Eof::After(done.elapsed())
        } else {
            Eof::Missing
        })
    });
    for (&(name, _), outcome) in probes.iter().zip(outcomes) {
        match outcome {
            Ok(Eof::After(after)) => {
                result = result.figure(format!("{name}_eof_ms"), after.as_millis() as u64)
            }
            Ok(Eof::Missing) => {
                missing.push(name);
                result = result.evidence(format!(
                    "{name}: no EOF within {} ms of the response",
                    limit.as_millis()
                ));
            }
            Ok(Eof::HeldOpen(open)) => {
                missing.push(name);
                result = result.evidence(format!(
                    "{name}: no Content-Length and the connection stays open {} ms after the response: \
                     the body ends only at close",
                    open.as_millis()
                ));
            }
            Err(error) => {
                missing.push(name);
                unanswered += 1;
                result = result.evidence(format!("{name}: {error}"));
            }
        }
    }
    if missing.is_empty() {
        result.pass("EOF after the response for Connection: close and for HTTP/1.0")
    } else if unanswered == probes.len() {
        // No response at all: whether the connection would close after one
        // is unknown.
        result.error("neither request got a response, so the close after it could not be observed")
    } else {
        result.fail(format!("no EOF after the response: {}", missing.join(", ")))
    }
}

fn child_listener(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let sleep = ctx.caps.has(Route::Sleep);
    let (pid, addr, port) = match ctx.server() {
        Ok(server) => (server.pid(), server.addr(), server.port()),
        Err(error) => return start_failed(result, &error),
    };
    let listeners = match procfs::listening_inodes(port) {
        Ok(inodes) if !inodes.is_empty() => inodes,
        Ok(_) => {
            return result.error(format!(
                "no listening socket on port {port} in /proc/net/tcp"
            ))
        }
        Err(error) => return result.error(format!("cannot read /proc/net/tcp: {error}")),
    };
    // The processes there before the request: pre-fork workers, helpers.
    let idle = census::settled_residents(pid, port, Duration::from_secs(3)).value;
    // A request in progress: /sleep where the server serves it, else a
    // connection that has sent nothing (a forking server's child waits in
    // its first read). The process serving it is the one holding the
    // server's end of this very connection.
    let mut conn = match Conn::connect(addr, REQUEST_TIMEOUT) {
        Ok(conn) => conn,
        Err(error) => return result.error(format!("could not connect: {error}")),
    };
    let client_port = conn.stream().local_addr().map(|a| a.port()).unwrap_or(0);
    let how = if sleep {
        if let Err(error) =
            // Long enough that the child still serves it while it is found
            // and judged on a loaded machine.
            conn.send(
                b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n",
            )
        {
            return result.error(format!("could not send the /sleep request: {error}"));
        }
        "a /sleep request"
    } else {
        "a connection that has sent nothing yet"
    };
    let serving = census::serving_process(pid, port, client_port);
    let verdict = match serving.as_ref().filter(|p| p.pid != pid) {
        None if serving.is_none() => {
            result.error(format!(
                "{how} was not accepted within {} s: no process holds it",
                census::SERVING_LIMIT.as_secs()
            ))
        }
        None => result.skip(format!(
            "the server process itself serves {how}: no child per connection"
        )),
        Some(worker) if idle.contains(&worker.pid) => result.skip(format!(
            "{how} is served by worker {}, which existed before it: a pre-fork worker accepts on the \
             listening socket by design",
            worker.pid
        )),
        Some(child) => {
            let child = child.pid;
            // `None` once the child cannot be judged any more: exited, or a
            // zombie (whose descriptor table reads empty). Only a live child
            // whose table lacks the listener passes.
            let holds = || {
                let live = procfs::stat(child).is_ok_and(|s| s.is_live());
                let fds = procfs::fds(child).ok().filter(|_| live)?;
                Some(fds.iter().any(|fd| {
                    procfs::socket_inode(fd).is_some_and(|inode| listeners.contains(&inode))
                }))
            };
            // Right after fork every child holds it until it closes it:
            // give the child time to do so before judging.
            let mut held = holds();
            poll_until(Duration::from_millis(500), || {
                held = holds();
                held != Some(true)
            });
            let result = result.figure("child_pid", child);
            match held {
                Some(false) => result.pass(format!(
                    "child {child}, serving {how}, does not hold the listening socket"
                )),
                Some(true) => result
                    .evidence(format!(
                        "child {child} holds socket inode(s) {listeners:?} of the listener on port {port}"
                    ))
                    .fail(format!(
                        "child {child} holds the listening socket while serving {how}"
                    )),
                None => result.error(format!(
                    "child {child}, serving {how}, exited before it could be judged"
                )),
            }
        }
    };
    // Finish the request so that the server sees a whole one.
    if !sleep {
        let _ = conn.send(crate::timed::completion_of(b""));
    }
    let _ = conn.read_answer(
        Instant::now() + Duration::from_secs(3),
        Duration::from_millis(200),
    );
    verdict
}
