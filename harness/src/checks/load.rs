//! Load for the checks: sequential streams and bursts of timed requests
//! ([`crate::timed`]), counted.
//!
//! Every request is bounded by [`REQUEST_TIMEOUT`], and a stream stops at its
//! first failure: a server that does not answer costs one timeout per stream,
//! not one per request, so a run against a broken server stays short.

use std::net::SocketAddr;
use std::sync::Barrier;

use crate::check::CheckResult;
use crate::client::BodyEnd;
use crate::poll::in_parallel;
use crate::timed::{self, get_request, Pending, Timed, REQUEST_TIMEOUT};

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Requests whose response head arrived.
    pub answered: usize,
    /// Requests planned but not answered (failed, or skipped after a failure).
    pub unanswered: usize,
    /// Answered requests whose connection stayed open after the response.
    pub held_open: usize,
    /// The first few failures, for evidence.
    pub errors: Vec<String>,
}

impl LoadOutcome {
    fn of(timed: &Timed) -> LoadOutcome {
        if timed.answered() {
            LoadOutcome {
                answered: 1,
                held_open: usize::from(timed.body == Some(BodyEnd::StillOpen)),
                ..Default::default()
            }
        } else {
            LoadOutcome {
                unanswered: 1,
                errors: vec![timed.failure()],
                ..Default::default()
            }
        }
    }

    /// Both loads together.
    pub fn merge(mut self, other: LoadOutcome) -> LoadOutcome {
        self.answered += other.answered;
        self.unanswered += other.unanswered;
        self.held_open += other.held_open;
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
        let timed = timed::get(addr, path, REQUEST_TIMEOUT);
        let answered = timed.answered();
        outcome = outcome.merge(LoadOutcome::of(&timed));
        if !answered {
            outcome.unanswered += n - i - 1;
            break;
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
/// with `Connection: close` and reads its answer. Every request's moments.
pub fn burst_timed(addr: SocketAddr, n: usize) -> Vec<Timed> {
    let barrier = Barrier::new(n);
    let request = get_request("/");
    in_parallel(n, |_| {
        let pending = Pending::connect(addr, REQUEST_TIMEOUT);
        // All connections are open (or failed) before any request is sent.
        barrier.wait();
        pending.exchange(&request, REQUEST_TIMEOUT)
    })
}

/// [`burst_timed`], counted.
pub fn burst(addr: SocketAddr, n: usize) -> LoadOutcome {
    burst_timed(addr, n)
        .iter()
        .map(LoadOutcome::of)
        .fold(LoadOutcome::default(), LoadOutcome::merge)
}
