//! Running a group of cases: every mode of every case, within one deadline
//! per case, on the server instances the server's behaviour calls for.
//!
//! What the run learned once (the process model, [`Habits`]) decides how:
//! - a server that serves clients concurrently gets `WORKERS` deliveries at
//!   once on one shared instance;
//! - a server that serves one connection at a time gets `POOL` workers,
//!   each with an instance of its own, so that no delivery queues behind
//!   another's;
//! - a server that exits after each request, or serves one connection at a
//!   time and holds it open, gets a fresh instance for every delivery;
//! - a server that answered nothing gets one short delivery per case;
//! - a server known to keep connections open has close-framed bodies ended
//!   by a short silence instead of an end of file that never comes.
//!
//! Whether the server died is read from the leader's exit status, never by
//! sending it a request: a case whose connection ended abruptly watches the
//! leader for `DEATH_WATCH`. The time a case takes, that watch included,
//! is its `duration_ms`. A group whose server stops answering is asked once
//! with a plain request; if that goes unanswered too, its remaining cases are
//! skipped with the reason.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::grade::grade;
use super::observe::{observe, Observation, Plan};
use super::CaseFile;
use crate::check::{CheckResult, Emit, Verdict};
use crate::death::Death;
use crate::habits::{Habits, CLOSE_GAP};
use crate::interrupt;
use crate::model::Model;
use crate::poll;
use crate::probe::Capabilities;
use crate::slot::Slot;
use crate::target::{StartError, TargetSpec};

/// How long one delivery waits for each response.
pub const RESPONSE_WAIT: Duration = Duration::from_secs(2);
/// The wait when the server answered no request at all in this run.
const SILENT_WAIT: Duration = Duration::from_secs(1);
/// All modes of one case together, pauses included.
pub const CASE_BUDGET: Duration = Duration::from_secs(8);
/// Deliveries at once against a concurrent server.
const WORKERS: usize = 8;
/// Workers, each with its own instance, against a server that serves one
/// connection at a time: as many as against a concurrent one, since a
/// delivery mostly waits.
const POOL: usize = 8;
/// Unanswered deliveries in a row after which the group asks whether the
/// server still answers anything.
const STALL_LIMIT: usize = 6;
/// How long the leader is watched for an exit after a connection that ended
/// abruptly (a dying server can close its sockets before it is a zombie).
const DEATH_WATCH: Duration = Duration::from_millis(200);

/// Which instances the deliveries of a group use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// One instance for all workers.
    Shared,
    /// One instance per worker.
    PerWorker,
    /// A fresh instance for every delivery.
    PerDelivery,
}

impl Isolation {
    /// What a server with this model and these habits needs.
    pub fn for_server(model: Model, habits: &Habits) -> Isolation {
        if !habits.survives || !habits.serves_next {
            Isolation::PerDelivery
        } else if model.is_iterative() {
            Isolation::PerWorker
        } else {
            Isolation::Shared
        }
    }

    /// In words, for the evidence of a case.
    fn describe(self) -> &'static str {
        match self {
            Isolation::Shared => "one server shared by the deliveries",
            Isolation::PerWorker => {
                "one server per worker: the server serves one connection at a time"
            }
            Isolation::PerDelivery => "a fresh server for every delivery",
        }
    }
}

/// Everything a group of cases runs with.
pub struct CaseRun<'a> {
    /// How to start the server.
    pub spec: &'a TargetSpec,
    /// The routes it serves.
    pub caps: &'a Capabilities,
    /// How it is built.
    pub model: Model,
    /// What it does with every request.
    pub habits: &'a Habits,
}

/// Where a worker's deliveries go: a [`Slot`], shared by the workers or
/// their own, whose instance is kept while it lives or started afresh for
/// each delivery.
struct Host<'a> {
    fresh_each: bool,
    slot: Mutex<Slot<'a>>,
}

impl<'a> Host<'a> {
    fn new(spec: &'a TargetSpec, habits: &'a Habits, fresh_each: bool) -> Host<'a> {
        Host {
            fresh_each,
            slot: Mutex::new(Slot::new(spec, habits)),
        }
    }

    /// The address and generation to deliver to, starting an instance if
    /// none runs (or, for a fresh-each host, always).
    fn current(&self) -> Result<(SocketAddr, u64), StartError> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let addr = if self.fresh_each {
            slot.fresh()?.addr()
        } else {
            slot.server()?.addr()
        };
        Ok((addr, slot.generation()))
    }

    /// Whether the instance of `generation` died, from its exit status
    /// alone; watched for [`DEATH_WATCH`] when the connection ended
    /// abruptly.
    fn death(&self, generation: u64, abrupt: bool) -> Option<Death> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.generation() != generation {
            // Another worker found it dead and started the next one.
            return Some(Death {
                status: "exited".into(),
                stderr: Vec::new(),
            });
        }
        let server = slot.current()?;
        let dead = if abrupt {
            crate::poll::poll_until(DEATH_WATCH, || !server.is_alive())
        } else {
            !server.is_alive()
        };
        dead.then(|| Death::of(server))
    }
}

/// The group's view of whether its server still answers.
#[derive(Default)]
struct Stall {
    /// Unanswered deliveries in a row.
    unanswered: AtomicUsize,
    /// Set once the server was asked and did not answer: the rest skip.
    stopped: AtomicBool,
}

impl Stall {
    fn record(&self, observation: &Observation) {
        if observation.unanswered {
            self.unanswered.fetch_add(1, Ordering::SeqCst);
        } else {
            self.unanswered.store(0, Ordering::SeqCst);
        }
    }

    /// Whether the group stopped: after [`STALL_LIMIT`] unanswered
    /// deliveries, one plain request decides.
    fn stopped(&self, host: &Host<'_>) -> bool {
        if self.stopped.load(Ordering::SeqCst) {
            return true;
        }
        if self.unanswered.load(Ordering::SeqCst) < STALL_LIMIT {
            return false;
        }
        let answers = host
            .current()
            .is_ok_and(|(addr, _)| crate::client::get(addr, "/", SILENT_WAIT).is_ok());
        if answers {
            self.unanswered.store(0, Ordering::SeqCst);
        } else {
            self.stopped.store(true, Ordering::SeqCst);
        }
        !answers
    }
}

/// How one case ended.
enum CaseEnd {
    /// Judged.
    Done(CheckResult),
    /// The shared server died meanwhile: the verdict is uncertain until the
    /// case runs again alone.
    ServerDied,
}

impl CaseRun<'_> {
    /// Runs `cases` and sends each result to `emit`, in the order they end.
    /// A case that was running on a shared server when it died is run again
    /// alone, so that the case that kills the server is the one reported
    /// with "server exited".
    pub fn run(&self, cases: &[&CaseFile], emit: Emit<'_>) {
        let isolation = Isolation::for_server(self.model, self.habits);
        let shared = Host::new(self.spec, self.habits, false);
        let retry = Mutex::new(Vec::new());
        let stall = Stall::default();
        let workers = match isolation {
            Isolation::Shared => WORKERS,
            Isolation::PerWorker | Isolation::PerDelivery => POOL,
        };
        // Each worker's host: the shared one, or one of its own.
        let host_of_worker = || match isolation {
            Isolation::Shared => None,
            Isolation::PerWorker => Some(Host::new(self.spec, self.habits, false)),
            Isolation::PerDelivery => Some(Host::new(self.spec, self.habits, true)),
        };
        poll::work_through(
            cases.iter().copied(),
            workers,
            &|| interrupt::interrupted().is_some(),
            host_of_worker,
            |own, case| {
                let host = own.as_ref().unwrap_or(&shared);
                if let Some(reason) = self.skip_reason(case, &stall, host) {
                    emit(blank(case).skip(reason));
                    return;
                }
                match self.run_one(host, isolation, false, &stall, case) {
                    CaseEnd::Done(result) => emit(result),
                    CaseEnd::ServerDied => {
                        retry.lock().unwrap_or_else(|p| p.into_inner()).push(case)
                    }
                }
            },
        );
        // Alone, one after another: whatever kills the server now is the culprit.
        let mut retry = retry.into_inner().unwrap_or_else(|p| p.into_inner());
        retry.sort_by(|a, b| a.id.cmp(&b.id));
        for case in retry {
            if interrupt::interrupted().is_some() {
                return;
            }
            if let CaseEnd::Done(result) = self.run_one(&shared, isolation, true, &stall, case) {
                emit(result);
            }
        }
    }

    /// Why `case` is not run: a route it needs is not served, or the
    /// group's server stopped answering.
    fn skip_reason(&self, case: &CaseFile, stall: &Stall, host: &Host<'_>) -> Option<String> {
        if let Some(reason) = self.caps.skip_reason(&case.needs()) {
            return Some(reason);
        }
        (self.habits.answers && stall.stopped(host)).then(|| {
            format!(
                "the server stopped answering: {STALL_LIMIT} deliveries in a row got no response, and neither did GET /"
            )
        })
    }

    /// Every mode of one case, within [`CASE_BUDGET`]. `alone`: nothing else
    /// runs on the host, so a death is this case's.
    fn run_one(
        &self,
        host: &Host<'_>,
        isolation: Isolation,
        alone: bool,
        stall: &Stall,
        case: &CaseFile,
    ) -> CaseEnd {
        let started = Instant::now();
        let plan = Plan {
            wait: if self.habits.answers {
                RESPONSE_WAIT
            } else {
                SILENT_WAIT
            },
            close_gap: self.habits.holds_connections().then_some(CLOSE_GAP),
            deadline: started + CASE_BUDGET,
        };
        let mut result = blank(case);
        let mut worst = Verdict::Pass;
        let mut lines = Vec::new();
        let mut not_run: Option<&str> = None;
        if isolation != Isolation::Shared {
            result = result.evidence(format!("instances: {}", isolation.describe()));
        }
        for (i, &mode) in case.modes.iter().enumerate() {
            if i > 0 && !self.habits.answers {
                not_run
                    .get_or_insert("the server answered no request in this run (see the header)");
            }
            if Instant::now() >= plan.deadline {
                not_run.get_or_insert("the case's time was spent");
            }
            if let Some(why) = not_run {
                result = result.figure(mode.as_str(), format!("not run: {why}"));
                continue;
            }
            let (addr, generation) = match host.current() {
                Ok(current) => current,
                Err(error) => {
                    return CaseEnd::Done(crate::target::start_failed(blank(case), &error))
                }
            };
            let observation = observe(addr, case, mode, &plan);
            stall.record(&observation);
            if let Some(death) = host.death(generation, observation.ended_abruptly()) {
                if !self.habits.survives {
                    // Known from the habits and reported once there; the
                    // answer is still judged.
                    result = result.evidence(format!(
                        "{} delivery: the server exited after it ({}), as it does after every request",
                        mode.as_str(),
                        death.status
                    ));
                } else if isolation == Isolation::Shared && !alone {
                    return CaseEnd::ServerDied;
                } else {
                    return CaseEnd::Done(server_exited(case, mode, &observation, &death));
                }
            }
            if observation.needed_end_of_stream
                || (observation.responses.is_empty() && observation.unanswered)
            {
                // The other modes would wait out the same time.
                not_run = Some("an earlier mode waited for the end of the stream or timed out");
            }
            let (verdict, reason) = grade(case, &observation);
            result = result.figure(mode.as_str(), observation.describe());
            if verdict != Verdict::Pass {
                let expected: Vec<String> = case.pass.iter().map(|o| o.to_string()).collect();
                result = result.evidence(format!(
                    "{} delivery: got {}; expected {} ({})",
                    mode.as_str(),
                    observation.describe(),
                    expected.join(" | "),
                    reason.unwrap_or_default()
                ));
                lines.push(format!("{}: {}", mode.as_str(), observation.describe()));
            }
            if verdict == Verdict::Fail || (verdict == Verdict::Warn && worst == Verdict::Pass) {
                worst = verdict;
            }
        }
        let result = result.evidence(format!("sent: {}", case.description));
        let modes: Vec<&str> = case.modes.iter().map(|m| m.as_str()).collect();
        let result = match worst {
            Verdict::Pass => {
                let got = result
                    .figures
                    .get("whole")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                result.pass(format!(
                    "{} ({})",
                    if got.is_empty() {
                        "as expected".into()
                    } else {
                        got
                    },
                    modes.join(", ")
                ))
            }
            Verdict::Warn => result.warn(format!(
                "acceptable but not as required: {}",
                lines.join("; ")
            )),
            _ => result.fail(lines.join("; ")),
        };
        CaseEnd::Done(result.with_duration(started.elapsed()))
    }
}

/// A case's result before any verdict.
fn blank(case: &CaseFile) -> CheckResult {
    CheckResult::new(case.id.clone(), case.requirement.clone(), case.hint())
}

/// The result for a case during which the server died.
fn server_exited(
    case: &CaseFile,
    mode: super::Mode,
    observation: &Observation,
    death: &Death,
) -> CheckResult {
    let mut result = blank(case)
        .evidence(format!("sent: {}", case.description))
        .evidence(format!(
            "{} delivery: got {}",
            mode.as_str(),
            observation.describe()
        ));
    result = death.record(result);
    result.fail(format!(
        "server exited ({}) while this case ran",
        death.status
    ))
}
