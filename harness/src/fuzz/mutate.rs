//! Named mutations of valid requests, in the spirit of differential HTTP
//! fuzzers: each one is a small, named step a shrinker can drop, so a
//! failure shrinks to the fewest, simplest steps that still trigger it.
//! Positions are per-mille of the input length, so they shrink toward the
//! start of the request.

use std::fmt;

use proptest::prelude::*;

/// How a number in the request is perturbed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perturb {
    /// A leading `+`.
    Plus,
    /// A leading `-`.
    Minus,
    /// A `0x` prefix.
    Hex,
    /// Leading zeros.
    Zeros,
    /// Twenty more digits.
    Overflow,
    /// An underscore inside.
    Underscore,
}

/// One mutation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Insert a byte.
    Insert(u16, u8),
    /// Delete a byte.
    Delete(u16),
    /// Replace a byte.
    Replace(u16, u8),
    /// Repeat a header line of the first request.
    DuplicateHeader(u16),
    /// Remove a header line of the first request.
    DropHeader(u16),
    /// Turn Content-Length into Transfer-Encoding: chunked, or the reverse,
    /// or add the other one.
    SwapLengthAndChunked(u8),
    /// Replace a CRLF by a bare LF.
    BareLf(u16),
    /// Replace a CRLF by a bare CR.
    BareCr(u16),
    /// Insert a NUL or control byte.
    InjectControl(u16, u8),
    /// Cut the input at a point and append its beginning again.
    SplitConcat(u16),
    /// Perturb a run of digits.
    PerturbNumber(u16, Perturb),
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mutation::Insert(at, b) => write!(f, "insert 0x{b:02x} at {at}‰"),
            Mutation::Delete(at) => write!(f, "delete at {at}‰"),
            Mutation::Replace(at, b) => write!(f, "replace at {at}‰ with 0x{b:02x}"),
            Mutation::DuplicateHeader(k) => write!(f, "duplicate header #{k}"),
            Mutation::DropHeader(k) => write!(f, "drop header #{k}"),
            Mutation::SwapLengthAndChunked(k) => {
                write!(f, "swap Content-Length/Transfer-Encoding ({k})")
            }
            Mutation::BareLf(k) => write!(f, "bare LF at line end #{k}"),
            Mutation::BareCr(k) => write!(f, "bare CR at line end #{k}"),
            Mutation::InjectControl(at, b) => write!(f, "inject control 0x{b:02x} at {at}‰"),
            Mutation::SplitConcat(at) => write!(f, "cut at {at}‰ and append the start again"),
            Mutation::PerturbNumber(k, how) => write!(f, "perturb number #{k}: {how:?}"),
        }
    }
}

fn position() -> impl Strategy<Value = u16> {
    0u16..1000
}

fn control() -> impl Strategy<Value = u8> {
    prop_oneof![0u8..0x20, Just(0x7f)]
}

fn perturb() -> impl Strategy<Value = Perturb> {
    prop::sample::select(vec![
        Perturb::Plus,
        Perturb::Minus,
        Perturb::Hex,
        Perturb::Zeros,
        Perturb::Overflow,
        Perturb::Underscore,
    ])
}

/// One mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (position(), any::<u8>()).prop_map(|(a, b)| Mutation::Insert(a, b)),
        position().prop_map(Mutation::Delete),
        (position(), any::<u8>()).prop_map(|(a, b)| Mutation::Replace(a, b)),
        (0u16..8).prop_map(Mutation::DuplicateHeader),
        (0u16..8).prop_map(Mutation::DropHeader),
        (0u8..3).prop_map(Mutation::SwapLengthAndChunked),
        (0u16..8).prop_map(Mutation::BareLf),
        (0u16..8).prop_map(Mutation::BareCr),
        (position(), control()).prop_map(|(a, b)| Mutation::InjectControl(a, b)),
        position().prop_map(Mutation::SplitConcat),
        ((0u16..4), perturb()).prop_map(|(k, how)| Mutation::PerturbNumber(k, how)),
    ]
}

/// One to three mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn at(len: usize, per_mille: u16) -> usize {
    len * usize::from(per_mille.min(999)) / 1000
}

/// Offsets of every CRLF.
fn crlfs(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == b"\r\n")
        .map(|(i, _)| i)
        .collect()
}

/// Start and end (after its CRLF) of the header lines of the first request.
fn header_lines(bytes: &[u8]) -> Vec<(usize, usize)> {
    let ends = crlfs(bytes);
    let mut lines = Vec::new();
    for pair in ends.windows(2) {
        let (start, end) = (pair[0] + 2, pair[1] + 2);
        if end - start == 2 {
            break; // the blank line
        }
        lines.push((start, end));
    }
    lines
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Applies one mutation.
pub fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match *mutation {
        Mutation::Insert(p, b) => bytes.insert(at(len + 1, p), b),
        Mutation::Delete(p) if len > 0 => {
            bytes.remove(at(len, p));
        }
        Mutation::Replace(p, b) if len > 0 => {
            let i = at(len, p);
            bytes[i] = b;
        }
        Mutation::DuplicateHeader(k) => {
            let lines = header_lines(bytes);
            if let Some(&(start, end)) = lines.get(usize::from(k) % lines.len().max(1)) {
                let line = bytes[start..end].to_vec();
                bytes.splice(end..end, line);
            }
        }
        Mutation::DropHeader(k) => {
            let lines = header_lines(bytes);
            if let Some(&(start, end)) = lines.get(usize::from(k) % lines.len().max(1)) {
                bytes.drain(start..end);
            }
        }
        Mutation::SwapLengthAndChunked(k) => {
            let cl = find(bytes, b"content-length:");
            let te = find(bytes, b"transfer-encoding: chunked");
            match (k, cl, te) {
                // Add the other framing header next to the first.
                (0, Some(i), _) => bytes
                    .splice(i..i, b"Transfer-Encoding: chunked\r\n".iter().copied())
                    .for_each(drop),
                (0, None, Some(i)) => bytes
                    .splice(i..i, b"Content-Length: 3\r\n".iter().copied())
                    .for_each(drop),
                // Replace one by the other.
                (_, Some(i), _) => {
                    let end = bytes[i..]
                        .iter()
                        .position(|&b| b == b'\r')
                        .map_or(len, |e| i + e);
                    bytes
                        .splice(i..end, b"Transfer-Encoding: chunked".iter().copied())
                        .for_each(drop);
                }
                (_, None, Some(i)) => {
                    bytes
                        .splice(i..i + 26, b"Content-Length: 5".iter().copied())
                        .for_each(drop);
                }
                _ => {}
            }
        }
        Mutation::BareLf(k) | Mutation::BareCr(k) => {
            let ends = crlfs(bytes);
            if let Some(&i) = ends.get(usize::from(k) % ends.len().max(1)) {
                if matches!(mutation, Mutation::BareLf(_)) {
                    bytes.remove(i);
                } else {
                    bytes.remove(i + 1);
                }
            }
        }
        Mutation::InjectControl(p, b) => bytes.insert(at(len + 1, p), b),
        Mutation::SplitConcat(p) => {
            let cut = at(len, p).max(1).min(len);
            let head = bytes[..cut].to_vec();
            bytes.extend_from_slice(&head);
        }
        Mutation::PerturbNumber(k, how) => {
            // Runs of digits after a ": " or at a line start (chunk sizes).
            let mut runs = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                let starts =
                    bytes[i].is_ascii_digit() && (i == 0 || matches!(bytes[i - 1], b' ' | b'\n'));
                if starts {
                    let end = bytes[i..]
                        .iter()
                        .position(|b| !b.is_ascii_hexdigit())
                        .map_or(bytes.len(), |e| i + e);
                    runs.push((i, end));
                    i = end;
                } else {
                    i += 1;
                }
            }
            if let Some(&(start, end)) = runs.get(usize::from(k) % runs.len().max(1)) {
                match how {
                    Perturb::Plus => bytes.insert(start, b'+'),
                    Perturb::Minus => bytes.insert(start, b'-'),
                    Perturb::Hex => bytes.splice(start..start, *b"0x").for_each(drop),
                    Perturb::Zeros => bytes.splice(start..start, *b"000").for_each(drop),
                    Perturb::Overflow => bytes
                        .splice(end..end, *b"99999999999999999999")
                        .for_each(drop),
                    Perturb::Underscore if end - start > 1 => bytes.insert(start + 1, b'_'),
                    Perturb::Underscore => bytes.insert(end, b'_'),
                }
            }
        }
        Mutation::Delete(_) | Mutation::Replace(..) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const REQUEST: &[u8] =
        b"POST /echo HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello";

    fn mutated(m: Mutation) -> String {
        let mut bytes = REQUEST.to_vec();
        apply(&mut bytes, &m);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[rstest]
    #[case(Mutation::DuplicateHeader(1), "X-A: 1\r\nX-A: 1\r\n")]
    #[case(Mutation::DropHeader(0), "HTTP/1.1\r\nX-A: 1")]
    #[case(
        Mutation::SwapLengthAndChunked(0),
        "Transfer-Encoding: chunked\r\nContent-Length: 5"
    )]
    #[case(
        Mutation::SwapLengthAndChunked(1),
        "Transfer-Encoding: chunked\r\n\r\nhello"
    )]
    #[case(Mutation::BareLf(0), "HTTP/1.1\nHost")]
    #[case(Mutation::BareCr(0), "HTTP/1.1\rHost")]
    #[case(Mutation::PerturbNumber(1, Perturb::Plus), "Content-Length: +5")]
    #[case(
        Mutation::PerturbNumber(1, Perturb::Overflow),
        "Content-Length: 599999999999999999999"
    )]
    #[case(Mutation::InjectControl(0, 0), "\0POST")]
    fn mutations_do_what_they_say(#[case] m: Mutation, #[case] expected: &str) {
        let text = mutated(m.clone());
        assert!(text.contains(expected), "{m}: {text:?}");
    }

    #[test]
    fn split_concat_repeats_the_start() {
        let text = mutated(Mutation::SplitConcat(999));
        assert!(text.ends_with("POST /echo HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhell"), "{text:?}");
    }

    #[test]
    fn mutations_never_panic_on_any_input() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(
                &(prop::collection::vec(any::<u8>(), 0..64), mutations()),
                |(mut bytes, ms)| {
                    for m in &ms {
                        apply(&mut bytes, m);
                    }
                    Ok(())
                },
            )
            .unwrap();
    }
}
