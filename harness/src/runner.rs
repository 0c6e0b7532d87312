//! The run: learn what the server is (its model, its habits, its routes),
//! then run every selected process check and group of cases, each on a
//! server instance of its own, and feed every result to the reporters.
//!
//! Units of work run in parallel (`--jobs`): each has its own server on its
//! own port, so one check's load, crash or leak cannot show up in another's
//! measurements. The longest checks start first, and one that needs nothing
//! learned (`fds/leak`) starts while the rest is being learned.

use std::fmt;
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use crate::cases::run::CaseRun;
use crate::cases::CaseFile;
use crate::check::{CheckResult, Emit, TargetInfo, Totals};
use crate::checks::{catalog, lifecycle, CheckDef, Ctx, Settings};
use crate::habits::{Habits, CLOSE_GAP};
use crate::interrupt;
use crate::model::{classify, observe_idle, Model, ModelReport};
use crate::poll;
use crate::probe::Capabilities;
use crate::report::{Event, Reporter};
use crate::select::Selection;
use crate::target::{PortChoice, ServerInstance, StartError, TargetSpec};

/// Everything a run needs.
pub struct RunConfig {
    /// How to launch the server.
    pub spec: TargetSpec,
    /// The command as reports show it.
    pub command_label: String,
    /// Groups run at once.
    pub jobs: usize,
    /// Which checks run.
    pub selection: Selection,
    /// Whether warn counts as fail.
    pub strict: bool,
    /// Load settings.
    pub settings: Settings,
    /// HTTP cases (built-in and `--cases`), before selection.
    pub cases: Vec<CaseFile>,
    /// Only this shard, `(k, n)`, of the selected checks.
    pub shard: Option<(u32, u32)>,
}

/// The checks that take longest against a clean server (settle windows,
/// a request held in flight), started before the rest.
const LONGEST: &[&str] = &["fds/leak", "fds/child-listener", "lifecycle/sigterm"];
/// Long checks that use nothing the run learns first (model, routes,
/// habits): they start at once, while it is learned.
const EARLY: &[&str] = &["fds/leak"];

/// How often the result stream looks for an interrupt.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// The shard (1-based, of `n`) an id belongs to: a hash of the id, so that
/// adding a check never moves the others.
pub fn shard_of(id: &str, n: u32) -> u32 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % u64::from(n.max(1))) as u32 + 1
}

/// A unit of work for one worker of the run's one queue: a process check on
/// a server of its own, or a group of cases, which runs the way a check does
/// (on servers of its own, its results sent as they end) through
/// [`CaseRun`].
enum Work<'a> {
    Check(CheckDef),
    Cases(Vec<&'a CaseFile>),
}

impl Work<'_> {
    /// Runs the unit with what was learned, sending each result to `emit`.
    fn run(&self, config: &RunConfig, learned: &Learned, emit: Emit<'_>) {
        match self {
            Work::Check(check) => emit(run_check(check, config, learned)),
            Work::Cases(cases) => CaseRun {
                spec: &config.spec,
                caps: &learned.caps,
                model: learned.model.model,
                habits: &learned.habits,
            }
            .run(cases, emit),
        }
    }
}

/// What a run produced.
pub struct RunOutcome {
    /// Every result, in catalog order, strict already applied.
    pub results: Vec<CheckResult>,
    /// The tally.
    pub totals: Totals,
    /// The error that stopped the run when the server could not be started.
    pub start_error: Option<StartError>,
}

/// Why a run could not happen at all.
#[derive(Debug)]
pub enum RunError {
    /// `--only`/`--skip` left nothing to run.
    NothingSelected,
    /// The selection holds checks, but none falls in this shard: a matrix
    /// job with nothing to do, not an error.
    EmptyShard {
        /// The shard, `(k, n)`.
        shard: (u32, u32),
        /// How many checks the selection holds in all shards.
        selected: usize,
    },
    /// A reporter could not write.
    Report(std::io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::NothingSelected => {
                write!(f, "no check matches the selection (see `harness list`)")
            }
            RunError::EmptyShard {
                shard: (k, n),
                selected,
            } => write!(
                f,
                "shard {k}/{n} holds none of the {selected} selected checks: nothing to run"
            ),
            RunError::Report(error) => write!(f, "writing the report: {error}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs the selected checks against the target.
pub fn run(config: &RunConfig, reporter: &mut dyn Reporter) -> Result<RunOutcome, RunError> {
    let in_shard = |id: &str| config.shard.is_none_or(|(k, n)| shard_of(id, n) == k);
    let checks: Vec<CheckDef> = catalog()
        .into_iter()
        .filter(|c| config.selection.includes(c.id) && in_shard(c.id))
        .collect();
    let cases: Vec<&CaseFile> = config
        .cases
        .iter()
        .filter(|c| config.selection.includes(&c.id) && in_shard(&c.id))
        .collect();
    if checks.is_empty() && cases.is_empty() {
        let selected = catalog()
            .iter()
            .filter(|c| config.selection.includes(c.id))
            .count()
            + config
                .cases
                .iter()
                .filter(|c| config.selection.includes(&c.id))
                .count();
        return Err(match config.shard {
            Some(shard) if selected > 0 => RunError::EmptyShard { shard, selected },
            _ => RunError::NothingSelected,
        });
    }
    let started = Instant::now();
    interrupt::expect_reports();
    // A fixed port can hold only one server at a time.
    let (jobs, early_ok) = match config.spec.port {
        PortChoice::Fixed(_) => (1, false),
        PortChoice::Auto => (config.jobs.max(1), true),
    };
    // Checks that use nothing learned below start at once, beside it.
    let (early, checks_later): (Vec<CheckDef>, Vec<CheckDef>) = checks
        .iter()
        .partition(|c| early_ok && jobs > 1 && EARLY.contains(&c.id));
    // What the early checks run with: nothing learned yet.
    let assumed = Learned {
        model: ModelReport::assumed(Model::Unknown),
        habits: Habits::assumed(),
        caps: Capabilities::default(),
        pid: 0,
    };
    let learned_cell: OnceLock<Learned> = OnceLock::new();
    let (sender, receiver) = mpsc::channel::<CheckResult>();
    let mut results = Vec::new();
    let mut report_error = None;
    let stop = || interrupt::interrupted().is_some();
    let started_or_not = std::thread::scope(|scope| {
        {
            let sender = sender.clone();
            let assumed = &assumed;
            scope.spawn(move || {
                let emit = |result| {
                    // The receiver lives until every worker is done.
                    let _ = sender.send(result);
                };
                let early = early.into_iter().map(Work::Check);
                poll::work_through(
                    early,
                    usize::MAX,
                    &stop,
                    || (),
                    |_, unit| unit.run(config, assumed, &emit),
                );
            });
        }
        // Before any other check: can the server start at all, how is it
        // built, what does it do with a plain request, and which routes does
        // it serve? The model is judged on an instance that has served
        // nothing yet (its idle state first, so that children still serving
        // a probe are not taken for pre-fork workers); the habits and the
        // routes on a second instance, at the same time. A fixed port holds
        // one instance, so there they are learned one after another on one.
        let learned = match config.spec.port {
            PortChoice::Fixed(_) => learn_on_one(&config.spec),
            PortChoice::Auto => learn_on_two(&config.spec),
        };
        let learned = match learned {
            Ok(learned) => learned_cell.get_or_init(|| learned),
            // The early checks end on their own; their results are dropped.
            Err(error) => return Err(error),
        };
        let target = TargetInfo {
            command: config.command_label.clone(),
            pid: Some(learned.pid),
            model: learned.model.model.as_str().into(),
            model_evidence: learned.model.evidence.clone(),
            capabilities: learned.caps.as_map(),
            capability_notes: learned.caps.notes(),
            habits: learned.habits.notes.clone(),
        };
        if let Err(error) = reporter.event(&Event::RunStarted {
            target: &target,
            planned: checks.len() + cases.len(),
        }) {
            report_error = Some(error);
        }

        // Each process check on an instance of its own: no check inherits
        // another's children, descriptors or signals, and the longest ones
        // start first, so that the run lasts as long as its longest check.
        // Then the cases, split by their first id segment (http, gateway).
        let mut ordered = checks_later.clone();
        ordered.sort_by_key(|c| !LONGEST.contains(&c.id));
        let mut work: Vec<Work<'_>> = ordered.into_iter().map(Work::Check).collect();
        let mut case_groups: Vec<Vec<&CaseFile>> = Vec::new();
        for case in &cases {
            let group = case.id.split('/').next();
            match case_groups
                .iter_mut()
                .find(|g| g[0].id.split('/').next() == group)
            {
                Some(existing) => existing.push(case),
                None => case_groups.push(vec![case]),
            }
        }
        work.extend(case_groups.into_iter().map(Work::Cases));
        {
            // After an interrupt nothing new starts: its servers would be
            // refused anyway, and the run is being cut short.
            let sender = sender.clone();
            scope.spawn(move || {
                let emit = |result| {
                    let _ = sender.send(result);
                };
                poll::work_through(
                    work,
                    jobs,
                    &stop,
                    || (),
                    |_, unit| unit.run(config, learned, &emit),
                );
            });
        }
        drop(sender);
        // Results stream to the reporters as they arrive (the early ones
        // waited in the channel for the header), `--strict` already applied
        // so that a line and the summary agree. After an interrupt, once
        // the servers are stopped, what has not finished is reported as
        // interrupted and the reports are written at once: the checks still
        // running are not waited for (the interrupt thread ends the process).
        loop {
            if let Some(signal) = interrupt::interrupted() {
                interrupt::wait_for_servers_stopped();
                // Whatever arrived after the signal ran against a server
                // being stopped: not the server's verdict.
                let finished = std::mem::take(&mut results);
                let all = with_interrupted(finished, &checks, &cases, signal);
                let _ = finish(config, all, None, started, Some(signal), reporter);
                interrupt::reports_written();
            }
            match receiver.recv_timeout(INTERRUPT_POLL) {
                Ok(mut result) => {
                    if interrupt::interrupted().is_some() {
                        continue;
                    }
                    if config.strict {
                        result.make_strict();
                    }
                    if report_error.is_none() {
                        if let Err(error) = reporter.event(&Event::CheckFinished(&result)) {
                            report_error = Some(error);
                        }
                    }
                    results.push(result);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    });
    if let Err(error) = started_or_not {
        if let Some(signal) = interrupt::interrupted() {
            return interrupted_before_start(config, &checks, &cases, started, signal, reporter);
        }
        return startup_failure(config, error, started, reporter);
    }
    if let Some(error) = report_error {
        return Err(RunError::Report(error));
    }
    let order: Vec<&str> = cases
        .iter()
        .map(|c| c.id.as_str())
        .chain(checks.iter().map(|c| c.id))
        .collect();
    results.sort_by_key(|r| {
        order
            .iter()
            .position(|id| *id == r.id)
            .unwrap_or(usize::MAX)
    });
    finish(config, results, None, started, None, reporter)
}

/// `finished` in run order, followed by every selected check and case that
/// did not finish, as an error naming the signal.
fn with_interrupted(
    mut finished: Vec<CheckResult>,
    checks: &[CheckDef],
    cases: &[&CaseFile],
    signal: nix::sys::signal::Signal,
) -> Vec<CheckResult> {
    let summary = format!("interrupted by {} before it finished", signal.as_str());
    let blanks = cases
        .iter()
        .map(|c| CheckResult::new(c.id.clone(), c.requirement.clone(), c.hint()))
        .chain(checks.iter().map(|c| c.blank_result()));
    let mut rest = Vec::new();
    for blank in blanks {
        if !finished.iter().any(|r| r.id == blank.id) {
            rest.push(blank.error(summary.clone()));
        }
    }
    finished.extend(rest);
    finished
}

/// An interrupt arrived before the server was learned: the header says so,
/// and every selected check is reported as interrupted. Never returns: the
/// interrupt thread ends the process once the reports are written.
fn interrupted_before_start(
    config: &RunConfig,
    checks: &[CheckDef],
    cases: &[&CaseFile],
    started: Instant,
    signal: nix::sys::signal::Signal,
    reporter: &mut dyn Reporter,
) -> Result<RunOutcome, RunError> {
    interrupt::wait_for_servers_stopped();
    let target = TargetInfo {
        command: config.command_label.clone(),
        pid: None,
        model: Model::Unknown.as_str().into(),
        model_evidence: format!(
            "interrupted by {} before the server was learned",
            signal.as_str()
        ),
        capabilities: Default::default(),
        capability_notes: Default::default(),
        habits: Vec::new(),
    };
    let all = with_interrupted(Vec::new(), checks, cases, signal);
    let _ = reporter.event(&Event::RunStarted {
        target: &target,
        planned: all.len(),
    });
    let _ = finish(config, all, None, started, Some(signal), reporter);
    interrupt::reports_written();
    Err(RunError::NothingSelected)
}

/// What the run learns about the server before any check.
struct Learned {
    model: ModelReport,
    habits: Habits,
    caps: Capabilities,
    /// The pid of the instance the model was judged on.
    pid: i32,
}

/// The habits, learned on `probe`, and an instance that still runs for what
/// follows: `probe`, or a fresh one if the habits' request was its last.
fn habits_of(
    spec: &TargetSpec,
    mut probe: ServerInstance,
) -> Result<(Habits, ServerInstance), StartError> {
    let mut habits = Habits::learn(&mut probe);
    if let Some(status) = probe.launcher_exit() {
        // Said once here; every instance of the run follows its launcher the same way.
        habits.notes.push(format!(
            "the started process (pid {}) exited ({}) leaving pid {} listening: that process is judged as the server",
            probe.leader_pid(),
            crate::target::describe_status(&status),
            probe.pid()
        ));
    }
    if probe.is_alive() {
        return Ok((habits, probe));
    }
    drop(probe);
    Ok((habits, ServerInstance::start(spec)?))
}

/// The routes `probe` serves. They cannot keep a contract on a server that
/// answers nothing, nor be asked side by side of one that exits after a
/// request or holds its one connection: then every route is missing, with
/// that reason.
fn routes_of(habits: &Habits, probe: &ServerInstance) -> Capabilities {
    if !habits.answers {
        Capabilities::unanswered("the server answered no request in this run")
    } else if !habits.survives {
        Capabilities::unanswered("the server exits after each request")
    } else if !habits.serves_next {
        Capabilities::unanswered(
            "the server holds its one connection open without serving the next",
        )
    } else {
        Capabilities::probe(probe, habits.holds_connections().then_some(CLOSE_GAP))
    }
}

/// Everything on one instance, one after another (a fixed port holds one):
/// the idle census, then the habits, the model and the routes.
fn learn_on_one(spec: &TargetSpec) -> Result<Learned, StartError> {
    let probe = ServerInstance::start(spec)?;
    let idle = observe_idle(&probe);
    let pid = probe.pid();
    let (habits, probe) = habits_of(spec, probe)?;
    let model = classify(&probe, &idle);
    let caps = routes_of(&habits, &probe);
    Ok(Learned {
        model,
        habits,
        caps,
        pid,
    })
}

/// The model on one instance, the habits and routes on another, at once.
fn learn_on_two(spec: &TargetSpec) -> Result<Learned, StartError> {
    std::thread::scope(|scope| {
        let routes = scope.spawn(|| {
            let (habits, probe) = habits_of(spec, ServerInstance::start(spec)?)?;
            let caps = routes_of(&habits, &probe);
            Ok::<_, StartError>((habits, caps))
        });
        let judged = ServerInstance::start(spec).map(|probe| {
            let idle = observe_idle(&probe);
            (classify(&probe, &idle), probe.pid())
        });
        let routes = routes
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (model, pid) = judged?;
        let (habits, caps) = routes?;
        Ok(Learned {
            model,
            habits,
            caps,
            pid,
        })
    })
}

/// Runs one process check on a server instance of its own, started when
/// the check first asks for it.
fn run_check(check: &CheckDef, config: &RunConfig, learned: &Learned) -> CheckResult {
    let Learned {
        caps,
        model,
        habits,
        ..
    } = learned;
    let mut ctx = Ctx::new(&config.spec, caps, model, habits, &config.settings);
    let started = Instant::now();
    let mut result = if let Some(reason) = caps.skip_reason(check.needs) {
        check.blank_result().skip(reason)
    } else if let Some(reason) = habits.shortfall(check.answers) {
        check
            .blank_result()
            .error(format!("precondition failed: {reason}"))
    } else {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (check.run)(&mut ctx, check.blank_result())
        }));
        run.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            check
                .blank_result()
                .error(format!("harness bug: the check panicked: {message}"))
        })
    };
    // A server that died during the check: whatever the verdict, the result
    // says so, with the status, the stderr and a hint for the cause.
    if let Some(death) = ctx.take_death() {
        result = death.record(result);
    }
    result.with_duration(started.elapsed())
}

/// The server could not start: one failed `lifecycle/startup`, and the run stops.
fn startup_failure(
    config: &RunConfig,
    error: StartError,
    started: Instant,
    reporter: &mut dyn Reporter,
) -> Result<RunOutcome, RunError> {
    let target = TargetInfo {
        command: config.command_label.clone(),
        pid: None,
        model: Model::Unknown.as_str().into(),
        model_evidence: "the server did not start".into(),
        capabilities: Default::default(),
        capability_notes: Default::default(),
        habits: Vec::new(),
    };
    reporter
        .event(&Event::RunStarted {
            target: &target,
            planned: 1,
        })
        .map_err(RunError::Report)?;
    let startup = lifecycle::STARTUP;
    let mut result = startup
        .blank_result()
        .figure(
            "startup_timeout_ms",
            config.spec.startup_timeout.as_millis() as u64,
        )
        .fail("the server did not start; no other check can run");
    for line in error.to_string().lines() {
        result = result.evidence(line.to_string());
    }
    let result = result.with_duration(started.elapsed());
    reporter
        .event(&Event::CheckFinished(&result))
        .map_err(RunError::Report)?;
    finish(config, vec![result], Some(error), started, None, reporter)
}

fn finish(
    config: &RunConfig,
    results: Vec<CheckResult>,
    start_error: Option<StartError>,
    started: Instant,
    interrupted: Option<nix::sys::signal::Signal>,
    reporter: &mut dyn Reporter,
) -> Result<RunOutcome, RunError> {
    let totals = Totals::tally(&results);
    reporter
        .event(&Event::RunFinished {
            results: &results,
            totals,
            wall: started.elapsed(),
            strict: config.strict,
            interrupted: interrupted.map(|s| s.as_str()),
        })
        .map_err(RunError::Report)?;
    Ok(RunOutcome {
        results,
        totals,
        start_error,
    })
}
