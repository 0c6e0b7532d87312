//! Serving clients at the same time.
//!
//! The first forking server a learner writes is often not concurrent at all:
//! the accept loop serves one connection to the end before it accepts the
//! next. These checks make several clients wait on the server at once and
//! measure whether they were served side by side.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::{in_parallel, start_failed, CheckDef, Ctx};
use crate::check::CheckResult;
use crate::client::{self, ClientError};
use crate::probe::Route;

/// The checks of this group.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "concurrency/sleep-latency",
        requirement: "Concurrent requests that each wait on the application are served in parallel: 8 clients \
                      asking /sleep?ms=300 at once finish in little more than 300 ms.",
        hint: "Serve each connection in its own process or thread: fork (or hand off to a worker) right after \
               accept, and go straight back to accept. An iterative loop serves one client at a time.",
        needs: &[Route::Sleep],
        run: sleep_latency,
    },
    CheckDef {
        id: "concurrency/slow-client",
        requirement: "A client that sends half a request and stalls does not delay other clients: another \
                      client's GET / is answered within 1 s.",
        hint: "Never read a client's request in the accept loop itself: fork or hand off first, so that one \
               stalled client blocks only its own process or thread.",
        needs: &[],
        run: slow_client,
    },
    CheckDef {
        id: "concurrency/burst",
        requirement: "64 simultaneous connections are all answered; none is refused, reset or left without a \
                      response.",
        hint: "Use a listen backlog large enough for bursts (listen(1024), not listen(1) or listen(5)), accept \
               promptly, and do not close a connection before its response is written.",
        needs: &[],
        run: burst,
    },
];

/// Parallelism at which the sleep check passes, as a share of the clients.
const PASS_SHARE: f64 = 0.75;
/// Parallelism below which the sleep check fails.
const FAIL_BELOW: f64 = 1.5;

fn sleep_latency(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let (clients, ms) = (ctx.settings.sleep_clients.max(1), ctx.settings.sleep_ms);
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    // Even a fully serial server finishes within clients × ms, plus slack.
    let timeout = Duration::from_millis(ms * clients as u64 + 5_000);
    let path = format!("/sleep?ms={ms}");
    let start = Instant::now();
    let outcomes = in_parallel(clients, |_| client::get(addr, &path, timeout));
    let wall = start.elapsed();

    let parallelism = (clients as f64 * ms as f64) / (wall.as_secs_f64() * 1000.0).max(1.0);
    let pass_at = (clients as f64 * PASS_SHARE).max(1.0);
    let mut result = result
        .figure("clients", clients)
        .figure("sleep_ms", ms)
        .figure("wall_ms", wall.as_millis() as u64)
        .figure("parallelism", round2(parallelism));
    let mut failed = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(response) if response.status == 200 => {}
            Ok(response) => {
                failed += 1;
                result = result.evidence(format!("client {i}: status {}", response.status));
            }
            Err(error) => {
                failed += 1;
                result = result.evidence(format!("client {i}: {error}"));
            }
        }
    }
    let summary = format!(
        "parallelism {parallelism:.1} ({clients} x {ms} ms in {} ms)",
        wall.as_millis()
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

fn slow_client(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    let mut staller = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(stream) => stream,
        Err(error) => {
            return result.error(format!("could not connect the stalling client: {error}"))
        }
    };
    // Half a request: no blank line, so the server keeps waiting for more.
    if let Err(error) = staller.write_all(b"GET / HTTP/1.1\r\nHost: harness\r\nX-Stall: ") {
        return result.error(format!("could not send the half request: {error}"));
    }
    let limit = Duration::from_secs(1);
    let start = Instant::now();
    let answer = client::get(addr, "/", limit);
    let latency = start.elapsed();
    drop(staller);
    let result = result
        .figure("latency_ms", latency.as_millis() as u64)
        .figure("limit_ms", limit.as_millis() as u64);
    match answer {
        Ok(response) => result.pass(format!(
            "answered {} in {} ms while another client stalled",
            response.status,
            latency.as_millis()
        )),
        Err(ClientError::Timeout { .. }) => result.fail(format!(
            "GET / not answered within {} ms while another client stalled mid-request",
            limit.as_millis()
        )),
        Err(error) => result.fail(format!(
            "GET / failed while another client stalled: {error}"
        )),
    }
}

/// Connections opened together by the burst check.
const BURST: usize = 64;

/// What happened to one connection of the burst.
#[derive(Debug)]
enum Fate {
    Answered(u16, Duration),
    Refused,
    Reset,
    Unanswered(String),
}

fn burst(ctx: &mut Ctx<'_>, result: CheckResult) -> CheckResult {
    let addr = match ctx.server() {
        Ok(server) => server.addr(),
        Err(error) => return start_failed(result, &error),
    };
    let barrier = Barrier::new(BURST);
    let fates = in_parallel(BURST, |_| {
        let start = Instant::now();
        let connection = client::Conn::connect(addr, super::load::REQUEST_TIMEOUT);
        // All connections are open (or failed) before any request is sent.
        barrier.wait();
        let mut conn = match connection {
            Ok(conn) => conn,
            Err(ClientError::Connect { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                return Fate::Refused
            }
            Err(error) => return Fate::Unanswered(error.to_string()),
        };
        let request = b"GET / HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n";
        let deadline = Instant::now() + super::load::REQUEST_TIMEOUT;
        match conn
            .send(request)
            .and_then(|()| conn.read_response(deadline, false))
        {
            Ok(Some(response)) => Fate::Answered(response.status, start.elapsed()),
            Ok(None) => Fate::Unanswered("closed without a response".into()),
            Err(ClientError::Reset) => Fate::Reset,
            Err(error) => Fate::Unanswered(error.to_string()),
        }
    });

    let answered: Vec<(u16, Duration)> = fates
        .iter()
        .filter_map(|f| {
            if let Fate::Answered(s, d) = f {
                Some((*s, *d))
            } else {
                None
            }
        })
        .collect();
    let ok = answered
        .iter()
        .filter(|(s, _)| (200..300).contains(s))
        .count();
    let refused = fates.iter().filter(|f| matches!(f, Fate::Refused)).count();
    let reset = fates.iter().filter(|f| matches!(f, Fate::Reset)).count();
    let unanswered: Vec<&String> = fates
        .iter()
        .filter_map(|f| {
            if let Fate::Unanswered(e) = f {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    let slowest = answered
        .iter()
        .map(|(_, d)| d.as_millis() as u64)
        .max()
        .unwrap_or(0);
    let mut result = result
        .figure("connections", BURST)
        .figure("answered_2xx", ok)
        .figure("answered_other", answered.len() - ok)
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
    if ok < BURST {
        let statuses: Vec<String> = answered
            .iter()
            .filter(|(s, _)| !(200..300).contains(s))
            .map(|(s, _)| s.to_string())
            .collect();
        return result
            .evidence(format!("statuses: {}", statuses.join(" ")))
            .warn(format!(
                "all {BURST} answered, but {} not with 2xx (load shed?)",
                BURST - ok
            ));
    }
    result.pass(format!("all {BURST} answered, slowest in {slowest} ms"))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
