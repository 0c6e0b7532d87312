//! How the server under test handles connections, judged by behaviour.
//!
//! The count of threads or children at one moment says little: a language
//! runtime has threads of its own (a JVM has twenty at idle), a forking
//! child that reads one `recv(1024)` and exits lives a millisecond, and a
//! fork server that never reaps shows only zombies. So the model is taken
//! from what changes when connections are held open:
//!
//! 1. **Idle**, before any request: live children and threads, settled.
//! 2. **Held**: connections that send nothing and connections that send
//!    half a request, held while the tree is watched every few milliseconds.
//!    A forking server forks for each (its children block in their first
//!    read, or are seen as they come and go); a threaded one grows a thread
//!    for each; an iterative or event-loop one changes nothing.
//! 3. **Another client**: is a `GET /` answered while those are held? An
//!    event loop answers; an iterative server is stuck in the first read.
//!
//! Then the held requests are completed, so that even a fragile server sees
//! only whole requests. Observations that do not fit one model give
//! `unknown`, with the evidence.

use std::fmt;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::census::{self, Snapshot};
use crate::target::ServerInstance;
use crate::timed;

/// How the server handles connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// One connection at a time, in one process and thread.
    Iterative,
    /// A new child process per connection.
    ForkPerConnection,
    /// Worker processes started in advance, which accept on a shared socket.
    PreFork,
    /// One process that starts a thread per connection.
    Threaded,
    /// One process serving many connections without a thread or child for
    /// each: an event loop, or a fixed pool of threads (from outside the two
    /// behave alike).
    EventLoop,
    /// The observations did not fit one model.
    Unknown,
}

impl Model {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Iterative => "iterative",
            Model::ForkPerConnection => "fork-per-connection",
            Model::PreFork => "pre-fork",
            Model::Threaded => "threaded",
            Model::EventLoop => "event-loop",
            Model::Unknown => "unknown",
        }
    }

    /// Whether the server serves one connection at a time.
    pub fn is_iterative(self) -> bool {
        self == Model::Iterative
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classification and the observations behind it.
#[derive(Clone, Debug)]
pub struct ModelReport {
    /// The model.
    pub model: Model,
    /// What was seen, in one line.
    pub evidence: String,
}

impl ModelReport {
    /// A report for a model known without observing (tests).
    pub fn assumed(model: Model) -> ModelReport {
        ModelReport {
            model,
            evidence: String::new(),
        }
    }
}

/// The server at idle, before any request.
#[derive(Clone, Debug)]
pub struct Idle {
    /// Live descendants, once settled.
    pub live: Vec<i32>,
    /// Zombies among its descendants.
    pub zombies: usize,
    /// Threads of the leader and its live descendants.
    pub threads: u32,
}

/// Observes the server at idle: the settled set of live descendants (a
/// pre-fork server listens before it has forked all its workers).
pub fn observe_idle(server: &ServerInstance) -> Idle {
    // Resident processes only: the readiness probe's connection may still
    // have a child lingering over it.
    let live = census::settled_residents(server.pid(), server.port(), Duration::from_secs(3)).value;
    let snapshot = Snapshot::take(server.pid());
    Idle {
        live,
        zombies: snapshot.zombies().count(),
        threads: snapshot.threads(),
    }
}

/// Connections held silent (nothing sent) while the server is observed.
const SILENT: usize = 4;
/// Connections held with half a request.
const HALF: usize = 4;
/// The half request sent on the half-sent connections.
const HALF_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: harness\r\n";

/// What was seen while connections were held.
#[derive(Clone, Debug, Default)]
struct Held {
    /// Connections opened.
    opened: usize,
    /// New descendants seen (live or zombie).
    new_children: usize,
    /// Of them, seen as zombies.
    new_zombies: usize,
    /// Threads of the leader and of the processes that existed at idle,
    /// once settled.
    max_threads: u32,
    /// A `GET /` from another client while they were held: its latency.
    other_answered: Option<Duration>,
}

/// Observes the server with connections held open, and classifies it.
pub fn classify(server: &ServerInstance, idle: &Idle) -> ModelReport {
    let held = observe_held(server, idle);
    let (model, note) = decide(idle, &held);
    let mut evidence = format!(
        "idle: {} children, {}; {} connections held ({SILENT} silent, {HALF} half-sent): {} new children",
        idle.live.len(),
        plural(idle.threads, "thread"),
        held.opened,
        held.new_children
    );
    if held.new_zombies > 0 {
        evidence.push_str(&format!(" ({} zombies)", held.new_zombies));
    }
    evidence.push_str(&format!(
        ", {:+} threads; ",
        i64::from(held.max_threads) - i64::from(idle.threads)
    ));
    match held.other_answered {
        Some(latency) => evidence.push_str(&format!(
            "another client answered in {} ms",
            latency.as_millis()
        )),
        None => evidence.push_str("another client not answered within 1 s"),
    }
    if let Some(note) = note {
        evidence.push_str(&format!("; {note}"));
    }
    ModelReport { model, evidence }
}

/// The rules, in order; a note when the observations do not fit well.
fn decide(idle: &Idle, held: &Held) -> (Model, Option<String>) {
    let half = (held.opened / 2).max(1);
    let thread_growth = held.max_threads.saturating_sub(idle.threads) as usize;
    let answered = held.other_answered.is_some();
    if held.opened == 0 {
        return (
            Model::Unknown,
            Some("no connection could be held open".into()),
        );
    }
    if held.new_children >= half {
        return (Model::ForkPerConnection, None);
    }
    if !idle.live.is_empty() {
        return (Model::PreFork, None);
    }
    if held.new_children > 0 {
        return (
            Model::Unknown,
            Some(format!(
                "children appeared for only {} of {} connections; checks that depend on the model treat it as concurrent",
                held.new_children, held.opened
            )),
        );
    }
    if thread_growth >= half {
        if !answered {
            return (
                Model::Unknown,
                Some("threads grew with the connections but another client was not answered; checks that depend on the model treat it as concurrent".into()),
            );
        }
        return (Model::Threaded, None);
    }
    if answered {
        (Model::EventLoop, None)
    } else {
        (Model::Iterative, None)
    }
}

fn observe_held(server: &ServerInstance, idle: &Idle) -> Held {
    let (pid, addr) = (server.pid(), server.addr());
    let ((mut streams, max_threads), seen) = census::watch(pid, || {
        let mut streams: Vec<(TcpStream, bool)> = Vec::new();
        for i in 0..SILENT + HALF {
            let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                continue;
            };
            let half = i >= SILENT;
            if half && stream.write_all(HALF_REQUEST).is_err() {
                continue;
            }
            streams.push((stream, half));
        }
        // Until the tree stops changing: forks and thread starts take a
        // moment, on a loaded machine several.
        let settled = census::settle(
            Duration::from_millis(250),
            Duration::from_millis(1500),
            || {
                let snapshot = Snapshot::take(pid);
                (snapshot.descendants.len(), snapshot.threads_of(&idle.live))
            },
        );
        (streams, settled.value.1)
    });
    let opened = streams.len();
    let started = Instant::now();
    let other = timed::get(addr, "/", Duration::from_secs(1));
    let other_answered = other.answered().then(|| started.elapsed());
    complete_gently(&mut streams);
    Held {
        opened,
        new_children: seen.new.len(),
        new_zombies: seen.new_zombies.len(),
        max_threads,
        other_answered,
    }
}

/// Finishes every held request and reads what comes back for a short
/// while, so that the server sees whole requests, never a connection that
/// closes empty (which some servers do not survive).
fn complete_gently(streams: &mut [(TcpStream, bool)]) {
    for (stream, half) in streams.iter_mut() {
        let sent: &[u8] = if *half { HALF_REQUEST } else { b"" };
        let _ = stream.write_all(timed::completion_of(sent));
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    crate::poll::in_parallel(streams.len(), |i| {
        let mut stream = &streams[i].0;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match std::io::Read::read(&mut stream, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn idle(live: usize, threads: u32) -> Idle {
        Idle {
            live: (0..live as i32).collect(),
            zombies: 0,
            threads,
        }
    }

    fn held(new_children: usize, max_threads: u32, answered: bool) -> Held {
        Held {
            opened: 8,
            new_children,
            new_zombies: 0,
            max_threads,
            other_answered: answered.then_some(Duration::from_millis(3)),
        }
    }

    #[rstest]
    // A child per held connection, whatever the idle state.
    #[case(idle(0, 1), held(8, 1, true), Model::ForkPerConnection)]
    #[case(idle(0, 1), held(8, 1, false), Model::ForkPerConnection)]
    #[case(idle(2, 3), held(9, 3, true), Model::ForkPerConnection)]
    // Workers at idle, none added.
    #[case(idle(2, 3), held(0, 3, true), Model::PreFork)]
    // A runtime's threads at idle are not a threaded server.
    #[case(idle(0, 21), held(0, 21, false), Model::Iterative)]
    #[case(idle(0, 7), held(0, 7, true), Model::EventLoop)]
    #[case(idle(0, 7), held(0, 15, true), Model::Threaded)]
    // Observations that contradict each other.
    #[case(idle(0, 1), held(2, 1, true), Model::Unknown)]
    #[case(idle(0, 1), held(0, 9, false), Model::Unknown)]
    fn the_model_follows_what_changes_with_held_connections(
        #[case] idle: Idle,
        #[case] held: Held,
        #[case] expected: Model,
    ) {
        assert_eq!(decide(&idle, &held).0, expected);
    }
}
