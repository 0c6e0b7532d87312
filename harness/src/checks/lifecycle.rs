//! Starting, restarting and stopping.
//!
//! A server restarted right after it stopped must bind again at once, though
//! the connections it closed still sit in TIME_WAIT on its port: that is what
//! SO_REUSEADDR is for. On SIGTERM it must exit promptly and take its children
//! with it.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Answers, CheckDef, Ctx};
use crate::census;
use crate::check::CheckResult;
use crate::client::Conn;
use crate::poll::{in_parallel, poll_until};
use crate::probe::Route;
use crate::procfs;
use crate::target::{start_failed, ServerInstance, StartError};
use crate::timed;

/// `lifecycle/startup`: the check the run reports alone when the server
/// cannot be started at all.
pub const STARTUP: CheckDef = CheckDef {
    id: "lifecycle/startup",
    requirement: "The server starts and a process of it listens on the port within the startup \
                  timeout; the time it takes is reported.",
    hint: "Bind and listen before any slow initialisation, print nothing that needs input, and exit non-zero \
           with a message on stderr when the address cannot be used.",
    needs: &[],
    answers: Answers::NotNeeded,
    run: startup,
};

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    STARTUP,
    CheckDef {
        id: "lifecycle/reuseaddr",
        requirement: "After connections that leave TIME_WAIT behind, the server stopped and started again at \
                      once on the same port binds it.",
        hint: "Set SO_REUSEADDR on the listening socket before bind: setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1).",
        needs: &[],
        answers: Answers::One,
        run: reuseaddr,
    },
    CheckDef {
        id: "lifecycle/sigterm",
        requirement: "On SIGTERM the server exits within 5 s and leaves no descendant alive (warn if it needed \
                      SIGKILL).",
        hint: "Handle SIGTERM: stop accepting, wait a grace period for the children, then SIGKILL and reap the \
               stragglers before exiting. Children must not outlive the server.",
        needs: &[],
        answers: Answers::NotNeeded,
        run: sigterm,
    },
];

fn startup(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    match ctx.server() {
        Ok(server) => {
            let ms = server.startup_time().as_millis() as u64;
            result
                .figure("startup_ms", ms)
                .pass(format!("listening after {ms} ms"))
        }
        Err(error) => {
            let mut result = result.figure(
                "startup_timeout_ms",
                ctx.spec.startup_timeout.as_millis() as u64,
            );
            for line in error.to_string().lines() {
                result = result.evidence(line.to_string());
            }
            result.fail("the server did not start")
        }
    }
}

/// Connections closed by the server before the restart.
const TIME_WAIT_CONNECTIONS: usize = 5;

fn reuseaddr(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    if let Err(error) = ctx.server() {
        return start_failed(result, &error);
    }
    let Some(mut server) = ctx.take_server() else {
        return result.error("no server instance");
    };
    let (addr, port) = (server.addr(), server.port());
    // Requests the server closes first: the side that closes first keeps the
    // connection in TIME_WAIT, here on the server's port. Side by side, so
    // that a server that closes late (a child lingering after its
    // response) costs its delay once; the client's side closes only after
    // the server's, or after the wait.
    in_parallel(TIME_WAIT_CONNECTIONS, |_| {
        let deadline = Instant::now() + Duration::from_secs(3);
        let _ = Conn::connect(addr, Duration::from_secs(3)).and_then(|mut conn| {
            let request = b"GET / HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n";
            conn.send(request)?;
            conn.read_response(deadline, false)?;
            conn.wait_eof(deadline + Duration::from_secs(1))
        });
    });
    let time_wait = procfs::tcp_state_counts(port)
        .ok()
        .and_then(|c| c.get("TIME_WAIT").copied())
        .unwrap_or(0);
    server.terminate();
    drop(server);
    let result = result.figure("port", port).figure("time_wait", time_wait);
    match ServerInstance::start_on_port(ctx.spec, port) {
        Ok(restarted) => {
            let ms = restarted.startup_time().as_millis() as u64;
            ctx.set_server(restarted);
            let result = result.figure("restart_ms", ms);
            if time_wait == 0 {
                result.pass(format!(
                    "restarted on port {port} in {ms} ms (no TIME_WAIT was left to test against)"
                ))
            } else {
                result.pass(format!(
                    "restarted on port {port} in {ms} ms with {time_wait} connections in TIME_WAIT"
                ))
            }
        }
        Err(
            error @ (StartError::Exited { .. }
            | StartError::NotListening { .. }
            | StartError::PortTaken { .. }),
        ) => {
            let mut result = result;
            for line in error.to_string().lines() {
                result = result.evidence(line.to_string());
            }
            result.fail(format!(
                "could not start again on port {port} with {time_wait} connections in TIME_WAIT"
            ))
        }
        Err(error) => start_failed(result, &error),
    }
}

/// How long the server has to exit after SIGTERM.
const SIGTERM_LIMIT: Duration = Duration::from_secs(5);

fn sigterm(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    if let Err(error) = ctx.server() {
        return start_failed(result, &error);
    }
    let Some(mut server) = ctx.take_server() else {
        return result.error("no server instance");
    };
    let (pid, addr, port) = (server.pid(), server.addr(), server.port());
    std::thread::scope(|scope| {
        // A request in flight, so that there is a child to take care of; the
        // signal waits until the process serving it is known (found by the
        // connection it holds), never sent at the first new descendant,
        // which may be a bystander.
        let mut serving = None;
        let in_flight = ctx.caps.has(Route::Sleep).then(|| {
            let pending = timed::Pending::connect(addr, timed::REQUEST_TIMEOUT);
            let client_port = pending.local_port();
            let request = scope.spawn(move || {
                pending.exchange(
                    &timed::get_request("/sleep?ms=1000"),
                    Duration::from_secs(10),
                )
            });
            serving = census::serving_process(pid, port, client_port);
            request
        });
        let start = Instant::now();
        if let Err(error) = server.signal_server(Signal::SIGTERM) {
            return result.error(format!("could not send SIGTERM: {error}"));
        }
        let exited = poll_until(SIGTERM_LIMIT, || !server.is_alive());
        let elapsed = start.elapsed();
        // A server that stops well has reaped its children before it exits,
        // so whatever of its tree is still alive now outlived it, whatever
        // group or session it moved to (the tree is found by the tag every
        // process of the server carries; see `tree`).
        let mut outlived: Vec<i32> = if exited {
            server.others_alive().iter().map(|p| p.pid).collect()
        } else {
            Vec::new()
        };
        // The process that was serving the request, if it was not the
        // server, must be gone too, even if it cleared its environment.
        if let Some(child) = serving.as_ref().filter(|p| p.pid != pid) {
            let alive = procfs::stat(child.pid)
                .is_ok_and(|now| now.start_time == child.start_time && now.is_live());
            if exited && alive && !outlived.contains(&child.pid) {
                outlived.push(child.pid);
            }
        }
        let ending = server.terminate();
        if let Some(request) = in_flight {
            let _ = request.join();
        }
        let mut result = result;
        if let Some(serving) = &serving {
            result = result.figure("serving_pid", serving.pid);
        }
        let result = result
            .figure("exit_ms", elapsed.as_millis() as u64)
            .figure("survivors", outlived.len())
            .figure("needed_sigkill", ending.needed_sigkill);
        let status = ending
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into());
        if !exited {
            return result.warn(format!(
                "did not exit within {} s of SIGTERM; needed SIGKILL",
                SIGTERM_LIMIT.as_secs()
            ));
        }
        if !outlived.is_empty() {
            let pids: Vec<String> = outlived.iter().map(|p| p.to_string()).collect();
            return result
                .evidence(format!(
                    "still alive after the server exited: {}",
                    pids.join(" ")
                ))
                .fail(format!(
                    "exited ({status}) but left {} descendants alive",
                    outlived.len()
                ));
        }
        result.pass(format!(
            "exited ({status}) {} ms after SIGTERM, no descendant left",
            elapsed.as_millis()
        ))
    })
}
