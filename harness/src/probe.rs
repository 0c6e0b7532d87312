//! What the server under test can do, and how it is built.
//!
//! Capabilities: which conformance-app routes it serves. A check that needs a
//! route the server does not serve is skipped with the reason, never failed,
//! so any HTTP server can be checked with `GET /` alone.
//!
//! Process model: from /proc, the children and threads of the server at idle
//! and with connections open, classify it as iterative, fork-per-connection,
//! pre-fork, threaded or event-loop. Some requirements depend on it (a
//! pre-fork worker holds the listening socket by design).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::client;
use crate::procfs;
use crate::target::ServerInstance;

/// A conformance-app route the harness relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// `/sleep?ms=N`.
    Sleep,
    /// `/echo`.
    Echo,
    /// `/pid`.
    Pid,
    /// `/bytes?n=N`.
    Bytes,
}

impl Route {
    /// Every optional route.
    pub const ALL: [Route; 4] = [Route::Sleep, Route::Echo, Route::Pid, Route::Bytes];

    /// The route's path, as reports show it.
    pub fn path(self) -> &'static str {
        match self {
            Route::Sleep => "/sleep",
            Route::Echo => "/echo",
            Route::Pid => "/pid",
            Route::Bytes => "/bytes",
        }
    }
}

/// Decides whether a 200 response really comes from the conformance app.
type Judge = dyn Fn(&client::Response) -> bool + Sync;

/// Which routes the server serves, found by asking it.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    served: BTreeMap<&'static str, bool>,
}

impl Capabilities {
    /// Every capability present (for tests and `--assume-all`).
    pub fn all() -> Capabilities {
        Capabilities {
            served: Route::ALL.iter().map(|r| (r.path(), true)).collect(),
        }
    }

    /// Whether `route` is served.
    pub fn has(&self, route: Route) -> bool {
        self.served.get(route.path()).copied().unwrap_or(false)
    }

    /// Route path → served, for reports.
    pub fn as_map(&self) -> BTreeMap<String, bool> {
        self.served
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// Asks the server for each route and judges the answer by the contract.
    pub fn probe(server: &ServerInstance) -> Capabilities {
        let addr = server.addr();
        let timeout = Duration::from_secs(3);
        let ok = |path: &str, judge: &Judge| {
            client::get(addr, path, timeout)
                .map(|r| r.status == 200 && judge(&r))
                .unwrap_or(false)
        };
        // The four routes are asked at once: a server that answers none of
        // them costs one timeout, not four.
        let echo = |r: &client::Response| {
            serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| {
                    v.get("REQUEST_METHOD")
                        .and_then(|m| m.as_str().map(|m| m == "GET"))
                })
                .unwrap_or(false)
        };
        let pid = |r: &client::Response| {
            std::str::from_utf8(&r.body).is_ok_and(|b| b.trim().parse::<u32>().is_ok())
        };
        let bytes = |r: &client::Response| r.body.len() == 16;
        let any = |_: &client::Response| true;
        let probes: [(Route, &str, &Judge); 4] = [
            (Route::Sleep, "/sleep?ms=1", &any),
            (Route::Echo, "/echo/probe?x=1", &echo),
            (Route::Pid, "/pid", &pid),
            (Route::Bytes, "/bytes?n=16", &bytes),
        ];
        let answers = crate::checks::in_parallel(probes.len(), |i| ok(probes[i].1, probes[i].2));
        let served = probes
            .iter()
            .zip(answers)
            .map(|((route, _, _), served)| (route.path(), served))
            .collect();
        Capabilities { served }
    }
}

/// How the server handles connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// One connection at a time, in one process and thread.
    Iterative,
    /// A new child process per connection.
    ForkPerConnection,
    /// Worker processes started in advance, which accept on a shared socket.
    PreFork,
    /// One process, several threads.
    Threaded,
    /// One process and thread serving many connections at once.
    EventLoop,
    /// Could not tell.
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
    /// What was seen, e.g. "0 children idle, 4 under load, 1 thread".
    pub evidence: String,
}

/// Connections held open with half a request while the server is observed.
const PROBE_CONNECTIONS: usize = 4;

/// Live (non-zombie) descendants and total threads of the server.
fn census(pid: i32) -> (usize, u32) {
    let descendants: Vec<procfs::ProcStat> = procfs::descendants(pid)
        .into_iter()
        .filter(|p| p.state != 'Z')
        .collect();
    let own_threads = procfs::stat(pid).map(|s| s.num_threads).unwrap_or(1);
    (
        descendants.len(),
        own_threads + descendants.iter().map(|d| d.num_threads).sum::<u32>(),
    )
}

/// The server's live descendants once the set has stopped changing for
/// `STABLE` (bounded by `SETTLE_LIMIT`). A pre-fork server such as gunicorn
/// listens before it has forked all its workers, and a forking server may
/// still be finishing a connection: a single sample would mistake either for
/// the idle state.
pub fn settled_descendants(pid: i32) -> Vec<i32> {
    const STABLE: Duration = Duration::from_millis(400);
    const SETTLE_LIMIT: Duration = Duration::from_secs(3);
    let live = || {
        let mut pids: Vec<i32> = procfs::descendants(pid)
            .into_iter()
            .filter(|p| p.state != 'Z')
            .map(|p| p.pid)
            .collect();
        pids.sort_unstable();
        pids
    };
    let started = Instant::now();
    let mut current = live();
    let mut since = Instant::now();
    while since.elapsed() < STABLE && started.elapsed() < SETTLE_LIMIT {
        std::thread::sleep(Duration::from_millis(25));
        let now = live();
        if now != current {
            current = now;
            since = Instant::now();
        }
    }
    current
}

/// Observes the server at idle and with connections open, and classifies it.
pub fn classify(server: &ServerInstance) -> ModelReport {
    let pid = server.pid();
    let idle_pids = settled_descendants(pid);
    let (_, idle_threads) = census(pid);
    let idle_children = idle_pids.len();

    // Open connections carrying half a request: a forking server forks for
    // each at accept; a pre-fork or threaded one hands them to workers it
    // already has.
    let mut held = Vec::new();
    for _ in 0..PROBE_CONNECTIONS {
        if let Ok(mut stream) = TcpStream::connect_timeout(&server.addr(), Duration::from_secs(1)) {
            let _ = stream.write_all(b"GET /probe HTTP/1.1\r\nHost: probe\r\n");
            held.push(stream);
        }
    }
    let deadline = Instant::now() + Duration::from_millis(400);
    let (mut load_children, mut load_threads) = census(pid);
    while Instant::now() < deadline && load_children < idle_children + held.len() {
        std::thread::sleep(Duration::from_millis(20));
        (load_children, load_threads) = census(pid);
    }

    // Workers that exist at idle (once settled) mean pre-fork, even if more
    // are started under load; children only under load mean a fork per
    // connection.
    let model = if idle_children > 0 {
        Model::PreFork
    } else if load_children > 0 {
        Model::ForkPerConnection
    } else if idle_threads > 1 || load_threads > 1 {
        Model::Threaded
    } else {
        // One process, one thread: does it answer another client while the
        // held connections are still incomplete?
        match client::get(server.addr(), "/", Duration::from_millis(800)) {
            Ok(_) => Model::EventLoop,
            Err(_) => Model::Iterative,
        }
    };
    drop(held);
    let plural = |n: u32, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    ModelReport {
        model,
        evidence: format!(
            "{idle_children} children idle, {load_children} with {PROBE_CONNECTIONS} connections open, {}",
            plural(load_threads.max(idle_threads), "thread")
        ),
    }
}
