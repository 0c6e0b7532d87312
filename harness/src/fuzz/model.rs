//! The model of a valid request, its rendering to bytes, and the proptest
//! strategies that generate it.
//!
//! The model is the oracle: a valid request sent to `/echo` must come back
//! with exactly the model's method, path, query, headers and body. The
//! expected meta-variables are computed here from the model, never by parsing
//! the rendered bytes.

use std::collections::BTreeMap;

use proptest::prelude::*;

/// How a body is framed.
#[derive(Clone, Debug)]
pub enum BodyModel {
    /// No body and no framing header.
    None,
    /// `Content-Length` and the bytes.
    Length(Vec<u8>),
    /// Chunked: the chunks, an extension per chunk (or none), and trailers.
    Chunked {
        /// Chunk data, each non-empty.
        chunks: Vec<Vec<u8>>,
        /// Whether to add `;name=value` extensions.
        extensions: bool,
        /// Trailer fields after the last chunk.
        trailers: Vec<(String, String)>,
    },
}

impl BodyModel {
    /// The decoded body.
    pub fn decoded(&self) -> Vec<u8> {
        match self {
            BodyModel::None => Vec::new(),
            BodyModel::Length(bytes) => bytes.clone(),
            BodyModel::Chunked { chunks, .. } => chunks.concat(),
        }
    }
}

/// A valid HTTP/1.1 request to `/echo`.
#[derive(Clone, Debug)]
pub struct RequestModel {
    /// A method token.
    pub method: String,
    /// Path segments below `/echo`, each as raw bytes (percent-encoded when rendered).
    pub segments: Vec<Vec<u8>>,
    /// The raw query, without `?`.
    pub query: Option<String>,
    /// Header fields besides Host and framing, unique names.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: BodyModel,
}

/// Bytes that may stand unencoded in a path segment (RFC 3986 unreserved).
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

impl RequestModel {
    /// The request-target as sent.
    pub fn target(&self) -> String {
        let mut target = String::from("/echo");
        for segment in &self.segments {
            target.push('/');
            for &b in segment {
                if unreserved(b) {
                    target.push(char::from(b));
                } else {
                    target.push_str(&format!("%{b:02X}"));
                }
            }
        }
        if let Some(query) = &self.query {
            target.push('?');
            target.push_str(query);
        }
        target
    }

    /// The request as bytes.
    pub fn render(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: example.com\r\n",
            self.method,
            self.target()
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match &self.body {
            BodyModel::None => out.extend_from_slice(b"\r\n"),
            BodyModel::Length(bytes) => {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", bytes.len()).as_bytes(),
                );
                out.extend_from_slice(bytes);
            }
            BodyModel::Chunked {
                chunks,
                extensions,
                trailers,
            } => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for (i, chunk) in chunks.iter().enumerate() {
                    out.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
                    if *extensions {
                        out.extend_from_slice(format!(";ext{i}=v{i}").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    /// The meta-variables `/echo` must report, as text (bytes mapped one to one).
    pub fn expected_echo(&self) -> BTreeMap<String, String> {
        let latin1 = |bytes: &[u8]| bytes.iter().map(|&b| char::from(b)).collect::<String>();
        let mut expected = BTreeMap::new();
        expected.insert("REQUEST_METHOD".to_string(), self.method.clone());
        let mut path = b"/echo".to_vec();
        for segment in &self.segments {
            path.push(b'/');
            path.extend_from_slice(segment);
        }
        expected.insert("PATH_INFO".into(), latin1(&path));
        expected.insert(
            "QUERY_STRING".into(),
            self.query.clone().unwrap_or_default(),
        );
        expected.insert("HTTP_HOST".into(), "example.com".into());
        for (name, value) in &self.headers {
            expected.insert(
                format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
                latin1(value),
            );
        }
        match &self.body {
            BodyModel::None => {}
            BodyModel::Length(bytes) => {
                expected.insert("CONTENT_LENGTH".into(), bytes.len().to_string());
            }
            BodyModel::Chunked { .. } => {
                expected.insert(
                    "CONTENT_LENGTH".into(),
                    self.body.decoded().len().to_string(),
                );
                expected.insert("HTTP_TRANSFER_ENCODING".into(), "chunked".into());
            }
        }
        expected
    }
}

/// Header names the server treats specially, which the model does not generate.
const RESERVED: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "content-type",
    "te",
    "upgrade",
];

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]).prop_map(str::to_string),
        // HEAD's responses have no body and CONNECT asks for a tunnel: the
        // echo oracle covers neither.
        1 => "[A-Z][A-Z0-9!#$%&'*+.^`|~-]{0,7}".prop_filter("not HEAD or CONNECT", |m| m != "HEAD" && m != "CONNECT"),
    ]
}

fn segment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[a-zA-Z0-9._~-]{1,8}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 1..4),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-zA-Z0-9=&._~!$'()*+,;:@/?-]{0,20}")
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    // field-value: visible characters and inner spaces, obs-text allowed.
    prop::collection::vec(
        prop_oneof![8 => 0x21u8..=0x7e, 1 => Just(b' '), 1 => 0x80u8..=0xff],
        0..24,
    )
    .prop_map(|mut v| {
        while v.first() == Some(&b' ') {
            v.remove(0);
        }
        while v.last() == Some(&b' ') {
            v.pop();
        }
        v
    })
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,11}", header_value()), 0..6).prop_map(|pairs| {
        let mut seen: Vec<String> = Vec::new();
        pairs
            .into_iter()
            .filter(|(name, _)| {
                let lower = name.to_ascii_lowercase();
                let keep = !RESERVED.contains(&lower.as_str()) && !seen.contains(&lower);
                seen.push(lower);
                keep
            })
            .collect()
    })
}

fn body() -> impl Strategy<Value = BodyModel> {
    prop_oneof![
        2 => Just(BodyModel::None),
        2 => prop::collection::vec(any::<u8>(), 0..96).prop_map(BodyModel::Length),
        2 => (
            prop::collection::vec(prop::collection::vec(any::<u8>(), 1..24), 1..5),
            any::<bool>(),
            prop::collection::vec(("X-T[a-z]{1,6}", "[a-z0-9]{0,8}"), 0..2),
        )
            .prop_map(|(chunks, extensions, trailers)| BodyModel::Chunked { chunks, extensions, trailers }),
    ]
}

/// A valid request to `/echo`.
pub fn request() -> impl Strategy<Value = RequestModel> {
    (
        method(),
        prop::collection::vec(segment(), 0..3),
        query(),
        headers(),
        body(),
    )
        .prop_map(|(method, segments, query, headers, body)| RequestModel {
            method,
            segments,
            query,
            headers,
            body,
        })
}

/// One to three requests sent back to back.
pub fn pipeline() -> impl Strategy<Value = Vec<RequestModel>> {
    prop::collection::vec(request(), 1..4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn a_rendered_request_is_well_formed_http() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..200 {
            let model = request().new_tree(&mut runner).unwrap().current();
            let bytes = model.render();
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Request::new(&mut headers);
            let status = parsed
                .parse(&bytes)
                .unwrap_or_else(|e| panic!("{e:?}: {:?}", String::from_utf8_lossy(&bytes)));
            assert!(status.is_complete());
            assert_eq!(parsed.method, Some(model.method.as_str()));
        }
    }

    #[test]
    fn chunked_bodies_render_sizes_in_hex() {
        let model = RequestModel {
            method: "POST".into(),
            segments: vec![b"a b".to_vec()],
            query: Some("x=1".into()),
            headers: vec![],
            body: BodyModel::Chunked {
                chunks: vec![vec![b'z'; 17]],
                extensions: true,
                trailers: vec![],
            },
        };
        let text = String::from_utf8(model.render()).unwrap();
        assert!(
            text.starts_with("POST /echo/a%20b?x=1 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\n\r\n11;ext0=v0\r\n"), "{text}");
        assert_eq!(model.expected_echo()["PATH_INFO"], "/echo/a b");
        assert_eq!(model.expected_echo()["CONTENT_LENGTH"], "17");
    }
}
