//! One client connection, served start to finish: read a request, call the
//! application, write the response, and repeat while the connection persists.
//!
//! In the clean server this runs in a forked child; under the `iterative`
//! fault the parent runs it itself. Three things protect the process from its
//! client: a deadline for each request (a silent client gets 408 instead of
//! holding the child forever), a send timeout (a client that stops reading
//! cannot block a write forever), and checked writes (a vanished client is an
//! EPIPE error, not a SIGPIPE).

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, ppoll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{shutdown, Shutdown};
use nix::sys::time::TimeSpec;

use crate::config::Config;
use crate::framing::{BodyFraming, ChunkedDecoder};
use crate::gateway::{App, Body, Environ, Response};
use crate::grammar::{Rejection, Version};
use crate::parse::{parse_head, Parsed, RequestHead, Target};
use crate::response::{reason, write_head, Persistence};
use crate::signals::{self, shutdown_requested};

/// Bytes asked of each read(2). Small on purpose: every page a forked child
/// touches costs a page fault, and most requests fit in one.
const READ_CHUNK: usize = 4 * 1024;
/// Bodies up to this size are written together with the head, in one write;
/// larger ones are written from where they are.
const COALESCE_BODY: usize = 64 * 1024;
/// What the `single-read` fault reads, once: the classic `recv(1024)`.
const SINGLE_READ: usize = 1024;
/// How long, at most, we drain a client's input after an error response.
const LINGER: Duration = Duration::from_secs(1);

/// Why the connection stops without a response of ours.
#[derive(Debug)]
enum Stop {
    /// The client closed, or the read deadline passed while idle.
    Quiet,
    /// The request broke a rule: answer with its status and close.
    Reject(Rejection),
    /// The socket failed (reset, timeout on write): just close.
    Broken,
}

impl From<Rejection> for Stop {
    fn from(rejection: Rejection) -> Stop {
        Stop::Reject(rejection)
    }
}

/// The state of one connection.
struct Connection<'a> {
    /// The client socket; closed when the connection is dropped.
    fd: OwnedFd,
    /// Bytes received and not yet consumed: the start of the next request,
    /// or pipelined requests behind it.
    buf: Vec<u8>,
    /// Server settings, for limits, timeouts and faults.
    config: &'a Config,
    /// The address the client connected to (SERVER_NAME/SERVER_PORT).
    local: SocketAddr,
    /// The client's address (REMOTE_ADDR).
    peer: SocketAddr,
    /// Responses sent so far on this connection.
    served: usize,
    /// Reads done so far, for the `single-read` fault.
    reads: usize,
    /// Whether the request being handled is a HEAD, whose responses, error
    /// responses included, carry no body (RFC 9110 §9.3.2).
    head_request: bool,
}

/// Serves every request on `fd`, a connection from `peer`, until it ends.
///
/// The socket already has `TCP_NODELAY` and a send timeout: it inherited
/// them from the listener ([`crate::listener::Listener::set_client_options`]).
pub fn serve(fd: OwnedFd, config: &Config, local: SocketAddr, peer: SocketAddr, app: &dyn App) {
    let mut connection = Connection {
        fd,
        buf: Vec::with_capacity(READ_CHUNK),
        config,
        local,
        peer,
        served: 0,
        reads: 0,
        head_request: false,
    };
    connection.run(app);
}

impl Connection<'_> {
    fn run(&mut self, app: &dyn App) {
        loop {
            match self.exchange(app) {
                Ok(true) => continue,
                Ok(false) | Err(Stop::Quiet) | Err(Stop::Broken) => return,
                Err(Stop::Reject(rejection)) => {
                    self.reject(rejection);
                    return;
                }
            }
        }
    }

    /// One request and its response. Ok(true) when the connection persists.
    fn exchange(&mut self, app: &dyn App) -> Result<bool, Stop> {
        // The client has read_timeout to deliver the whole request.
        let deadline = Instant::now() + self.config.read_timeout;
        self.head_request = false;
        let head = self.read_head(deadline)?;
        self.head_request = head.method == "HEAD";

        let single_read = !self.config.faults.reads_until_complete();
        let persistence = if !head.keep_alive || single_read {
            Persistence::Close
        } else if head.version == Version::Http10 {
            Persistence::KeepAlive
        } else {
            Persistence::Implicit
        };

        let response = match &head.target {
            // §3.2.4: OPTIONS * asks about the server itself, not a resource.
            Target::Asterisk => {
                Response::text(200, "").with_header("Allow", "GET, HEAD, POST, OPTIONS")
            }
            // We are an origin server, not a proxy: no tunnels.
            Target::Authority(_) => {
                return Err(Rejection::new(
                    501,
                    "CONNECT is not implemented by an origin server (RFC 9110 §9.3.6)",
                )
                .into())
            }
            Target::Origin { .. } | Target::Absolute { .. } => {
                let body = self.read_body(&head, deadline)?;
                let environ =
                    Environ::new(&head, body.as_ref().map(Vec::len), self.local, self.peer);
                app.call(&environ, body.as_deref().unwrap_or_default())
            }
        };
        // Shutting down: this request is finished, the connection is not.
        let persistence = if persistence != Persistence::Close && signals::shutdown_asked() {
            Persistence::Close
        } else {
            persistence
        };
        self.respond(&response, persistence, head.method == "HEAD")?;
        self.served += 1;
        Ok(persistence != Persistence::Close)
    }

    /// Reads until a complete request head is buffered, and takes it.
    fn read_head(&mut self, deadline: Instant) -> Result<RequestHead, Stop> {
        loop {
            if !self.buf.is_empty() {
                if self.config.faults.parses_request_line_naively() {
                    naive_request_line(&self.buf);
                }
                if let Parsed::Complete(head) = parse_head(&self.buf, self.config.max_body)? {
                    self.buf.drain(..head.len);
                    return Ok(head);
                }
            }
            if !self.config.faults.reads_until_complete() && self.reads > 0 {
                // The classic bug: whatever one recv(1024) returned is taken
                // as the whole request.
                return Err(Rejection::bad_request(
                    "request did not arrive in a single read (single-read fault)",
                )
                .into());
            }
            // Between requests (nothing of the next one has come), a
            // shutdown closes the connection at once; a request that has
            // begun is read to its end and answered.
            match self.read_more(deadline, self.buf.is_empty()) {
                Ok(0) => return Err(Stop::Quiet),
                Ok(_) => continue,
                Err(Errno::EINTR) => return Err(Stop::Quiet),
                // An idle persistent connection is closed quietly (RFC 9112
                // §9.5); a client that started a request, or never sent one,
                // learns why with 408.
                Err(Errno::ETIMEDOUT) if self.buf.is_empty() && self.served > 0 => {
                    return Err(Stop::Quiet)
                }
                Err(Errno::ETIMEDOUT) => {
                    return Err(Rejection::new(
                        408,
                        "request not received within the read timeout",
                    )
                    .into());
                }
                Err(_) => return Err(Stop::Broken),
            }
        }
    }

    /// Reads the body the head announced, decoded. `None` when there is none.
    fn read_body(
        &mut self,
        head: &RequestHead,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, Stop> {
        let single_read = !self.config.faults.reads_until_complete();
        if head.expect_continue && head.framing != BodyFraming::None && self.buf.is_empty() {
            // RFC 9110 §10.1.1: the client waits for this before sending.
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        match head.framing {
            BodyFraming::None => Ok(None),
            BodyFraming::Length(length) => {
                // framing.rs capped the length at max_body, which fits in memory.
                let length = usize::try_from(length).unwrap_or(usize::MAX);
                let take = length.min(self.buf.len());
                if single_read || take == length {
                    return Ok(Some(self.buf.drain(..take).collect()));
                }
                // The rest is read straight into a body of exactly its size:
                // growing the connection's buffer to hold it would leave the
                // child with twice the body (and the buffer's doubling).
                // (Zeroed pages come from the kernel: untouched, they cost
                // nothing until the body is written into them.)
                let mut body = vec![0; length];
                body[..take].copy_from_slice(&self.buf[..take]);
                self.buf.drain(..take);
                self.buf.shrink_to(READ_CHUNK);
                let mut filled = take;
                while filled < length {
                    filled += self.read_body_into(&mut body[filled..], deadline)?;
                }
                Ok(Some(body))
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(self.config.max_body);
                let mut body = Vec::new();
                loop {
                    let done = decoder.advance(&self.buf, &mut body)?;
                    // Decoded input is dropped at once: the raw bytes a
                    // child holds stay within one chunk line and one read.
                    self.buf.drain(..decoder.take_consumed());
                    if done {
                        break;
                    }
                    if single_read {
                        return Err(Rejection::bad_request(
                            "chunked body did not arrive in a single read (single-read fault)",
                        )
                        .into());
                    }
                    self.read_body_bytes(deadline)?;
                }
                Ok(Some(body))
            }
        }
    }

    /// One read into `dest`, the part of a Content-Length body still to
    /// come; how many bytes it got.
    fn read_body_into(&mut self, dest: &mut [u8], deadline: Instant) -> Result<usize, Stop> {
        let read = self.wait_readable(deadline).and_then(|()| loop {
            match nix::unistd::read(self.fd.as_raw_fd(), dest) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        });
        match read {
            Ok(0) => Err(Stop::Quiet),
            Ok(n) => {
                self.reads += 1;
                Ok(n)
            }
            Err(Errno::ETIMEDOUT) => {
                Err(Rejection::new(408, "request body not received within the read timeout").into())
            }
            Err(_) => Err(Stop::Broken),
        }
    }

    /// One more read while a body is incomplete.
    fn read_body_bytes(&mut self, deadline: Instant) -> Result<(), Stop> {
        match self.read_more(deadline, false) {
            Ok(0) => Err(Stop::Quiet),
            Ok(_) => Ok(()),
            Err(Errno::ETIMEDOUT) => {
                Err(Rejection::new(408, "request body not received within the read timeout").into())
            }
            Err(_) => Err(Stop::Broken),
        }
    }

    /// Waits (until `deadline`) for input and appends one read's worth to the
    /// buffer. Returns the bytes read, 0 at end of stream; ETIMEDOUT when the
    /// deadline passes; EINTR only when `idle` and a shutdown was asked for.
    /// Any other EINTR is retried: a signal is not an error.
    ///
    /// In a child the shutdown signals are blocked except while it waits
    /// here (`ppoll` with [`signals::wait_mask`]), so a shutdown can find an
    /// idle child only in this wait, and the flag is never set between the
    /// check and the wait without waking it: no signal is missed, and none
    /// interrupts a request in the middle.
    fn read_more(&mut self, deadline: Instant, idle: bool) -> Result<usize, Errno> {
        self.wait_for_input(deadline, idle)?;
        let want = if self.config.faults.reads_until_complete() {
            READ_CHUNK
        } else {
            SINGLE_READ
        };
        // Read straight into the buffer's free space.
        let filled = self.buf.len();
        self.buf.resize(filled + want, 0);
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut self.buf[filled..]) {
                Ok(n) => {
                    self.reads += 1;
                    self.buf.truncate(filled + n);
                    return Ok(n);
                }
                // poll said readable, so a retried read does not block.
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    self.buf.truncate(filled);
                    return Err(errno);
                }
            }
        }
    }

    /// [`Self::wait_for_input`] while a request is under way.
    fn wait_readable(&self, deadline: Instant) -> Result<(), Errno> {
        self.wait_for_input(deadline, false)
    }

    /// Waits until the client's socket is readable (see [`Self::read_more`]).
    fn wait_for_input(&self, deadline: Instant, idle: bool) -> Result<(), Errno> {
        let wait_mask = signals::wait_mask();
        loop {
            if idle && shutdown_requested() {
                return Err(Errno::EINTR);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Errno::ETIMEDOUT);
            }
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let waited = match wait_mask {
                Some(mask) => {
                    let left = left.min(Duration::from_secs(60));
                    ppoll(&mut fds, Some(TimeSpec::from_duration(left)), Some(mask))
                }
                None => {
                    let timeout = PollTimeout::try_from(left.as_millis().clamp(1, 60_000) as u32)
                        .unwrap_or(PollTimeout::MAX);
                    poll(&mut fds, timeout)
                }
            };
            match waited {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => return Ok(()),
                Err(errno) => return Err(errno),
            }
        }
    }

    /// Writes a response; the body is left out for HEAD.
    fn respond(
        &mut self,
        response: &Response,
        persistence: Persistence,
        head_only: bool,
    ) -> Result<(), Stop> {
        let mut out = Vec::with_capacity(512);
        write_head(&mut out, response, persistence);
        match &response.body {
            _ if head_only => self.write_all(&out),
            // Small bodies go out with the head in one write; a large one
            // is written from where it is, never copied behind the head.
            Body::Bytes(bytes) if bytes.len() <= COALESCE_BODY => {
                out.extend_from_slice(bytes);
                self.write_all(&out)
            }
            Body::Bytes(bytes) => {
                self.write_all(&out)?;
                self.write_all(bytes)
            }
            Body::Repeat { byte, len } => {
                self.write_all(&out)?;
                self.write_repeated(*byte, *len)
            }
        }
    }

    /// Streams `len` copies of `byte`. A function of its own so that its
    /// buffer is on the stack only while it runs: a large array in
    /// `respond` would make every response touch (and fault in) its pages.
    #[inline(never)]
    fn write_repeated(&mut self, byte: u8, len: u64) -> Result<(), Stop> {
        let block = [byte; 16 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            self.write_all(&block[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Writes all of `bytes`, retrying on EINTR and short writes.
    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), Stop> {
        while !bytes.is_empty() {
            match nix::unistd::write(&self.fd, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::EINTR) => continue,
                // The `sigpipe` fault: the error is not checked and the next
                // write to the dead socket raises SIGPIPE, whose default
                // action kills the process.
                Err(_) if !self.config.faults.checks_writes() => bytes = &[],
                // EPIPE/ECONNRESET: the client is gone. EAGAIN: it stopped
                // reading for longer than the send timeout.
                Err(_) => return Err(Stop::Broken),
            }
        }
        Ok(())
    }

    /// Answers a broken rule and closes gracefully.
    fn reject(&mut self, rejection: Rejection) {
        let status = rejection.status;
        let body = format!("{status} {}: {}\n", reason(status), rejection.reason);
        // A HEAD request that broke a rule still gets no body.
        let head_only = self.head_request || self.buf.starts_with(b"HEAD ");
        if self
            .respond(&Response::text(status, body), Persistence::Close, head_only)
            .is_ok()
        {
            self.linger();
        }
    }

    /// Closing a socket with unread input makes the kernel send RST, which can
    /// destroy our response before the client reads it. So: shut down our
    /// side, then read and discard the client's input for a short while.
    fn linger(&mut self) {
        let _ = shutdown(self.fd.as_raw_fd(), Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        while discarded < (1 << 20) {
            self.buf.clear();
            match self.read_more(deadline, false) {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    }
}

/// The `naive-parse` fault: the request line split on whitespace, as in the
/// classic tutorial `method, path, version = line.split()`. Fewer than three
/// parts panic: in a forked child that kills one connection; in an iterative
/// server, the server.
fn naive_request_line(buf: &[u8]) {
    if let Some(end) = buf.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&buf[..end]);
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (_method, _path, _version) = (parts[0], parts[1], parts[2]);
    }
}
