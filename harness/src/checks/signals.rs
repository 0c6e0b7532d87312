//! Signals: EINTR storms and SIGPIPE.
//!
//! A blocking syscall interrupted by a signal handler fails with EINTR unless
//! the handler was installed with SA_RESTART (and some calls fail anyway). A
//! server that treats EINTR from accept as fatal dies as soon as children exit
//! quickly enough. Writing to a connection the client has reset raises
//! SIGPIPE, whose default action kills the writer: the whole server, if the
//! writer is the server process.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Answers, CheckDef, Ctx};
use crate::check::CheckResult;
use crate::probe::Route;
use crate::target::start_failed;
use crate::timed;

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "signals/eintr",
        requirement: "A storm of 500 SIGCHLD signals, while the server is idle in accept and again while it \
                      serves concurrent requests, neither kills it nor fails a request.",
        hint: "Retry accept (and every blocking call: read, write, waitpid, poll) when it fails with EINTR, and \
               install handlers with SA_RESTART.",
        needs: &[],
        answers: Answers::Many,
        run: eintr,
    },
    CheckDef {
        id: "signals/sigpipe",
        requirement: "Clients that reset the connection in the middle of a large response (/bytes?n=20000000) do \
                      not kill the server: it stays alive and keeps answering.",
        hint: "Ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)) or send with MSG_NOSIGNAL, and treat EPIPE/ECONNRESET \
               from write as the end of that one connection.",
        needs: &[Route::Bytes],
        answers: Answers::Many,
        run: sigpipe,
    },
];

/// Signals sent in each storm.
const STORM: usize = 500;

fn eintr(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let server = match ctx.server() {
        Ok(server) => server,
        Err(error) => return start_failed(result, &error),
    };
    let addr = server.addr();
    // One complete request first, so the server is back in accept when the
    // storm starts; then spread the storm over a quarter of a second, so the
    // signals land while it waits for the next connection. A server that
    // does not answer it cannot be judged by what follows, and neither can
    // one that answers one connection and then holds it: the second request
    // shows that the next one after the storm could be answered at all.
    for which in ["first", "second"] {
        let before = timed::get(addr, "/", Duration::from_secs(3));
        if !before.answered() {
            return result.error(format!(
                "precondition failed: the {which} GET / before the storm was not answered ({})",
                before.failure()
            ));
        }
    }
    let mut sent = 0;
    for _ in 0..STORM {
        if server.signal_server(Signal::SIGCHLD).is_ok() {
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let idle_answer = timed::get(addr, "/", Duration::from_secs(3));
    let result = result.figure("signals_idle", sent);
    if !idle_answer.answered() {
        return dead_or_failed(
            ctx,
            result,
            format!(
                "after {sent} SIGCHLD while idle, GET / failed: {}",
                idle_answer.failure()
            ),
        );
    }

    // The second storm lands while clients are being served.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (failures, busy_sent) = std::thread::scope(|scope| {
        let clients = scope.spawn(|| {
            let failures = super::load::streams(addr, "/", 4, 25).unanswered;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            failures
        });
        let mut busy_sent = 0;
        while busy_sent < STORM {
            if server.signal_server(Signal::SIGCHLD).is_ok() {
                busy_sent += 1;
            }
            // Spread the storm over the requests rather than firing it all
            // before the first one arrives.
            if !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (clients.join().unwrap_or(100), busy_sent)
    });
    let result = result
        .figure("signals_busy", busy_sent)
        .figure("failed_requests", failures);
    if failures > 0 {
        return dead_or_failed(
            ctx,
            result,
            format!("{failures} of 100 requests failed during a storm of {busy_sent} SIGCHLD"),
        );
    }
    let after = timed::get(addr, "/", Duration::from_secs(3));
    if after.answered() {
        return result.pass(format!(
            "alive and answering after {} SIGCHLD",
            sent + busy_sent
        ));
    }
    dead_or_failed(
        ctx,
        result,
        format!("GET / failed after the storms: {}", after.failure()),
    )
}

/// Fails the check; a server that is dying is given a moment to finish, so
/// that its death is recorded with the result.
fn dead_or_failed(ctx: &mut Ctx<'_>, result: CheckResult, what: String) -> CheckResult {
    // A server killed by a signal closes its sockets before it is a zombie:
    // give a dying server a moment to finish dying before asking.
    if let Some(server) = ctx.server_if_running() {
        let _ = crate::poll::poll_until(Duration::from_millis(500), || !server.is_alive());
    }
    let _ = ctx.died();
    // The runner adds the death's status, stderr and hint.
    result.fail(what)
}

/// Clients that reset mid-response.
const RESETS: usize = 4;

fn sigpipe(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    let mut resets = 0;
    for round in 0..RESETS {
        let outcome = (|| -> std::io::Result<()> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            std::io::Write::write_all(
                &mut stream,
                b"GET /bytes?n=20000000 HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n",
            )?;
            // Read the start of the response, so the server is mid-write.
            let mut buf = [0u8; 64 * 1024];
            let mut got = 0;
            while got < 128 * 1024 {
                match stream.read(&mut buf)? {
                    0 => break,
                    n => got += n,
                }
            }
            reset(&stream);
            Ok(())
        })();
        match outcome {
            Ok(()) => resets += 1,
            Err(error) => {
                return dead_or_failed(
                    ctx,
                    result.figure("resets", resets),
                    format!(
                        "round {}: the large response could not be started: {error}",
                        round + 1
                    ),
                )
            }
        }
    }
    let result = result.figure("resets", resets);
    // Several requests, so that a server dying on its next write is caught.
    for _ in 0..3 {
        let timed = timed::get(addr, "/", Duration::from_secs(3));
        if !timed.answered() {
            return dead_or_failed(
                ctx,
                result,
                format!(
                    "after {resets} resets mid-response, GET / failed: {}",
                    timed.failure()
                ),
            );
        }
    }
    if ctx.died().is_some() {
        return result.fail(format!("server exited after {resets} resets mid-response"));
    }
    result.pass(format!(
        "alive and answering after {resets} clients reset mid-response"
    ))
}

/// Closes `stream` with RST instead of FIN (SO_LINGER with a zero timeout).
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::Linger, &linger);
}
