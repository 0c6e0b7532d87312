//! Descriptors: leaks, and sockets held open by the wrong process.
//!
//! After fork, parent and child each hold a copy of the client socket; the
//! connection only closes when both copies are closed. A parent that forgets
//! its copy leaks one descriptor per connection and its clients never see
//! EOF. A child that keeps the listening socket keeps the port alive after
//! the server is gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{load, poll_until, start_failed, CheckDef, Ctx};
use crate::check::CheckResult;
use crate::client::{self, Conn};
use crate::probe::{Model, Route};
use crate::procfs::{self, FdInfo};

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "fds/leak",
        requirement: "After 200 requests, the number of open descriptors of the server process returns to its \
                      baseline, within a small tolerance.",
        hint: "Close every descriptor you open per request: in a forking server the parent must close its copy \
               of the client socket right after fork, and files opened per request must be closed.",
        needs: &[],
        run: leak,
    },
    CheckDef {
        id: "fds/close-eof",
        requirement: "For a request with Connection: close, and for an HTTP/1.0 request, the client sees EOF \
                      within 1 s after the response is complete (RFC 9112 §9.6).",
        hint: "Close the connection after the response when the client asked for it; in a forking server the \
               parent must also close its own copy of the client socket, or the connection never closes.",
        needs: &[],
        run: close_eof,
    },
    CheckDef {
        id: "fds/child-listener",
        requirement: "In a fork-per-connection server, a child handling a request does not hold the listening \
                      socket.",
        hint: "In the child, close the listening socket first thing after fork: the child never accepts, and \
               its copy keeps the port open after the parent is gone.",
        needs: &[Route::Sleep],
        run: child_listener,
    },
];

/// Requests sent by the leak check.
const LEAK_REQUESTS: usize = 200;
/// Descriptors the count may exceed its baseline by.
const TOLERANCE: usize = 2;

fn leak(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let settle = ctx.settings.settle;
    let (pid, addr) = match ctx.server() {
        Ok(server) => (server.pid(), server.addr()),
        Err(error) => return start_failed(result, &error),
    };
    // A baseline that has stopped moving (the readiness probe's connection
    // may still be closing).
    let count = || procfs::fd_count(pid).unwrap_or(0);
    let mut baseline = count();
    poll_until(Duration::from_secs(1), || {
        let now = count();
        let stable = now == baseline;
        baseline = now;
        stable
    });
    let before = match procfs::fds(pid) {
        Ok(fds) => fds,
        Err(error) => {
            return result.error(format!("cannot read the server's descriptors: {error}"))
        }
    };
    let load = load::streams(addr, "/", 4, LEAK_REQUESTS / 4);
    let limit = before.len() + TOLERANCE;
    let returned = poll_until(settle, || count() <= limit);
    let after = procfs::fds(pid).unwrap_or_default();
    let result = load
        .describe(result)
        .figure("before", before.len())
        .figure("after", after.len())
        .figure("tolerance", TOLERANCE);
    if returned {
        if !load.complete() {
            return load.incomplete(result);
        }
        return result.pass(format!(
            "{} descriptors before, {} after {LEAK_REQUESTS} requests",
            before.len(),
            after.len()
        ));
    }
    let kinds = leaked_kinds(&before, &after);
    let listing: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
    let mut result = result.evidence(format!("leaked kinds: {}", listing.join(" ")));
    for (kind, n) in &kinds {
        result = result.figure(format!("leaked_{kind}"), *n);
    }
    result.fail(format!(
        "{} descriptors before, {} after {LEAK_REQUESTS} requests ({})",
        before.len(),
        after.len(),
        listing.join(", ")
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
    // Both at once: a server that never answers costs one timeout.
    let outcomes = super::in_parallel(probes.len(), |i| {
        let mut conn = Conn::connect(addr, load::REQUEST_TIMEOUT)?;
        conn.send(probes[i].1)?;
        conn.read_response(Instant::now() + load::REQUEST_TIMEOUT, false)?;
        let done = Instant::now();
        let eof = conn.wait_eof(done + limit)?;
        Ok::<_, client::ClientError>((eof, done.elapsed()))
    });
    for (&(name, _), outcome) in probes.iter().zip(outcomes) {
        match outcome {
            Ok((true, after)) => {
                result = result.figure(format!("{name}_eof_ms"), after.as_millis() as u64)
            }
            Ok((false, _)) => {
                missing.push(name);
                result = result.evidence(format!(
                    "{name}: no EOF within {} ms of the response",
                    limit.as_millis()
                ));
            }
            Err(error) => {
                missing.push(name);
                result = result.evidence(format!("{name}: {error}"));
            }
        }
    }
    if missing.is_empty() {
        result.pass("EOF after the response for Connection: close and for HTTP/1.0")
    } else {
        result.fail(format!("no EOF after the response: {}", missing.join(", ")))
    }
}

fn child_listener(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    match ctx.model.model {
        Model::ForkPerConnection => {}
        Model::PreFork => {
            return result
                .skip("pre-fork server: its workers accept on the listening socket by design")
        }
        other => {
            return result.skip(format!(
                "not applicable to a {other} server: no child per connection"
            ))
        }
    }
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
    let idle = crate::probe::settled_descendants(pid);
    std::thread::scope(|scope| {
        let request =
            scope.spawn(move || client::get(addr, "/sleep?ms=1000", Duration::from_secs(10)));
        let mut child = None;
        poll_until(Duration::from_secs(2), || {
            child = procfs::descendants(pid)
                .into_iter()
                .map(|p| p.pid)
                .find(|p| !idle.contains(p));
            child.is_some()
        });
        let verdict = match child {
            None => result.error("no new child appeared while a /sleep request was in progress"),
            Some(child) => {
                let holds = || {
                    listeners
                        .iter()
                        .any(|&inode| procfs::holds_inode(child, inode))
                };
                // Right after fork every child holds it until it closes it:
                // give the child time to do so before judging.
                let released = poll_until(Duration::from_millis(500), || !holds());
                let result = result.figure("child_pid", child);
                if released {
                    result.pass(format!("child {child} does not hold the listening socket"))
                } else {
                    result
                        .evidence(format!("child {child} holds socket inode(s) {listeners:?} of the listener on port {port}"))
                        .fail(format!("child {child} holds the listening socket while serving a request"))
                }
            }
        };
        let _ = request.join();
        verdict
    })
}
