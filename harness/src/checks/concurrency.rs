//! Serving clients at the same time.
//!
//! The first forking server a learner writes is often not concurrent at all:
//! the accept loop serves one connection to the end before it accepts the
//! next. These checks make several clients wait on the server at once and
//! measure whether they were served side by side.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::Duration;

use super::{load, Answers, CheckDef, Ctx};
use crate::census;
use crate::check::CheckResult;
use crate::poll::in_parallel;
use crate::probe::Route;
use crate::target::start_failed;
use crate::timed;

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "concurrency/sleep-latency",
        requirement: "Concurrent requests that each wait on the application are served in parallel: N clients \
                      asking /sleep?ms=M at once (--sleep-clients, --sleep-ms; 8 and 300 by default) all get \
                      their response heads in little more than M ms after sending.",
        hint: "Serve each connection in its own process or thread: fork (or hand off to a worker) right after \
               accept, and go straight back to accept. An iterative loop serves one client at a time.",
        needs: &[Route::Sleep],
        answers: Answers::Many,
        run: sleep_latency,
    },
    CheckDef {
        id: "concurrency/slow-client",
        requirement: "A client that connects and sends nothing, or sends half a request, and stalls does not \
                      delay other clients: another client's GET / is answered within 1 s. A client that \
                      connects and closes without sending anything does not end the server.",
        hint: "Never read a client's request in the accept loop itself: fork or hand off first, so that one \
               stalled client blocks only its own process or thread.",
        needs: &[],
        answers: Answers::One,
        run: slow_client,
    },
    CheckDef {
        id: "concurrency/burst",
        requirement: "64 simultaneous connections are all answered; none is refused, reset or left without a \
                      response.",
        hint: "Use a listen backlog large enough for bursts (listen(1024), not listen(1) or listen(5)), accept \
               promptly, and do not close a connection before its response is written.",
        needs: &[],
        answers: Answers::Many,
        run: burst,
    },
];

/// Parallelism at which the sleep check passes, as a share of the clients.
const PASS_SHARE: f64 = 0.75;
/// Parallelism below which the sleep check fails.
const FAIL_BELOW: f64 = 1.5;
/// How long the burst check waits for the server to close connections
/// earlier probes left before it asks what GET / answers at idle.
const IDLE_WAIT: Duration = Duration::from_secs(2);
/// Timed rounds at most, when the first lands between fail and pass.
const ROUNDS: usize = 3;

fn sleep_latency(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let (clients, ms) = (ctx.settings.sleep_clients.max(1), ctx.settings.sleep_ms);
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    // Even a fully serial server finishes within clients × ms, plus slack.
    let timeout = Duration::from_millis(ms * clients as u64 + 5_000);
    // One untimed round first: a runtime's cold first requests (imports,
    // JIT, a worker's first fork) are not the server's concurrency.
    let warm_path = "/sleep?ms=1";
    let warm_up = in_parallel(clients, |_| timed::get(addr, warm_path, timeout));
    let path = format!("/sleep?ms={ms}");
    let request = timed::get_request(&path);
    // Every client connects first and all send together: the time a full
    // accept queue adds to a connect (a retransmitted SYN costs a second)
    // is concurrency/burst's finding, not counted here again.
    let round = || {
        let barrier = Barrier::new(clients);
        in_parallel(clients, |_| {
            let pending = timed::Pending::connect(addr, timed::REQUEST_TIMEOUT);
            barrier.wait();
            pending.exchange(&request, timeout)
        })
    };
    // A round that lands in the warning band is timed again, up to
    // ROUNDS in all, and the best one counts: a loaded machine delays some
    // rounds and not others, while a partly serial server is slow in every
    // one, and no delay can make a serial server look parallel. A failed
    // request or a serial round is not retried.
    let pass_at = (clients as f64 * PASS_SHARE).max(1.0);
    let mut timed = round();
    let mut rounds = 1;
    while rounds < ROUNDS {
        let parallelism = parallelism_of(&timed, clients, ms);
        let all_answered = timed.iter().all(|t| t.status == Some(200));
        if !all_answered || parallelism >= pass_at || parallelism < FAIL_BELOW {
            break;
        }
        let again = round();
        rounds += 1;
        if again.iter().all(|t| t.status == Some(200))
            && parallelism_of(&again, clients, ms) > parallelism
        {
            timed = again;
        }
    }

    let mut result = result
        .figure("clients", clients)
        .figure("sleep_ms", ms)
        .figure(
            "warm_up_answered",
            warm_up.iter().filter(|t| t.answered()).count(),
        );
    let mut failed = 0;
    for (i, t) in timed.iter().enumerate() {
        match t.status {
            Some(200) => {}
            Some(status) => {
                failed += 1;
                result = result.evidence(format!("client {i}: status {status}"));
            }
            None => {
                failed += 1;
                result = result.evidence(format!("client {i}: {}", t.failure()));
            }
        }
    }
    let service = service_of(&timed);
    let connect_max = timed
        .iter()
        .filter_map(|t| t.connected)
        .max()
        .unwrap_or_default();
    let slowest = timed
        .iter()
        .filter_map(timed::Timed::service)
        .max()
        .unwrap_or_default();
    let parallelism = parallelism_of(&timed, clients, ms);
    result = result
        .figure("rounds", rounds)
        .figure("wall_ms", service.as_millis() as u64)
        .figure("slowest_service_ms", slowest.as_millis() as u64)
        .figure("connect_max_ms", connect_max.as_millis() as u64)
        .figure("parallelism", round2(parallelism));
    let summary = format!(
        "parallelism {parallelism:.1} ({clients} x {ms} ms served in {} ms, from the requests sent to the last response head)",
        service.as_millis()
    );
    if failed > 0 {
        result.fail(format!("{failed} of {clients} requests failed; {summary}"))
    } else if parallelism >= pass_at {
        result.pass(summary)
    } else if parallelism >= FAIL_BELOW {
        result.warn(format!(
            "{summary}: partly serialised (pass at {pass_at:.1})"
        ))
    } else {
        result.fail(format!("{summary}: requests were served one after another"))
    }
}

/// Service of one round: from the first request sent to the last response
/// head, all measured on the clients' common clock.
fn service_of(timed: &[timed::Timed]) -> Duration {
    let first_sent = timed.iter().filter_map(|t| Some(t.started + t.sent?)).min();
    let last_head = timed.iter().filter_map(|t| Some(t.started + t.head?)).max();
    match (first_sent, last_head) {
        (Some(sent), Some(head)) => head.saturating_duration_since(sent),
        _ => Duration::ZERO,
    }
}

/// Clients × sleep over the service: how many sleeps overlapped.
fn parallelism_of(timed: &[timed::Timed], clients: usize, ms: u64) -> f64 {
    (clients as f64 * ms as f64) / (service_of(timed).as_secs_f64() * 1000.0).max(1.0)
}

/// How a stalled client stalls: sending nothing, or half a request.
const STALLERS: [(&str, &[u8]); 2] = [
    ("silent", b""),
    (
        "half-request",
        b"GET / HTTP/1.1\r\nHost: harness\r\nX-Stall: ",
    ),
];

fn slow_client(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    let limit = Duration::from_secs(1);
    let mut result = result.figure("limit_ms", limit.as_millis() as u64);
    let mut stalled = Vec::new();
    // One stalling client at a time: a server that blocks in its first read
    // is stalled by a client that sends nothing, whatever routes it serves;
    // one that reads until the blank line, by half a request.
    for (name, bytes) in STALLERS {
        let mut staller = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => stream,
            Err(error) => {
                return result.error(format!("could not connect the {name} client: {error}"))
            }
        };
        if let Err(error) = staller.write_all(bytes) {
            return result.error(format!("could not send the {name} client's bytes: {error}"));
        }
        let answer = timed::get(addr, "/", limit);
        // Finish the stalled request so that the server sees a whole one.
        let _ = staller.write_all(timed::completion_of(bytes));
        let _ = staller.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = std::io::Read::read(&mut staller, &mut [0u8; 1024]);
        drop(staller);
        match answer.head {
            Some(head) => {
                let latency = head.saturating_sub(answer.sent.unwrap_or_default());
                result = result.figure(
                    format!("{}_latency_ms", name.replace('-', "_")),
                    latency.as_millis() as u64,
                );
            }
            None => {
                result = result.evidence(format!(
                    "with a {name} client connected, GET / got no response head within {} ms: {}",
                    limit.as_millis(),
                    answer.failure()
                ));
                stalled.push(name);
            }
        }
    }
    // A client that connects and closes without a byte (a port scanner, a
    // load balancer's health check, a browser's speculative connection):
    // a server that takes its one recv() for a request and indexes its
    // first line dies here. This is the one check that sends such a
    // client, so the finding is reported once, here.
    if let Some(death) = empty_connection_ends(ctx, addr) {
        result.hint = EMPTY_READ_HINT.to_string();
        if stalled.is_empty() {
            return result.fail(death);
        }
        return result.fail(format!(
            "{death}; before that, GET / was not answered within {} ms while a {} client stalled",
            limit.as_millis(),
            stalled.join(" or a ")
        ));
    }
    if stalled.is_empty() {
        result.pass("GET / answered while a silent client and a half-request client stalled")
    } else {
        result.fail(format!(
            "GET / not answered within {} ms while a {} client stalled",
            limit.as_millis(),
            stalled.join(" or a ")
        ))
    }
}

/// How long a server may take to die of an empty connection.
const EMPTY_WATCH: Duration = Duration::from_millis(500);

const EMPTY_READ_HINT: &str = "A read that returns 0 bytes means the client closed its side: close the \
     connection and go back to accept. Never index the request (request.splitlines()[0]) before checking \
     that something arrived, and keep one bad connection from ending the accept loop (catch per-connection \
     errors).";

/// Connects, closes at once without sending anything, and watches the
/// server: the summary of the failure if it exited.
fn empty_connection_ends(ctx: &mut Ctx<'_>, addr: std::net::SocketAddr) -> Option<String> {
    let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    drop(connected);
    let server = ctx.server_if_running()?;
    if !crate::poll::poll_until(EMPTY_WATCH, || !server.is_alive()) {
        return None;
    }
    // Taken by the runner, which adds the status and stderr as evidence.
    let death = ctx.died()?;
    Some(format!(
        "server exited ({}) when a client connected and closed without sending anything",
        death.status
    ))
}

/// Connections opened together by the burst check.
const BURST: usize = 64;

fn burst(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    // What GET / answers at idle: a burst is judged against it, so that a
    // server whose answer to every path is 404 is not called load-shedding.
    // Idle means no connection left open at the server's end by the probes
    // before (bounded: a server that never closes one is asked anyway).
    census::connections_closed(addr.port(), IDLE_WAIT);
    let idle = timed::get(addr, "/", timed::REQUEST_TIMEOUT);
    let Some(idle_status) = idle.status else {
        return result.error(format!(
            "precondition failed: GET / at idle was not answered ({})",
            idle.failure()
        ));
    };
    let timed = load::burst_timed(addr, BURST);
    let answered: Vec<&timed::Timed> = timed.iter().filter(|t| t.answered()).collect();
    let as_idle = answered
        .iter()
        .filter(|t| t.status == Some(idle_status))
        .count();
    let refused = timed.iter().filter(|t| t.refused()).count();
    let reset = timed.iter().filter(|t| t.reset()).count();
    let unanswered: Vec<String> = timed
        .iter()
        .filter(|t| !t.answered() && !t.refused() && !t.reset())
        .map(timed::Timed::failure)
        .collect();
    let slowest = answered
        .iter()
        .filter_map(|t| t.head)
        .max()
        .unwrap_or_default()
        .as_millis() as u64;
    let mut result = result
        .figure("connections", BURST)
        .figure("idle_status", idle_status)
        .figure("answered_as_idle", as_idle)
        .figure("answered_other", answered.len() - as_idle)
        .figure("refused", refused)
        .figure("reset", reset)
        .figure("unanswered", unanswered.len())
        .figure("slowest_ms", slowest);
    for error in unanswered.iter().take(5) {
        result = result.evidence(format!("unanswered: {error}"));
    }
    let lost = refused + reset + unanswered.len();
    if lost > 0 {
        return result.fail(format!(
            "{lost} of {BURST} connections lost ({refused} refused, {reset} reset, {} unanswered)",
            unanswered.len()
        ));
    }
    if as_idle < BURST {
        let statuses: Vec<String> = answered
            .iter()
            .filter(|t| t.status != Some(idle_status))
            .filter_map(|t| t.status.map(|s| s.to_string()))
            .collect();
        return result
            .evidence(format!("statuses: {}", statuses.join(" ")))
            .warn(format!(
                "all {BURST} answered, but {} not with {idle_status} as at idle (load shed?)",
                BURST - as_idle
            ));
    }
    result.pass(format!(
        "all {BURST} answered, the last response head after {slowest} ms"
    ))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
