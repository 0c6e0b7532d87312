//! One delivery of a case: send its bytes in one mode, read what comes back,
//! and find out whether the connection was kept.
//!
//! Reading stops when the outcomes' number of responses has arrived, when the
//! server closes, or at the delivery's wait. Our write side stays open all
//! that time: a server may drop a request whose client has already said it
//! sends nothing more. Only when the wait is over does our side close, and the
//! server gets [`EOF_GRACE`] to answer then; an answer that comes only after
//! that is marked, since a real client would still be waiting. If the
//! connection is still open after the responses, a `Connection: close` probe
//! request tells "kept" from "closed", and any response that arrives before
//! the probe's own is an extra one.
//!
//! What came is kept even when it did not end: a response whose head arrived
//! and whose body did not finish is judged on its head and the body so far,
//! marked incomplete, and the connection is then of unknown state.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{CaseFile, ConnectionState, Mode};
use crate::client::{ClientError, Conn, Framing, Response};

/// After the wait for an answer, our side closes and the server has this
/// long to answer: a server that reads until the end of the stream shows
/// itself here.
pub const EOF_GRACE: Duration = Duration::from_millis(500);
/// Bytes sent one at a time in `bytewise` mode; the rest goes in one write.
const BYTEWISE_LIMIT: usize = 4096;
/// Pause between the two writes of `split` mode.
const SPLIT_PAUSE: Duration = Duration::from_millis(10);
/// Most bytes of a bare answer kept for the report.
const BARE_SHOWN: usize = 80;
/// The request that asks whether the connection is still served.
const PROBE: &[u8] = b"GET / HTTP/1.1\r\nHost: harness-probe\r\nConnection: close\r\n\r\n";

/// How one delivery may spend its time.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// How long to wait for each response.
    pub wait: Duration,
    /// When set, a close-framed body ends after this much silence: the run
    /// learned that the server keeps connections open after its responses.
    pub close_gap: Option<Duration>,
    /// The case's overall deadline: no pause and no wait goes past it.
    pub deadline: Instant,
}

impl Plan {
    /// The wait for the next response, cut at the deadline.
    fn wait_until(&self) -> Instant {
        (Instant::now() + self.wait).min(self.deadline)
    }
}

/// What one delivery observed.
#[derive(Debug, Default)]
pub struct Observation {
    /// 1xx statuses before the first final response.
    pub interim: Vec<u16>,
    /// Final responses, in order (extra ones included).
    pub responses: Vec<Response>,
    /// Closed, kept, or unknown (timeout, error, unfinished body).
    pub connection: Option<ConnectionState>,
    /// Where reading stopped early, if it did.
    pub problem: Option<String>,
    /// Why the last response's body is not complete, if it is not.
    pub incomplete: Option<String>,
    /// The start of an answer that was no HTTP/1.x response at all (an
    /// HTTP/0.9-style bare body).
    pub bare: Option<Vec<u8>>,
    /// Whether the server answered only after our side closed.
    pub needed_end_of_stream: bool,
    /// Nothing at all came back within the wait, before our side closed:
    /// no byte, no close.
    pub unanswered: bool,
}

impl Observation {
    /// One line for reports: `400 closed`, `200, 200 kept`, `no response, closed`.
    pub fn describe(&self) -> String {
        let statuses: Vec<String> = self
            .responses
            .iter()
            .map(|r| r.status.to_string())
            .collect();
        let mut text = match &self.bare {
            Some(bytes) => format!(
                "a bare answer without a status line: {:?}",
                String::from_utf8_lossy(bytes)
            ),
            None if statuses.is_empty() => "no response".to_string(),
            None => statuses.join(", "),
        };
        if !self.interim.is_empty() {
            text = format!("interim {:?} then {text}", self.interim);
        }
        match self.connection {
            Some(ConnectionState::Closed) => text.push_str(", closed"),
            Some(ConnectionState::Kept) => text.push_str(", kept"),
            None => {}
        }
        if let Some(incomplete) = &self.incomplete {
            text.push_str(&format!(" (body incomplete: {incomplete})"));
        }
        if let Some(problem) = &self.problem {
            text.push_str(&format!(" ({problem})"));
        }
        if self.needed_end_of_stream {
            text.push_str(" (answered only after the client closed its side)");
        }
        text
    }

    /// The connection ended in a way a dying server could have caused:
    /// closed or reset with responses missing, or broken off.
    pub fn ended_abruptly(&self) -> bool {
        (self.connection == Some(ConnectionState::Closed) && self.responses.is_empty())
            || self.problem.is_some()
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

/// Sends the case's bytes in `mode`. A write error (the server closed early,
/// say after a 414) is not the end: what it answered is still read. Pauses
/// between chunks stop at the deadline.
fn deliver(
    stream: &mut TcpStream,
    case: &CaseFile,
    mode: Mode,
    deadline: Instant,
) -> Option<String> {
    let _ = stream.set_nodelay(true);
    let pause = |wanted: Duration| {
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(wanted.min(left));
    };
    let result = match mode {
        Mode::Whole => case.send.iter().enumerate().try_for_each(|(i, chunk)| {
            if i > 0 && case.pause_ms > 0 {
                pause(Duration::from_millis(case.pause_ms));
            }
            stream.write_all(chunk)
        }),
        Mode::Bytewise => {
            let bytes = case.bytes();
            let head = bytes.len().min(BYTEWISE_LIMIT);
            bytes[..head]
                .iter()
                .try_for_each(|b| stream.write_all(std::slice::from_ref(b)))
                .and_then(|()| stream.write_all(&bytes[head..]))
        }
        Mode::Split => {
            let bytes = case.bytes();
            let at = split_point(&case.id, bytes.len());
            stream.write_all(&bytes[..at]).and_then(|()| {
                pause(SPLIT_PAUSE);
                stream.write_all(&bytes[at..])
            })
        }
    };
    result.err().map(|e| format!("sending stopped: {e}"))
}

/// Delivers one case in one mode and observes the answer.
pub fn observe(addr: SocketAddr, case: &CaseFile, mode: Mode, plan: &Plan) -> Observation {
    let mut observation = Observation::default();
    let mut conn = match Conn::connect(addr, plan.wait) {
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
    // Writes may block on a server that does not read; the wait bounds them.
    let _ = stream.set_write_timeout(Some(plan.wait.max(Duration::from_millis(1))));
    let send_problem = deliver(&mut stream, case, mode, plan.deadline);
    let wanted = case.responses_needed();
    let mut half_closed = false;
    while observation.responses.len() < wanted {
        let until = if half_closed {
            Instant::now() + EOF_GRACE
        } else {
            plan.wait_until()
        };
        match conn.read_received(until, case.head, plan.close_gap) {
            Err(ClientError::Timeout { .. }) if !half_closed => {
                // Nothing more to send, and nothing came: our side closes,
                // in case the server reads until the end of the stream.
                half_closed = true;
                observation.unanswered = observation.responses.is_empty()
                    && observation.interim.is_empty()
                    && conn.leftover().is_empty();
                let _ = stream.shutdown(Shutdown::Write);
            }
            Ok(Some(received)) if (100..200).contains(&received.response.status) => {
                if observation.responses.is_empty() {
                    observation.interim.push(received.response.status);
                }
                if observation.interim.len() > 16 {
                    observation.problem = Some("more than 16 interim responses".into());
                    return observation;
                }
            }
            Ok(Some(received)) => {
                observation.needed_end_of_stream |= half_closed;
                let by_close = received.response.framing == Framing::UntilClose;
                observation.responses.push(received.response);
                if received.incomplete.is_some() {
                    observation.incomplete = received.incomplete;
                    return observation;
                }
                if by_close {
                    // The body ended with the connection.
                    observation.connection = Some(ConnectionState::Closed);
                    return observation;
                }
            }
            Ok(None) | Err(ClientError::Reset) => {
                observation.connection = Some(ConnectionState::Closed);
                return observation;
            }
            Err(ClientError::Malformed { .. })
                if observation.responses.is_empty() && is_bare(conn.leftover()) =>
            {
                // Not HTTP/1.x at all: keep what came, as the server sent it.
                // (After a response, such bytes are a body where none may be,
                // and reported as the broken response they are.)
                let closed = conn.wait_eof(plan.wait_until()).unwrap_or(true);
                let bytes = conn.leftover();
                observation.bare = Some(bytes[..bytes.len().min(BARE_SHOWN)].to_vec());
                observation.needed_end_of_stream |= half_closed;
                if closed {
                    observation.connection = Some(ConnectionState::Closed);
                }
                return observation;
            }
            Err(error) => {
                observation.unanswered |= conn.leftover().is_empty()
                    && matches!(error, ClientError::Timeout { .. })
                    && observation.responses.is_empty();
                observation.problem = Some(match send_problem {
                    Some(problem) => problem,
                    None if half_closed && matches!(error, ClientError::Timeout { .. }) => format!(
                        "no response within {:.1}s, nor {} ms after the client closed its side",
                        plan.wait.as_secs_f64(),
                        EOF_GRACE.as_millis()
                    ),
                    None => describe_error(&error, conn.leftover()),
                });
                return observation;
            }
        }
    }
    if half_closed {
        // Our side is closed: whatever the server does now says nothing
        // about persistence.
        return observation;
    }
    ask_if_kept(&mut conn, &mut stream, plan, &mut observation);
    observation
}

/// Kept or closed? Sends the probe request, our write side left open, and
/// reads until the server closes, or, from a server known to hold its
/// connections, until a response is followed by a short silence. The last
/// response answers the probe; any before it are extra.
fn ask_if_kept(
    conn: &mut Conn,
    stream: &mut TcpStream,
    plan: &Plan,
    observation: &mut Observation,
) {
    if stream.write_all(PROBE).is_err() {
        observation.connection = Some(ConnectionState::Closed);
        return;
    }
    let mut after = Vec::new();
    loop {
        let until = plan.wait_until();
        if until <= Instant::now() {
            observation.problem =
                Some("the case's time ran out before the connection's state was known".into());
            break;
        }
        match conn.read_received(until, false, plan.close_gap) {
            Ok(Some(received)) if (100..200).contains(&received.response.status) => continue,
            Ok(Some(received)) => {
                let last = received.incomplete.is_some()
                    || received.response.framing == Framing::UntilClose;
                after.push(received.response);
                if last || after.len() > 16 {
                    break;
                }
                if let Some(gap) = plan.close_gap {
                    if !conn.peek_open(Instant::now() + gap) {
                        break;
                    }
                }
            }
            Ok(None) | Err(ClientError::Reset) => break,
            Err(error) => {
                observation.problem = Some(format!(
                    "after the responses: {}",
                    describe_error(&error, conn.leftover())
                ));
                break;
            }
        }
    }
    if after.is_empty() {
        if observation.problem.is_none() {
            observation.connection = Some(ConnectionState::Closed);
        }
    } else {
        after.pop();
        observation.responses.extend(after);
        observation.connection = Some(ConnectionState::Kept);
    }
}

/// Whether the bytes that broke the parse are no HTTP/1.x status line at
/// all, as opposed to a broken one.
fn is_bare(received: &[u8]) -> bool {
    let prefix = &received[..received.len().min(5)];
    !received.is_empty() && !b"HTTP/".starts_with(prefix) && !prefix.starts_with(b"HTTP/")
}

/// The error, with what the server sent when it was not HTTP/1.x.
fn describe_error(error: &ClientError, leftover: &[u8]) -> String {
    match (error, leftover.split(|&b| b == b'\n').next()) {
        (ClientError::Malformed { .. }, Some(line)) if !line.is_empty() => format!(
            "{error}; the server sent {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        ),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_answer_is_told_from_a_broken_status_line() {
        assert!(is_bare(b"Hello, World!"));
        assert!(is_bare(b"<html>"));
        assert!(!is_bare(b"HTTP/1.1 2x0 OK\r\n"));
        assert!(!is_bare(b"HTT"));
        assert!(!is_bare(b""));
    }

    #[test]
    fn split_point_is_inside_and_stable() {
        for len in 2..50 {
            let at = split_point("http/x", len);
            assert!((1..len).contains(&at));
            assert_eq!(at, split_point("http/x", len));
        }
        assert_eq!(split_point("http/x", 1), 1);
    }
}
