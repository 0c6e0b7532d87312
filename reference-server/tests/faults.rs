//! Every teaching fault, proven real: each test switches one fault on and
//! shows the defect from outside (through sockets, signals and /proc), and
//! where it is cheap, the same steps against the clean server show that the
//! defect is not there. A fault whose test passes without the fault would be
//! a check that cannot fail.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::socket::{setsockopt, sockopt};
use support::{
    describe, fd_count, live_children, parse_response, poll_until, raw_exchange,
    raw_exchange_ending, socket_inodes, zombies, Ending, RawClient, ServerGuard,
};

/// Generous bound for one response on a busy machine.
const RESPONSE: Duration = Duration::from_secs(10);
/// Generous bound for a state the server should reach on its own.
const SETTLE: Duration = Duration::from_secs(10);

const CLOSE_ROOT: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

/// Starts a server on a free port with `--fault NAME` for each name.
fn start(faults: &[&str], extra: &[&str]) -> ServerGuard {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    for fault in faults {
        args.extend(["--fault", fault]);
    }
    args.extend(extra);
    ServerGuard::start(&args)
}

/// GET `path` with Connection: close on a fresh socket; the response.
fn get(server: &ServerGuard, path: &str) -> support::RawResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let mut client = RawClient::connect(server.addr());
    client.send(request.as_bytes());
    client
        .read_response(RESPONSE)
        .unwrap_or_else(|e| panic!("GET {path}: {e}; server stderr:\n{}", server.stderr()))
}

/// `n` sequential GET / requests, each on its own connection, read to the end.
fn sequential_requests(server: &ServerGuard, n: usize) {
    for _ in 0..n {
        let (bytes, _) = raw_exchange_ending(server.addr(), CLOSE_ROOT, RESPONSE);
        assert!(
            bytes.starts_with(b"HTTP/1.1 200 "),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

// ---- iterative ----------------------------------------------------------

#[test]
fn iterative_serves_requests_in_the_parent() {
    let server = start(&["iterative"], &[]);
    let pid: i32 = get(&server, "/pid").text().trim().parse().expect("a pid");
    assert_eq!(pid, server.pid());
}

#[test]
fn clean_serves_requests_in_a_child() {
    let server = start(&[], &[]);
    let pid: i32 = get(&server, "/pid").text().trim().parse().expect("a pid");
    assert_ne!(pid, server.pid());
}

// ---- no-reap ------------------------------------------------------------

#[test]
fn no_reap_leaves_zombies() {
    let server = start(&["no-reap"], &[]);
    sequential_requests(&server, 5);
    assert!(
        poll_until(SETTLE, || zombies(server.pid()) >= 1),
        "no zombie among {:?}",
        support::children(server.pid())
    );
}

#[test]
fn clean_reaps_every_child() {
    let server = start(&[], &[]);
    sequential_requests(&server, 5);
    assert!(
        poll_until(SETTLE, || zombies(server.pid()) == 0),
        "zombies left: {:?}",
        support::children(server.pid())
    );
}

// ---- single-wait --------------------------------------------------------

/// 40 simultaneous GET / with Connection: close, all finished when this returns.
fn burst(server: &ServerGuard) {
    let addr = server.addr();
    let threads: Vec<_> = (0..40)
        .map(|_| std::thread::spawn(move || raw_exchange(addr, CLOSE_ROOT, RESPONSE)))
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

/// Waits for every child to have exited (zombie or gone).
fn children_settle(server: &ServerGuard) {
    assert!(
        poll_until(SETTLE, || live_children(server.pid()).is_empty()),
        "children still running: {:?}",
        support::children(server.pid())
    );
}

#[test]
fn single_wait_leaves_zombies_when_children_exit_together() {
    let server = start(&["single-wait"], &[]);
    let mut seen = false;
    for _ in 0..5 {
        burst(&server);
        children_settle(&server);
        // Nothing reaps after the burst is over: zombies that outlast this
        // window stay for good.
        if !poll_until(Duration::from_secs(2), || zombies(server.pid()) == 0) {
            seen = true;
            break;
        }
    }
    assert!(seen, "five bursts of 40 left no zombie behind");
}

#[test]
fn clean_reaps_bursts_completely() {
    let server = start(&[], &[]);
    for round in 0..5 {
        burst(&server);
        children_settle(&server);
        assert!(
            poll_until(SETTLE, || zombies(server.pid()) == 0),
            "zombies after burst {round}: {:?}",
            support::children(server.pid())
        );
    }
}

// ---- keep-client-fd -----------------------------------------------------

/// Sends GET / with Connection: close, reads the whole response (however
/// long that takes), then waits up to `wait` for end of file: how it ended.
fn close_request_ending(server: &ServerGuard, wait: Duration) -> Ending {
    let mut client = RawClient::connect(server.addr());
    client.send(CLOSE_ROOT);
    let response = client.read_response(RESPONSE).expect("a response");
    assert_eq!(response.status, 200);
    let (rest, ending) = client.read_to_end(wait);
    assert!(rest.is_empty(), "bytes after the response: {rest:?}");
    ending
}

#[test]
fn keep_client_fd_keeps_clients_from_seeing_eof() {
    let server = start(&["keep-client-fd"], &[]);
    assert_eq!(
        close_request_ending(&server, Duration::from_secs(1)),
        Ending::Timeout
    );
}

#[test]
fn clean_closes_so_clients_see_eof() {
    let server = start(&[], &[]);
    assert_eq!(close_request_ending(&server, RESPONSE), Ending::Eof);
}

#[test]
fn keep_client_fd_leaks_a_descriptor_per_connection() {
    let server = start(&["keep-client-fd"], &[]);
    let baseline = fd_count(server.pid());
    for _ in 0..10 {
        // The response arrives even though EOF never does.
        let mut client = RawClient::connect(server.addr());
        client.send(CLOSE_ROOT);
        client.read_response(RESPONSE).expect("a response");
    }
    assert!(
        poll_until(SETTLE, || fd_count(server.pid()) >= baseline + 10),
        "fds went from {baseline} to {}",
        fd_count(server.pid())
    );
}

// ---- keep-listener ------------------------------------------------------

/// Starts a 5 s sleep request and returns (its socket, the listener's inode,
/// the pid of the child serving it).
fn sleeping_child(server: &ServerGuard) -> (TcpStream, u64, i32) {
    // Idle, the parent's only socket is the listener (the shutdown pipe is a pipe).
    let parent_sockets = socket_inodes(server.pid());
    assert_eq!(
        parent_sockets.len(),
        1,
        "expected only the listener: {parent_sockets:?}"
    );
    let listener = parent_sockets[0];
    let mut client = TcpStream::connect(server.addr()).expect("connect");
    client
        .write_all(b"GET /sleep?ms=5000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("sending the sleep request");
    let mut child = None;
    assert!(
        poll_until(SETTLE, || {
            child = live_children(server.pid()).first().copied();
            child.is_some()
        }),
        "no child for the sleep request"
    );
    (client, listener, child.expect("set when found"))
}

#[test]
fn keep_listener_children_hold_the_listening_socket() {
    let server = start(&["keep-listener"], &[]);
    let (_client, listener, child) = sleeping_child(&server);
    assert!(
        poll_until(SETTLE, || socket_inodes(child).contains(&listener)),
        "child {child} does not hold listener inode {listener}: {:?}",
        socket_inodes(child)
    );
}

#[test]
fn clean_children_close_the_listening_socket() {
    let server = start(&[], &[]);
    let (_client, listener, child) = sleeping_child(&server);
    // The child closes the listener right after fork: wait until it has its
    // client socket and nothing else, while it still sleeps.
    let mut sockets = Vec::new();
    assert!(
        poll_until(SETTLE, || {
            sockets = socket_inodes(child);
            sockets.len() == 1 && !sockets.contains(&listener)
        }),
        "child {child} sockets {sockets:?}, listener {listener}"
    );
    assert!(
        live_children(server.pid()).contains(&child),
        "the child ended before the check"
    );
}

// ---- no-eintr-retry -----------------------------------------------------

#[test]
fn no_eintr_retry_dies_on_any_signal() {
    let server = start(&["no-eintr-retry"], &[]);
    // A signal that lands before the server blocks in poll interrupts
    // nothing; keep signalling until one catches it blocked.
    let mut status = None;
    poll_until(SETTLE, || {
        if server.is_alive() {
            server.signal(Signal::SIGCHLD);
        }
        status = server.wait_exit(Duration::from_millis(100));
        status.is_some()
    });
    let status = status.expect("the server dies of EINTR");
    assert!(!status.success(), "{}", describe(status));
    assert!(
        server.stderr().contains("Interrupted"),
        "stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn clean_retries_after_signals() {
    let server = start(&[], &[]);
    for _ in 0..100 {
        server.signal(Signal::SIGCHLD);
    }
    assert_eq!(get(&server, "/").text(), "Hello, World!");
    assert!(server.is_alive(), "stderr:\n{}", server.stderr());
}

// ---- no-reuseaddr -------------------------------------------------------

/// Leaves a TIME_WAIT connection on the server's port (the server closes
/// first), kills the server, and restarts on the same port.
fn restart_after_time_wait(faults: &[&str]) -> Result<ServerGuard, support::StartFailure> {
    let first = start(faults, &[]);
    // Reading to EOF before closing makes the server the side that closed
    // first, so TIME_WAIT lands on the server's port.
    assert_eq!(close_request_ending(&first, RESPONSE), Ending::Eof);
    let port = first.port();
    // Kill and reap it: its listener is gone, the TIME_WAIT connection stays.
    drop(first);
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--listen", listen.as_str()];
    for fault in faults {
        args.extend(["--fault", fault]);
    }
    ServerGuard::try_start(&args, &[])
}

#[test]
fn no_reuseaddr_cannot_restart_on_its_port() {
    match restart_after_time_wait(&["no-reuseaddr"]) {
        Ok(server) => panic!(
            "the restart on port {} succeeded despite TIME_WAIT",
            server.port()
        ),
        Err(failure) => {
            let code = failure.status.and_then(|s| s.code());
            assert_eq!(
                code,
                Some(i32::from(reference_server::EXIT_STARTUP)),
                "{failure}"
            );
            assert!(failure.stderr.contains("in use"), "{failure}");
        }
    }
}

#[test]
fn clean_restarts_on_its_port() {
    match restart_after_time_wait(&[]) {
        Ok(server) => assert_eq!(get(&server, "/").text(), "Hello, World!"),
        Err(failure) => panic!("restart on the same port failed: {failure}"),
    }
}

// ---- sigpipe ------------------------------------------------------------

/// Requests 20 MB, reads a little, then resets the connection (SO_LINGER 0).
fn reset_during_large_response(server: &ServerGuard) {
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .write_all(b"GET /bytes?n=20000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("sending the request");
    stream
        .set_read_timeout(Some(RESPONSE))
        .expect("set_read_timeout");
    let mut received = 0;
    let mut chunk = [0u8; 4096];
    while received < 8192 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received > 0, "no response started");
    // Closing with linger 0 sends RST: the server's next writes fail.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&stream.as_fd(), sockopt::Linger, &linger).expect("SO_LINGER");
    drop(stream);
}

#[test]
fn sigpipe_kills_an_iterative_server_when_a_client_resets() {
    let server = start(&["iterative", "sigpipe"], &[]);
    reset_during_large_response(&server);
    let status = server.wait_exit(SETTLE).unwrap_or_else(|| {
        panic!(
            "the server survived writing to a reset connection; stderr:\n{}",
            server.stderr()
        )
    });
    assert_eq!(
        status.signal(),
        Some(Signal::SIGPIPE as i32),
        "{}",
        describe(status)
    );
}

#[test]
fn iterative_without_sigpipe_survives_a_reset() {
    let server = start(&["iterative"], &[]);
    reset_during_large_response(&server);
    assert_eq!(get(&server, "/").text(), "Hello, World!");
    assert!(server.is_alive());
}

// ---- leak-fd ------------------------------------------------------------

#[test]
fn leak_fd_leaks_a_descriptor_per_connection() {
    let server = start(&["leak-fd"], &[]);
    let baseline = fd_count(server.pid());
    sequential_requests(&server, 20);
    assert!(
        poll_until(SETTLE, || fd_count(server.pid()) >= baseline + 20),
        "fds went from {baseline} to {}",
        fd_count(server.pid())
    );
}

#[test]
fn clean_returns_to_its_descriptor_baseline() {
    let server = start(&[], &[]);
    let baseline = fd_count(server.pid());
    sequential_requests(&server, 20);
    assert!(
        poll_until(SETTLE, || fd_count(server.pid()) == baseline),
        "fds went from {baseline} to {}",
        fd_count(server.pid())
    );
}

// ---- single-read --------------------------------------------------------

fn long_header_status(server: &ServerGuard) -> u16 {
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "v".repeat(3000)
    );
    let mut client = RawClient::connect(server.addr());
    client.send(request.as_bytes());
    client.read_response(RESPONSE).expect("a response").status
}

#[test]
fn single_read_rejects_requests_longer_than_one_read() {
    let server = start(&["single-read"], &[]);
    assert_eq!(long_header_status(&server), 400);
}

#[test]
fn clean_reads_until_the_head_is_complete() {
    let server = start(&[], &[]);
    assert_eq!(long_header_status(&server), 200);
}

// ---- naive-parse --------------------------------------------------------

const SHORT_LINE: &[u8] = b"GET\r\n\r\n";

#[test]
fn naive_parse_kills_the_child_without_a_response() {
    let server = start(&["naive-parse"], &[]);
    let (bytes, ending) = raw_exchange_ending(server.addr(), SHORT_LINE, RESPONSE);
    assert!(
        bytes.is_empty(),
        "got a response: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_ne!(ending, Ending::Timeout, "the connection was not closed");
    assert!(server.is_alive(), "a child's panic killed the parent");
    assert_eq!(get(&server, "/").text(), "Hello, World!");
}

#[test]
fn naive_parse_kills_an_iterative_server() {
    let server = start(&["iterative", "naive-parse"], &[]);
    let _ = raw_exchange(server.addr(), SHORT_LINE, RESPONSE);
    let status = server
        .wait_exit(SETTLE)
        .expect("the server dies of the panic");
    assert!(!status.success(), "{}", describe(status));
    assert!(
        server.stderr().contains("panicked"),
        "stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn clean_rejects_a_short_request_line_with_400() {
    let server = start(&[], &[]);
    let bytes = raw_exchange(server.addr(), SHORT_LINE, RESPONSE);
    let (response, _) = parse_response(&bytes, false)
        .expect("a well-formed response")
        .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&bytes)));
    assert_eq!(response.status, 400);
}

// ---- no-exit ------------------------------------------------------------

/// Processes of the server's group that are not zombies, the server included.
fn live_group(server: &ServerGuard) -> Vec<i32> {
    support::all_processes()
        .into_iter()
        .filter(|p| p.pgrp == server.pid() && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

#[test]
fn no_exit_children_outlive_their_connection() {
    let server = start(&["no-exit"], &[]);
    sequential_requests(&server, 3);
    // Every connection is over, yet served children are still running:
    // they went back into the accept loop.
    assert!(
        poll_until(SETTLE, || live_group(&server).len() > 1),
        "only the server is left: {:?}",
        live_group(&server)
    );
    assert!(
        !poll_until(Duration::from_secs(2), || live_group(&server).len() == 1),
        "the extra processes went away: {:?}",
        live_group(&server)
    );
}

#[test]
fn clean_children_exit_after_their_connection() {
    let server = start(&[], &[]);
    sequential_requests(&server, 3);
    assert!(
        poll_until(SETTLE, || live_group(&server) == vec![server.pid()]),
        "processes besides the server: {:?}",
        live_group(&server)
    );
}

// ---- orphan-children ----------------------------------------------------

#[test]
fn orphan_children_survive_a_sigterm_of_the_parent() {
    let server = start(&["orphan-children"], &[]);
    let (_client, _listener, child) = sleeping_child(&server);
    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(SETTLE)
        .expect("the parent dies of SIGTERM");
    assert_eq!(
        status.signal(),
        Some(Signal::SIGTERM as i32),
        "{}",
        describe(status)
    );
    // The child was not told: it still runs, reparented.
    let stat = support::proc_stat(child).expect("the child outlived its parent");
    assert_ne!(stat.state, 'Z', "the child is gone: {stat:?}");
    assert_ne!(stat.ppid, server.pid());
}

// (The clean counterpart is lifecycle.rs: SIGTERM leaves no process of the group.)

// ---- tiny-backlog -------------------------------------------------------

/// Stops the server (SIGSTOP, so nothing is accepted), then makes 10
/// connections at once: how many the kernel completes on its own, which is
/// bounded by the listen backlog. The server is resumed before returning.
fn connections_queued_while_stopped(server: &ServerGuard) -> usize {
    server.signal(Signal::SIGSTOP);
    assert!(
        poll_until(SETTLE, || support::proc_stat(server.pid())
            .is_some_and(|p| p.state == 'T')),
        "the server did not stop"
    );
    let addr = server.addr();
    let attempts: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                // A SYN that finds the accept queue full is dropped, and so is
                // every retransmission while the server stays stopped: the
                // timeout bounds the wait, it does not decide the outcome.
                TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()
            })
        })
        .collect();
    let connected: Vec<TcpStream> = attempts
        .into_iter()
        .filter_map(|t| t.join().ok().flatten())
        .collect();
    server.signal(Signal::SIGCONT);
    connected.len()
}

#[test]
fn tiny_backlog_queues_almost_nothing() {
    let server = start(&["tiny-backlog"], &[]);
    let queued = connections_queued_while_stopped(&server);
    // listen(1) holds backlog + 1 = 2 connections on Linux.
    assert!(
        queued <= 3,
        "{queued} of 10 connections completed with listen(1)"
    );
}

#[test]
fn clean_backlog_queues_a_burst() {
    let server = start(&[], &[]);
    assert_eq!(connections_queued_while_stopped(&server), 10);
}
