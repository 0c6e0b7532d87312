//! What the server does with every request, learned once per run: whether
//! it answers at all, how it frames a response, whether it closes after
//! `Connection: close`, and whether it outlives the request.
//!
//! Each of these would otherwise be paid for again by every case and every
//! check, in timeouts: a server that never closes makes each delivery wait
//! for an end of file that never comes, a silent one makes each wait for a
//! head. Learned on the probe instance with one plain request, reported once
//! in the run's header, they let the cases and the checks spend their time
//! on what each of them is about.

use std::time::{Duration, Instant};

use crate::client::{ClientError, Conn, Framing};
use crate::target::ServerInstance;
use crate::timed::REQUEST_TIMEOUT;

/// How many answers a check needs from one server instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answers {
    /// None: it watches processes and sockets only.
    NotNeeded,
    /// At least the first request answered.
    One,
    /// Request after request answered: a load.
    Many,
}

/// How long after a complete response the server has to close the
/// connection it was asked to close.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// The silence that ends a close-framed body from a server known to keep
/// its connections open (instead of an end of file that never comes).
pub const CLOSE_GAP: Duration = Duration::from_millis(150);
/// How long a second request may wait for its head when the first got none.
const SECOND_WAIT: Duration = Duration::from_secs(2);
/// How long a second connection may wait for its answer while the first
/// is held open.
const NEXT_WAIT: Duration = Duration::from_secs(1);
/// How long the leader is watched after the answer for an exit.
const EXIT_WATCH: Duration = Duration::from_millis(150);

/// The request the habits are learned from: the plainest one there is.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: harness-habits\r\nConnection: close\r\n\r\n";

/// What one plain `GET /` with `Connection: close` showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Habits {
    /// A response head arrived within [`REQUEST_TIMEOUT`].
    pub answers: bool,
    /// The response was framed by the end of the connection (no
    /// Content-Length, not chunked).
    pub frames_by_close: bool,
    /// After the response the server closed within [`CLOSE_WAIT`]; `None`
    /// when there was no response to close after.
    pub closes: Option<bool>,
    /// The leader was still running after answering.
    pub survives: bool,
    /// A second request, on a new connection while the first one was still
    /// held open, was answered too. Asked only of a server that holds its
    /// connections; one that does not serves the next connection anyway.
    pub serves_next: bool,
    /// One line per finding, for the header and the JSON report.
    pub notes: Vec<String>,
}

impl Habits {
    /// What a well-behaved server does; for runs that do not probe.
    pub fn assumed() -> Habits {
        Habits {
            answers: true,
            frames_by_close: false,
            closes: Some(true),
            survives: true,
            serves_next: true,
            notes: Vec::new(),
        }
    }

    /// The server keeps connections open after its last response: an end of
    /// file is not worth waiting for.
    pub fn holds_connections(&self) -> bool {
        self.closes == Some(false)
    }

    /// Why a check that needs `answers` from one instance cannot get them
    /// from this server, if it cannot.
    pub fn shortfall(&self, answers: Answers) -> Option<String> {
        match answers {
            Answers::NotNeeded => None,
            _ if !self.answers => Some(
                "the server answered no request in this run (see the header), so the check has nothing to measure".into(),
            ),
            Answers::Many if !self.serves_next => Some(
                "the server answers one connection and then holds it open without answering the next (see the header), so no load can be applied".into(),
            ),
            Answers::One | Answers::Many => None,
        }
    }

    /// Asks a freshly started `server` one plain request, when the habits
    /// say it answers request after request and outlives them: a runtime's
    /// slow first answer then is not taken for the finding of the first
    /// check or case that meets it. A server that exits after a request or
    /// holds its one connection is left untouched.
    pub fn warm_up(&self, server: &ServerInstance) {
        if self.answers && self.survives && self.serves_next {
            let _ = crate::timed::get(server.addr(), "/", REQUEST_TIMEOUT);
        }
    }

    /// Sends the plain request to `server` and watches what follows.
    pub fn learn(server: &mut ServerInstance) -> Habits {
        let mut habits = Habits::assumed();
        let ask = |wait: Duration| {
            let deadline = Instant::now() + wait;
            Conn::connect(server.addr(), wait).and_then(|mut conn| {
                conn.send(REQUEST)?;
                let head = conn.read_head(deadline, false)?;
                Ok((conn, head))
            })
        };
        let mut head = ask(REQUEST_TIMEOUT);
        if matches!(head, Err(ClientError::Timeout { .. })) {
            // A runtime's first request can be slow (loading, compiling):
            // a second one decides before the server is called silent.
            let second = ask(SECOND_WAIT);
            if matches!(second, Ok((_, Some(_)))) {
                habits.notes.push(format!(
                    "did not answer its first GET / within {} s, but answered a second one",
                    REQUEST_TIMEOUT.as_secs()
                ));
                head = second;
            }
        }
        match head {
            Ok((mut conn, Some(response))) => {
                habits.frames_by_close = response.framing == Framing::UntilClose;
                let head_at = Instant::now();
                let closed = if habits.frames_by_close {
                    // The end of the body is the close itself.
                    conn.wait_eof(head_at + CLOSE_WAIT).unwrap_or(true)
                } else {
                    let body_deadline = head_at + CLOSE_WAIT;
                    // Only where the body ends matters, not what it holds.
                    conn.skip_body(&response, body_deadline, head_at).is_ok()
                        && conn.wait_eof(body_deadline).unwrap_or(true)
                };
                habits.closes = Some(closed);
                if habits.frames_by_close {
                    habits.notes.push(
                        "frames its responses by closing the connection (no Content-Length, not chunked): no connection can be kept alive".into(),
                    );
                }
                if !closed {
                    habits.notes.push(format!(
                        "keeps the connection open after answering a request with Connection: close (no end of file within {} ms): cases read a close-framed body until a short silence and do not wait for an end of file",
                        CLOSE_WAIT.as_millis()
                    ));
                    // The first connection is still open: is anyone else served?
                    let next = crate::timed::get(server.addr(), "/", NEXT_WAIT);
                    habits.serves_next = next.answered();
                    if !habits.serves_next {
                        habits.notes.push(format!(
                            "did not answer a second connection within {} ms while it held the first: each case delivery gets a fresh server, and checks that need a load report an error at once",
                            NEXT_WAIT.as_millis()
                        ));
                    }
                }
                drop(conn);
            }
            Ok((_, None)) | Err(ClientError::Reset) | Err(ClientError::ClosedEarly { .. }) => {
                habits.answers = false;
                habits.closes = None;
                habits.notes.push(
                    "closed the connection without answering GET / : cases get one delivery each"
                        .into(),
                );
            }
            Err(error) => {
                habits.answers = false;
                habits.closes = None;
                habits.notes.push(format!(
                    "did not answer GET / ({error}): cases get one short delivery each, and checks that need answers report an error at once"
                ));
            }
        }
        if crate::poll::poll_until(EXIT_WATCH, || !server.is_alive()) {
            habits.survives = false;
            let status = server
                .exit_status()
                .map(|s| crate::target::describe_status(&s))
                .unwrap_or_else(|| "exited".into());
            habits.notes.push(format!(
                "exited after one request ({status}): every case delivery gets a fresh server"
            ));
        }
        habits
    }
}
