//! One HTTP request with its moments: connected, sent, first byte, head
//! complete, and how the body ended.
//!
//! Every exchange the process checks, the route probe and the model make
//! goes through here, so that they all mean the same by "answered": the
//! response head arrived. The body is then read past as framed, without
//! being kept, for a bounded time and number of bytes, and a body framed by
//! close is taken as ended after a short silence (see
//! [`crate::client::Conn::read_answer`]). A server that answers at once
//! but keeps the connection open afterwards is served, not stalled; holding
//! the connection is `fds/close-eof`'s finding, reported there once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
    /// the send, its body within [`BODY_WAIT`] after the head (and no more
    /// than [`crate::client::ANSWER_BODY_LIMIT`] of it).
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
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Timed {
    Pending::connect(addr, timeout).exchange(&get_request(path), timeout)
}

/// The bytes of `GET path` with `Connection: close`.
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A whole request on a connection that sent nothing yet.
const WHOLE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n";

/// The bytes that finish a request of which `sent` went out, so that a
/// connection held open to observe the server ends with a whole request,
/// never closed empty or mid-head (which some servers do not survive):
/// a whole request after nothing, the end of a header section after a
/// complete field line, a field value and the end after half a field.
pub fn completion_of(sent: &[u8]) -> &'static [u8] {
    if sent.is_empty() {
        WHOLE_REQUEST
    } else if sent.ends_with(b"\r\n") {
        b"Connection: close\r\n\r\n"
    } else {
        b"1\r\nConnection: close\r\n\r\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_completion_makes_a_whole_request_head() {
        for sent in [
            &b""[..],
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Stall: ",
        ] {
            let mut whole = sent.to_vec();
            whole.extend_from_slice(completion_of(sent));
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut request = httparse::Request::new(&mut headers);
            assert!(
                matches!(request.parse(&whole), Ok(httparse::Status::Complete(n)) if n == whole.len()),
                "{:?}",
                String::from_utf8_lossy(&whole)
            );
        }
    }
}
