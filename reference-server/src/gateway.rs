//! The gateway interface between server and application, in the spirit of
//! CGI (RFC 3875) and WSGI (PEP 3333).
//!
//! The server parses HTTP; the application never sees a socket. It receives
//! the CGI meta-variables of RFC 3875 §4.1 and the decoded body, and returns a
//! status, headers and a body. Text is mapped from bytes the way WSGI does,
//! one byte per character (ISO-8859-1), so that `%FF` in a path or obs-text in
//! a header value reaches the application intact.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::parse::{percent_decode, RequestHead, Target};

/// What an application implements: one request in, one response out.
pub trait App {
    /// Handles one request.
    fn call(&self, environ: &Environ, body: &[u8]) -> Response;
}

/// The CGI meta-variables of one request (RFC 3875 §4.1), by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environ(BTreeMap<String, String>);

impl Environ {
    /// Builds the meta-variables for a request whose body has `body_len`
    /// bytes (`None` when it has no body), received on `server` from `peer`.
    pub fn new(
        head: &RequestHead,
        body_len: Option<usize>,
        server: SocketAddr,
        peer: SocketAddr,
    ) -> Environ {
        let mut vars = BTreeMap::new();
        let (path, query) = match &head.target {
            Target::Origin { path, query } | Target::Absolute { path, query, .. } => {
                (path.as_str(), query.as_deref())
            }
            Target::Asterisk => ("*", None),
            Target::Authority(authority) => (authority.as_str(), None),
        };
        vars.insert("REQUEST_METHOD".into(), head.method.clone());
        // The app is mounted at the root: all of the path is PATH_INFO.
        vars.insert("SCRIPT_NAME".into(), String::new());
        // §4.1.5: PATH_INFO is decoded; QUERY_STRING (§4.1.7) stays encoded.
        vars.insert("PATH_INFO".into(), latin1(&percent_decode(path)));
        vars.insert("QUERY_STRING".into(), query.unwrap_or("").to_string());
        vars.insert("SERVER_PROTOCOL".into(), head.version.as_str().into());
        vars.insert(
            "SERVER_NAME".into(),
            server_name(head.host.as_deref(), server),
        );
        vars.insert("SERVER_PORT".into(), server.port().to_string());
        vars.insert("REMOTE_ADDR".into(), peer.ip().to_string());
        // §4.1.2: CONTENT_LENGTH is set if and only if there is a body, and is
        // its length after transfer codings are removed.
        if let Some(len) = body_len {
            vars.insert("CONTENT_LENGTH".into(), len.to_string());
        }
        for (name, value) in &head.fields {
            // A field whose name holds "_" would map to the same variable as
            // its hyphenated twin ("X_User" and "X-User" both give
            // HTTP_X_USER): drop it, so it cannot pass for the other.
            if name.contains('_') {
                continue;
            }
            // Host is set below from the host the request is for.
            if name.eq_ignore_ascii_case("host") {
                continue;
            }
            let key = if name.eq_ignore_ascii_case("content-type") {
                "CONTENT_TYPE".to_string()
            } else if name.eq_ignore_ascii_case("content-length") {
                continue;
            } else {
                format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"))
            };
            let value = latin1(value);
            // Repeated fields are combined with ", " (RFC 9110 §5.3).
            vars.entry(key)
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        // RFC 9112 §3.2.2: with an absolute-form target the server MUST
        // ignore the Host field and use the target's authority, and
        // applications read HTTP_HOST before SERVER_NAME: so HTTP_HOST is
        // the host the request is for, never a second opinion.
        if let Some(host) = &head.host {
            vars.insert("HTTP_HOST".into(), latin1(host.as_bytes()));
        }
        Environ(vars)
    }

    /// One meta-variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// All meta-variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// One query parameter's raw value, e.g. `ms` in `ms=300`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.get("QUERY_STRING")?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// SERVER_NAME (§4.1.14): the host the client asked for, without the port;
/// the address we listen on when the client named none.
fn server_name(host: Option<&str>, server: SocketAddr) -> String {
    let name = host.map(|h| match h.rfind(':') {
        Some(colon) if !h[colon..].contains(']') => &h[..colon],
        _ => h,
    });
    match name {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => server.ip().to_string(),
    }
}

/// Bytes to text, one byte per character, as WSGI's "native strings" do.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// What an application returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields. The server adds Date, Server, Content-Length and
    /// Connection itself and drops hop-by-hop fields given here.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

/// A response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Bytes held in memory.
    Bytes(Vec<u8>),
    /// `len` copies of one byte, streamed without being held in memory.
    Repeat {
        /// The byte.
        byte: u8,
        /// How many.
        len: u64,
    },
}

impl Body {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::Repeat { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: Body::Bytes(text.into().into_bytes()),
        }
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_head, Parsed};

    fn environ(raw: &str, body_len: Option<usize>) -> Environ {
        let Ok(Parsed::Complete(head)) = parse_head(raw.as_bytes(), 1 << 20) else {
            panic!("bad test input {raw:?}")
        };
        Environ::new(
            &head,
            body_len,
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.2:5555".parse().unwrap(),
        )
    }

    #[test]
    fn meta_variables_follow_rfc_3875() {
        let env = environ(
            "POST /a%20b/c?x=%20&y HTTP/1.1\r\nHost: example.com:9\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nX-Forwarded-For: 1\r\nAccept: a\r\nAccept: b\r\n\r\n",
            Some(3),
        );
        let expected = [
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/a b/c"),
            ("QUERY_STRING", "x=%20&y"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "example.com"),
            ("SERVER_PORT", "8080"),
            ("REMOTE_ADDR", "127.0.0.2"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "3"),
            ("HTTP_HOST", "example.com:9"),
            ("HTTP_X_FORWARDED_FOR", "1"),
            ("HTTP_ACCEPT", "a, b"),
        ];
        for (name, value) in expected {
            assert_eq!(env.get(name), Some(value), "{name}");
        }
        assert_eq!(env.get("HTTP_CONTENT_TYPE"), None);
        assert_eq!(env.get("HTTP_CONTENT_LENGTH"), None);
        assert_eq!(env.iter().count(), expected.len());
    }

    #[test]
    fn an_underscored_field_cannot_pass_for_its_hyphenated_twin() {
        let env = environ(
            "GET / HTTP/1.1\r\nHost: a\r\nX_User: evil\r\nX-User: good\r\n\r\n",
            None,
        );
        assert_eq!(env.get("HTTP_X_USER"), Some("good"));
        let env = environ("GET / HTTP/1.1\r\nHost: a\r\nX_User: evil\r\n\r\n", None);
        assert_eq!(env.get("HTTP_X_USER"), None);
    }

    #[test]
    fn no_body_means_no_content_length() {
        let env = environ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", None);
        assert_eq!(env.get("CONTENT_LENGTH"), None);
        assert_eq!(env.get("QUERY_STRING"), Some(""));
    }

    #[test]
    fn bytes_map_to_text_one_to_one() {
        let env = environ(
            "GET /%FF%C3%A9 HTTP/1.1\r\nHost: a\r\nX-A: caf\u{e9}\r\n\r\n",
            None,
        );
        assert_eq!(env.get("PATH_INFO"), Some("/\u{ff}\u{c3}\u{a9}"));
        // "é" sent as UTF-8 is two bytes, so two characters.
        assert_eq!(env.get("HTTP_X_A"), Some("caf\u{c3}\u{a9}"));
    }

    #[test]
    fn server_name_falls_back_to_the_listening_address() {
        let env = environ("GET / HTTP/1.0\r\n\r\n", None);
        assert_eq!(env.get("SERVER_NAME"), Some("127.0.0.1"));
        let env = environ("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", None);
        assert_eq!(env.get("SERVER_NAME"), Some("[::1]"));
    }

    #[test]
    fn an_absolute_form_target_overrides_host_everywhere() {
        let env = environ(
            "GET http://x.test/echo HTTP/1.1\r\nHost: y.test\r\n\r\n",
            None,
        );
        assert_eq!(env.get("SERVER_NAME"), Some("x.test"));
        assert_eq!(env.get("HTTP_HOST"), Some("x.test"));
        // Without a Host field and without an absolute target, no HTTP_HOST.
        let env = environ("GET / HTTP/1.0\r\n\r\n", None);
        assert_eq!(env.get("HTTP_HOST"), None);
    }

    #[test]
    fn query_params_are_found_by_name() {
        let env = environ("GET /sleep?a=1&ms=300 HTTP/1.1\r\nHost: a\r\n\r\n", None);
        assert_eq!(env.query_param("ms"), Some("300"));
        assert_eq!(env.query_param("b"), None);
    }
}
