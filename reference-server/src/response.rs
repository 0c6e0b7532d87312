//! Writing a response head: status line, the fields the server owns, and the
//! application's fields (RFC 9112 §4, RFC 9110 §6.6).

use std::io::Write;
use std::time::SystemTime;

use crate::gateway::Response;

/// The reason phrase for a status code (RFC 9110 §15). Clients ignore it,
/// people read it.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Fields an application may not set: the server owns framing and the
/// connection (PEP 3333 forbids hop-by-hop fields from applications).
fn server_owned(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "date",
        "server",
    ]
    .iter()
    .any(|owned| name.eq_ignore_ascii_case(owned))
}

/// How the Connection field should read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 default: no field needed.
    Implicit,
    /// An HTTP/1.0 client asked to keep alive: confirm it.
    KeepAlive,
    /// We close after this response: say so (RFC 9112 §9.6).
    Close,
}

/// Appends the head of `response` to `out`. Content-Length is always sent,
/// also for HEAD, where it is the length a GET would have had (RFC 9110 §9.3.2).
pub fn write_head(out: &mut Vec<u8>, response: &Response, persistence: Persistence) {
    let status = response.status;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    let _ = write!(
        out,
        "Date: {}\r\nServer: reference-server\r\n",
        httpdate::fmt_http_date(SystemTime::now())
    );
    for (name, value) in &response.headers {
        if !server_owned(name) {
            let _ = write!(out, "{name}: {value}\r\n");
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n", response.body.len());
    match persistence {
        Persistence::Implicit => {}
        Persistence::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_owns_framing_fields() {
        let response = Response::text(200, "hi")
            .with_header("Content-Length", "999")
            .with_header("X-A", "1");
        let mut out = Vec::new();
        write_head(&mut out, &response, Persistence::Close);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("Content-Length: 2\r\n") && !text.contains("999"),
            "{text}"
        );
        assert!(
            text.contains("X-A: 1\r\n") && text.contains("Connection: close\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
