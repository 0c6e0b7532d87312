//! Running cases: deliver the bytes three ways, read what comes back, judge
//! it against the case's graded outcomes.
//!
//! Reading stops when the outcomes' number of responses has arrived, when the
//! server closes, or at a deadline. If the connection is still open, a
//! `Connection: close` probe request tells "kept" from a late close, and any
//! response that arrives before the probe's own is an extra response: no
//! verdict depends on a timing window.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use super::{CaseFile, ConnectionState, Mode, Outcome};
use crate::check::{CheckResult, Verdict};
use crate::client::{ClientError, Conn, Response};
use crate::model::Model;
use crate::probe::Capabilities;
use crate::target::{ServerInstance, StartError, TargetSpec};

/// How long one delivery may wait for each response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for an answer before half-closing our side.
const HALF_CLOSE_AFTER: Duration = Duration::from_secs(1);
/// Bytes sent one at a time in `bytewise` mode; the rest goes in one write.
const BYTEWISE_LIMIT: usize = 4096;
/// Pause between the two writes of `split` mode.
const SPLIT_PAUSE: Duration = Duration::from_millis(10);
/// Cases delivered at once.
const WORKERS: usize = 8;

/// What one delivery observed.
#[derive(Debug, Default)]
pub struct Observation {
    /// 1xx statuses before the first final response.
    pub interim: Vec<u16>,
    /// Final responses, in order (extra ones included).
    pub responses: Vec<Response>,
    /// Closed, kept, or unknown (timeout or error).
    pub connection: Option<ConnectionState>,
    /// Where reading stopped early, if it did.
    pub problem: Option<String>,
    /// Whether the server answered only after our side closed.
    pub needed_end_of_stream: bool,
}

impl Observation {
    /// One line for reports: `400 closed`, `200, 200 kept`, `no response, closed`.
    pub fn describe(&self) -> String {
        let statuses: Vec<String> = self
            .responses
            .iter()
            .map(|r| r.status.to_string())
            .collect();
        let mut text = if statuses.is_empty() {
            "no response".to_string()
        } else {
            statuses.join(", ")
        };
        if !self.interim.is_empty() {
            text = format!("interim {:?} then {text}", self.interim);
        }
        match self.connection {
            Some(ConnectionState::Closed) => text.push_str(", closed"),
            Some(ConnectionState::Kept) => text.push_str(", kept"),
            None => {}
        }
        if let Some(problem) = &self.problem {
            text.push_str(&format!(" ({problem})"));
        }
        if self.needed_end_of_stream {
            text.push_str(" (answered only after the client closed its side)");
        }
        text
    }
}

/// A 64-bit FNV-1a hash, to seed the split point from the case id.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where `split` mode cuts `len` bytes: somewhere in 1..len, fixed per id.
pub fn split_point(id: &str, len: usize) -> usize {
    if len < 2 {
        return len;
    }
    1 + (fnv(id) % (len as u64 - 1)) as usize
}

fn send_all(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes)
}

/// Sends the case's bytes in `mode`. A write error (the server closed early,
/// say after a 414) is not the end: what it answered is still read.
fn deliver(stream: &mut TcpStream, case: &CaseFile, mode: Mode) -> Option<String> {
    let _ = stream.set_nodelay(true);
    let result = match mode {
        Mode::Whole => case.send.iter().enumerate().try_for_each(|(i, chunk)| {
            if i > 0 && case.pause_ms > 0 {
                std::thread::sleep(Duration::from_millis(case.pause_ms));
            }
            send_all(stream, chunk)
        }),
        Mode::Bytewise => {
            let bytes = case.bytes();
            let head = bytes.len().min(BYTEWISE_LIMIT);
            bytes[..head]
                .iter()
                .try_for_each(|b| send_all(stream, std::slice::from_ref(b)))
                .and_then(|()| send_all(stream, &bytes[head..]))
        }
        Mode::Split => {
            let bytes = case.bytes();
            let at = split_point(&case.id, bytes.len());
            send_all(stream, &bytes[..at]).and_then(|()| {
                std::thread::sleep(SPLIT_PAUSE);
                send_all(stream, &bytes[at..])
            })
        }
    };
    result.err().map(|e| format!("sending stopped: {e}"))
}

/// Delivers one case in one mode and observes the answer.
pub fn observe(addr: SocketAddr, case: &CaseFile, mode: Mode) -> Observation {
    let mut observation = Observation::default();
    let mut conn = match Conn::connect(addr, RESPONSE_TIMEOUT) {
        Ok(conn) => conn,
        Err(error) => {
            observation.problem = Some(error.to_string());
            return observation;
        }
    };
    let Ok(mut stream) = conn.stream().try_clone() else {
        observation.problem = Some("could not clone the socket".into());
        return observation;
    };
    let send_problem = deliver(&mut stream, case, mode);
    let wanted = case.responses_needed();
    let mut half_closed = false;
    while observation.responses.len() < wanted {
        // A server that waits for more input than a complete request (say,
        // a body to the end of the stream) gets the end of the stream after
        // a second: we have nothing more to send.
        let patience = if half_closed {
            RESPONSE_TIMEOUT
        } else {
            HALF_CLOSE_AFTER
        };
        match conn.read_response(Instant::now() + patience, case.head) {
            Err(ClientError::Timeout { .. }) if !half_closed => {
                half_closed = true;
                observation.needed_end_of_stream = true;
                let _ = stream.shutdown(Shutdown::Write);
                continue;
            }
            Ok(Some(response)) if (100..200).contains(&response.status) => {
                if observation.responses.is_empty() {
                    observation.interim.push(response.status);
                }
                if observation.interim.len() > 16 {
                    observation.problem = Some("more than 16 interim responses".into());
                    return observation;
                }
            }
            Ok(Some(response)) => observation.responses.push(response),
            Ok(None) | Err(ClientError::Reset) => {
                observation.connection = Some(ConnectionState::Closed);
                return observation;
            }
            Err(error) => {
                observation.problem = Some(
                    match (&error, conn.leftover().split(|&b| b == b'\n').next()) {
                        // Show what the server sent when it is not HTTP/1.x.
                        (ClientError::Malformed { .. }, Some(line)) if !line.is_empty() => {
                            format!(
                                "{error}; the server sent {:?}",
                                String::from_utf8_lossy(&line[..line.len().min(80)])
                            )
                        }
                        _ => error.to_string(),
                    },
                );
                if send_problem.is_some() {
                    observation.problem = send_problem;
                }
                return observation;
            }
        }
    }
    if half_closed {
        // We closed our side: whatever the server does now says nothing
        // about persistence.
        return observation;
    }
    // Kept or closed? Ask: a probe request, then our side closes.
    let probe = b"GET / HTTP/1.1\r\nHost: harness-probe\r\nConnection: close\r\n\r\n";
    if send_all(&mut stream, probe).is_err() {
        observation.connection = Some(ConnectionState::Closed);
        return observation;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut after = Vec::new();
    loop {
        match conn.read_response(Instant::now() + RESPONSE_TIMEOUT, false) {
            Ok(Some(response)) if (100..200).contains(&response.status) => continue,
            Ok(Some(response)) => after.push(response),
            Ok(None) | Err(ClientError::Reset) => break,
            Err(error) => {
                observation.problem = Some(format!("after the responses: {error}"));
                break;
            }
        }
        if after.len() > 16 {
            break;
        }
    }
    if after.is_empty() {
        if observation.problem.is_none() {
            observation.connection = Some(ConnectionState::Closed);
        }
    } else {
        // The last response answers the probe; any before it are extra.
        after.pop();
        observation.responses.extend(after);
        observation.connection = Some(ConnectionState::Kept);
    }
    observation
}

/// Whether `observation` matches `outcome`; if not, why.
/// `persistence_case`: the case is about persistence itself (`http/persistence/`),
/// so an announced close does not stand in for a kept connection.
pub fn matches(
    outcome: &Outcome,
    observation: &Observation,
    persistence_case: bool,
) -> Result<(), String> {
    let first = observation.responses.first();
    // Outside the persistence cases, a server that says it will close
    // (Connection: close) and does so has kept its word: closing after any
    // response is allowed (RFC 9112 §9.6), requests pipelined after that
    // close are the client's to retry (§9.3.2), and the case is about
    // something else.
    let announced_close = !persistence_case
        && observation.connection == Some(ConnectionState::Closed)
        && observation.responses.last().is_some_and(|r| {
            // Said with `Connection: close`, or by an HTTP/1.0 response
            // without keep-alive, which closes by default (RFC 9112 §9.3).
            let connection = r
                .header_str("connection")
                .map(|c| c.to_ascii_lowercase())
                .unwrap_or_default();
            connection.contains("close")
                || (r.version == "HTTP/1.0" && !connection.contains("keep-alive"))
        });
    if let Some(status) = outcome.status {
        match first {
            Some(response) if status.matches(response.status) => {}
            Some(response) => {
                return Err(format!("status {} instead of {status}", response.status))
            }
            None => return Err(format!("no response instead of status {status}")),
        }
    }
    if let Some(statuses) = &outcome.statuses {
        let got: Vec<u16> = observation.responses.iter().map(|r| r.status).collect();
        let cut_short = announced_close && !got.is_empty() && got.len() < statuses.len();
        if (got.len() != statuses.len() && !cut_short)
            || !statuses
                .iter()
                .zip(&got)
                .all(|(want, got)| want.matches(*got))
        {
            let want: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
            return Err(format!("statuses {got:?} instead of [{}]", want.join(", ")));
        }
    }
    if let Some(n) = outcome.responses {
        let cut_short =
            announced_close && !observation.responses.is_empty() && observation.responses.len() < n;
        if observation.responses.len() != n && !cut_short {
            return Err(format!(
                "{} responses instead of {n}",
                observation.responses.len()
            ));
        }
    }
    if let Some(interim) = &outcome.interim {
        if &observation.interim != interim {
            return Err(format!(
                "interim {:?} instead of {interim:?}",
                observation.interim
            ));
        }
    }
    if !outcome.echo.is_empty() || !outcome.absent.is_empty() {
        let Some(response) = first else {
            return Err("no response to read the echo from".into());
        };
        let echo: serde_json::Map<String, serde_json::Value> =
            match serde_json::from_slice(&response.body) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => {
                    return Err(format!(
                        "status {}: the body is not an /echo JSON object",
                        response.status
                    ))
                }
            };
        for (key, want) in &outcome.echo {
            let got = echo.get(key).and_then(|v| v.as_str());
            let got = if key == "body" {
                got.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .map(|b| super::latin1(&b))
            } else {
                got.map(str::to_string)
            };
            if got.as_deref() != Some(want.as_str()) {
                return Err(format!(
                    "echo {key} = {} instead of {want:?}",
                    got.map_or("(absent)".into(), |g| format!("{g:?}"))
                ));
            }
        }
        for key in &outcome.absent {
            if let Some(value) = echo.get(key) {
                return Err(format!("echo has {key} = {value} but must not"));
            }
        }
    }
    if let Some(state) = outcome.connection {
        let excused = state == ConnectionState::Kept && announced_close;
        if observation.connection != Some(state) && !excused {
            let got = match observation.connection {
                Some(ConnectionState::Closed) => "closed",
                Some(ConnectionState::Kept) => "kept",
                None => "unknown",
            };
            return Err(format!(
                "connection {got} instead of {}",
                if state == ConnectionState::Closed {
                    "closed"
                } else {
                    "kept"
                }
            ));
        }
    }
    Ok(())
}

/// The grade of one observation, with the reason when it did not pass.
pub fn grade(case: &CaseFile, observation: &Observation) -> (Verdict, Option<String>) {
    let persistence = case.id.starts_with("http/persistence/");
    let mut reasons = Vec::new();
    for outcome in &case.pass {
        match matches(outcome, observation, persistence) {
            Ok(()) => return (Verdict::Pass, None),
            Err(reason) => reasons.push(reason),
        }
    }
    if case
        .warn
        .iter()
        .any(|outcome| matches(outcome, observation, persistence).is_ok())
    {
        return (Verdict::Warn, Some(reasons.join("; ")));
    }
    // A SHOULD not met is a warning, as long as the server answered or
    // closed: a hang or a broken response is never merely a SHOULD.
    let answered = !observation.responses.is_empty()
        || observation.connection == Some(ConnectionState::Closed);
    if case.level == super::Level::Should && answered && observation.problem.is_none() {
        return (
            Verdict::Warn,
            Some(format!("SHOULD not met: {}", reasons.join("; "))),
        );
    }
    (Verdict::Fail, Some(reasons.join("; ")))
}

/// Runs every mode of one case against `addr` and makes its result.
pub fn run_case(addr: SocketAddr, case: &CaseFile) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new(case.id.clone(), case.requirement.clone(), case.hint());
    let mut worst = Verdict::Pass;
    let mut lines = Vec::new();
    let mut timed_out = false;
    for &mode in &case.modes {
        if timed_out {
            // The other modes would wait out the same timeout.
            result = result.figure(
                mode.as_str(),
                "not run: an earlier mode waited for the end of the stream or timed out",
            );
            continue;
        }
        let observation = observe(addr, case, mode);
        timed_out = observation.needed_end_of_stream
            || (observation.responses.is_empty()
                && observation
                    .problem
                    .as_deref()
                    .is_some_and(|p| p.contains("timed out")));
        let (verdict, reason) = grade(case, &observation);
        result = result.figure(mode.as_str(), observation.describe());
        if verdict != Verdict::Pass {
            let expected: Vec<String> = case.pass.iter().map(|o| o.to_string()).collect();
            result = result.evidence(format!(
                "{} delivery: got {}; expected {} ({})",
                mode.as_str(),
                observation.describe(),
                expected.join(" | "),
                reason.unwrap_or_default()
            ));
            lines.push(format!("{}: {}", mode.as_str(), observation.describe()));
        }
        if verdict == Verdict::Fail || (verdict == Verdict::Warn && worst == Verdict::Pass) {
            worst = verdict;
        }
    }
    let result = result.evidence(format!("sent: {}", case.description));
    let modes: Vec<&str> = case.modes.iter().map(|m| m.as_str()).collect();
    let result = match worst {
        Verdict::Pass => {
            let got = result
                .figures
                .get("whole")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            result.pass(format!(
                "{} ({})",
                if got.is_empty() {
                    "as expected".into()
                } else {
                    got
                },
                modes.join(", ")
            ))
        }
        Verdict::Warn => result.warn(format!(
            "acceptable but not as required: {}",
            lines.join("; ")
        )),
        _ => result.fail(lines.join("; ")),
    };
    result.with_duration(started.elapsed())
}

/// The server the cases of one group run against, restarted when it dies.
struct Shared<'a> {
    spec: &'a TargetSpec,
    /// The instance and how many times it was started.
    server: Mutex<(Option<ServerInstance>, u64)>,
}

impl Shared<'_> {
    /// The current address and generation, starting a server if none runs.
    fn current(&self) -> Result<(SocketAddr, u64), StartError> {
        let mut guard = self.server.lock().unwrap_or_else(|p| p.into_inner());
        let alive = guard.0.as_mut().is_some_and(|s| s.is_alive());
        if !alive {
            guard.0 = None;
            guard.0 = Some(ServerInstance::start(self.spec)?);
            guard.1 += 1;
        }
        // Just started above when it was missing.
        let addr = guard
            .0
            .as_ref()
            .map(|s| s.addr())
            .expect("a server was just started");
        Ok((addr, guard.1))
    }

    /// If generation `generation` died: its exit status and stderr tail.
    fn died(&self, generation: u64) -> Option<(String, Vec<String>)> {
        let addr = {
            let mut guard = self.server.lock().unwrap_or_else(|p| p.into_inner());
            if guard.1 != generation {
                return Some(("exited".into(), Vec::new()));
            }
            let server = guard.0.as_mut()?;
            if server.is_alive() {
                Some(server.addr())
            } else {
                None
            }
        };
        // A dying server can close our connection before it is a zombie (a
        // panic drops sockets while it unwinds): ask it something, outside
        // the lock. A server that answers is alive.
        if let Some(addr) = addr {
            if crate::client::get(addr, "/", RESPONSE_TIMEOUT).is_ok() {
                return None;
            }
        }
        let mut guard = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if guard.1 != generation {
            return Some(("exited".into(), Vec::new()));
        }
        let server = guard.0.as_mut()?;
        if !crate::checks::poll_until(Duration::from_millis(500), || !server.is_alive()) {
            return None;
        }
        Some(crate::checks::exit_details(server))
    }
}

/// Runs `cases` against servers started from `spec`, several at once, and
/// sends each result to `emit`. A case that was running when the server died
/// is run again alone, so that the case that kills the server is the one
/// reported with "server exited".
pub fn run_cases(
    spec: &TargetSpec,
    caps: &Capabilities,
    model: Model,
    cases: &[&CaseFile],
    emit: &(dyn Fn(CheckResult) + Sync),
) {
    let shared = Shared {
        spec,
        server: Mutex::new((None, 0)),
    };
    let queue = Mutex::new(
        cases
            .iter()
            .copied()
            .collect::<std::collections::VecDeque<_>>(),
    );
    let retry = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        // An iterative server serves one connection at a time: more workers
        // would only queue behind each other and time out.
        let workers = if model.is_iterative() { 1 } else { WORKERS };
        for _ in 0..workers.min(cases.len()) {
            scope.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some(case) = next else { return };
                match run_one(&shared, caps, case) {
                    Some(result) => emit(result),
                    None => retry.lock().unwrap_or_else(|p| p.into_inner()).push(case),
                }
            });
        }
    });
    // Alone, one after another: whatever kills the server now is the culprit.
    let mut retry = retry.into_inner().unwrap_or_else(|p| p.into_inner());
    retry.sort_by(|a, b| a.id.cmp(&b.id));
    for case in retry {
        let result = match run_one(&shared, caps, case) {
            Some(result) => result,
            None => server_exited(&shared, case),
        };
        emit(result);
    }
}

/// One case; `None` if the server died meanwhile (the verdict is uncertain).
fn run_one(shared: &Shared<'_>, caps: &Capabilities, case: &CaseFile) -> Option<CheckResult> {
    if let Some(reason) = caps.skip_reason(&case.needs()) {
        let result = CheckResult::new(case.id.clone(), case.requirement.clone(), case.hint());
        return Some(result.skip(reason));
    }
    let (addr, generation) = match shared.current() {
        Ok(current) => current,
        Err(error) => {
            let result = CheckResult::new(case.id.clone(), case.requirement.clone(), case.hint());
            return Some(crate::checks::start_failed(result, &error));
        }
    };
    let result = run_case(addr, case);
    match shared.died(generation) {
        None => Some(result),
        Some(_) => None,
    }
}

/// The result for a case during which the server died.
fn server_exited(shared: &Shared<'_>, case: &CaseFile) -> CheckResult {
    let mut result = CheckResult::new(case.id.clone(), case.requirement.clone(), case.hint());
    let (status, tail) = {
        let mut guard = shared.server.lock().unwrap_or_else(|p| p.into_inner());
        match guard.0.as_mut() {
            Some(server) => crate::checks::exit_details(server),
            None => ("unknown status".into(), Vec::new()),
        }
    };
    result = result
        .evidence(format!("sent: {}", case.description))
        .evidence(format!("server exited: {status}"));
    for line in tail {
        result = result.evidence(format!("stderr: {line}"));
    }
    result.fail(format!("server exited ({status}) while this case ran"))
}
