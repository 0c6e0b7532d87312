//! Shared tooling for the integration tests: a guard that owns a running
//! `server` process (and its whole process group), raw-socket helpers that
//! show exactly what went over the wire, and `/proc` readers for the process
//! checks (children, zombies, descriptors, sockets).
//!
//! Nothing here sleeps to synchronise: every wait is a condition polled with
//! a deadline, because the machine running the tests is small and noisy.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

// The harness's tests own their processes with the same guard.
#[path = "../../../harness/tests/support/group.rs"]
mod group;
pub use group::ProcessGroup;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// How long a server gets to print its `listening on` line.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// How often [`poll_until`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Locks a mutex even if a panicking thread poisoned it: the data (bytes of
/// output, a child handle) stays meaningful after a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The path of the `server` binary cargo built for these tests.
pub fn server_bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("server")
}

/// A running `server`, killed with its whole process group when dropped
/// (panics included), so no test leaves a server or a child behind.
pub struct ServerGuard {
    /// The server, leading a process group of its own, which is killed
    /// with every child in it on drop.
    group: ProcessGroup,
    /// The address from the `listening on` line.
    addr: SocketAddr,
    /// Everything the server wrote to stderr so far (a thread drains it).
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Set when stderr reached end of file.
    stderr_closed: Arc<AtomicBool>,
    /// Lines written to stdout after the `listening on` line.
    extra_stdout: Arc<Mutex<Vec<String>>>,
    /// Set when stdout reached end of file (every holder of the pipe is gone).
    stdout_closed: Arc<AtomicBool>,
}

impl ServerGuard {
    /// Starts `server ARGS...` and waits for its `listening on` line.
    /// Panics (after killing it) if the line does not come in time.
    pub fn start(args: &[&str]) -> ServerGuard {
        Self::start_with_env(args, &[])
    }

    /// Like [`ServerGuard::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> ServerGuard {
        Self::try_start(args, env)
            .unwrap_or_else(|failure| panic!("server {args:?} did not start: {failure}"))
    }

    /// Runs a server that is expected to fail at startup; returns its exit
    /// status and stderr. Panics if it starts listening instead, or neither
    /// listens nor exits within the deadline.
    pub fn start_expect_fail(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
        match Self::try_start(args, env) {
            Ok(server) => panic!(
                "server {args:?} was expected to fail at startup but listens on {}",
                server.addr()
            ),
            Err(StartFailure {
                status: Some(status),
                stderr,
                ..
            }) => (status, stderr),
            Err(failure) => panic!("server {args:?} was expected to fail at startup: {failure}"),
        }
    }

    /// Starts `server ARGS...` with extra environment variables and waits
    /// for its `listening on` line; on failure the process is gone and its
    /// exit status (if it exited) and stderr say why.
    pub fn try_start(args: &[&str], env: &[(&str, &str)]) -> Result<ServerGuard, StartFailure> {
        let mut command = Command::new(server_bin());
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own group, so drop can kill the server and every child it forked.
        let group = ProcessGroup::spawn(&mut command).expect("spawning the server binary");
        // Taking the pipes cannot fail: both were configured as piped above.
        let stdout = group.take_stdout().expect("stdout is piped");
        let stderr_pipe = group.take_stderr().expect("stderr is piped");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_closed = Arc::new(AtomicBool::new(false));
        drain_into(stderr_pipe, Arc::clone(&stderr), Arc::clone(&stderr_closed));

        let extra_stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_closed = Arc::new(AtomicBool::new(false));
        let (first_line_tx, first_line_rx) = mpsc::channel();
        {
            let extra_stdout = Arc::clone(&extra_stdout);
            let stdout_closed = Arc::clone(&stdout_closed);
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next();
                let _ = first_line_tx.send(first.and_then(Result::ok));
                for line in lines.map_while(Result::ok) {
                    lock(&extra_stdout).push(line);
                }
                stdout_closed.store(true, Ordering::SeqCst);
            });
        }

        // The guard exists from here on, so that every way out below kills
        // the process; the address is filled in once known.
        let mut guard = ServerGuard {
            group,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            stderr_closed,
            extra_stdout,
            stdout_closed,
        };
        let failure = |guard: &ServerGuard, why: String| {
            // Exited (or about to): collect its status, else kill it.
            let status = guard.wait_exit(Duration::from_secs(5));
            guard.kill();
            // The pipes close once every holder is gone; then stderr is whole.
            poll_until(Duration::from_secs(5), || {
                guard.stderr_closed.load(Ordering::SeqCst)
            });
            StartFailure {
                status,
                stderr: guard.stderr(),
                why,
            }
        };
        let line = match first_line_rx.recv_timeout(STARTUP_DEADLINE) {
            Ok(Some(line)) => line,
            Ok(None) => {
                return Err(failure(
                    &guard,
                    "stdout closed without a listening line".into(),
                ))
            }
            Err(_) => {
                return Err(failure(
                    &guard,
                    format!("no listening line within {STARTUP_DEADLINE:?}"),
                ))
            }
        };
        match parse_listening_line(&line) {
            Some(addr) => guard.addr = addr,
            None => {
                return Err(failure(
                    &guard,
                    format!("unexpected first stdout line {line:?}"),
                ))
            }
        }
        Ok(guard)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's pid (also its process group id).
    pub fn pid(&self) -> i32 {
        self.group.pid()
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Whether the server process is still running (not exited, not a zombie).
    pub fn is_alive(&self) -> bool {
        self.group.is_alive()
    }

    /// Waits up to `deadline` for the server to exit; its status, or None.
    /// The server is not reaped by this, so its group stays ours to kill.
    pub fn wait_exit(&self, deadline: Duration) -> Option<ExitStatus> {
        self.group.wait_timeout(deadline)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// Lines the server wrote to stdout after its `listening on` line.
    pub fn extra_stdout(&self) -> Vec<String> {
        lock(&self.extra_stdout).clone()
    }

    /// Whether the server's stdout pipe has reached end of file.
    pub fn stdout_closed(&self) -> bool {
        self.stdout_closed.load(Ordering::SeqCst)
    }

    /// Sends `signal` to the server process only (not its group).
    pub fn signal(&self, signal: Signal) {
        self.group.signal(signal).expect("signalling the server");
    }

    /// Sends `signal` to the server's whole process group (it and every
    /// child it forked), as a terminal does.
    pub fn signal_group(&self, signal: Signal) {
        self.group
            .signal_group(signal)
            .expect("signalling the server's group");
    }

    /// Kills the whole process group and reaps the server. Idempotent.
    pub fn kill(&self) {
        self.group.kill_and_reap();
    }
}

/// Why a server did not start listening.
#[derive(Debug)]
pub struct StartFailure {
    /// Its exit status, if it exited (None: it hung and was killed).
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// What went wrong, as seen from the test.
    pub why: String,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self
            .status
            .map_or_else(|| "still running, killed".to_string(), describe);
        write!(f, "{} ({status}); stderr:\n{}", self.why, self.stderr)
    }
}

/// Copies everything from `pipe` into `sink` on a thread, and sets `closed`
/// at end of file.
fn drain_into(
    mut pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<u8>>>,
    closed: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => lock(&sink).extend_from_slice(&chunk[..n]),
            }
        }
        closed.store(true, Ordering::SeqCst);
    });
}

/// The address in `listening on http://HOST:PORT`, if the line is exactly that.
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("listening on http://")?.parse().ok()
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes.
/// Returns whether it held.
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Why a raw read stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server closed its side (end of file).
    Eof,
    /// The deadline passed with the connection still open.
    Timeout,
    /// The connection was reset or failed.
    Error,
}

/// Connects, sends `bytes`, and reads until end of file or `timeout`.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    raw_exchange_ending(addr, bytes, timeout).0
}

/// [`raw_exchange`], also telling how the reading ended.
pub fn raw_exchange_ending(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> (Vec<u8>, Ending) {
    let mut stream = TcpStream::connect(addr).expect("connecting to the server");
    // A server may reject and close before it has read everything: a failed
    // write is not the test's business, what comes back is.
    let _ = stream.write_all(bytes);
    read_until_eof(&mut stream, timeout)
}

/// Reads until end of file, an error, or `timeout` passes.
pub fn read_until_eof(stream: &mut TcpStream, timeout: Duration) -> (Vec<u8>, Ending) {
    let end = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (received, Ending::Timeout);
        }
        // set_read_timeout rejects zero, and `left` is not zero here.
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return (received, Ending::Eof),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (received, Ending::Timeout)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return (received, Ending::Error),
        }
    }
}

/// One HTTP response as received: status, fields, body.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Fields as sent (name, value).
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length framed; empty for 1xx and when asked for HEAD).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of a field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses one response at the start of `buf`. `Ok(None)`: not all there
/// yet. `head_only`: the request was HEAD, so no body follows the head.
/// On success, also returns how many bytes it took.
pub fn parse_response(buf: &[u8], head_only: bool) -> Result<Option<(RawResponse, usize)>, String> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut slots);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "unparsable response ({e}): {:?}",
                String::from_utf8_lossy(buf)
            ))
        }
    };
    // httparse fills the code on Complete.
    let status = response.code.unwrap_or(0);
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let content_length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>())
        .transpose()
        .map_err(|e| format!("bad Content-Length in response: {e}"))?;
    let body_len = if head_only || (100..200).contains(&status) {
        0
    } else {
        content_length.ok_or_else(|| "response without Content-Length".to_string())?
    };
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    let body = buf[head_len..head_len + body_len].to_vec();
    Ok(Some((
        RawResponse {
            status,
            headers,
            body,
        },
        head_len + body_len,
    )))
}

/// Parses every complete response in `buf`, in order (none of them HEAD).
pub fn parse_all_responses(mut buf: &[u8]) -> Result<Vec<RawResponse>, String> {
    let mut responses = Vec::new();
    while !buf.is_empty() {
        match parse_response(buf, false)? {
            Some((response, used)) => {
                responses.push(response);
                buf = &buf[used..];
            }
            None => {
                return Err(format!(
                    "trailing partial response: {:?}",
                    String::from_utf8_lossy(buf)
                ))
            }
        }
    }
    Ok(responses)
}

/// A client connection driven by hand, one response at a time.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes received and not yet parsed into a response.
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connecting to the server");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("sending to the server");
    }

    /// Reads until one whole response is buffered and returns it.
    pub fn read_response(&mut self, timeout: Duration) -> Result<RawResponse, String> {
        self.read_response_to(timeout, false)
    }

    /// Reads one response to a HEAD request (no body).
    pub fn read_head_response(&mut self, timeout: Duration) -> Result<RawResponse, String> {
        self.read_response_to(timeout, true)
    }

    fn read_response_to(
        &mut self,
        timeout: Duration,
        head_only: bool,
    ) -> Result<RawResponse, String> {
        let end = Instant::now() + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((response, used)) = parse_response(&self.buf, head_only)? {
                self.buf.drain(..used);
                return Ok(response);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no complete response within {timeout:?}; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(format!(
                        "connection closed before a complete response; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => return Err(format!("reading the response: {e}")),
            }
        }
    }

    /// Reads until end of file or `timeout`; returns what arrived after
    /// anything already buffered, and how reading ended.
    pub fn read_to_end(&mut self, timeout: Duration) -> (Vec<u8>, Ending) {
        let (more, ending) = read_until_eof(&mut self.stream, timeout);
        let mut all = std::mem::take(&mut self.buf);
        all.extend_from_slice(&more);
        (all, ending)
    }

    /// Bytes received but not yet returned as a response.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

/// One line of `/proc/PID/stat`, the fields the tests need.
#[derive(Clone, Copy, Debug)]
pub struct ProcStat {
    /// Process id.
    pub pid: i32,
    /// State: R, S, D, Z, T...
    pub state: char,
    /// Parent pid.
    pub ppid: i32,
    /// Process group id.
    pub pgrp: i32,
}

/// Reads `/proc/PID/stat`; None if the process is gone.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or ')':
    // the fields that follow start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        pgrp,
    })
}

/// Every process visible in /proc.
pub fn all_processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// The children of `pid`: (pid, state).
pub fn children(pid: i32) -> Vec<(i32, char)> {
    all_processes()
        .into_iter()
        .filter(|p| p.ppid == pid)
        .map(|p| (p.pid, p.state))
        .collect()
}

/// How many children of `pid` are zombies.
pub fn zombies(pid: i32) -> usize {
    children(pid)
        .iter()
        .filter(|(_, state)| *state == 'Z')
        .count()
}

/// Children of `pid` that are not zombies.
pub fn live_children(pid: i32) -> Vec<i32> {
    children(pid)
        .into_iter()
        .filter(|(_, state)| *state != 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// Processes whose process group is `pgid`, but for its leader: a guard
/// keeps an exited leader unreaped (see [`ProcessGroup`]), so it may still
/// be listed, as a zombie, while nothing of it runs.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid && p.pid != pgid)
        .map(|p| p.pid)
        .collect()
}

/// The peak resident set of `pid` in KiB (`VmHWM` in `/proc/PID/status`),
/// or `None` once it is gone.
pub fn peak_rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// How many descriptors `pid` has open (0 if it is gone).
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// The inodes of the sockets `pid` has open (`socket:[INODE]` links).
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let text = target.to_str()?.to_string();
            text.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// A port that was free a moment ago (bound with port 0, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// A blocking reqwest client with no proxy and a generous timeout, that
/// opens a new connection for every request when `fresh` is set.
pub fn http_client(fresh: bool) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30));
    if fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().expect("building the HTTP client")
}

/// The exit code, or a description of the signal that ended the process.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => format!("{status:?}"),
    }
}
