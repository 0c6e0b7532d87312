//! The shared vocabulary of request parsing: the ABNF rules of RFC 9110 §5
//! that both the head ([`parse`](crate::parse)) and the body
//! ([`framing`](crate::framing)) are built from, and the two words every rule
//! answers in, [`Rejection`] and [`Version`].
//!
//! It is a leaf: it imports no other module of the server, so imports run one
//! way, `parse → framing → grammar`.

/// Why a request was refused, and with which status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The status code to answer with.
    pub status: u16,
    /// The rule that was broken, naming its RFC section; sent as the body.
    pub reason: &'static str,
}

impl Rejection {
    /// A rejection with any status.
    pub const fn new(status: u16, reason: &'static str) -> Rejection {
        Rejection { status, reason }
    }

    /// A 400 Bad Request.
    pub const fn bad_request(reason: &'static str) -> Rejection {
        Rejection {
            status: 400,
            reason,
        }
    }
}

/// The protocol versions we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: close after each response unless asked to keep alive.
    Http10,
    /// HTTP/1.1: persistent by default.
    Http11,
}

impl Version {
    /// As written on the request line, e.g. for SERVER_PROTOCOL.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// tchar (RFC 9110 §5.6.2): "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
/// "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `b` is OWS, one of `SP / HTAB` (RFC 9110 §5.6.3).
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strips optional whitespace, OWS = *( SP / HTAB ) (RFC 9110 §5.6.3).
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start_ows(bytes);
    let end = bytes.iter().rposition(|&b| !is_ows(b)).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Strips leading OWS only (RFC 9110 §5.6.3); BWS in chunk extensions is the
/// same rule (§5.6.3: BWS = OWS).
pub fn trim_start_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Length of the quoted-string at the start of `s` (RFC 9110 §5.6.4), or
/// `None` if it is unterminated or holds a forbidden byte:
/// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`,
/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text`,
/// `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`.
pub fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !(escaped == b'\t'
                    || escaped == b' '
                    || (0x21..=0x7e).contains(&escaped)
                    || escaped >= 0x80)
                {
                    return None;
                }
                i += 2;
            }
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
            _ => return None,
        }
    }
    None
}

/// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5), with the
/// value made of field-vchar, SP and HTAB (RFC 9110 §5.5).
pub fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty() && name.iter().all(|&b| is_tchar(b)) && value.iter().all(|&b| is_field_byte(b))
}

/// A byte allowed in a field value: field-vchar (VCHAR / obs-text), SP, HTAB.
pub fn is_field_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(b"".as_slice(), b"".as_slice())]
    #[case(b" \t ".as_slice(), b"".as_slice())]
    #[case(b"a".as_slice(), b"a".as_slice())]
    #[case(b" \ta b\t ".as_slice(), b"a b".as_slice())]
    fn ows_is_spaces_and_tabs_around(#[case] raw: &[u8], #[case] trimmed: &[u8]) {
        assert_eq!(trim_ows(raw), trimmed);
    }

    #[rstest]
    #[case(b"\"\"".as_slice(), Some(2))]
    #[case(b"\"a;b\" rest".as_slice(), Some(5))]
    #[case(b"\"a\\\"b\"".as_slice(), Some(6))]
    #[case(b"\"open".as_slice(), None)]
    #[case(b"\"a\x01\"".as_slice(), None)]
    fn quoted_strings_end_at_the_closing_quote(#[case] raw: &[u8], #[case] len: Option<usize>) {
        assert_eq!(quoted_string_len(raw), len);
    }
}
