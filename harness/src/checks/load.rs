//! Load for the checks: sequential requests, parallel streams and bursts.
//!
//! Every request is bounded by [`REQUEST_TIMEOUT`], and a stream stops at its
//! first failure: a server that does not answer costs one timeout per stream,
//! not one per request, so a run against a broken server stays short.

use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::in_parallel;
use crate::check::CheckResult;
use crate::client::{self, Conn};

/// How long one request of the load may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Requests that got a complete response.
    pub answered: usize,
    /// Requests planned but not answered (failed, or skipped after a failure).
    pub unanswered: usize,
    /// The first few failures, for evidence.
    pub errors: Vec<String>,
}

impl LoadOutcome {
    fn merge(mut self, other: LoadOutcome) -> LoadOutcome {
        self.answered += other.answered;
        self.unanswered += other.unanswered;
        for error in other.errors {
            if self.errors.len() < 3 {
                self.errors.push(error);
            }
        }
        self
    }

    /// Whether every request was answered.
    pub fn complete(&self) -> bool {
        self.unanswered == 0
    }

    /// Adds the load's figures to a result.
    pub fn describe(&self, result: CheckResult) -> CheckResult {
        result
            .figure("requests_answered", self.answered)
            .figure("requests_unanswered", self.unanswered)
    }

    /// The verdict for a check whose measurement found nothing wrong but whose
    /// load did not go through: it could not really be run.
    pub fn incomplete(&self, result: CheckResult) -> CheckResult {
        let mut result = self.describe(result);
        for error in &self.errors {
            result = result.evidence(format!("request failed: {error}"));
        }
        result.error(format!(
            "the load could not be applied: {} of {} requests were not answered",
            self.unanswered,
            self.answered + self.unanswered
        ))
    }
}

/// `n` requests for `path`, one after another, each on its own connection
/// with `Connection: close`; stops at the first failure.
pub fn sequential(addr: SocketAddr, path: &str, n: usize) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    for i in 0..n {
        match client::get(addr, path, REQUEST_TIMEOUT) {
            Ok(_) => outcome.answered += 1,
            Err(error) => {
                outcome.unanswered += n - i;
                outcome.errors.push(error.to_string());
                break;
            }
        }
    }
    outcome
}

/// `streams` sequential streams of `per_stream` requests, side by side.
pub fn streams(addr: SocketAddr, path: &str, streams: usize, per_stream: usize) -> LoadOutcome {
    in_parallel(streams, |_| sequential(addr, path, per_stream))
        .into_iter()
        .fold(LoadOutcome::default(), LoadOutcome::merge)
}

/// `n` connections opened together; once all are open, each sends `GET /`
/// with `Connection: close` and reads its response.
pub fn burst(addr: SocketAddr, n: usize) -> LoadOutcome {
    let barrier = Barrier::new(n);
    let outcomes = in_parallel(n, |_| {
        let conn = Conn::connect(addr, REQUEST_TIMEOUT);
        barrier.wait();
        let result = conn.and_then(|mut conn| {
            conn.send(b"GET / HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n")?;
            conn.read_response(Instant::now() + REQUEST_TIMEOUT, false)
        });
        match result {
            Ok(Some(_)) => LoadOutcome {
                answered: 1,
                ..Default::default()
            },
            Ok(None) => LoadOutcome {
                unanswered: 1,
                errors: vec!["closed without a response".into()],
                ..Default::default()
            },
            Err(error) => LoadOutcome {
                unanswered: 1,
                errors: vec![error.to_string()],
                ..Default::default()
            },
        }
    });
    outcomes
        .into_iter()
        .fold(LoadOutcome::default(), LoadOutcome::merge)
}
