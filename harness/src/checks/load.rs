//! Load for the checks: timed requests, sequential streams and bursts.
//!
//! A request of the load counts as answered when its response head has
//! arrived: the body is then read as framed, for a bounded time, and a body
//! framed by close is taken as ended after a short silence. A server that
//! answers at once but keeps the connection open afterwards (a classic
//! forking bug) is served, not stalled; holding the connection is
//! `fds/close-eof`'s finding, reported there once.
//!
//! Every request is bounded by [`REQUEST_TIMEOUT`], and a stream stops at its
//! first failure: a server that does not answer costs one timeout per stream,
//! not one per request, so a run against a broken server stays short.

use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::in_parallel;
use crate::check::CheckResult;
use crate::client::{BodyEnd, ClientError, Conn};

/// How long one request of the load may take to get its response head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the body of a load response may take after its head.
pub const BODY_WAIT: Duration = Duration::from_secs(1);

/// One request of the load and its moments, as offsets from `started`.
#[derive(Debug)]
pub struct Timed {
    /// When the client began to connect.
    pub started: Instant,
    /// Connected (the TCP handshake is done).
    pub connected: Option<Duration>,
    /// The last byte of the request was written.
    pub sent: Option<Duration>,
    /// The first byte of the response arrived.
    pub first_byte: Option<Duration>,
    /// The response head was complete: the request is answered.
    pub head: Option<Duration>,
    /// The response's status.
    pub status: Option<u16>,
    /// How the body ended, once the head had arrived.
    pub body: Option<BodyEnd>,
    /// Why the request was not answered.
    pub error: Option<ClientError>,
}

impl Timed {
    /// Whether the response head arrived.
    pub fn answered(&self) -> bool {
        self.head.is_some()
    }

    /// From the end of the request to the end of the response head: the
    /// service time, without the time the connection took.
    pub fn service(&self) -> Option<Duration> {
        Some(self.head?.saturating_sub(self.sent?))
    }

    /// The connection was refused (a full accept queue, or nothing listening).
    pub fn refused(&self) -> bool {
        matches!(&self.error, Some(ClientError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::ConnectionRefused)
    }

    /// The connection was reset before a response head arrived.
    pub fn reset(&self) -> bool {
        matches!(self.error, Some(ClientError::Reset))
    }

    /// Why the request was not answered, in words.
    pub fn failure(&self) -> String {
        match &self.error {
            Some(error) => error.to_string(),
            None if self.head.is_none() => "closed without a response".into(),
            None => "answered".into(),
        }
    }
}

/// A connection opened for one timed request, not yet sent.
pub struct Pending {
    started: Instant,
    conn: Result<Conn, ClientError>,
    connected: Option<Duration>,
}

impl Pending {
    /// Connects to `addr` within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Pending {
        let started = Instant::now();
        let conn = Conn::connect(addr, timeout);
        let connected = conn.as_ref().ok().map(|_| started.elapsed());
        Pending {
            started,
            conn,
            connected,
        }
    }

    /// The client's port of this connection (0 if it failed): the key to
    /// the server's end of it in `/proc/net/tcp`.
    pub fn local_port(&self) -> u16 {
        self.conn
            .as_ref()
            .ok()
            .and_then(|c| c.stream().local_addr().ok())
            .map_or(0, |a| a.port())
    }

    /// Sends `request` and reads the answer: its head within `timeout` of
    /// the send, its body within [`BODY_WAIT`] after the head.
    pub fn exchange(self, request: &[u8], timeout: Duration) -> Timed {
        let mut timed = Timed {
            started: self.started,
            connected: self.connected,
            sent: None,
            first_byte: None,
            head: None,
            status: None,
            body: None,
            error: None,
        };
        let mut conn = match self.conn {
            Ok(conn) => conn,
            Err(error) => {
                timed.error = Some(error);
                return timed;
            }
        };
        if let Err(error) = conn.send(request) {
            timed.error = Some(error);
            return timed;
        }
        timed.sent = Some(self.started.elapsed());
        match conn.read_answer(crate::client::deadline_after(timeout), BODY_WAIT) {
            Ok(Some(answer)) => {
                timed.first_byte = Some(answer.first_byte_at - self.started);
                timed.head = Some(answer.head_at - self.started);
                timed.status = Some(answer.status);
                timed.body = Some(answer.body);
            }
            Ok(None) => {}
            Err(error) => timed.error = Some(error),
        }
        timed
    }
}

/// `GET path` with `Connection: close` on a fresh connection, timed.
pub fn timed_get(addr: SocketAddr, path: &str, timeout: Duration) -> Timed {
    Pending::connect(addr, timeout).exchange(&get_request(path), timeout)
}

/// The bytes of `GET path` with `Connection: close`.
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n").into_bytes()
}

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Requests whose response head arrived.
    pub answered: usize,
    /// Requests planned but not answered (failed, or skipped after a failure).
    pub unanswered: usize,
    /// Answered requests whose connection stayed open after the response.
    pub held_open: usize,
    /// The first few failures, for evidence.
    pub errors: Vec<String>,
}

impl LoadOutcome {
    fn of(timed: &Timed) -> LoadOutcome {
        if timed.answered() {
            LoadOutcome {
                answered: 1,
                held_open: usize::from(timed.body == Some(BodyEnd::StillOpen)),
                ..Default::default()
            }
        } else {
            LoadOutcome {
                unanswered: 1,
                errors: vec![timed.failure()],
                ..Default::default()
            }
        }
    }

    /// Both loads together.
    pub fn merge(mut self, other: LoadOutcome) -> LoadOutcome {
        self.answered += other.answered;
        self.unanswered += other.unanswered;
        self.held_open += other.held_open;
        for error in other.errors {
            if self.errors.len() < 3 {
                self.errors.push(error);
            }
        }
        self
    }

    /// Whether every request was answered.
    pub fn complete(&self) -> bool {
        self.unanswered == 0
    }

    /// Adds the load's figures to a result.
    pub fn describe(&self, result: CheckResult) -> CheckResult {
        result
            .figure("requests_answered", self.answered)
            .figure("requests_unanswered", self.unanswered)
    }

    /// The verdict for a check whose measurement found nothing wrong but whose
    /// load did not go through: it could not really be run.
    pub fn incomplete(&self, result: CheckResult) -> CheckResult {
        let mut result = self.describe(result);
        for error in &self.errors {
            result = result.evidence(format!("request failed: {error}"));
        }
        result.error(format!(
            "the load could not be applied: {} of {} requests were not answered",
            self.unanswered,
            self.answered + self.unanswered
        ))
    }
}

/// `n` requests for `path`, one after another, each on its own connection
/// with `Connection: close`; stops at the first failure.
pub fn sequential(addr: SocketAddr, path: &str, n: usize) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    for i in 0..n {
        let timed = timed_get(addr, path, REQUEST_TIMEOUT);
        let answered = timed.answered();
        outcome = outcome.merge(LoadOutcome::of(&timed));
        if !answered {
            outcome.unanswered += n - i - 1;
            break;
        }
    }
    outcome
}

/// `streams` sequential streams of `per_stream` requests, side by side.
pub fn streams(addr: SocketAddr, path: &str, streams: usize, per_stream: usize) -> LoadOutcome {
    in_parallel(streams, |_| sequential(addr, path, per_stream))
        .into_iter()
        .fold(LoadOutcome::default(), LoadOutcome::merge)
}

/// `n` connections opened together; once all are open, each sends `GET /`
/// with `Connection: close` and reads its answer. Every request's moments.
pub fn burst_timed(addr: SocketAddr, n: usize) -> Vec<Timed> {
    let barrier = Barrier::new(n);
    let request = get_request("/");
    in_parallel(n, |_| {
        let pending = Pending::connect(addr, REQUEST_TIMEOUT);
        // All connections are open (or failed) before any request is sent.
        barrier.wait();
        pending.exchange(&request, REQUEST_TIMEOUT)
    })
}

/// [`burst_timed`], counted.
pub fn burst(addr: SocketAddr, n: usize) -> LoadOutcome {
    burst_timed(addr, n)
        .iter()
        .map(LoadOutcome::of)
        .fold(LoadOutcome::default(), LoadOutcome::merge)
}
