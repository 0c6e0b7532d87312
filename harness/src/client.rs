//! The harness's own minimal HTTP/1.1 client, on raw TCP sockets.
//!
//! It exists because the harness must see exactly what the server sent: a
//! general-purpose client would retry, reconnect, normalise headers or hide a
//! truncated body, and every one of those would mask a defect this suite is
//! meant to find. So this client sends bytes verbatim and frames responses by
//! the rules of RFC 9112 §6.3, written out here:
//!
//! 1. Responses to HEAD, and 1xx, 204 and 304 responses, have no body.
//! 2. `Transfer-Encoding` whose final coding is `chunked`: decode the chunks
//!    (extensions ignored, trailers collected). Any other final coding: the
//!    body runs until the connection closes.
//! 3. Otherwise `Content-Length`: exactly that many bytes; a missing or
//!    conflicting value is a malformed response.
//! 4. Otherwise: the body runs until the server closes the connection.
//!
//! httparse only tokenises the status line and header fields. Every read has a
//! deadline, so a misbehaving server cannot hang the harness. Nor can it
//! exhaust it: a body is capped at 64 MiB, and every byte of a response the
//! client keeps (in a connection's buffer, in a [`Response`]) is charged to
//! the process-wide [`crate::budget::RESPONSES`] until it is dropped, so that 64
//! connections reading endless bodies at once hold 128 MiB between them, not
//! 64 times 64 MiB. Callers that need only to know how a body ended
//! ([`Conn::read_answer`], [`Conn::skip_body`]) read past it without keeping it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::budget::{Budget, Exhausted, HeldBuf, Reservation, RESPONSES};

/// Largest body the client accepts.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// Largest response head (status line + headers) the client accepts.
pub const MAX_HEAD: usize = 1024 * 1024;
/// Most header fields in one response head.
const MAX_HEADERS: usize = 256;
/// Longest chunk-size line or trailer line.
const MAX_CHUNK_LINE: usize = 8 * 1024;
/// Most bytes of a trailer section.
const MAX_TRAILERS: usize = 64 * 1024;
/// Most interim (1xx) responses [`get`] and [`exchange`] skip before giving up.
const MAX_INTERIM: usize = 16;
/// Bytes kept by [`Conn::wait_eof`] while it waits.
const MAX_STRAY: usize = 1024 * 1024;
/// Bytes of a body cut by a size limit that [`Conn::read_received`] keeps:
/// such a body can only be judged as incomplete, and the rest would hold the
/// budget for nothing.
pub const KEPT_OF_TOO_LARGE: usize = 64 * 1024;

/// How long a body framed by close may stay silent before [`Conn::read_answer`]
/// takes it as ended while the connection stays open.
pub const IDLE_GAP: Duration = Duration::from_millis(25);
/// Most body bytes [`Conn::read_answer`] reads past. The load needs only the
/// head; the body is read so that a server is not reset in the middle of an
/// ordinary one, and a server that sends an endless body then costs a
/// millisecond per request, not the whole body wait.
pub const ANSWER_BODY_LIMIT: u64 = 1024 * 1024;

/// A response as the load sees it: when its head arrived and how its body
/// ended. The body itself is not kept.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// How the body was delimited.
    pub framing: Framing,
    /// When the first byte of the head arrived.
    pub first_byte_at: Instant,
    /// When the head was complete: the moment the request counts as answered.
    pub head_at: Instant,
    /// How the body ended.
    pub body: BodyEnd,
}

/// A response as [`Conn::read_received`] got it: complete, or as far as it came.
#[derive(Debug)]
pub struct Received {
    /// The head, and the body so far (of a body cut by a size limit, its
    /// first [`KEPT_OF_TOO_LARGE`] bytes).
    pub response: Response,
    /// Why the body is not complete; `None` when it ended as framed.
    pub incomplete: Option<String>,
    /// Whether a size limit cut the body (the body is then only its start).
    pub too_large: bool,
}

/// How the body of an [`Answer`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// Complete as framed (Content-Length reached, last chunk, or no body).
    Complete(Instant),
    /// Framed by close, and the server closed.
    Closed(Instant),
    /// Framed by close, and the connection stayed open and silent after the
    /// bytes that came: the server holds the connection after its response.
    StillOpen,
    /// The body did not end before the body deadline.
    TimedOut,
    /// More than [`ANSWER_BODY_LIMIT`] bytes came before the body ended;
    /// the rest was not read.
    TooLong,
    /// The body broke its framing or the connection failed.
    Broken(String),
}

/// How the body of a response was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by rule: HEAD, 1xx, 204, 304.
    NoBody,
    /// `Content-Length` with this value.
    ContentLength(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Read until the server closed the connection.
    UntilClose,
}

/// One parsed response. It is not `Clone`: every copy of response bytes is
/// charged to the budget, and a clone would not be.
#[derive(Debug)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: String,
    /// Header fields in the order received; names as sent, values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body, in order.
    pub trailers: Vec<(String, Vec<u8>)>,
    /// How the body was delimited.
    pub framing: Framing,
    /// The response head exactly as received (status line through the empty line),
    /// for checks that httparse's leniency would hide (bare LF, spacing, ...).
    pub head_raw: Vec<u8>,
    /// What the bytes above hold of [`crate::budget::RESPONSES`], given back when
    /// the response is dropped.
    pub held: Reservation,
}

impl Response {
    /// The first header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// [`Response::header`] as text (lossy UTF-8).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of the headers with this name, in order.
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The body as text (lossy UTF-8).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Makes `body` the body, with the budget it holds.
    fn take_body(&mut self, body: HeldBuf) {
        let (bytes, held) = body.into_parts();
        let old = std::mem::replace(&mut self.body, bytes);
        // The old body's charge was part of `self.held`: give it back.
        let _ = self
            .held
            .resize(self.held.bytes().saturating_sub(old.capacity()));
        self.held.absorb(held);
    }

    /// Keeps the first `n` bytes of the body and gives back the rest.
    fn keep_body_start(&mut self, n: usize) {
        if self.body.len() <= n {
            return;
        }
        let before = self.body.capacity();
        self.body.truncate(n);
        self.body.shrink_to_fit();
        let freed = before.saturating_sub(self.body.capacity());
        // Shrinking always succeeds.
        let _ = self.held.resize(self.held.bytes().saturating_sub(freed));
    }
}

/// Which of the harness's size limits a response ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// Its body is longer than [`MAX_BODY`]: sent, or announced (by its
    /// Content-Length or a chunk size) before any of it was read.
    Body {
        /// The length announced, if that is how it showed.
        announced: Option<u64>,
    },
    /// The budget of all responses held at once ([`crate::budget::RESPONSES`]) is spent.
    AllResponses(Exhausted),
}

/// Why a request/response exchange failed. One variant per failure site.
#[derive(Debug)]
pub enum ClientError {
    /// `connect` failed (refused, unreachable, ...).
    Connect {
        /// Where we connected.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// Writing the request failed (other than by reset or timeout).
    Write {
        /// The error.
        source: io::Error,
    },
    /// Reading failed (other than by reset or timeout).
    Read {
        /// The error.
        source: io::Error,
    },
    /// The deadline passed.
    Timeout {
        /// What we were waiting for: `"connect"`, `"write"`, `"response head"`, `"response body"`, `"eof"`.
        what: &'static str,
        /// How long we had waited.
        after: Duration,
    },
    /// The server reset the connection (RST).
    Reset,
    /// The server closed the connection in the middle of a response.
    ClosedEarly {
        /// Bytes of the unfinished part received: of the head if it was
        /// incomplete, else of the body.
        received: usize,
    },
    /// The response broke HTTP/1.1 framing or a client limit on its head.
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The response is larger than the harness keeps: the reading stopped
    /// instead of buffering more.
    TooLarge {
        /// The limit it ran into.
        limit: SizeLimit,
        /// Bytes of its body received so far.
        received: usize,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => write!(f, "connect to {addr}: {source}"),
            ClientError::Write { source } => write!(f, "writing the request: {source}"),
            ClientError::Read { source } => write!(f, "reading the response: {source}"),
            ClientError::Timeout { what, after } => {
                write!(
                    f,
                    "timed out waiting for the {what} after {:.2}s",
                    after.as_secs_f64()
                )
            }
            ClientError::Reset => write!(f, "connection reset by the server"),
            ClientError::ClosedEarly { received } => {
                write!(f, "connection closed in the middle of a response ({received} bytes of the unfinished part)")
            }
            ClientError::Malformed { reason } => write!(f, "malformed response: {reason}"),
            ClientError::TooLarge {
                limit: SizeLimit::Body { announced },
                received,
            } => {
                write!(
                    f,
                    "response too large: the harness keeps at most {} MiB of one response's body (",
                    MAX_BODY >> 20
                )?;
                match announced {
                    Some(length) => write!(f, "{length} bytes announced)"),
                    None => write!(f, "{received} bytes came)"),
                }
            }
            ClientError::TooLarge {
                limit: SizeLimit::AllResponses(exhausted),
                received,
            } => write!(
                f,
                "response too large: {exhausted} ({received} bytes of this one came)"
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. }
            | ClientError::Write { source }
            | ClientError::Read { source } => Some(source),
            _ => None,
        }
    }
}

/// `now + wait`, saturating instead of panicking on absurd durations.
pub fn deadline_after(wait: Duration) -> Instant {
    const ONE_DAY: Duration = Duration::from_secs(24 * 60 * 60);
    let now = Instant::now();
    now.checked_add(wait)
        .or_else(|| now.checked_add(ONE_DAY))
        .unwrap_or(now)
}

fn malformed(reason: impl Into<String>) -> ClientError {
    ClientError::Malformed {
        reason: reason.into(),
    }
}

/// The budget of all responses refused more for one with `received` bytes of body.
fn spent(exhausted: Exhausted, received: usize) -> ClientError {
    ClientError::TooLarge {
        limit: SizeLimit::AllResponses(exhausted),
        received,
    }
}

/// The body passed [`MAX_BODY`]: `received` bytes came, or `announced` was declared.
fn too_long(announced: Option<u64>, received: usize) -> ClientError {
    ClientError::TooLarge {
        limit: SizeLimit::Body { announced },
        received,
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `GET path` on a fresh connection with `Connection: close`; returns the
/// final response (interim 1xx responses are skipped).
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, ClientError> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes(), timeout)
}

/// Sends `raw` verbatim on a fresh connection and reads one final response
/// (interim 1xx responses other than 101 are skipped). A request starting
/// with `HEAD ` is read as a HEAD response. `timeout` bounds the whole exchange.
pub fn exchange(addr: SocketAddr, raw: &[u8], timeout: Duration) -> Result<Response, ClientError> {
    let deadline = deadline_after(timeout);
    let mut conn = Conn::connect(addr, timeout)?;
    conn.send(raw)?;
    let head_request = raw.starts_with(b"HEAD ");
    for _ in 0..=MAX_INTERIM {
        match conn.read_response(deadline, head_request)? {
            None => return Err(ClientError::ClosedEarly { received: 0 }),
            Some(resp) if (100..200).contains(&resp.status) && resp.status != 101 => continue,
            Some(resp) => return Ok(resp),
        }
    }
    Err(malformed(format!(
        "more than {MAX_INTERIM} interim (1xx) responses"
    )))
}

/// One client connection, for pipelining, keep-alive and byte-level tests.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes received but not yet consumed: the start of the next response,
    /// or the body being read. Its capacity is charged to the budget.
    buf: HeldBuf,
    /// Timeout for each write.
    write_timeout: Duration,
    /// When the first byte of the latest response head arrived.
    first_byte_at: Option<Instant>,
    /// What every byte this connection keeps is charged to.
    budget: &'static Budget,
}

impl Conn {
    /// Connects within `timeout`; `timeout` also bounds each later write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, ClientError> {
        Conn::connect_against(addr, timeout, &RESPONSES)
    }

    /// [`Conn::connect`], charging what it keeps to `budget` (a test's own).
    fn connect_against(
        addr: SocketAddr,
        timeout: Duration,
        budget: &'static Budget,
    ) -> Result<Conn, ClientError> {
        let started = Instant::now();
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|source| {
            if is_timeout(&source) {
                ClientError::Timeout {
                    what: "connect",
                    after: started.elapsed(),
                }
            } else {
                ClientError::Connect { addr, source }
            }
        })?;
        // Requests are written in one go; Nagle would only add latency to split writes.
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: HeldBuf::new(budget),
            write_timeout: timeout,
            first_byte_at: None,
            budget,
        })
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        // A zero timeout is rejected by the OS; treat it as "the smallest".
        let timeout = self.write_timeout.max(Duration::from_millis(1));
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(|source| ClientError::Write { source })?;
        self.stream.write_all(bytes).map_err(|source| {
            if is_reset(&source) {
                ClientError::Reset
            } else if is_timeout(&source) {
                ClientError::Timeout {
                    what: "write",
                    after: timeout,
                }
            } else {
                ClientError::Write { source }
            }
        })
    }

    /// Half-closes the connection (sends FIN); reading still works.
    pub fn shutdown_write(&mut self) -> Result<(), ClientError> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|source| ClientError::Write { source })
    }

    /// The socket, e.g. for `peer_addr` or raw reads.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Bytes received after the last response (or collected by [`Conn::wait_eof`]).
    pub fn leftover(&self) -> &[u8] {
        self.buf.as_slice()
    }

    /// Waits until the server sends something (kept in the buffer for the
    /// next [`Conn::read_response`]) or closes: true when bytes arrived,
    /// false on end of file, reset or `deadline`.
    pub fn peek_open(&mut self, deadline: Instant) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        matches!(self.read_more(deadline, "the first byte", Instant::now()), Ok(n) if n > 0)
    }

    /// Everything buffered, as a buffer of its own; this one starts afresh.
    fn take_buf(&mut self) -> HeldBuf {
        std::mem::replace(&mut self.buf, HeldBuf::new(self.budget))
    }

    /// Reads more bytes into `buf` before `deadline`. `Ok(0)` is end of file.
    /// When the budget refuses the bytes, the read stops with `TooLarge`.
    fn read_more(
        &mut self,
        deadline: Instant,
        what: &'static str,
        started: Instant,
    ) -> Result<usize, ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    what,
                    after: now - started,
                });
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|source| ClientError::Read { source })?;
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    let held = self.buf.len();
                    self.buf
                        .extend(&chunk[..n])
                        .map_err(|exhausted| spent(exhausted, held))?;
                    return Ok(n);
                }
                // Timeouts loop back to the deadline check; EINTR is retried.
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_reset(&e) => return Err(ClientError::Reset),
                Err(source) => return Err(ClientError::Read { source }),
            }
        }
    }

    /// Reads one response. `head_request`: the request was HEAD, so there is no
    /// body whatever the headers say. Returns `None` on a clean close before
    /// the first byte of a response. Interim 1xx responses are returned like
    /// any other; call again for the final one.
    pub fn read_response(
        &mut self,
        deadline: Instant,
        head_request: bool,
    ) -> Result<Option<Response>, ClientError> {
        let started = Instant::now();
        let Some(mut response) = self.read_head(deadline, head_request)? else {
            return Ok(None);
        };
        self.read_body(&mut response, deadline, started)?;
        Ok(Some(response))
    }

    /// Reads one response head and decides its framing; the body stays
    /// unread, for [`Conn::read_body`], [`Conn::skip_body`] or
    /// [`Conn::read_answer`]. `None` on a clean close before the first byte.
    pub fn read_head(
        &mut self,
        deadline: Instant,
        head_request: bool,
    ) -> Result<Option<Response>, ClientError> {
        let started = Instant::now();
        // Bytes already buffered arrived with an earlier read.
        self.first_byte_at = (!self.buf.is_empty()).then_some(started);
        let (mut response, head_len) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(malformed(format!(
                    "no end of the response head within {MAX_HEAD} bytes"
                )));
            }
            let was_empty = self.buf.is_empty();
            if self.read_more(deadline, "response head", started)? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(ClientError::ClosedEarly {
                    received: self.buf.len(),
                });
            }
            if was_empty {
                self.first_byte_at = Some(Instant::now());
            }
        };
        let head = self
            .buf
            .split_front(head_len)
            .map_err(|exhausted| spent(exhausted, head_len))?;
        let (head_raw, held) = head.into_parts();
        response.head_raw = head_raw;
        response.held = held;
        // The parsed fields are a second copy of the head's bytes.
        response
            .held
            .grow(head_len)
            .map_err(|exhausted| spent(exhausted, head_len))?;
        response.framing = framing_of(&response, head_request)?;
        Ok(Some(response))
    }

    /// When the first byte of the latest response head arrived (set by
    /// [`Conn::read_head`] when it found the buffer empty).
    pub fn first_byte_at(&self) -> Option<Instant> {
        self.first_byte_at
    }

    /// Reads the body `response.framing` announces into `response.body`.
    /// `started` is when the wait began, for the timeout's message. On an
    /// error, the body so far is in `response.body` if it was chunked, and
    /// still in the connection's buffer otherwise (see [`Conn::read_received`]).
    pub fn read_body(
        &mut self,
        response: &mut Response,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), ClientError> {
        match response.framing {
            Framing::NoBody => {}
            Framing::ContentLength(length) => {
                let length = usize::try_from(length)
                    .ok()
                    .filter(|&l| l <= MAX_BODY)
                    .ok_or_else(|| too_long(Some(length), 0))?;
                while self.buf.len() < length {
                    if self.read_more(deadline, "response body", started)? == 0 {
                        return Err(ClientError::ClosedEarly {
                            received: self.buf.len(),
                        });
                    }
                }
                let body = self
                    .buf
                    .split_front(length)
                    .map_err(|exhausted| spent(exhausted, length))?;
                response.take_body(body);
            }
            Framing::UntilClose => {
                while self.read_more(deadline, "response body", started)? > 0 {
                    if self.buf.len() > MAX_BODY {
                        return Err(too_long(None, self.buf.len()));
                    }
                }
                response.take_body(self.take_buf());
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::keeping(self.budget);
                // Kept bodies are capped by the decoder itself, at MAX_BODY.
                let read = self.read_chunked(&mut decoder, deadline, started, u64::MAX);
                // Also on an error: the body so far is what came.
                response.take_body(std::mem::take(&mut decoder.body));
                response
                    .held
                    .absorb(std::mem::take(&mut decoder.trailers_held));
                response.trailers = std::mem::take(&mut decoder.trailers);
                read?;
            }
        }
        Ok(())
    }

    /// Reads past the body `response.framing` announces without keeping any
    /// of it, for callers that need only to know how it ended: bounded by
    /// `deadline` alone, since nothing is held (the response's head is all
    /// that is left of it).
    pub fn skip_body(
        &mut self,
        response: &Response,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), ClientError> {
        self.skip(response.framing, deadline, started, u64::MAX)
            .map(drop)
    }

    /// [`Conn::skip_body`], stopping once more than `at_most` bytes of the
    /// body came: `Ok(true)` when it ended, `Ok(false)` when it was cut.
    fn skip(
        &mut self,
        framing: Framing,
        deadline: Instant,
        started: Instant,
        at_most: u64,
    ) -> Result<bool, ClientError> {
        match framing {
            Framing::NoBody => Ok(true),
            Framing::ContentLength(length) => {
                let mut left = length;
                loop {
                    // `take` <= `buf.len()`, a usize, so the cast is lossless.
                    let take = left.min(self.buf.len() as u64) as usize;
                    self.buf.consume(take);
                    left -= take as u64;
                    if left == 0 {
                        return Ok(true);
                    }
                    if length - left > at_most {
                        return Ok(false);
                    }
                    if self.read_more(deadline, "response body", started)? == 0 {
                        return Err(ClientError::ClosedEarly {
                            received: usize::try_from(length - left).unwrap_or(usize::MAX),
                        });
                    }
                }
            }
            Framing::UntilClose => {
                let mut came = 0u64;
                loop {
                    came += self.buf.len() as u64;
                    self.buf.consume(self.buf.len());
                    if came > at_most {
                        return Ok(false);
                    }
                    if self.read_more(deadline, "response body", started)? == 0 {
                        return Ok(true);
                    }
                }
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::skipping();
                self.read_chunked(&mut decoder, deadline, started, at_most)
            }
        }
    }

    /// Feeds the buffer to `decoder`, reading more, until the chunked body
    /// ends (`Ok(true)`) or more than `at_most` bytes of chunk data came
    /// (`Ok(false)`). Consumed bytes are dropped at once, so the buffer never
    /// holds more than one read and a line ahead.
    fn read_chunked(
        &mut self,
        decoder: &mut ChunkedDecoder,
        deadline: Instant,
        started: Instant,
        at_most: u64,
    ) -> Result<bool, ClientError> {
        loop {
            let done = decoder.advance(&self.buf)?;
            self.buf.consume(decoder.pos);
            decoder.pos = 0;
            if done {
                return Ok(true);
            }
            if decoder.length as u64 > at_most {
                return Ok(false);
            }
            if self.read_more(deadline, "response body", started)? == 0 {
                return Err(ClientError::ClosedEarly {
                    received: decoder.length,
                });
            }
        }
    }

    /// Reads one response the way the cases judge it: what came is kept even
    /// when the body did not end. A body still arriving at `deadline`, one
    /// that ran into a size limit (its first [`KEPT_OF_TOO_LARGE`] bytes),
    /// or a close-framed body followed by `close_gap` of silence on a
    /// connection that stays open, gives the head and the body so far,
    /// marked incomplete; it is never parsed again as the start of a
    /// response. `None` on a clean close before the first byte, as
    /// [`Conn::read_response`].
    pub fn read_received(
        &mut self,
        deadline: Instant,
        head_request: bool,
        close_gap: Option<Duration>,
    ) -> Result<Option<Received>, ClientError> {
        let started = Instant::now();
        let Some(mut response) = self.read_head(deadline, head_request)? else {
            return Ok(None);
        };
        // Why the body is incomplete, and whether a size limit cut it.
        let incomplete = match response.framing {
            Framing::UntilClose => loop {
                if self.buf.len() > MAX_BODY {
                    break Some((too_long(None, self.buf.len()).to_string(), true));
                }
                let wait_until =
                    close_gap.map_or(deadline, |gap| (Instant::now() + gap).min(deadline));
                match self.read_more(wait_until, "response body", started) {
                    Ok(0) => break None,
                    Ok(_) => {}
                    Err(ClientError::Timeout { .. }) if Instant::now() < deadline => {
                        break Some((format!(
                            "framed by close, and the connection stayed open {} ms after the last byte",
                            close_gap.unwrap_or_default().as_millis()
                        ), false))
                    }
                    Err(ClientError::Timeout { after, .. }) => {
                        break Some((format!(
                            "framed by close, and no end of file after {:.2}s",
                            after.as_secs_f64()
                        ), false))
                    }
                    Err(error @ ClientError::TooLarge { .. }) => break Some((error.to_string(), true)),
                    Err(error) => return Err(error),
                }
            },
            _ => match self.read_body(&mut response, deadline, started) {
                Ok(()) => None,
                Err(ClientError::Timeout { after, .. }) => Some((
                    format!(
                        "the body did not end within {:.2}s ({} bytes came)",
                        after.as_secs_f64(),
                        response.body.len() + self.buf.len()
                    ),
                    false,
                )),
                Err(error @ ClientError::TooLarge { .. }) => Some((error.to_string(), true)),
                Err(error) => return Err(error),
            },
        };
        if incomplete.is_some() && response.framing == Framing::Chunked {
            // The body so far is in the response; what is left is chunk
            // framing, which must not be read as a response.
            self.buf.release();
        } else if response.framing == Framing::UntilClose || incomplete.is_some() {
            // What came of the body is all there will be on this connection.
            response.take_body(self.take_buf());
        }
        let too_large = incomplete.as_ref().is_some_and(|(_, too_large)| *too_large);
        if too_large {
            response.keep_body_start(KEPT_OF_TOO_LARGE);
        }
        Ok(Some(Received {
            response,
            incomplete: incomplete.map(|(why, _)| why),
            too_large,
        }))
    }

    /// Reads a response the way the load of the process checks does: it is
    /// answered once its head has arrived. The body is then read past as
    /// framed, without being kept, but only until `body_deadline`, and a
    /// body framed by close is taken as ended after `IDLE_GAP` of silence: a
    /// server that keeps the connection open after its response is
    /// `fds/close-eof`'s finding, not a reason to count the request as
    /// unanswered in every other check.
    pub fn read_answer(
        &mut self,
        head_deadline: Instant,
        body_wait: Duration,
    ) -> Result<Option<Answer>, ClientError> {
        let Some(response) = self.read_head(head_deadline, false)? else {
            return Ok(None);
        };
        let head_at = Instant::now();
        let first_byte_at = self.first_byte_at.unwrap_or(head_at);
        let body_deadline = head_at + body_wait;
        let body = match response.framing {
            Framing::UntilClose => self.drain_until_close(body_deadline),
            _ => match self.skip(response.framing, body_deadline, head_at, ANSWER_BODY_LIMIT) {
                Ok(true) => BodyEnd::Complete(Instant::now()),
                Ok(false) => BodyEnd::TooLong,
                Err(ClientError::Timeout { .. }) => BodyEnd::TimedOut,
                Err(error) => BodyEnd::Broken(error.to_string()),
            },
        };
        Ok(Some(Answer {
            status: response.status,
            framing: response.framing,
            first_byte_at,
            head_at,
            body,
        }))
    }

    /// Reads a close-delimited body until end of file, `IDLE_GAP` without a
    /// byte, [`ANSWER_BODY_LIMIT`] bytes, or `deadline`. Nothing of it is kept.
    fn drain_until_close(&mut self, deadline: Instant) -> BodyEnd {
        let mut came = self.buf.len() as u64;
        self.buf.consume(self.buf.len());
        loop {
            if came > ANSWER_BODY_LIMIT {
                return BodyEnd::TooLong;
            }
            let gap = (Instant::now() + IDLE_GAP).min(deadline);
            match self.read_more(gap, "response body", Instant::now()) {
                Ok(0) => return BodyEnd::Closed(Instant::now()),
                Ok(n) => {
                    came += n as u64;
                    self.buf.consume(self.buf.len());
                }
                Err(ClientError::Timeout { .. }) if Instant::now() < deadline => {
                    return BodyEnd::StillOpen
                }
                Err(ClientError::Timeout { .. }) => return BodyEnd::TimedOut,
                Err(error) => return BodyEnd::Broken(error.to_string()),
            }
        }
    }

    /// Waits for the server to close the connection. `Ok(true)`: end of file
    /// seen; `Ok(false)`: `deadline` passed first. Bytes arriving meanwhile
    /// are kept in [`Conn::leftover`], the first `MAX_STRAY` of them as far
    /// as the budget allows; the rest are read and dropped. A reset is
    /// `Err(Reset)`.
    pub fn wait_eof(&mut self, deadline: Instant) -> Result<bool, ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|source| ClientError::Read { source })?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    let room = MAX_STRAY.saturating_sub(self.buf.len()).min(n);
                    // Stray bytes are evidence only: when the budget has no
                    // room for them, they are dropped, not a failure.
                    let _ = self.buf.extend(&chunk[..room]);
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_reset(&e) => return Err(ClientError::Reset),
                Err(source) => return Err(ClientError::Read { source }),
            }
        }
    }
}

/// Tokenises a response head with httparse. `Ok(None)`: incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Response, usize)>, ClientError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(malformed(format!("invalid response head: {e}"))),
    };
    // httparse fills these on Complete; a None would mean an httparse bug, reported, not panicked on.
    let (Some(minor), Some(status)) = (parsed.version, parsed.code) else {
        return Err(malformed("status line without version or code"));
    };
    let response = Response {
        version: format!("HTTP/1.{minor}"),
        status,
        reason: parsed.reason.unwrap_or("").to_string(),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
        trailers: Vec::new(),
        framing: Framing::NoBody,
        head_raw: Vec::new(),
        held: Reservation::default(),
    };
    Ok(Some((response, head_len)))
}

/// Applies RFC 9112 §6.3 to a parsed head.
fn framing_of(response: &Response, head_request: bool) -> Result<Framing, ClientError> {
    let status = response.status;
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::NoBody);
    }
    let codings: Vec<String> = response
        .header_all("transfer-encoding")
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    if !response.header_all("transfer-encoding").is_empty() {
        // §6.3 rule 4: chunked last means chunked; otherwise read until close.
        return Ok(if codings.last().map(String::as_str) == Some("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let lengths = response.header_all("content-length");
    if lengths.is_empty() {
        return Ok(Framing::UntilClose);
    }
    // §6.3 rule 5: several values (fields or a list) must all be the same valid number.
    let mut value: Option<u64> = None;
    for field in lengths {
        for item in field.split(|&b| b == b',') {
            let item = item.trim_ascii();
            let text = String::from_utf8_lossy(item);
            if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
                return Err(malformed(format!("invalid Content-Length {text:?}")));
            }
            let n: u64 = text
                .parse()
                .map_err(|_| malformed(format!("invalid Content-Length {text:?}")))?;
            match value {
                Some(previous) if previous != n => {
                    return Err(malformed(format!(
                        "conflicting Content-Length values {previous} and {n}"
                    )))
                }
                _ => value = Some(n),
            }
        }
    }
    // `lengths` is non-empty and every item either set `value` or returned.
    Ok(value.map_or(Framing::UntilClose, Framing::ContentLength))
}

/// Where the chunked decoder is in RFC 9112 §7.1:
/// `chunked-body = *chunk last-chunk trailer-section CRLF`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting `chunk-size [ chunk-ext ] CRLF`.
    #[default]
    Size,
    /// Inside `chunk-data`, this many bytes to go.
    Data(u64),
    /// Expecting the CRLF after `chunk-data`.
    DataEnd,
    /// Inside the trailer section: `*( field-line CRLF ) CRLF`.
    Trailers,
    /// The final CRLF was read.
    Done,
}

/// Incremental decoder over a growing buffer: `advance` consumes what it can
/// from `buf[pos..]` and tells whether the body is complete.
#[derive(Debug, Default)]
struct ChunkedDecoder {
    pos: usize,
    state: ChunkState,
    /// Whether the chunk data is kept in `body` (and capped at
    /// [`MAX_BODY`]), or only counted.
    keep: bool,
    /// The chunk data so far, when kept.
    body: HeldBuf,
    /// Bytes of chunk data so far, kept or not.
    length: usize,
    trailers: Vec<(String, Vec<u8>)>,
    trailer_bytes: usize,
    /// What the trailers hold of the budget.
    trailers_held: Reservation,
}

impl ChunkedDecoder {
    /// A decoder that keeps the body, charged to `budget`, for [`Conn::read_body`].
    fn keeping(budget: &'static Budget) -> ChunkedDecoder {
        ChunkedDecoder {
            keep: true,
            body: HeldBuf::new(budget),
            trailers_held: Reservation::new(budget),
            ..ChunkedDecoder::default()
        }
    }

    /// A decoder that only reads past the body, for [`Conn::skip_body`].
    fn skipping() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    fn advance(&mut self, buf: &[u8]) -> Result<bool, ClientError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) =
                        take_line(buf, &mut self.pos, "chunk-size line").map_err(malformed)?
                    else {
                        return Ok(false);
                    };
                    let size = parse_chunk_size(line).map_err(malformed)?;
                    if self.keep && size > (MAX_BODY - self.length) as u64 {
                        // Said before any of it is read: nothing is buffered for it.
                        return Err(too_long(
                            Some((self.length as u64).saturating_add(size)),
                            self.length,
                        ));
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    let available = buf.len() - self.pos;
                    if available == 0 {
                        return Ok(false);
                    }
                    // `take` <= `available`, a usize, so the cast is lossless.
                    let take = remaining.min(available as u64) as usize;
                    if self.keep {
                        self.body
                            .extend(&buf[self.pos..self.pos + take])
                            .map_err(|exhausted| spent(exhausted, self.length))?;
                    }
                    self.length = self.length.saturating_add(take);
                    self.pos += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if buf.len() - self.pos < 2 {
                        return Ok(false);
                    }
                    if &buf[self.pos..self.pos + 2] != b"\r\n" {
                        return Err(malformed(
                            "chunk-data is not followed by CRLF (chunk longer than its size?)",
                        ));
                    }
                    self.pos += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) =
                        take_line(buf, &mut self.pos, "trailer line").map_err(malformed)?
                    else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                        continue;
                    }
                    self.trailer_bytes += line.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(malformed(format!(
                            "trailer section exceeds {MAX_TRAILERS} bytes"
                        )));
                    }
                    let field = parse_trailer_field(line).map_err(malformed)?;
                    if self.keep {
                        self.trailers_held
                            .grow(line.len())
                            .map_err(|exhausted| spent(exhausted, self.length))?;
                        self.trailers.push(field);
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
    }
}

/// The next CRLF-terminated line of `buf` from `*pos`, without the CRLF, or
/// `None` if it is not complete yet. A bare LF is an error: RFC 9112 §7.1 has
/// CRLF here and this client checks servers, it does not forgive them.
fn take_line<'b>(buf: &'b [u8], pos: &mut usize, what: &str) -> Result<Option<&'b [u8]>, String> {
    let rest = &buf[*pos..];
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        if rest.len() > MAX_CHUNK_LINE {
            return Err(format!("{what} longer than {MAX_CHUNK_LINE} bytes"));
        }
        return Ok(None);
    };
    if lf > MAX_CHUNK_LINE {
        return Err(format!("{what} longer than {MAX_CHUNK_LINE} bytes"));
    }
    if lf == 0 || rest[lf - 1] != b'\r' {
        return Err(format!("{what} ends in a bare LF instead of CRLF"));
    }
    *pos += lf + 1;
    Ok(Some(&rest[..lf - 1]))
}

/// `chunk-size = 1*HEXDIG`, then optional `BWS ";" chunk-ext`, which is
/// ignored (RFC 9112 §7.1.1: unrecognised extensions MUST be ignored).
fn parse_chunk_size(line: &[u8]) -> Result<u64, String> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let shown = String::from_utf8_lossy(line);
    if digits == 0 {
        return Err(format!(
            "chunk size {shown:?} does not start with a hex digit"
        ));
    }
    // 16 hex digits fill a u64; leading zeros beyond that are pointless but legal.
    let significant = line[..digits].iter().skip_while(|&&b| b == b'0').count();
    if significant > 16 {
        return Err(format!("chunk size {shown:?} does not fit in 64 bits"));
    }
    let hex = String::from_utf8_lossy(&line[..digits]);
    let size = u64::from_str_radix(&hex, 16).map_err(|e| format!("chunk size {shown:?}: {e}"))?;
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(format!("unexpected bytes after chunk size in {shown:?}"));
    }
    Ok(size)
}

/// `field-line = field-name ":" OWS field-value OWS` in a trailer section.
fn parse_trailer_field(line: &[u8]) -> Result<(String, Vec<u8>), String> {
    let shown = String::from_utf8_lossy(line);
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| format!("trailer field {shown:?} has no ':'"))?;
    let name = &line[..colon];
    // field-name = token (RFC 9110 §5.1).
    let is_tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if name.is_empty() || !name.iter().all(is_tchar) {
        return Err(format!("trailer field {shown:?} has an invalid name"));
    }
    let value = line[colon + 1..].trim_ascii();
    Ok((String::from_utf8_lossy(name).into_owned(), value.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget;
    use std::net::TcpListener;
    use std::os::fd::AsFd;
    use std::thread::{self, JoinHandle};

    /// What the canned server does after reading the request.
    #[derive(Clone, Copy)]
    enum Then {
        /// Close normally (FIN).
        Close,
        /// Close with RST (SO_LINGER 0).
        Reset,
        /// Keep the connection open until the client closes it (bounded).
        Hold,
    }

    /// A one-connection server on 127.0.0.1:0: reads one request head, writes
    /// `reply`, then does `then`. The thread ends on its own within seconds.
    fn canned(reply: &'static [u8], then: Then) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut request = Vec::new();
            let mut byte = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
                match stream.read(&mut byte) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&byte[..n]),
                }
            }
            let _ = stream.write_all(reply);
            match then {
                Then::Close => {}
                Then::Reset => {
                    let linger = nix::libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    let _ = nix::sys::socket::setsockopt(
                        &stream.as_fd(),
                        nix::sys::socket::sockopt::Linger,
                        &linger,
                    );
                }
                Then::Hold => {
                    // Returns when the client closes, or after the 10 s read timeout.
                    let _ = stream.read(&mut byte);
                }
            }
        });
        (addr, handle)
    }

    const T: Duration = Duration::from_secs(10);

    /// The tutorial's answer: bare LF, no Content-Length, body until close.
    const TUTORIAL: &[u8] = b"HTTP/1.1 200 OK\n\nHello, World!";

    /// A connection to `addr` that has sent `request`.
    fn sent(addr: SocketAddr, request: &[u8]) -> Conn {
        let mut conn = Conn::connect(addr, T).expect("connect");
        conn.send(request).expect("send");
        conn
    }

    /// The next response on `conn`, within `T`.
    fn next_response(conn: &mut Conn, head: bool) -> Response {
        conn.read_response(Instant::now() + T, head)
            .expect("read")
            .expect("some")
    }

    /// A GET to a canned server, read with [`Conn::read_received`]: what
    /// came, and what was left over in the buffer.
    fn receive(
        reply: &'static [u8],
        then: Then,
        wait: Duration,
        gap: Option<Duration>,
    ) -> (Received, Vec<u8>) {
        let (addr, h) = canned(reply, then);
        let mut conn = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let received = conn
            .read_received(Instant::now() + wait, false, gap)
            .expect("read")
            .expect("a response");
        let leftover = conn.leftover().to_vec();
        drop(conn);
        h.join().expect("server thread");
        (received, leftover)
    }

    #[test]
    fn a_close_framed_body_on_a_held_connection_is_kept_incomplete_not_reparsed() {
        let gap = Some(Duration::from_millis(100));
        let (received, leftover) = receive(TUTORIAL, Then::Hold, T, gap);
        assert_eq!(received.response.status, 200);
        assert_eq!(received.response.body, b"Hello, World!");
        let why = received.incomplete.expect("the body never ended");
        assert!(why.contains("stayed open"), "{why}");
        // Nothing is left over to be read as the start of another response.
        assert!(leftover.is_empty());
    }

    #[test]
    fn a_body_cut_by_the_deadline_is_kept_with_what_came() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this";
        let (received, _) = receive(reply, Then::Hold, Duration::from_millis(300), None);
        assert_eq!(received.response.body, b"only this");
        let why = received.incomplete.expect("incomplete");
        assert!(why.contains("did not end"), "{why}");
    }

    #[test]
    fn a_close_framed_body_that_ends_with_the_connection_is_complete() {
        let gap = Some(Duration::from_millis(100));
        let (received, _) = receive(TUTORIAL, Then::Close, T, gap);
        assert_eq!(received.response.body, b"Hello, World!");
        assert_eq!(received.incomplete, None);
    }

    #[test]
    fn content_length_body() {
        let (addr, h) = canned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
            Then::Hold,
        );
        let mut conn = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = next_response(&mut conn, false);
        assert_eq!(
            (resp.version.as_str(), resp.status, resp.reason.as_str()),
            ("HTTP/1.1", 200, "OK")
        );
        assert_eq!(resp.body, b"hello");
        assert_eq!(resp.framing, Framing::ContentLength(5));
        assert_eq!(resp.header("content-LENGTH"), Some(&b"5"[..]));
        assert_eq!(resp.header_str("x-a").as_deref(), Some("1"));
        assert!(resp.head_raw.ends_with(b"\r\n\r\n"));
        drop(conn);
        h.join().expect("server thread");
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let (addr, h) = canned(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=value;flag\r\nhello\r\n\
              7 ; ext=\"quoted\"\r\n, world\r\n\
              0\r\nX-Checksum: abc\r\nX-Other:  spaced \r\n\r\n",
            Then::Close,
        );
        let resp = get(addr, "/", T).expect("get");
        assert_eq!(resp.body, b"hello, world");
        assert_eq!(resp.framing, Framing::Chunked);
        assert_eq!(
            resp.trailers,
            vec![
                ("X-Checksum".into(), b"abc".to_vec()),
                ("X-Other".into(), b"spaced".to_vec())
            ]
        );
        h.join().expect("server thread");
    }

    #[test]
    fn chunked_decoder_works_byte_by_byte() {
        let wire =
            b"4\r\nWiki\r\n5;x=y\r\npedia\r\n000E\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\nNEXT";
        let mut decoder = ChunkedDecoder::keeping(&RESPONSES);
        let mut done = false;
        for end in 0..=wire.len() {
            if decoder.advance(&wire[..end]).expect("valid") {
                done = true;
                break;
            }
        }
        assert!(done);
        assert_eq!(decoder.body.as_slice(), b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(decoder.trailers, vec![("T".to_string(), b"v".to_vec())]);
        assert_eq!(&wire[decoder.pos..], b"NEXT");
    }

    #[test]
    fn chunked_framing_errors_are_malformed() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhello!\r\n",
            b"5\nhello\r\n",
            b"5 junk\r\n",
            b"11111111111111111\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
        ] {
            let mut decoder = ChunkedDecoder::keeping(&RESPONSES);
            assert!(
                decoder.advance(wire).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn read_until_close_body() {
        let (addr, h) = canned(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it",
            Then::Close,
        );
        let resp = get(addr, "/", T).expect("get");
        assert_eq!(resp.version, "HTTP/1.0");
        assert_eq!(resp.framing, Framing::UntilClose);
        assert_eq!(resp.body, b"all of it");
        h.join().expect("server thread");
    }

    #[test]
    fn head_response_has_no_body_and_the_connection_stays_usable() {
        let (addr, h) = canned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            Then::Hold,
        );
        let mut conn = sent(addr, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = next_response(&mut conn, true);
        assert_eq!(resp.framing, Framing::NoBody);
        assert!(resp.body.is_empty());
        let next = next_response(&mut conn, false);
        assert_eq!(next.status, 204);
        drop(conn);
        h.join().expect("server thread");
    }

    #[test]
    fn interim_100_continue_then_final_200() {
        let reply: &'static [u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, h) = canned(reply, Then::Hold);
        let mut conn = sent(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        );
        let interim = next_response(&mut conn, false);
        assert_eq!(interim.status, 100);
        let last = next_response(&mut conn, false);
        assert_eq!((last.status, last.body.as_slice()), (200, &b"ok"[..]));
        drop(conn);
        h.join().expect("server thread");

        let (addr, h) = canned(reply, Then::Close);
        let resp = get(addr, "/", T).expect("get skips 1xx");
        assert_eq!(resp.status, 200);
        h.join().expect("server thread");
    }

    #[test]
    fn reset_is_reported_as_reset() {
        let (addr, h) = canned(b"", Then::Reset);
        let err = get(addr, "/", T).expect_err("reset");
        assert!(matches!(err, ClientError::Reset), "{err:?}");
        h.join().expect("server thread");
    }

    #[test]
    fn deadline_is_reported_as_timeout() {
        let (addr, h) = canned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            Then::Hold,
        );
        let mut conn = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let err = conn
            .read_response(Instant::now() + Duration::from_millis(200), false)
            .expect_err("timeout");
        assert!(
            matches!(
                err,
                ClientError::Timeout {
                    what: "response body",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!conn
            .wait_eof(Instant::now() + Duration::from_millis(50))
            .expect("no reset"));
        drop(conn);
        h.join().expect("server thread");
    }

    #[test]
    fn close_in_the_middle_is_closed_early_and_clean_close_is_none() {
        let (addr, h) = canned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            Then::Close,
        );
        let err = get(addr, "/", T).expect_err("truncated");
        assert!(
            matches!(err, ClientError::ClosedEarly { received: 5 }),
            "{err:?}"
        );
        h.join().expect("server thread");

        let (addr, h) = canned(b"", Then::Close);
        let mut conn = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(conn
            .read_response(Instant::now() + T, false)
            .expect("clean close")
            .is_none());
        assert!(conn.wait_eof(Instant::now() + T).expect("eof"));
        h.join().expect("server thread");
    }

    #[test]
    fn content_length_rules() {
        let head = |headers: &[(&str, &str)]| Response {
            version: "HTTP/1.1".into(),
            status: 200,
            reason: "OK".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: Vec::new(),
            trailers: Vec::new(),
            framing: Framing::NoBody,
            head_raw: Vec::new(),
            held: Reservation::default(),
        };
        let framing = |headers: &[(&str, &str)]| framing_of(&head(headers), false);
        assert_eq!(
            framing(&[("Content-Length", "7")]).ok(),
            Some(Framing::ContentLength(7))
        );
        assert_eq!(
            framing(&[("Content-Length", "7, 7"), ("content-length", "7")]).ok(),
            Some(Framing::ContentLength(7))
        );
        assert!(framing(&[("Content-Length", "7"), ("Content-Length", "8")]).is_err());
        assert!(framing(&[("Content-Length", "-1")]).is_err());
        assert!(framing(&[("Content-Length", "+1")]).is_err());
        assert!(framing(&[("Content-Length", "")]).is_err());
        assert_eq!(
            framing(&[
                ("Transfer-Encoding", "gzip, chunked"),
                ("Content-Length", "3")
            ])
            .ok(),
            Some(Framing::Chunked)
        );
        assert_eq!(
            framing(&[("Transfer-Encoding", "chunked, gzip")]).ok(),
            Some(Framing::UntilClose)
        );
        assert_eq!(framing(&[]).ok(), Some(Framing::UntilClose));
        let mut not_modified = head(&[("Content-Length", "7")]);
        not_modified.status = 304;
        assert_eq!(framing_of(&not_modified, false).ok(), Some(Framing::NoBody));
    }

    #[test]
    fn an_oversized_content_length_is_too_large_before_any_of_it_is_read() {
        let (addr, h) = canned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            Then::Close,
        );
        let err = get(addr, "/", T).expect_err("too big");
        assert!(
            matches!(
                err,
                ClientError::TooLarge {
                    limit: SizeLimit::Body {
                        announced: Some(99999999999)
                    },
                    received: 0
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("response too large"), "{err}");
        h.join().expect("server thread");
    }

    /// A budget of its own for a test: what it holds is this test's alone.
    fn own_budget(small: usize, large: usize) -> &'static Budget {
        Box::leak(Box::new(Budget::new(small, large)))
    }

    /// A reply of `head` and then `body_len` bytes of `x`, chunked in 64 KiB
    /// chunks (without a last one) when `chunked`; leaked, for [`canned`].
    fn big_reply(head: &str, body_len: usize, chunked: bool) -> &'static [u8] {
        let mut reply = head.as_bytes().to_vec();
        let block = vec![b'x'; 64 * 1024];
        while reply.len() < head.len() + body_len {
            if chunked {
                reply.extend_from_slice(format!("{:x}\r\n", block.len()).as_bytes());
                reply.extend_from_slice(&block);
                reply.extend_from_slice(b"\r\n");
            } else {
                reply.extend_from_slice(&block);
            }
        }
        Box::leak(reply.into_boxed_slice())
    }

    #[rstest::rstest]
    #[case::by_close("HTTP/1.1 200 OK\r\n\r\n", false)]
    #[case::chunked("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true)]
    #[case::by_length("HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n", false)]
    fn a_body_past_the_budget_is_kept_incomplete_with_its_start(
        #[case] head: &str,
        #[case] chunked: bool,
    ) {
        let budget = own_budget(budget::SMALL_SHARE, (2 << 20) - budget::SMALL_SHARE);
        let (addr, h) = canned(big_reply(head, 4 << 20, chunked), Then::Hold);
        let mut conn = Conn::connect_against(addr, T, budget).expect("connect");
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let received = conn
            .read_received(Instant::now() + T, false, None)
            .expect("the head came")
            .expect("a response");
        assert_eq!(received.response.status, 200);
        let why = received.incomplete.as_deref().expect("incomplete");
        assert!(
            why.starts_with(
                "response too large: the harness holds at most 2 MiB of responses at once"
            ),
            "{why}"
        );
        assert!(received.too_large);
        assert_eq!(received.response.body.len(), KEPT_OF_TOO_LARGE);
        assert!(budget.in_use() <= budget.limit());
        // Nothing of the cut body is left to be read as a response.
        assert!(conn.leftover().is_empty());
        drop((conn, received));
        assert_eq!(budget.in_use(), 0, "all given back");
        h.join().expect("server thread");
    }

    #[test]
    fn a_chunk_past_the_cap_is_too_large_before_any_of_it_is_read() {
        let (addr, h) = canned(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5000000\r\n",
            Then::Hold,
        );
        let mut conn = sent(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let received = conn
            .read_received(Instant::now() + T, false, None)
            .expect("the head came")
            .expect("a response");
        assert_eq!(
            received.incomplete.as_deref(),
            Some(
                "response too large: the harness keeps at most 64 MiB of one response's body \
                 (83886080 bytes announced)"
            )
        );
        drop(conn);
        h.join().expect("server thread");
    }

    #[rstest::rstest]
    #[case::by_close("HTTP/1.1 200 OK\r\n\r\n", false)]
    #[case::chunked("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true)]
    #[case::by_length("HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n", false)]
    fn the_load_reads_past_a_long_body_without_keeping_it(
        #[case] head: &str,
        #[case] chunked: bool,
    ) {
        // No large share at all: keeping the body would fail at once.
        let budget = own_budget(budget::SMALL_SHARE, 0);
        let (addr, h) = canned(big_reply(head, 4 << 20, chunked), Then::Hold);
        let mut conn = Conn::connect_against(addr, T, budget).expect("connect");
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let answer = conn
            .read_answer(Instant::now() + T, T)
            .expect("answered")
            .expect("a response");
        assert_eq!((answer.status, answer.body), (200, BodyEnd::TooLong));
        assert!(budget.in_use() <= 64 * 1024, "{}", budget.in_use());
        drop(conn);
        h.join().expect("server thread");
    }

    #[test]
    fn stray_bytes_past_a_spent_budget_are_dropped_not_an_error() {
        let budget = own_budget(budget::SMALL_SHARE, 0);
        // Someone else holds the whole budget.
        let mut hog = Reservation::new(budget);
        hog.resize(budget.limit()).expect("all of it");
        let (addr, h) = canned(big_reply("", 1 << 20, false), Then::Close);
        let mut conn = Conn::connect_against(addr, T, budget).expect("connect");
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        assert!(conn.wait_eof(Instant::now() + T).expect("no error"));
        assert!(conn.leftover().is_empty());
        drop(conn);
        h.join().expect("server thread");
    }

    #[test]
    fn connect_refused_is_connect_error() {
        // Bind then drop to get a port that is (almost certainly) closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr");
        let err = get(addr, "/", T).expect_err("refused");
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    }
}
