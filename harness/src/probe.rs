//! Which conformance-app routes the server under test really serves.
//!
//! A route is served only if it keeps its contract, checked by asking it:
//! `/sleep?ms=N` takes at least N ms (and not far more) for two values of N,
//! `/bytes?n=N` is exactly N bytes for two values, `/echo` reflects the
//! method, path and query it was sent, and `/pid` names the server or one of
//! its descendants. A server that answers `Hello, World!` on every path (every
//! tutorial server, nginx with a catch-all) serves none of them, however
//! politely it answers: a check or case that needs a route is skipped with
//! the reason, never judged on an answer that does not mean what it needs.
//! Any HTTP server can still be checked with `GET /` alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::client::{ClientError, Conn, Received, Response};
use crate::procfs;
use crate::target::ServerInstance;
use crate::timed::{self, REQUEST_TIMEOUT};

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

/// What the probe found for one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteStatus {
    /// It keeps its contract.
    Served,
    /// It is not there: another status, or no answer; the reason says which.
    Missing(String),
    /// It answers 200 but breaks its contract; the reason says how.
    Broken(String),
}

/// Which routes the server serves, found by asking it.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    routes: BTreeMap<Route, RouteStatus>,
}

impl Capabilities {
    /// Every route served (for tests).
    pub fn all() -> Capabilities {
        Capabilities {
            routes: Route::ALL
                .iter()
                .map(|r| (*r, RouteStatus::Served))
                .collect(),
        }
    }

    /// Whether `route` keeps its contract.
    pub fn has(&self, route: Route) -> bool {
        self.routes.get(&route) == Some(&RouteStatus::Served)
    }

    /// Route path → served, for reports.
    pub fn as_map(&self) -> BTreeMap<String, bool> {
        Route::ALL
            .iter()
            .map(|r| (r.path().to_string(), self.has(*r)))
            .collect()
    }

    /// Route path → why it is not served, for the routes that are not.
    pub fn notes(&self) -> BTreeMap<String, String> {
        Route::ALL
            .iter()
            .filter_map(|r| Some((r.path().to_string(), self.why_not(*r)?)))
            .collect()
    }

    /// Why `route` is not served, or `None` when it is.
    pub fn why_not(&self, route: Route) -> Option<String> {
        match self.routes.get(&route) {
            Some(RouteStatus::Served) => None,
            Some(RouteStatus::Missing(reason)) => Some(format!("not served ({reason})")),
            Some(RouteStatus::Broken(reason)) => {
                Some(format!("{reason}: not the conformance route"))
            }
            None => Some("not probed".into()),
        }
    }

    /// The skip reason for a check or case that needs `routes`, or `None`
    /// when all of them are served.
    pub fn skip_reason(&self, routes: &[Route]) -> Option<String> {
        let reasons: Vec<String> = routes
            .iter()
            .filter_map(|r| match self.routes.get(r) {
                Some(RouteStatus::Served) => None,
                Some(RouteStatus::Broken(reason)) => Some(format!(
                    "{}, but {reason}: not the conformance route",
                    r.path()
                )),
                Some(RouteStatus::Missing(reason)) => Some(format!(
                    "{}, which the server does not serve ({reason})",
                    r.path()
                )),
                None => Some(format!("{}, which was not probed", r.path())),
            })
            .collect();
        if reasons.is_empty() {
            return None;
        }
        Some(format!("needs {}", reasons.join("; and ")))
    }

    /// Every route missing, not asked: `why` the server could not answer.
    pub fn unanswered(why: &str) -> Capabilities {
        Capabilities {
            routes: Route::ALL
                .iter()
                .map(|&route| (route, RouteStatus::Missing(format!("not asked: {why}"))))
                .collect(),
        }
    }

    /// Asks the server for each route and judges the answers by the
    /// contract. `close_gap`: the server keeps its connections open after
    /// answering, so a body framed by close ends after this much silence.
    pub fn probe(server: &ServerInstance, close_gap: Option<Duration>) -> Capabilities {
        let addr = server.addr();
        let pid = server.pid();
        // The routes are asked at once: a server that answers none of them
        // costs one timeout, not four. The two /sleep requests go one after
        // the other, so that neither waits behind the other.
        let statuses = crate::poll::in_parallel(Route::ALL.len(), |i| match Route::ALL[i] {
            Route::Sleep => probe_sleep(addr),
            Route::Echo => probe_echo(addr, close_gap),
            Route::Pid => probe_pid(addr, pid, close_gap),
            Route::Bytes => probe_bytes(addr, close_gap),
        });
        Capabilities {
            routes: Route::ALL.iter().copied().zip(statuses).collect(),
        }
    }
}

/// The two sleeps asked of `/sleep`; far enough apart that a server which
/// answers after a fixed delay cannot pass for both.
const SLEEPS_MS: [u64; 2] = [60, 300];
/// How much longer than asked a sleep may take (a cold runtime, a loaded
/// machine) and still be the conformance route.
const SLEEP_SLACK: Duration = Duration::from_millis(2500);

fn probe_sleep(addr: std::net::SocketAddr) -> RouteStatus {
    for ms in SLEEPS_MS {
        let asked = Duration::from_millis(ms);
        let timed = timed::get(addr, &format!("/sleep?ms={ms}"), asked + REQUEST_TIMEOUT);
        let Some(status) = timed.status else {
            return RouteStatus::Missing(format!("no answer: {}", timed.failure()));
        };
        if status != 200 {
            return RouteStatus::Missing(format!("answers {status}"));
        }
        // Measured from the end of the request to the response head.
        let took = timed.service().unwrap_or_default();
        if took < asked {
            return RouteStatus::Broken(format!(
                "/sleep?ms={ms} answers after {} ms",
                took.as_millis()
            ));
        }
        if took > asked + SLEEP_SLACK {
            return RouteStatus::Broken(format!(
                "/sleep?ms={ms} answers after {} ms, far more than asked",
                took.as_millis()
            ));
        }
    }
    RouteStatus::Served
}

/// A token no catch-all route could know, so that an echo of it is real.
fn nonce() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), now)
}

/// `GET path` with `Connection: close`, its answer kept as far as it came
/// (a body framed by close on a connection the server keeps open ends after
/// `close_gap` of silence). No answer, or one too large to judge, is the
/// route's status.
fn get(
    addr: std::net::SocketAddr,
    path: &str,
    close_gap: Option<Duration>,
) -> Result<Response, RouteStatus> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut conn = Conn::connect(addr, REQUEST_TIMEOUT).map_err(no_answer)?;
    conn.send(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(no_answer)?;
    // Interim responses are skipped; a handful at most.
    for _ in 0..8 {
        match conn
            .read_received(deadline, false, close_gap)
            .map_err(no_answer)?
        {
            None => return Err(no_answer(ClientError::ClosedEarly { received: 0 })),
            Some(received) if (100..200).contains(&received.response.status) => continue,
            Some(received) if received.too_large => return Err(too_large(path, &received)),
            Some(received) => return Ok(received.response),
        }
    }
    Err(no_answer(ClientError::Malformed {
        reason: "more than 8 interim responses".into(),
    }))
}

/// A route that did not answer.
fn no_answer(error: ClientError) -> RouteStatus {
    RouteStatus::Missing(format!("no answer: {error}"))
}

/// A route whose answer ran into a size limit of the harness: whatever the
/// start of its body says, it does not keep its contract (`/bytes?n=16`
/// does not answer "65536 bytes", the start the harness kept).
fn too_large(path: &str, received: &Received) -> RouteStatus {
    RouteStatus::Broken(format!(
        "{path} answers {} with a body too large to judge ({})",
        received.response.status,
        received.incomplete.as_deref().unwrap_or_default()
    ))
}

fn probe_echo(addr: std::net::SocketAddr, close_gap: Option<Duration>) -> RouteStatus {
    let token = nonce();
    let path = format!("/echo/probe-{token}");
    let query = format!("q={token}");
    let response = match get(addr, &format!("{path}?{query}"), close_gap) {
        Ok(response) if response.status == 200 => response,
        Ok(response) => return RouteStatus::Missing(format!("answers {}", response.status)),
        Err(status) => return status,
    };
    let Ok(echo) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return RouteStatus::Broken(format!(
            "/echo answers {}, not a JSON object",
            quote(&response.body)
        ));
    };
    let text = |key: &str| echo.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let seen_path = format!("{}{}", text("SCRIPT_NAME"), text("PATH_INFO"));
    if text("REQUEST_METHOD") != "GET" || seen_path != path || text("QUERY_STRING") != query {
        return RouteStatus::Broken(format!(
            "/echo does not reflect the request (sent GET {path}?{query}, echoed {:?} {seen_path:?} {:?})",
            text("REQUEST_METHOD"),
            text("QUERY_STRING")
        ));
    }
    RouteStatus::Served
}

fn probe_pid(addr: std::net::SocketAddr, leader: i32, close_gap: Option<Duration>) -> RouteStatus {
    // A persistent connection, kept open while the pid is looked up: a
    // forking server's child lives at least as long as its connection.
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let answer = Conn::connect(addr, REQUEST_TIMEOUT).and_then(|mut conn| {
        conn.send(b"GET /pid HTTP/1.1\r\nHost: harness\r\n\r\n")?;
        let received = conn.read_received(deadline, false, close_gap)?;
        Ok((conn, received))
    });
    let (conn, response) = match answer {
        Ok((_, Some(received))) if received.too_large => return too_large("/pid", &received),
        Ok((conn, Some(received))) => (conn, received.response),
        Ok((_, None)) => return RouteStatus::Missing("closed without a response".into()),
        Err(error) => return no_answer(error),
    };
    if response.status != 200 {
        return RouteStatus::Missing(format!("answers {}", response.status));
    }
    let Ok(pid) = response.body_str().trim().parse::<i32>() else {
        return RouteStatus::Broken(format!("/pid answers {}, not a pid", quote(&response.body)));
    };
    let ours = pid == leader || procfs::descendants(leader).iter().any(|p| p.pid == pid);
    drop(conn);
    if ours {
        return RouteStatus::Served;
    }
    // The process that answered may have exited since (a child that closed
    // the connection anyway); a pid that names a live process outside the
    // server's tree is a wrong answer.
    if procfs::stat(pid).is_ok() {
        return RouteStatus::Broken(format!(
            "/pid answers {pid}, a process that is not the server's"
        ));
    }
    RouteStatus::Served
}

fn probe_bytes(addr: std::net::SocketAddr, close_gap: Option<Duration>) -> RouteStatus {
    for n in [16usize, 1000] {
        match get(addr, &format!("/bytes?n={n}"), close_gap) {
            Ok(response) if response.status == 200 => {
                if response.body.len() != n {
                    return RouteStatus::Broken(format!(
                        "/bytes?n={n} answers {} bytes",
                        response.body.len()
                    ));
                }
            }
            Ok(response) => return RouteStatus::Missing(format!("answers {}", response.status)),
            Err(status) => return status,
        }
    }
    RouteStatus::Served
}

/// The start of a body, escaped, for a reason line.
fn quote(body: &[u8]) -> String {
    let shown: String = body
        .iter()
        .take(40)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if body.len() > 40 {
        format!("\"{shown}...\"")
    } else {
        format!("\"{shown}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(routes: &[(Route, RouteStatus)]) -> Capabilities {
        Capabilities {
            routes: routes.iter().cloned().collect(),
        }
    }

    #[test]
    fn a_broken_route_is_not_served_and_says_why() {
        let caps = caps(&[
            (
                Route::Sleep,
                RouteStatus::Broken("/sleep?ms=60 answers after 1 ms".into()),
            ),
            (Route::Echo, RouteStatus::Served),
            (Route::Pid, RouteStatus::Missing("answers 404".into())),
        ]);
        assert!(!caps.has(Route::Sleep));
        assert!(caps.has(Route::Echo));
        assert_eq!(
            caps.skip_reason(&[Route::Sleep]).as_deref(),
            Some("needs /sleep, but /sleep?ms=60 answers after 1 ms: not the conformance route")
        );
        assert_eq!(
            caps.skip_reason(&[Route::Pid, Route::Echo]).as_deref(),
            Some("needs /pid, which the server does not serve (answers 404)")
        );
        assert_eq!(caps.skip_reason(&[Route::Echo]), None);
        assert!(!caps.as_map()["/sleep"]);
        assert_eq!(caps.notes().len(), 3, "{:?}", caps.notes());
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote(b"Hello\n"), "\"Hello\\n\"");
        assert!(quote(&[b'a'; 100]).ends_with("...\""));
    }
}
