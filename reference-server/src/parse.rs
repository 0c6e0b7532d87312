//! The request head: request line and header fields (RFC 9112 §2-§5).
//!
//! httparse tokenises the head; it already refuses the syntax errors a
//! tokeniser can see (space before the colon, obs-fold, control characters,
//! bare CR, bad tokens). On top of it this module applies the rules that
//! need the whole head: the limits, the request-target forms, Host, and the
//! version. Body framing is in `framing.rs`; the rules both share (tchar,
//! OWS) and the [`Rejection`] every rule answers with are in `grammar.rs`.
//!
//! Incomplete input is not an error: [`parse_head`] answers
//! [`Parsed::Partial`] until the blank line that ends the head has arrived.

use crate::framing::{body_framing, BodyFraming};
use crate::grammar::{trim_ows, Rejection, Version};

/// Longest request line accepted; longer gets 414 (RFC 9112 §3: a server
/// that receives a request-target longer than it wishes to parse MUST respond
/// with 414).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Largest header section accepted; larger gets 431 (RFC 6585 §5).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted; more gets 431.
pub const MAX_FIELDS: usize = 100;

/// The request-target, in one of its four forms (RFC 9112 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/path?query`, the usual form.
    Origin {
        /// The path, still percent-encoded.
        path: String,
        /// The query without `?`, raw.
        query: Option<String>,
    },
    /// `http://authority/path?query`, which a server MUST accept (§3.2.2).
    Absolute {
        /// `host[:port]`, which replaces the Host field.
        authority: String,
        /// The path, still percent-encoded ("/" when empty).
        path: String,
        /// The query without `?`, raw.
        query: Option<String>,
    },
    /// `host:port`, only for CONNECT (§3.2.3).
    Authority(String),
    /// `*`, only for OPTIONS (§3.2.4).
    Asterisk,
}

/// A parsed request head.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// The method token, case-sensitive (RFC 9110 §9.1).
    pub method: String,
    /// The request-target.
    pub target: Target,
    /// The protocol version.
    pub version: Version,
    /// Header fields in order: (name as sent, value without surrounding OWS).
    pub fields: Vec<(String, Vec<u8>)>,
    /// How many bytes the head took, including the blank line.
    pub len: usize,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may be reused after this request (§9.3).
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// The host the request is for: from an absolute-form target, else the Host field.
    pub host: Option<String>,
}

impl RequestHead {
    /// The first value of a field, by case-insensitive name.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// The result of looking at the bytes received so far.
#[derive(Debug)]
pub enum Parsed {
    /// The head has not all arrived yet.
    Partial,
    /// A complete, valid head.
    Complete(RequestHead),
}

/// Parses the request head at the start of `buf`.
pub fn parse_head(buf: &[u8], max_body: u64) -> Result<Parsed, Rejection> {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received
    // before the request-line. httparse skips them; count them for the limits.
    let blank = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let line = &buf[blank..];
    match line.iter().position(|&b| b == b'\n') {
        Some(end) if end > MAX_REQUEST_LINE => {
            return Err(Rejection::new(414, "request line too long (RFC 9112 §3)"))
        }
        None if line.len() > MAX_REQUEST_LINE => {
            return Err(Rejection::new(414, "request line too long (RFC 9112 §3)"));
        }
        _ => {}
    }

    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut slots);
    let parsed = request.parse(buf);
    // One rule for every line end, here and in chunked framing: CRLF. The
    // head is all of `buf` until it is complete, then its first `len` bytes.
    let head_so_far = match parsed {
        Ok(httparse::Status::Complete(len)) => &buf[..len],
        _ => buf,
    };
    if has_bare_lf(head_so_far) {
        return Err(Rejection::bad_request(
            "bare LF line ending; every line of a request ends in CRLF here (RFC 9112 §2.2)",
        ));
    }
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Rejection::new(
                431,
                "header section too large (RFC 6585 §5)",
            ));
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        // The version decides between 400 and 505 (and §2.5 below), so judge
        // it only once the whole request line has arrived.
        Err(httparse::Error::Version) if !line.contains(&b'\n') => return Ok(Parsed::Partial),
        Err(httparse::Error::Version) => match higher_minor_version(line) {
            // RFC 9110 §2.5: a recipient that receives a higher minor version
            // of a major version it implements SHOULD process the message as
            // if it were in the highest minor version it implements.
            Some(at) => {
                let mut as_http11 = buf.to_vec();
                as_http11[blank + at] = b'1';
                return parse_head(&as_http11, max_body);
            }
            None => return Err(tokenizer_rejection(httparse::Error::Version, line)),
        },
        Err(error) => return Err(tokenizer_rejection(error, line)),
    };
    if len > MAX_HEAD {
        return Err(Rejection::new(
            431,
            "header section too large (RFC 6585 §5)",
        ));
    }

    // httparse filled every field on Complete; the Option is its API.
    let (Some(method), Some(raw_target), Some(minor)) =
        (request.method, request.path, request.version)
    else {
        return Err(Rejection::bad_request(
            "malformed request line (RFC 9112 §3)",
        ));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let target = request_target(method, raw_target)?;

    let mut fields = Vec::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let value = trim_ows(header.value);
        // httparse lets DEL and obs-text through in values; DEL is a control
        // character, which RFC 9110 §5.5 excludes from field values.
        if value.contains(&0x7f) {
            return Err(Rejection::bad_request(
                "control character in a field value (RFC 9110 §5.5)",
            ));
        }
        fields.push((header.name.to_string(), value.to_vec()));
    }

    let lower: Vec<(String, &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_slice()))
        .collect();
    let named = |name: &'static str| {
        lower
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| *v)
    };

    let host = host(version, &target, named("host").collect())?;
    let framing = body_framing(
        version,
        lower.iter().map(|(n, v)| (n.as_str(), *v)),
        max_body,
    )?;
    let connection = tokens(named("connection"));
    let keep_alive = match version {
        // §9.3: HTTP/1.1 persists unless "close" is present...
        _ if connection.iter().any(|t| t == "close") => false,
        Version::Http11 => true,
        // ...and HTTP/1.0 closes unless the client asks for "keep-alive".
        Version::Http10 => connection.iter().any(|t| t == "keep-alive"),
    };
    let expectations = tokens(named("expect"));
    // RFC 9110 §10.1.1: a server MAY answer 417 to an expectation it does not
    // meet; "100-continue" is the only one defined.
    if expectations.iter().any(|e| e != "100-continue") {
        return Err(Rejection::new(
            417,
            "unsupported expectation; only 100-continue is defined (RFC 9110 §10.1.1)",
        ));
    }
    // ...and "A server that receives a 100-continue expectation in an
    // HTTP/1.0 request MUST ignore that expectation."
    let expect_continue = version == Version::Http11 && !expectations.is_empty();

    Ok(Parsed::Complete(RequestHead {
        method: method.to_string(),
        target,
        version,
        fields,
        len,
        framing,
        keep_alive,
        expect_continue,
        host,
    }))
}

/// Maps an httparse error to the rule that was broken.
fn tokenizer_rejection(error: httparse::Error, request_line: &[u8]) -> Rejection {
    use httparse::Error;
    match error {
        Error::TooManyHeaders => Rejection::new(431, "more than 100 header fields (RFC 6585 §5)"),
        Error::Version if looks_like_other_version(request_line) => {
            Rejection::new(505, "HTTP version not supported; this server speaks HTTP/1.0 and HTTP/1.1 (RFC 9110 §15.6.6)")
        }
        Error::Version => Rejection::bad_request("malformed request line: bad or missing HTTP-version (RFC 9112 §2.3)"),
        Error::HeaderName => Rejection::bad_request(
            "malformed field name: not a token, whitespace before the colon, or obs-fold (RFC 9112 §5.1, §5.2)",
        ),
        Error::HeaderValue => Rejection::bad_request("control character in a field value (RFC 9110 §5.5)"),
        Error::NewLine => newline_rejection(request_line),
        Error::Token => Rejection::bad_request(
            "malformed request line: the method is not a token, or the target or the spaces around it are invalid (RFC 9112 §3)",
        ),
        _ => Rejection::bad_request("malformed request line (RFC 9112 §3)"),
    }
}

/// Whether some LF in `bytes` is not preceded by a CR.
///
/// RFC 9112 §2.2 lets a recipient take a bare LF as a line end in the
/// start-line and fields (a MAY) but not in chunked framing, so a server
/// that takes the MAY has two rules, and the head is where they matter: a
/// front end that does not take it reads `Dummy: x\nContent-Length: 23` as
/// one field, while a server that does sees a Content-Length, and the two
/// frame the message differently. This server takes none of the MAY: every
/// line end is CRLF, and anything else is 400.
fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

/// httparse reports whatever it meets after the version, where it expects
/// the line to end, as a bad line ending: say what it really was, from the
/// request line (or, when that is well formed, the header section).
fn newline_rejection(request_line: &[u8]) -> Rejection {
    let end = request_line
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(request_line.len());
    let line = &request_line[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\r') {
        return Rejection::bad_request("bare CR in the request line (RFC 9112 §2.2)");
    }
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [_, _, _, rest @ ..] if !rest.is_empty() && rest.iter().all(|part| part.is_empty()) => Rejection::bad_request(
            "whitespace after the HTTP-version; the request line ends right after it (RFC 9112 §3)",
        ),
        [_, _, _, _, ..] => Rejection::bad_request(
            "more than three parts in the request line: method SP request-target SP HTTP-version (RFC 9112 §3)",
        ),
        [_, _, version] if version.starts_with(b"HTTP/") => Rejection::bad_request(
            "malformed HTTP-version: HTTP-name \"/\" DIGIT \".\" DIGIT, one digit each side of the dot (RFC 9112 §2.3)",
        ),
        _ => Rejection::bad_request(
            "bare CR or bad line ending in the header section (RFC 9112 §2.2)",
        ),
    }
}

/// Whether the request line is well formed but names another HTTP version,
/// such as `HTTP/2.0` or `HTTP/1.2`, which earns 505 rather than 400.
/// HTTP-version = HTTP-name "/" DIGIT "." DIGIT (RFC 9112 §2.3).
fn looks_like_other_version(request_line: &[u8]) -> bool {
    let end = request_line
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(request_line.len());
    let line = request_line[..end]
        .strip_suffix(b"\r")
        .unwrap_or(&request_line[..end]);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    matches!(parts.as_slice(), [method, target, version]
        if !method.is_empty() && !target.is_empty()
            && version.len() == 8 && version.starts_with(b"HTTP/")
            && version[5].is_ascii_digit() && version[6] == b'.' && version[7].is_ascii_digit())
}

/// For a well-formed `HTTP/1.N` request line with N > 1, the offset of N.
fn higher_minor_version(request_line: &[u8]) -> Option<usize> {
    if !looks_like_other_version(request_line) {
        return None;
    }
    let end = request_line.iter().position(|&b| b == b'\n')?;
    let line_end = if end > 0 && request_line[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    let version = &request_line[line_end - 8..line_end];
    (version.starts_with(b"HTTP/1.") && version[7] > b'1').then_some(line_end - 1)
}

/// Classifies and validates the request-target (RFC 9112 §3.2).
fn request_target(method: &str, raw: &str) -> Result<Target, Rejection> {
    if method == "CONNECT" {
        // §3.2.3: authority-form = uri-host ":" port, only for CONNECT.
        return match raw.rsplit_once(':') {
            Some((host, port))
                if valid_host(host)
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Target::Authority(raw.to_string()))
            }
            _ => Err(Rejection::bad_request(
                "CONNECT needs an authority-form target host:port (RFC 9112 §3.2.3)",
            )),
        };
    }
    if raw.starts_with('/') {
        let (path, query) = split_query(raw);
        validate_path_and_query(path, query)?;
        return Ok(Target::Origin {
            path: path.to_string(),
            query: query.map(str::to_string),
        });
    }
    if raw == "*" {
        // §3.2.4: the asterisk-form is only used for a server-wide OPTIONS.
        return if method == "OPTIONS" {
            Ok(Target::Asterisk)
        } else {
            Err(Rejection::bad_request(
                "asterisk-form target is only for OPTIONS (RFC 9112 §3.2.4)",
            ))
        };
    }
    let lower = raw
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("http://") {
        &raw[7..]
    } else if lower.starts_with("https://") {
        &raw[8..]
    } else {
        return Err(Rejection::bad_request(
            "request-target is not origin-form or absolute-form (RFC 9112 §3.2)",
        ));
    };
    // §3.2.2: absolute-form = absolute-URI; a server MUST accept it.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    if authority.is_empty() || !valid_host_field(authority) {
        return Err(Rejection::bad_request(
            "invalid authority in absolute-form target (RFC 9112 §3.2.2)",
        ));
    }
    let (path, query) = split_query(path_and_query);
    let path = if path.is_empty() { "/" } else { path };
    validate_path_and_query(path, query)?;
    Ok(Target::Absolute {
        authority: authority.to_string(),
        path: path.to_string(),
        query: query.map(str::to_string),
    })
}

fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// RFC 3986 §3.3 and §3.4: path = *( "/" segment ), segment = *pchar,
/// query = *( pchar / "/" / "?" ), and every `%` starts a pct-encoded octet.
fn validate_path_and_query(path: &str, query: Option<&str>) -> Result<(), Rejection> {
    let valid = |part: &str, extra: &[u8]| {
        let bytes = part.as_bytes();
        bytes.iter().enumerate().all(|(i, &b)| {
            is_pchar(b)
                || extra.contains(&b)
                || (b == b'%'
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        })
    };
    if !valid(path, b"/") {
        return Err(Rejection::bad_request(
            "invalid character or percent-encoding in the path (RFC 3986 §3.3)",
        ));
    }
    if !query.is_none_or(|q| valid(q, b"/?")) {
        return Err(Rejection::bad_request(
            "invalid character or percent-encoding in the query (RFC 3986 §3.4)",
        ));
    }
    Ok(())
}

/// pchar = unreserved / pct-encoded / sub-delims / ":" / "@" (RFC 3986 §3.3),
/// without the pct-encoded part, which the caller checks.
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// Host = uri-host [ ":" port ] (RFC 9110 §7.2).
fn valid_host_field(value: &str) -> bool {
    // The last colon separates the port, unless it sits inside an IPv6 literal.
    let (host, port) = match value.rfind(':') {
        Some(colon) if !value[colon..].contains(']') => (&value[..colon], &value[colon + 1..]),
        _ => (value, ""),
    };
    valid_host(host) && port.bytes().all(|b| b.is_ascii_digit())
}

/// uri-host = IP-literal / IPv4address / reg-name (RFC 3986 §3.2.2).
fn valid_host(host: &str) -> bool {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !literal.is_empty()
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    let bytes = host.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=".contains(&b)
            || (b == b'%'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
/// to any HTTP/1.1 request message that lacks a Host header field and to any
/// request message that contains more than one Host header field line or a
/// Host header field with an invalid field value."
fn host(
    version: Version,
    target: &Target,
    values: Vec<&[u8]>,
) -> Result<Option<String>, Rejection> {
    let field = match values.as_slice() {
        [] if version == Version::Http11 => {
            return Err(Rejection::bad_request("missing Host (RFC 9112 §3.2)"))
        }
        [] => None,
        [one] => {
            let text = std::str::from_utf8(one)
                .ok()
                .filter(|t| t.is_empty() || valid_host_field(t));
            Some(
                text.ok_or(Rejection::bad_request("invalid Host value (RFC 9112 §3.2)"))?
                    .to_string(),
            )
        }
        _ => return Err(Rejection::bad_request("more than one Host (RFC 9112 §3.2)")),
    };
    // §3.2.2: with an absolute-form target the server MUST ignore Host and
    // use the target's authority instead.
    Ok(match target {
        Target::Absolute { authority, .. } => Some(authority.clone()),
        _ => field,
    })
}

/// The comma-separated tokens of list fields, lower-cased, empties dropped.
fn tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
        .collect()
}

/// Percent-decodes a validated path (RFC 3986 §2.1). Bytes, because `%FF`
/// is not UTF-8; the gateway maps them to text the way WSGI does.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(raw: &str) -> Result<RequestHead, u16> {
        match parse_head(raw.as_bytes(), 1 << 20) {
            Ok(Parsed::Complete(head)) => Ok(head),
            Ok(Parsed::Partial) => Err(0),
            Err(rejection) => Err(rejection.status),
        }
    }

    #[rstest]
    #[case::simple("GET / HTTP/1.1\r\nHost: a\r\n\r\n")]
    #[case::lf_in_the_body_after_the_head(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\nb"
    )]
    #[case::leading_empty_line("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")]
    #[case::http10_no_host("GET / HTTP/1.0\r\n\r\n")]
    #[case::empty_host("GET / HTTP/1.1\r\nHost:\r\n\r\n")]
    #[case::host_port("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")]
    #[case::host_ipv6("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")]
    #[case::query("GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: a\r\n\r\n")]
    #[case::absolute_form("GET http://example.com/x HTTP/1.1\r\nHost: other\r\n\r\n")]
    #[case::options_asterisk("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")]
    #[case::connect("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")]
    #[case::custom_method("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n")]
    #[case::obs_text_value("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u{e9}\r\n\r\n")]
    #[case::tab_in_value("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\tc\r\n\r\n")]
    #[case::higher_minor_version("GET / HTTP/1.2\r\nHost: a\r\n\r\n")]
    #[case::expect_continue(
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    )]
    fn valid_heads_parse(#[case] raw: &str) {
        assert!(parse(raw).is_ok(), "{raw:?} -> {:?}", parse(raw));
    }

    #[rstest]
    #[case::no_version("GET /\r\n\r\n", 400)]
    #[case::http09("GET /\r\nHost: a\r\n\r\n", 400)]
    #[case::http2("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505)]
    #[case::lowercase_version("GET / http/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::double_space("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::tab_separator("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::trailing_space("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400)]
    #[case::bad_method("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::relative_target("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::space_in_target("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::bad_percent("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::quote_in_path("GET /\"x\" HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::asterisk_get("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::missing_host("GET / HTTP/1.1\r\n\r\n", 400)]
    #[case::double_host("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)]
    #[case::double_host_http10("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400)]
    #[case::bad_host("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400)]
    #[case::host_userinfo("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400)]
    #[case::host_path("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400)]
    #[case::space_before_colon("GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n", 400)]
    #[case::obs_fold("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", 400)]
    #[case::space_before_first_field("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400)]
    #[case::nul_in_value("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n", 400)]
    #[case::del_in_value("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n", 400)]
    #[case::ctl_in_value("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", 400)]
    #[case::bare_cr_in_value("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", 400)]
    #[case::bare_cr_line_end("GET / HTTP/1.1\rHost: a\r\n\r\n", 400)]
    #[case::bad_field_name("GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n", 400)]
    #[case::empty_field_name("GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400)]
    #[case::expect_other("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417)]
    #[case::connect_bad_target("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400)]
    #[case::cl_te(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        400
    )]
    #[case::unknown_coding("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501)]
    fn invalid_heads_are_rejected(#[case] raw: &str, #[case] status: u16) {
        assert_eq!(parse(raw).map(|_| ()), Err(status), "{raw:?}");
    }

    /// The reason sent back names what was wrong, not a neighbouring rule.
    #[rstest]
    #[case::two_digit_minor("GET / HTTP/1.10\r\nHost: a\r\n\r\n", "malformed HTTP-version")]
    #[case::space_after_version(
        "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        "whitespace after the HTTP-version"
    )]
    #[case::four_parts("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", "more than three parts")]
    #[case::bare_cr_in_line("GET / HTTP/1.1\rX\r\nHost: a\r\n\r\n", "bare CR in the request line")]
    #[case::bare_lf_everywhere("GET / HTTP/1.1\nHost: a\n\n", "bare LF")]
    #[case::bare_lf_after_request_line("GET / HTTP/1.1\nHost: a\r\n\r\n", "bare LF")]
    #[case::bare_lf_hiding_a_field(
        "GET / HTTP/1.1\r\nDummy: x\nContent-Length: 23\r\nHost: a\r\n\r\n",
        "bare LF"
    )]
    #[case::bare_lf_ending_the_head("GET / HTTP/1.1\r\nHost: a\r\n\n", "bare LF")]
    #[case::bare_lf_before_the_request_line("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "bare LF")]
    #[case::bare_cr_in_field(
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "control character in a field value"
    )]
    fn rejections_name_what_was_wrong(#[case] raw: &str, #[case] reason: &str) {
        match parse_head(raw.as_bytes(), 1 << 20) {
            Err(rejection) => {
                assert_eq!(rejection.status, 400, "{raw:?}");
                assert!(
                    rejection.reason.contains(reason),
                    "{raw:?}: {:?}",
                    rejection.reason
                );
            }
            other => panic!("{raw:?} was not rejected: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_version_is_judged_only_on_the_whole_line() {
        // HTTP/2 arriving byte by byte is still 505, not 400.
        let full = b"GET / HTTP/2.0\r\nHost: a\r\n\r\n";
        let end = full.iter().position(|&b| b == b'\n').unwrap();
        for cut in 0..end {
            assert!(
                matches!(parse_head(&full[..cut], 0), Ok(Parsed::Partial)),
                "at {cut}"
            );
        }
        assert_eq!(
            parse(std::str::from_utf8(full).unwrap()).map(|_| ()),
            Err(505)
        );
        assert_eq!(
            parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n").unwrap().version,
            Version::Http11
        );
        assert_eq!(
            parse("GET / HTTP/3.0\r\nHost: a\r\n\r\n").map(|_| ()),
            Err(505)
        );
    }

    #[test]
    fn an_incomplete_head_is_partial_not_an_error() {
        let full = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        for end in 0..full.len() {
            assert!(
                matches!(parse_head(&full.as_bytes()[..end], 0), Ok(Parsed::Partial)),
                "at {end}"
            );
        }
    }

    #[test]
    fn limits_give_414_and_431() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        assert_eq!(parse(&long_target).map(|_| ()), Err(414));
        // Even before the line ends, an over-long line is refused.
        assert_eq!(
            parse(&long_target[..MAX_REQUEST_LINE + 10]).map(|_| ()),
            Err(414)
        );
        let many = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            "X-A: 1\r\n".repeat(MAX_FIELDS)
        );
        assert_eq!(parse(&many).map(|_| ()), Err(431));
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n",
            "b".repeat(MAX_HEAD)
        );
        assert_eq!(parse(&big).map(|_| ()), Err(431));
        let exactly = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X-A: 1\r\n".repeat(MAX_FIELDS - 1) + "Host: a\r\n"
        );
        assert!(parse(&exactly).is_ok());
    }

    #[rstest]
    #[case::http11_default("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true)]
    #[case::http11_close("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false)]
    #[case::http11_close_in_list(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n",
        false
    )]
    #[case::http10_default("GET / HTTP/1.0\r\n\r\n", false)]
    #[case::http10_keep_alive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true)]
    fn persistence_follows_version_and_connection(#[case] raw: &str, #[case] keep_alive: bool) {
        assert_eq!(parse(raw).unwrap().keep_alive, keep_alive);
    }

    #[test]
    fn absolute_form_replaces_host() {
        let head = parse("GET http://Example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n").unwrap();
        assert_eq!(head.host.as_deref(), Some("Example.com:81"));
        assert_eq!(
            head.target,
            Target::Absolute {
                authority: "Example.com:81".into(),
                path: "/p".into(),
                query: Some("q".into())
            }
        );
    }

    #[test]
    fn expect_continue_is_ignored_in_http10() {
        let head =
            parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").unwrap();
        assert!(!head.expect_continue);
    }

    #[rstest]
    #[case("/a%20b", b"/a b".as_slice())]
    #[case("/%2F%2f", b"///".as_slice())]
    #[case("/caf%C3%A9", "/café".as_bytes())]
    #[case("/%FF", b"/\xff".as_slice())]
    #[case("/plain", b"/plain".as_slice())]
    fn paths_are_percent_decoded(#[case] raw: &str, #[case] decoded: &[u8]) {
        assert_eq!(percent_decode(raw), decoded);
    }
}
