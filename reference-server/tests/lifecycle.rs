//! The server's life as a process: what it prints when it starts, how it
//! finds its address, how it fails to start (exit code 2 and a message that
//! says why), and how it stops on SIGTERM without leaving a child behind.

mod support;

use std::time::Duration;

use assert_cmd::Command;
use nix::sys::signal::Signal;
use predicates::prelude::*;
use reference_server::faults::Fault;
use rstest::rstest;
use support::{describe, group_members, live_children, poll_until, ServerGuard};

/// Exit status of a server that could not start.
const EXIT_STARTUP: i32 = reference_server::EXIT_STARTUP as i32;
/// Generous bound for a process to exit on a busy machine.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// Sends `request` on a new connection to `server` and waits until a child
/// serves it; the connection, to read the answer from.
fn served_by_a_child(server: &ServerGuard, request: &[u8]) -> support::RawClient {
    let mut client = support::RawClient::connect(server.addr());
    client.send(request);
    assert!(
        poll_until(Duration::from_secs(10), || !live_children(server.pid())
            .is_empty()),
        "no child started for {:?}",
        String::from_utf8_lossy(request)
    );
    client
}

#[test]
fn stdout_is_exactly_one_listening_line() {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0"]);
    assert_ne!(server.port(), 0, "port 0 must be replaced by the real port");
    // Some traffic, so that a stray print on the request path would show.
    let _ = support::raw_exchange(
        server.addr(),
        b"GET / HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    );
    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(EXIT_DEADLINE)
        .expect("server exits on SIGTERM");
    assert!(status.success(), "{}", describe(status));
    assert!(
        poll_until(Duration::from_secs(10), || server.stdout_closed()),
        "stdout never closed"
    );
    assert_eq!(
        server.extra_stdout(),
        Vec::<String>::new(),
        "more than one line on stdout"
    );
}

#[test]
fn port_and_host_come_from_the_environment_without_listen() {
    let port = support::free_port();
    let server =
        ServerGuard::start_with_env(&[], &[("PORT", &port.to_string()), ("HOST", "127.0.0.1")]);
    assert_eq!(server.addr().to_string(), format!("127.0.0.1:{port}"));
    let bytes = support::raw_exchange(
        server.addr(),
        b"GET / HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(
        bytes.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn a_listen_address_without_a_numeric_port_is_a_startup_error() {
    let (status, stderr) = ServerGuard::start_expect_fail(&["--listen", "127.0.0.1:notaport"], &[]);
    assert_eq!(
        status.code(),
        Some(EXIT_STARTUP),
        "{}; stderr: {stderr}",
        describe(status)
    );
    assert!(
        stderr.contains("--listen") && stderr.contains("notaport"),
        "unclear message: {stderr}"
    );
}

#[test]
fn an_unknown_fault_is_a_startup_error() {
    let (status, stderr) =
        ServerGuard::start_expect_fail(&["--listen", "127.0.0.1:0", "--fault", "nope"], &[]);
    assert_eq!(
        status.code(),
        Some(EXIT_STARTUP),
        "{}; stderr: {stderr}",
        describe(status)
    );
    assert!(
        stderr.contains("nope") && stderr.contains("invalid value"),
        "unclear message: {stderr}"
    );
}

#[test]
fn a_port_in_use_is_a_startup_error_naming_the_address() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port to hold");
    let addr = held.local_addr().expect("local address").to_string();
    let (status, stderr) = ServerGuard::start_expect_fail(&["--listen", &addr], &[]);
    assert_eq!(
        status.code(),
        Some(EXIT_STARTUP),
        "{}; stderr: {stderr}",
        describe(status)
    );
    assert!(
        stderr.contains(&addr),
        "stderr does not name {addr}: {stderr}"
    );
    assert!(
        stderr.contains("in use"),
        "stderr does not say why: {stderr}"
    );
}

#[test]
fn help_lists_every_fault() {
    let mut help = Command::cargo_bin("server").expect("the server binary is built");
    let mut assert = help.arg("--help").assert().success();
    for fault in Fault::ALL {
        assert = assert.stdout(predicate::str::contains(fault.name()));
    }
}

/// Every signal whose default would end the server stops it gracefully
/// (see the table in `signals.rs`).
#[rstest]
fn a_shutdown_signal_when_idle_exits_zero(
    #[values(Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT)] signal: Signal,
) {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0"]);
    server.signal(signal);
    let status = server
        .wait_exit(EXIT_DEADLINE)
        .unwrap_or_else(|| panic!("server exits on {signal}"));
    assert!(
        status.success(),
        "{}; stderr:\n{}",
        describe(status),
        server.stderr()
    );
}

#[rstest]
fn a_shutdown_signal_kills_busy_children_after_the_grace_period(
    #[values(Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT)] signal: Signal,
) {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0", "--grace", "300ms"]);
    let mut client = served_by_a_child(&server, b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: a\r\n\r\n");
    server.signal(signal);
    let status = server
        .wait_exit(EXIT_DEADLINE)
        .unwrap_or_else(|| panic!("server exits on {signal} despite a busy child"));
    assert!(
        status.success(),
        "{}; stderr:\n{}",
        describe(status),
        server.stderr()
    );
    // The group is the server's pid: nothing of it may survive the server.
    let left = poll_until(Duration::from_secs(5), || {
        group_members(server.pid()).is_empty()
    });
    assert!(
        left,
        "processes outlived the server: {:?}",
        group_members(server.pid())
    );
    // The client's connection ended with the child.
    let (_, ending) = support::read_until_eof(&mut client.stream, Duration::from_secs(10));
    assert_ne!(
        ending,
        support::Ending::Timeout,
        "the client's connection outlived the server"
    );
}

/// Signals that mean nothing to the server are ignored, by the parent and
/// by a child in the middle of a request: a stray `kill -USR1` (or a whole
/// group's worth) ends neither, and the request completes.
#[rstest]
fn a_stray_signal_ends_neither_the_server_nor_a_busy_child(
    #[values(Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGALRM)] signal: Signal,
) {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0"]);
    let mut client = served_by_a_child(
        &server,
        b"GET /sleep?ms=1000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    server.signal_group(signal);
    let (answer, _) = support::read_until_eof(&mut client.stream, Duration::from_secs(10));
    assert!(
        answer.starts_with(b"HTTP/1.1 200 "),
        "the busy child did not finish its request after {signal}: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(server.is_alive(), "the server died of {signal}");
    let bytes = support::raw_exchange(
        server.addr(),
        b"GET / HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(bytes.starts_with(b"HTTP/1.1 200 "), "{bytes:?}");
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(EXIT_DEADLINE).expect("exits on SIGTERM");
    assert!(status.success(), "{}", describe(status));
}

/// A grace far longer than a shutdown should take when every child does its
/// part: exiting within a third of it shows nobody waited it out.
const LONG_GRACE: &str = "30s";
const WELL_WITHIN_GRACE: Duration = Duration::from_secs(10);

/// On shutdown a child idle between requests closes its persistent
/// connection at once, instead of keeping the server until the grace ends.
#[test]
fn shutdown_closes_an_idle_persistent_connection_at_once() {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0", "--grace", LONG_GRACE]);
    let mut client = support::RawClient::connect(server.addr());
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = client
        .read_response(Duration::from_secs(10))
        .expect("answer");
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        poll_until(Duration::from_secs(10), || !live_children(server.pid())
            .is_empty()),
        "no child holds the idle connection"
    );
    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(WELL_WITHIN_GRACE)
        .expect("the server waited for an idle connection instead of closing it");
    assert!(status.success(), "{}", describe(status));
    let (rest, ending) = support::read_until_eof(&mut client.stream, Duration::from_secs(10));
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(ending, support::Ending::Eof);
}

/// On shutdown a child in the middle of a request finishes it, tells the
/// client with `Connection: close`, and closes.
#[test]
fn shutdown_lets_a_request_in_progress_finish_with_connection_close() {
    let server = ServerGuard::start(&["--listen", "127.0.0.1:0", "--grace", LONG_GRACE]);
    let mut client = served_by_a_child(&server, b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n");
    server.signal(Signal::SIGTERM);
    let response = client
        .read_response(Duration::from_secs(10))
        .expect("the request in progress is answered");
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .headers
            .iter()
            .any(|(name, value)| name.eq_ignore_ascii_case("connection") && value == "close"),
        "{response:?}"
    );
    let (_, ending) = support::read_until_eof(&mut client.stream, Duration::from_secs(10));
    assert_eq!(ending, support::Ending::Eof);
    let status = server
        .wait_exit(WELL_WITHIN_GRACE)
        .expect("the server exits once its last child finished");
    assert!(status.success(), "{}", describe(status));
}
