//! HTTP behaviour of the real `server` binary, seen from a client: the
//! conformance app's routes, the CGI meta-variables, persistence and
//! pipelining, `100 Continue`, HEAD, and the strict rejections of RFC 9112,
//! each checked over a real socket against a freshly started server.

mod support;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use base64::Engine;
use rstest::rstest;
use support::{
    parse_all_responses, parse_response, poll_until, raw_exchange, raw_exchange_ending, Ending,
    RawClient, ServerGuard,
};

/// Generous bound for one response on a busy machine.
const RESPONSE: Duration = Duration::from_secs(10);

fn start() -> ServerGuard {
    ServerGuard::start(&["--listen", "127.0.0.1:0"])
}

/// GET `path` on a fresh connection with reqwest: (status, body text).
fn get(server: &ServerGuard, path: &str) -> (u16, String) {
    let response = support::http_client(true)
        .get(server.url(path))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}; server stderr:\n{}", server.stderr()));
    let status = response.status().as_u16();
    (status, response.text().expect("reading the body"))
}

#[rstest]
#[case::root("/")]
#[case::hello("/hello")]
fn hello_routes_answer_hello_world(#[case] path: &str) {
    let server = start();
    assert_eq!(get(&server, path), (200, "Hello, World!".to_string()));
}

#[test]
fn post_to_root_is_405_and_unknown_paths_are_404() {
    let server = start();
    let client = support::http_client(true);
    let post = client
        .post(server.url("/"))
        .body("x")
        .send()
        .expect("POST /");
    assert_eq!(post.status().as_u16(), 405);
    assert_eq!(
        post.headers()
            .get("allow")
            .map(|v| v.to_str().unwrap_or("")),
        Some("GET, HEAD")
    );
    assert_eq!(get(&server, "/no/such/thing").0, 404);
}

#[test]
fn bytes_returns_exactly_n_bytes() {
    let server = start();
    let response = support::http_client(true)
        .get(server.url("/bytes?n=100000"))
        .send()
        .expect("GET /bytes");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.content_length(), Some(100_000));
    let body = response.bytes().expect("reading the body");
    assert_eq!(body.len(), 100_000);
    assert!(body.iter().all(|&b| b == b'x'));
}

#[test]
fn sleep_takes_a_number_of_milliseconds() {
    let server = start();
    assert_eq!(
        get(&server, "/sleep?ms=50"),
        (200, "slept 50 ms".to_string())
    );
    assert_eq!(get(&server, "/sleep?ms=abc").0, 400);
}

#[test]
fn each_connection_is_served_by_a_forked_child() {
    let server = start();
    let first: i32 = get(&server, "/pid")
        .1
        .trim()
        .parse()
        .expect("/pid returns a number");
    let second: i32 = get(&server, "/pid")
        .1
        .trim()
        .parse()
        .expect("/pid returns a number");
    assert_ne!(first, server.pid(), "the parent served the request itself");
    assert_ne!(second, server.pid(), "the parent served the request itself");
    assert_ne!(
        first, second,
        "two connections were served by the same process"
    );
}

/// `/echo` as JSON, from a raw request.
fn echo_raw(server: &ServerGuard, request: &[u8]) -> serde_json::Value {
    let mut client = RawClient::connect(server.addr());
    client.send(request);
    let response = client.read_response(RESPONSE).expect("a response to /echo");
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).expect("/echo returns JSON")
}

#[test]
fn echo_shows_the_cgi_meta_variables() {
    let server = start();
    let body = b"a=1&b=\x00\xff binary".to_vec();
    let response = support::http_client(true)
        .post(server.url("/echo/a%20b?x=%20y&z"))
        .header("Content-Type", "application/x-test")
        .header("X-Custom", "custom value")
        .body(body.clone())
        .send()
        .expect("POST /echo");
    assert_eq!(response.status().as_u16(), 200);
    let json: serde_json::Value = response.json().expect("/echo returns JSON");
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let port = server.port().to_string();
    let body_len = body.len().to_string();
    let expected = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/echo/a b"),
        ("QUERY_STRING", "x=%20y&z"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_PORT", port.as_str()),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("CONTENT_TYPE", "application/x-test"),
        ("CONTENT_LENGTH", body_len.as_str()),
        ("HTTP_X_CUSTOM", "custom value"),
    ];
    for (name, value) in expected {
        assert_eq!(field(name).as_deref(), Some(value), "{name} in {json}");
    }
    let echoed = base64::engine::general_purpose::STANDARD
        .decode(field("body").expect("body field"))
        .expect("body is base64");
    assert_eq!(echoed, body);
}

#[test]
fn an_underscored_field_cannot_pass_for_its_hyphenated_twin() {
    let server = start();
    let json = echo_raw(
        &server,
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX_User: evil\r\nX-User: good\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        json.get("HTTP_X_USER").and_then(|v| v.as_str()),
        Some("good"),
        "{json}"
    );
}

#[test]
fn pipelined_requests_get_responses_in_order() {
    let server = start();
    let requests = b"GET /echo?i=1 HTTP/1.1\r\nHost: a\r\n\r\n\
GET /echo?i=2 HTTP/1.1\r\nHost: a\r\n\r\n\
GET /echo?i=3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (bytes, ending) = raw_exchange_ending(server.addr(), requests, RESPONSE);
    assert_eq!(
        ending,
        Ending::Eof,
        "the server should close after Connection: close"
    );
    let responses = parse_all_responses(&bytes).expect("three well-formed responses");
    assert_eq!(responses.len(), 3, "{:?}", String::from_utf8_lossy(&bytes));
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(response.status, 200);
        let json: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(
            json["QUERY_STRING"],
            format!("i={}", i + 1),
            "responses out of order"
        );
    }
}

#[test]
fn http11_connections_persist_across_requests() {
    let server = start();
    let mut client = RawClient::connect(server.addr());
    let mut pids = Vec::new();
    for _ in 0..2 {
        client.send(b"GET /pid HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = client
            .read_response(RESPONSE)
            .expect("a response on the same connection");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("connection"),
            None,
            "HTTP/1.1 persistence is implicit"
        );
        pids.push(response.text());
    }
    assert_eq!(
        pids[0], pids[1],
        "both requests of one connection are served by one child"
    );
}

#[test]
fn http10_closes_after_the_response_by_default() {
    let server = start();
    let (bytes, ending) = raw_exchange_ending(server.addr(), b"GET / HTTP/1.0\r\n\r\n", RESPONSE);
    assert_eq!(
        ending,
        Ending::Eof,
        "HTTP/1.0 without keep-alive must be closed by the server"
    );
    let responses = parse_all_responses(&bytes).expect("one response");
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].text(), "Hello, World!");
}

#[test]
fn http10_keep_alive_keeps_the_connection_open() {
    let server = start();
    let mut client = RawClient::connect(server.addr());
    for _ in 0..2 {
        client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = client
            .read_response(RESPONSE)
            .expect("a response on the kept-alive connection");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn chunked_bodies_with_extensions_and_trailers_are_decoded() {
    let server = start();
    let json = echo_raw(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
5;ext=1\r\nhello\r\n6;name=\"quoted value\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let body = base64::engine::general_purpose::STANDARD
        .decode(json["body"].as_str().expect("body field"))
        .expect("base64");
    assert_eq!(body, b"hello world");
    assert_eq!(
        json["CONTENT_LENGTH"], "11",
        "CONTENT_LENGTH is the decoded length"
    );
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = start();
    let mut client = RawClient::connect(server.addr());
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let interim = client
        .read_response(RESPONSE)
        .expect("an interim response before the body");
    assert_eq!(interim.status, 100, "expected 100 Continue first");
    client.send(b"hello");
    let response = client.read_response(RESPONSE).expect("the final response");
    assert_eq!(response.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(json["body"], "aGVsbG8=");
}

#[test]
fn head_sends_the_get_content_length_and_no_body() {
    let server = start();
    let mut client = RawClient::connect(server.addr());
    client.send(b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let response = client
        .read_head_response(RESPONSE)
        .expect("a response to HEAD");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("13"));
    let (rest, ending) = client.read_to_end(RESPONSE);
    assert_eq!(ending, Ending::Eof);
    assert!(
        rest.is_empty(),
        "HEAD response carried a body: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Sends `request`, expects `status`, `Connection: close`, and end of file.
fn assert_rejected(server: &ServerGuard, request: &[u8], status: u16) {
    let (bytes, ending) = raw_exchange_ending(server.addr(), request, RESPONSE);
    let shown = String::from_utf8_lossy(&bytes);
    let (response, _) = parse_response(&bytes, false)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no complete response: {shown:?}"));
    assert_eq!(
        response.status,
        status,
        "request {:?} -> {shown}",
        String::from_utf8_lossy(request)
    );
    assert_eq!(response.header("connection"), Some("close"), "{shown}");
    assert_eq!(
        ending,
        Ending::Eof,
        "the server must close after rejecting: {shown}"
    );
}

#[rstest]
#[case::malformed_request_line(b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n".to_vec(), 400)]
#[case::no_version(b"GET /\r\nHost: a\r\n\r\n".to_vec(), 400)]
#[case::space_before_colon(b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n".to_vec(), 400)]
#[case::obs_fold(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n".to_vec(), 400)]
#[case::nul_in_value(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n".to_vec(), 400)]
#[case::bare_cr(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n".to_vec(), 400)]
#[case::missing_host(b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400)]
#[case::duplicate_host(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400)]
#[case::content_length_and_chunked(
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
    400
)]
#[case::negative_content_length(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".to_vec(), 400)]
#[case::differing_content_lengths(
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
    400
)]
#[case::bad_chunk_size(
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
    400
)]
#[case::chunked_not_last(
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n".to_vec(),
    400
)]
#[case::unknown_coding(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501)]
#[case::http2(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(), 505)]
#[case::long_target(format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000)).into_bytes(), 414)]
#[case::too_many_fields(
    format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X-A: 1\r\n".repeat(100)).into_bytes(),
    431
)]
fn broken_rules_are_rejected_and_the_connection_closed(
    #[case] request: Vec<u8>,
    #[case] status: u16,
) {
    let server = start();
    assert_rejected(&server, &request, status);
}

#[test]
fn a_body_over_max_body_is_413() {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0", "--max-body", "10"]);
    assert_rejected(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n01234567890123456789",
        413,
    );
}

#[test]
fn a_client_too_slow_to_send_its_request_gets_408() {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0", "--read-timeout", "300ms"]);
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHo")
        .expect("sending half a request");
    let (bytes, ending) = support::read_until_eof(&mut stream, RESPONSE);
    let (response, _) = parse_response(&bytes, false)
        .expect("a well-formed response")
        .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&bytes)));
    assert_eq!(response.status, 408);
    assert_eq!(ending, Ending::Eof);
}

#[test]
fn beyond_max_children_the_parent_answers_503() {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0", "--max-children", "1"]);
    // Hold the only child with a long sleep; the server is killed (and the
    // sleep with it) when the guard drops, so the length costs nothing.
    let mut sleeper = TcpStream::connect(server.addr()).expect("connect");
    sleeper
        .write_all(b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("sending the sleep request");
    let mut busy = None;
    let seen = poll_until(Duration::from_secs(15), || {
        let bytes = raw_exchange(
            server.addr(),
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            RESPONSE,
        );
        match parse_response(&bytes, false) {
            Ok(Some((response, _))) if response.status == 503 => {
                busy = Some(response);
                true
            }
            _ => false,
        }
    });
    assert!(
        seen,
        "no 503 while the only child was busy; stderr:\n{}",
        server.stderr()
    );
    let busy = busy.expect("set when seen");
    assert_eq!(busy.header("connection"), Some("close"));
    let _ = sleeper.shutdown(Shutdown::Both);
}

/// A tiny deterministic generator for garbage, so failures reproduce.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn garbage_never_harms_the_parent() {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0", "--read-timeout", "1s"]);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..50 {
        let garbage: Vec<u8> = match round % 5 {
            // Nothing at all: connect and close.
            0 => Vec::new(),
            // A huge line without an end.
            1 => vec![b'A'; 100_000],
            // A huge line that ends.
            2 => {
                let mut line = vec![b'G'; 70_000];
                line.extend_from_slice(b"\r\n\r\n");
                line
            }
            // Random bytes of random length.
            _ => {
                let len = (xorshift(&mut state) % 4096) as usize;
                (0..len).map(|_| xorshift(&mut state) as u8).collect()
            }
        };
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        let _ = stream.write_all(&garbage);
        if round % 2 == 0 {
            // Half the time hang up at once (possibly with a reset).
            drop(stream);
        } else {
            let _ = support::read_until_eof(&mut stream, Duration::from_secs(5));
        }
        assert!(
            server.is_alive(),
            "the server died after garbage round {round}; stderr:\n{}",
            server.stderr()
        );
    }
    assert_eq!(get(&server, "/"), (200, "Hello, World!".to_string()));
    assert!(server.is_alive());
}

/// The peak resident set (KiB) of the child that served one chunked POST
/// /echo of `chunks` one-byte chunks, each behind an extension of
/// `extension` bytes, read while the child waits for the next request.
fn child_peak_after_chunked_upload(chunks: usize, extension: usize) -> u64 {
    let server = start();
    let mut client = RawClient::connect(server.addr());
    client.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = match extension {
        0 => "1\r\nz\r\n".to_string(),
        n => format!("1;{}\r\nz\r\n", "e".repeat(n)),
    };
    for _ in 0..chunks {
        client.send(chunk.as_bytes());
    }
    client.send(b"0\r\n\r\n");
    let response = client.read_response(RESPONSE).expect("the echo answer");
    assert_eq!(response.status, 200, "{response:?}");
    let children = support::live_children(server.pid());
    let [child] = children[..] else {
        panic!("expected the one child serving the connection: {children:?}");
    };
    support::peak_rss_kb(child).expect("the child's VmHWM")
}

/// A child holds at most one chunk line of raw chunked input, not the whole
/// raw body: 4,000 one-byte chunks behind 4,000-byte extensions (16 MB on
/// the wire, 4,000 bytes of body) leave its peak within 4 MB of a child
/// that got the same body in plain chunks.
#[test]
fn chunked_input_is_not_kept_once_decoded() {
    let plain = child_peak_after_chunked_upload(4000, 0);
    let padded = child_peak_after_chunked_upload(4000, 4000);
    assert!(
        padded < plain + 4 * 1024,
        "peak {padded} KiB with padded chunks, {plain} KiB without"
    );
}

/// The peak resident set (KiB) of the child that answered one POST /echo of
/// `len` bytes (Content-Length framed, or chunked in 64 KiB chunks), read
/// while the child waits for the next request.
fn child_peak_after_echo(len: usize, chunked: bool) -> u64 {
    let server = start();
    let mut client = RawClient::connect(server.addr());
    let body = vec![b'x'; len];
    if chunked {
        client.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(64 * 1024) {
            client.send(format!("{:x}\r\n", piece.len()).as_bytes());
            client.send(piece);
            client.send(b"\r\n");
        }
        client.send(b"0\r\n\r\n");
    } else {
        client.send(
            format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
        );
        client.send(&body);
    }
    let response = client
        .read_response(Duration::from_secs(30))
        .expect("the echo answer");
    assert_eq!(response.status, 200, "{:?}", response.headers);
    let children = support::live_children(server.pid());
    let [child] = children[..] else {
        panic!("expected the one child serving the connection: {children:?}");
    };
    support::peak_rss_kb(child).expect("the child's VmHWM")
}

/// README's bound: a child that echoes a body of `--max-body` (16 MiB)
/// peaks below 3 × 16 MiB above a child that echoed nothing, framed either
/// way.
#[rstest]
#[case::content_length(false)]
#[case::chunked(true)]
fn an_echo_of_the_largest_body_stays_within_three_times_its_size(#[case] chunked: bool) {
    const MAX_BODY: usize = 16 << 20;
    let idle = child_peak_after_echo(0, false);
    let full = child_peak_after_echo(MAX_BODY, chunked);
    let grown_kib = full.saturating_sub(idle);
    eprintln!("echo of 16 MiB: child peak {full} KiB, {grown_kib} KiB above an empty echo");
    assert!(
        grown_kib < 3 * (MAX_BODY as u64 >> 10),
        "peak {full} KiB, {grown_kib} KiB over an empty echo's {idle} KiB"
    );
}
