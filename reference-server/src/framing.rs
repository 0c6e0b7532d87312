//! Message framing: how long is the request body? (RFC 9112 §6)
//!
//! This is where request smuggling lives. When two servers in a chain disagree
//! on where one request ends, the bytes after it become someone else's
//! request. So every rule here is strict, says which section it enforces, and
//! rejects rather than guesses:
//!
//! | received                                           | outcome |
//! |----------------------------------------------------|---------|
//! | Transfer-Encoding and Content-Length together      | 400 (§6.1) |
//! | Transfer-Encoding in an HTTP/1.0 request           | 400 (§6.1) |
//! | `chunked` twice, or not last                       | 400 (§6.1, §6.3) |
//! | a coding we do not implement (gzip, identity, ...) | 501 (§6.1) |
//! | Content-Length that is not 1*DIGIT, or values that differ | 400 (§6.3, §8.6) |
//! | a body larger than `--max-body`                    | 413 (RFC 9110 §15.5.14) |
//! | neither header                                     | no body (§6.3 rule 7) |
//!
//! The chunked decoder below is incremental: it is fed the bytes received so
//! far and remembers where it stopped, because a client may deliver a chunk
//! one byte at a time.

use crate::grammar::{is_field_line, is_tchar, quoted_string_len, trim_ows, trim_start_ows};
use crate::grammar::{Rejection, Version};

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// Chunked transfer coding (RFC 9112 §7.1).
    Chunked,
}

/// Decides the framing of a request from its Transfer-Encoding and
/// Content-Length fields. `fields` are (lower-case name, value) pairs.
pub fn body_framing<'a>(
    version: Version,
    fields: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    max_body: u64,
) -> Result<BodyFraming, Rejection> {
    let transfer_encodings: Vec<&[u8]> = fields
        .clone()
        .filter(|(n, _)| *n == "transfer-encoding")
        .map(|(_, v)| v)
        .collect();
    let content_lengths: Vec<&[u8]> = fields
        .filter(|(n, _)| *n == "content-length")
        .map(|(_, v)| v)
        .collect();

    if !transfer_encodings.is_empty() {
        // §6.1: "A server MAY reject a request that contains both Content-Length
        // and Transfer-Encoding". Both together is the classic CL.TE/TE.CL
        // smuggling vector, so we do.
        if !content_lengths.is_empty() {
            return Err(Rejection::bad_request(
                "Content-Length and Transfer-Encoding together (RFC 9112 §6.1)",
            ));
        }
        // §6.1: a server that receives Transfer-Encoding in an HTTP/1.0 message
        // "MUST treat the message as if the framing is faulty".
        if version == Version::Http10 {
            return Err(Rejection::bad_request(
                "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)",
            ));
        }
        return transfer_coding(&transfer_encodings);
    }
    if !content_lengths.is_empty() {
        let length = content_length(&content_lengths)?;
        if length > max_body {
            return Err(Rejection::new(
                413,
                "request body larger than the server accepts (RFC 9110 §15.5.14)",
            ));
        }
        return Ok(BodyFraming::Length(length));
    }
    Ok(BodyFraming::None)
}

/// Transfer-Encoding = #transfer-coding (RFC 9112 §6.1). We implement only
/// `chunked`, which must be applied once and last.
fn transfer_coding(values: &[&[u8]]) -> Result<BodyFraming, Rejection> {
    let mut codings: Vec<String> = Vec::new();
    for value in values {
        for element in value.split(|&b| b == b',') {
            let element = trim_ows(element);
            // RFC 9110 §5.6.1: a recipient MUST parse and ignore a reasonable
            // number of empty list elements (so ", chunked" is "chunked").
            if element.is_empty() {
                continue;
            }
            // transfer-coding = token *( OWS ";" OWS transfer-parameter );
            // the name is the token before any parameter.
            let name = element
                .split(|&b| b == b';')
                .next()
                .map(trim_ows)
                .unwrap_or(element);
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(Rejection::bad_request(
                    "Transfer-Encoding is not a list of tokens (RFC 9112 §6.1)",
                ));
            }
            codings.push(String::from_utf8_lossy(name).to_ascii_lowercase());
        }
        if codings.len() > 16 {
            return Err(Rejection::bad_request(
                "too many transfer codings (RFC 9112 §6.1)",
            ));
        }
    }
    let chunked = codings.iter().filter(|c| *c == "chunked").count();
    if codings.is_empty() {
        return Err(Rejection::bad_request(
            "empty Transfer-Encoding (RFC 9112 §6.1)",
        ));
    }
    // §6.1: "A sender MUST NOT apply the chunked transfer coding more than once".
    if chunked > 1 {
        return Err(Rejection::bad_request(
            "chunked applied more than once (RFC 9112 §6.1)",
        ));
    }
    // §6.3: "If a Transfer-Encoding header field is present in a request and
    // the chunked transfer coding is not the final encoding, ... the server
    // MUST respond with the 400 (Bad Request) status code and then close".
    if chunked == 1 && codings.last().map(String::as_str) != Some("chunked") {
        return Err(Rejection::bad_request(
            "chunked is not the final transfer coding (RFC 9112 §6.3)",
        ));
    }
    // §6.1: "A server that receives a request message with a transfer coding
    // it does not understand SHOULD respond with 501 (Not Implemented)."
    if codings.len() > 1 || chunked == 0 {
        return Err(Rejection::new(
            501,
            "transfer coding not implemented; only chunked is (RFC 9112 §6.1)",
        ));
    }
    Ok(BodyFraming::Chunked)
}

/// Content-Length = 1*DIGIT (RFC 9110 §8.6). Several values (in one field as
/// a list, or in several fields) are accepted only when they are all the same
/// number; anything else is unrecoverable framing (RFC 9112 §6.3 rule 5).
fn content_length(values: &[&[u8]]) -> Result<u64, Rejection> {
    let mut length: Option<u64> = None;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let digits = trim_ows(element);
            let parsed = parse_decimal(digits).ok_or_else(|| {
                Rejection::bad_request("Content-Length is not a decimal number (RFC 9110 §8.6)")
            })?;
            match length {
                Some(previous) if previous != parsed => {
                    return Err(Rejection::bad_request(
                        "several different Content-Length values (RFC 9112 §6.3)",
                    ));
                }
                _ => length = Some(parsed),
            }
        }
    }
    length.ok_or_else(|| Rejection::bad_request("empty Content-Length (RFC 9110 §8.6)"))
}

/// 1*DIGIT into a u64: no sign, no spaces, no `0x`, no `_`, and no overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Longest chunk-size line (size plus extensions, without the CRLF) read
/// before the request is refused with 400.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section, like the header section.
const MAX_TRAILERS: usize = 64 * 1024;

/// Where the chunked decoder is (RFC 9112 §7.1):
/// `chunked-body = *chunk last-chunk trailer-section CRLF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Expecting `chunk-size [ chunk-ext ] CRLF`.
    SizeLine,
    /// Inside chunk-data, with this many bytes still to come.
    Data(u64),
    /// Expecting the CRLF that ends chunk-data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    /// The empty line after the trailers was seen.
    Done,
}

/// An incremental decoder of a chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    /// Bytes of the input already consumed.
    consumed: usize,
    /// Where in the grammar we are.
    state: ChunkState,
    /// Decoded bytes so far, to enforce the body limit.
    decoded: u64,
    /// Bytes of trailer section seen, to enforce its limit.
    trailer_bytes: usize,
    /// Largest body accepted.
    max_body: u64,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` decoded bytes.
    pub fn new(max_body: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            consumed: 0,
            state: ChunkState::SizeLine,
            decoded: 0,
            trailer_bytes: 0,
            max_body,
        }
    }

    /// Bytes of `input` consumed since the last call, which the caller must
    /// now drop from the front of its input: the decoder forgets them, so
    /// that raw chunked input is never kept once decoded (a client sending
    /// one-byte chunks with long extensions would otherwise make a child hold
    /// thousands of raw bytes per byte of body).
    pub fn take_consumed(&mut self) -> usize {
        std::mem::take(&mut self.consumed)
    }

    /// Decodes as much of `input` as possible, appending chunk data to `out`.
    /// `input` is what was received since the head and not yet taken by
    /// [`Self::take_consumed`], plus whatever arrived since. Returns
    /// `Ok(true)` when the body is complete, `Ok(false)` when more input is
    /// needed. What is left unconsumed is at most one incomplete chunk line
    /// ([`MAX_CHUNK_LINE`] bytes) or trailer line.
    pub fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, Rejection> {
        loop {
            let rest = &input[self.consumed..];
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::SizeLine => {
                    let Some(line) = crlf_line(rest, MAX_CHUNK_LINE)? else {
                        return Ok(false);
                    };
                    let size = chunk_size(line)?;
                    if size > self.max_body - self.decoded {
                        return Err(Rejection::new(
                            413,
                            "chunked body larger than the server accepts (RFC 9110 §15.5.14)",
                        ));
                    }
                    self.consumed += line.len() + 2;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    if rest.is_empty() {
                        return Ok(false);
                    }
                    let take = rest
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    self.consumed += take;
                    self.decoded += take as u64;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.consumed += 2;
                        self.state = ChunkState::SizeLine;
                    }
                    [] | [b'\r'] => return Ok(false),
                    _ => {
                        return Err(Rejection::bad_request(
                            "chunk data not followed by CRLF (RFC 9112 §7.1)",
                        ))
                    }
                },
                ChunkState::Trailers => {
                    let Some(line) =
                        crlf_line(rest, MAX_CHUNK_LINE.max(MAX_TRAILERS - self.trailer_bytes))?
                    else {
                        return Ok(false);
                    };
                    self.consumed += line.len() + 2;
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(Rejection::new(
                            431,
                            "trailer section too large (RFC 6585 §5)",
                        ));
                    }
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    } else if !is_field_line(line) {
                        // §7.1.2: trailer fields use the field-line syntax.
                        return Err(Rejection::bad_request(
                            "malformed trailer field (RFC 9112 §7.1.2)",
                        ));
                    }
                }
            }
        }
    }
}

/// The next line of `rest` without its CRLF, `None` if it has not all arrived.
/// Chunked framing requires CRLF: a bare LF or a CR inside the line is
/// rejected, since lenient line endings in chunk lines are a known smuggling
/// vector.
fn crlf_line(rest: &[u8], limit: usize) -> Result<Option<&[u8]>, Rejection> {
    let too_long = || Rejection::bad_request("chunk line too long (RFC 9112 §7.1)");
    // The line without its CRLF may be `limit` bytes long; only the first
    // `limit + 2` bytes are looked at, whatever has arrived.
    let window = &rest[..rest.len().min(limit + 2)];
    match window.iter().position(|&b| b == b'\n') {
        None if rest.len() > limit + 1 => Err(too_long()),
        None => Ok(None),
        Some(lf) if lf > limit + 1 => Err(too_long()),
        Some(lf) => {
            if lf == 0 || rest[lf - 1] != b'\r' {
                return Err(Rejection::bad_request(
                    "bare LF in chunked framing (RFC 9112 §7.1)",
                ));
            }
            let line = &rest[..lf - 1];
            if line.contains(&b'\r') {
                return Err(Rejection::bad_request(
                    "bare CR in chunked framing (RFC 9112 §2.2)",
                ));
            }
            Ok(Some(line))
        }
    }
}

/// `chunk-size [ chunk-ext ]`, where chunk-size = 1*HEXDIG (RFC 9112 §7.1).
fn chunk_size(line: &[u8]) -> Result<u64, Rejection> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(Rejection::bad_request(
            "chunk size is not hexadecimal (RFC 9112 §7.1)",
        ));
    }
    // Leading zeros are legal; more than 16 significant digits cannot fit.
    let significant = line[..digits].iter().skip_while(|&&b| b == b'0').count();
    if significant > 15 {
        return Err(Rejection::bad_request(
            "chunk size too large (RFC 9112 §7.1)",
        ));
    }
    let size = line[..digits].iter().fold(0u64, |n, &b| {
        // is_ascii_hexdigit above guarantees to_digit succeeds.
        (n << 4) | u64::from((b as char).to_digit(16).unwrap_or(0))
    });
    chunk_extensions(&line[digits..])?;
    Ok(size)
}

/// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-name = token; chunk-ext-val = token / quoted-string (§7.1.1).
/// Extensions are accepted and ignored, but must be well formed.
fn chunk_extensions(mut ext: &[u8]) -> Result<(), Rejection> {
    let bad = || Rejection::bad_request("malformed chunk extension (RFC 9112 §7.1.1)");
    loop {
        if ext.is_empty() {
            return Ok(());
        }
        // BWS is allowed before a ";" only: not after the size or an
        // extension at the end of the line (`0 \r\n`, `1;a=b \r\n`).
        let after_bws = trim_start_ows(ext);
        if after_bws.is_empty() {
            return Err(Rejection::bad_request(
                "whitespace at the end of a chunk-size line, allowed only before \";\" (RFC 9112 §7.1.1)",
            ));
        }
        let Some(after_semicolon) = after_bws.strip_prefix(b";") else {
            return Err(bad());
        };
        ext = trim_start_ows(after_semicolon);
        let name_len = ext.iter().take_while(|&&b| is_tchar(b)).count();
        if name_len == 0 {
            return Err(bad());
        }
        ext = trim_start_ows(&ext[name_len..]);
        if let Some(after_equals) = ext.strip_prefix(b"=") {
            ext = trim_start_ows(after_equals);
            if ext.first() == Some(&b'"') {
                ext = &ext[quoted_string_len(ext).ok_or_else(bad)?..];
            } else {
                let value_len = ext.iter().take_while(|&&b| is_tchar(b)).count();
                if value_len == 0 {
                    return Err(bad());
                }
                ext = &ext[value_len..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn framing(version: Version, fields: &[(&str, &str)]) -> Result<BodyFraming, u16> {
        let fields: Vec<(&str, &[u8])> = fields.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        body_framing(version, fields.iter().copied(), 1000).map_err(|r| r.status)
    }

    #[rstest]
    #[case::no_body(&[], Ok(BodyFraming::None))]
    #[case::length(&[("content-length", "5")], Ok(BodyFraming::Length(5)))]
    #[case::zero(&[("content-length", "0")], Ok(BodyFraming::Length(0)))]
    #[case::leading_zeros(&[("content-length", "005")], Ok(BodyFraming::Length(5)))]
    #[case::identical_list(&[("content-length", "5, 5")], Ok(BodyFraming::Length(5)))]
    #[case::identical_fields(&[("content-length", "5"), ("content-length", "5")], Ok(BodyFraming::Length(5)))]
    #[case::differing_fields(&[("content-length", "5"), ("content-length", "6")], Err(400))]
    #[case::differing_list(&[("content-length", "5, 6")], Err(400))]
    #[case::negative(&[("content-length", "-1")], Err(400))]
    #[case::plus(&[("content-length", "+5")], Err(400))]
    #[case::hex(&[("content-length", "0x5")], Err(400))]
    #[case::underscore(&[("content-length", "1_0")], Err(400))]
    #[case::inner_space(&[("content-length", "1 0")], Err(400))]
    #[case::empty(&[("content-length", "")], Err(400))]
    #[case::overflow(&[("content-length", "99999999999999999999999")], Err(400))]
    #[case::too_big(&[("content-length", "1001")], Err(413))]
    #[case::chunked(&[("transfer-encoding", "chunked")], Ok(BodyFraming::Chunked))]
    #[case::chunked_case(&[("transfer-encoding", "ChUnKeD")], Ok(BodyFraming::Chunked))]
    #[case::empty_element(&[("transfer-encoding", ", chunked")], Ok(BodyFraming::Chunked))]
    #[case::cl_and_te(&[("content-length", "5"), ("transfer-encoding", "chunked")], Err(400))]
    #[case::chunked_twice(&[("transfer-encoding", "chunked, chunked")], Err(400))]
    #[case::chunked_twice_fields(&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")], Err(400))]
    #[case::chunked_not_last(&[("transfer-encoding", "chunked, gzip")], Err(400))]
    #[case::unknown(&[("transfer-encoding", "gzip, chunked")], Err(501))]
    #[case::unknown_alone(&[("transfer-encoding", "foo")], Err(501))]
    #[case::identity(&[("transfer-encoding", "identity")], Err(501))]
    #[case::not_token(&[("transfer-encoding", "chun\"ked")], Err(400))]
    #[case::te_empty(&[("transfer-encoding", " , ")], Err(400))]
    fn framing_rules(#[case] fields: &[(&str, &str)], #[case] expected: Result<BodyFraming, u16>) {
        assert_eq!(framing(Version::Http11, fields), expected);
    }

    #[test]
    fn transfer_encoding_in_http10_is_faulty_framing() {
        assert_eq!(
            framing(Version::Http10, &[("transfer-encoding", "chunked")]),
            Err(400)
        );
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), u16> {
        let mut decoder = ChunkedDecoder::new(1000);
        let mut out = Vec::new();
        match decoder.advance(input, &mut out) {
            Ok(true) => Ok((out, decoder.take_consumed())),
            Ok(false) => Err(0),
            Err(r) => Err(r.status),
        }
    }

    #[rstest]
    #[case::simple("5\r\nhello\r\n0\r\n\r\n", "hello")]
    #[case::two_chunks("2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", "hello")]
    #[case::upper_hex("A\r\n0123456789\r\n0\r\n\r\n", "0123456789")]
    #[case::leading_zeros("0005\r\nhello\r\n000\r\n\r\n", "hello")]
    #[case::extension("5;name=value\r\nhello\r\n0\r\n\r\n", "hello")]
    #[case::extension_bws("5 ; name = \"quoted ;value\"\r\nhello\r\n0\r\n\r\n", "hello")]
    #[case::extension_no_value("5;flag;other=1\r\nhello\r\n0;last\r\n\r\n", "hello")]
    #[case::trailers("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n", "hello")]
    #[case::empty_body("0\r\n\r\n", "")]
    fn chunked_bodies_decode(#[case] input: &str, #[case] expected: &str) {
        let (body, consumed) = decode_all(input.as_bytes()).unwrap();
        assert_eq!(body, expected.as_bytes());
        assert_eq!(consumed, input.len());
    }

    #[rstest]
    #[case::not_hex("z\r\nhello\r\n0\r\n\r\n", 400)]
    #[case::sign("+5\r\nhello\r\n0\r\n\r\n", 400)]
    #[case::negative("-5\r\nhello\r\n0\r\n\r\n", 400)]
    #[case::hex_prefix("0x5\r\nhello\r\n0\r\n\r\n", 400)]
    #[case::underscore("1_0\r\n0123456789\r\n0\r\n\r\n", 400)]
    #[case::space_in_size("1 0\r\n0123456789\r\n0\r\n\r\n", 400)]
    #[case::overflow("10000000000000000\r\nx\r\n0\r\n\r\n", 400)]
    #[case::overflow_exact("ffffffffffffffff\r\nx\r\n0\r\n\r\n", 400)]
    #[case::too_big("3e9\r\nx\r\n0\r\n\r\n", 413)]
    #[case::bare_lf_size("5\nhello\r\n0\r\n\r\n", 400)]
    #[case::bare_cr_size("5\rhello\r\n0\r\n\r\n", 400)]
    #[case::data_too_long("5\r\nhelloX\r\n0\r\n\r\n", 400)]
    #[case::data_bare_lf("5\r\nhello\n0\r\n\r\n", 400)]
    #[case::bad_extension("5;\r\nhello\r\n0\r\n\r\n", 400)]
    #[case::unterminated_quote("5;a=\"x\r\nhello\r\n0\r\n\r\n", 400)]
    #[case::bad_trailer("5\r\nhello\r\n0\r\nno colon\r\n\r\n", 400)]
    #[case::trailer_space_before_colon("5\r\nhello\r\n0\r\nX-A : 1\r\n\r\n", 400)]
    #[case::trailer_bare_lf("5\r\nhello\r\n0\r\n\n", 400)]
    #[case::space_after_last_size("5\r\nhello\r\n0 \r\n\r\n", 400)]
    #[case::space_after_size("a \r\n0123456789\r\n0\r\n\r\n", 400)]
    #[case::tab_after_size("5\t\r\nhello\r\n0\r\n\r\n", 400)]
    #[case::space_after_extension("5;a=b \r\nhello\r\n0\r\n\r\n", 400)]
    fn malformed_chunked_bodies_are_rejected(#[case] input: &str, #[case] status: u16) {
        assert_eq!(decode_all(input.as_bytes()), Err(status));
    }

    /// Feeds `input` in pieces of `step` bytes the way a connection does:
    /// append, decode, drop what was consumed. Returns the body and the most
    /// raw input left waiting at any point.
    fn decode_in_steps(input: &[u8], step: usize) -> (Vec<u8>, usize) {
        let mut decoder = ChunkedDecoder::new(1 << 20);
        let (mut buf, mut out, mut most) = (Vec::new(), Vec::new(), 0);
        for (index, piece) in input.chunks(step).enumerate() {
            buf.extend_from_slice(piece);
            let done = decoder.advance(&buf, &mut out).unwrap();
            buf.drain(..decoder.take_consumed());
            most = most.max(buf.len());
            let last = (index + 1) * step >= input.len();
            assert_eq!(done, last, "after {} bytes", (index + 1) * step);
        }
        assert!(buf.is_empty(), "{buf:?}");
        (out, most)
    }

    #[test]
    fn byte_by_byte_delivery_decodes_the_same() {
        let input = b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(decode_in_steps(input, 1).0, b"abcde");
    }

    /// One-byte chunks, each behind an extension just under the line limit:
    /// the raw input waiting is never more than one chunk line and one
    /// read, however long the body.
    #[test]
    fn raw_input_is_dropped_as_it_is_decoded() {
        let extension = format!(";{}", "e".repeat(MAX_CHUNK_LINE - 3));
        let chunk = format!("1{extension}\r\nz\r\n");
        let input = format!("{}0\r\n\r\n", chunk.repeat(500));
        assert!(input.len() > 500 * MAX_CHUNK_LINE);
        let (body, most) = decode_in_steps(input.as_bytes(), 8192);
        assert_eq!(body, vec![b'z'; 500]);
        assert!(most <= MAX_CHUNK_LINE + 8192, "{most} bytes waited");
    }

    #[test]
    fn a_chunk_line_over_the_limit_is_refused() {
        let line = format!("1;{}", "e".repeat(MAX_CHUNK_LINE));
        let input = format!("{line}\r\nz\r\n0\r\n\r\n");
        assert_eq!(decode_all(input.as_bytes()), Err(400));
    }

    #[test]
    fn decoding_stops_at_the_end_of_the_body() {
        let input = b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let mut decoder = ChunkedDecoder::new(1000);
        let mut out = Vec::new();
        assert!(decoder.advance(input, &mut out).unwrap());
        assert_eq!(&input[decoder.take_consumed()..], b"GET / HTTP/1.1\r\n");
    }
}
