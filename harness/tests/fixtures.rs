//! The harness against servers nobody here wrote to suit it: learner-style
//! servers (the steps of the classic "build a web server" tutorial, with its
//! habits: `Hello, World!` on every path, bare LF, no Content-Length, one
//! `recv(1024)`), Python's own socketserver servers, and a few servers with
//! exactly one defect. The fixtures live in `tests/fixtures/`, Python 3
//! standard library only.
//!
//! For each, the model the harness must find and every process check's
//! verdict. A check not listed must pass. Where a verdict depends on timing
//! the fixture does not control, the test lists every verdict that is
//! right: the tutorial's `listen(5)` overflows under `concurrency/burst`'s
//! 64 connections more or less depending on how fast the retransmitted SYNs
//! get through, so that check may pass or fail there, never error or skip.

mod support;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use rstest::rstest;
use support::{only_process_checks, HarnessRun, Report, Verdict, ALL_IDS};

use Verdict::{Error, Fail, Pass, Skip, Warn};

/// What a run against one fixture must show.
struct Expected {
    /// The process model.
    model: &'static str,
    /// Checks whose verdict must be one of those listed; the rest pass.
    verdicts: &'static [(&'static str, &'static [Verdict])],
}

/// The tutorial's `listen(5)` under a burst of 64: either verdict is right.
const BACKLOG_5: (&str, &[Verdict]) = ("concurrency/burst", &[Pass, Fail]);
/// Routes a tutorial server does not serve: it answers `Hello, World!`.
const NO_SLEEP: (&str, &[Verdict]) = ("concurrency/sleep-latency", &[Skip]);
const NO_BYTES: (&str, &[Verdict]) = ("signals/sigpipe", &[Skip]);
/// A server without a child per connection.
const NO_CHILD: (&str, &[Verdict]) = ("fds/child-listener", &[Skip]);

fn fixture(name: &str) -> std::ffi::OsString {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
        .into_os_string()
}

/// The report of one run against the fixture `command`, run once per test
/// binary: the table below and the tests after it only read a report, so
/// those that judge the same fixture share its run instead of paying for
/// another (each run takes 5 to 15 s).
fn fixture_report(command: &'static [&'static str]) -> &'static Report {
    type Runs = BTreeMap<&'static [&'static str], &'static OnceLock<Report>>;
    static RUNS: Mutex<Runs> = Mutex::new(BTreeMap::new());
    let once: &'static OnceLock<Report> = RUNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(command)
        // One cell per fixture for the life of the test binary.
        .or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
    // Outside the map's lock: two tests of the same fixture wait on its
    // cell, tests of other fixtures do not wait on it.
    once.get_or_init(|| run_fixture(&command.join("-").replace(".py", ""), command))
}

fn run_fixture(label: &str, command: &[&str]) -> Report {
    support::require_python3();
    let mut server = vec![std::ffi::OsString::from("python3"), fixture(command[0])];
    server.extend(command[1..].iter().map(std::ffi::OsString::from));
    let outcome = HarnessRun::run_cmd(label)
        .args(["--format", "json"])
        .args(only_process_checks())
        .server(server)
        .run();
    let report = outcome.report();
    eprintln!(
        "{label}: exit {} in {:.1} s\n  model: {} ({})\n{}",
        outcome.code(),
        outcome.elapsed.as_secs_f64(),
        report.target.model,
        report.target.model_evidence,
        report.overview()
    );
    assert_eq!(report.ids(), ALL_IDS, "{label}: not every check ran");
    report
}

#[rstest]
#[case::tutorial_iterative(&["tutorial_iterative.py"], Expected {
    model: "iterative",
    verdicts: &[NO_SLEEP, NO_BYTES, NO_CHILD,
        // One client at a time, and listen(5): both fail, for their own reasons.
        ("concurrency/slow-client", &[Fail]),
        ("concurrency/burst", &[Fail])],
})]
#[case::tutorial_iterative_sleep(&["tutorial_iterative_sleep.py"], Expected {
    model: "iterative",
    // The first client is served, then the server sleeps 60 s holding its
    // connection: every load goes unanswered, and a check that cannot apply
    // its load says so (error) instead of passing.
    verdicts: &[NO_SLEEP, NO_BYTES,
        ("concurrency/slow-client", &[Fail]),
        ("concurrency/burst", &[Error]),
        ("process/zombies", &[Error]),
        ("process/children-exit", &[Error]),
        ("fds/leak", &[Error]),
        ("fds/close-eof", &[Error]),
        ("fds/child-listener", &[Error, Skip]),
        ("signals/eintr", &[Error])],
})]
#[case::tutorial_wsgi_empty_read(&["tutorial_wsgi_empty_read.py"], Expected {
    model: "iterative",
    // Dies on an empty read: the readiness probe must not be one. One
    // client at a time, behind listen(5).
    verdicts: &[NO_SLEEP, NO_BYTES, NO_CHILD, BACKLOG_5,
        ("concurrency/slow-client", &[Fail])],
})]
#[case::tutorial_fork_no_reap(&["tutorial_fork_no_reap.py"], Expected {
    model: "fork-per-connection",
    verdicts: &[NO_SLEEP, NO_BYTES, BACKLOG_5, ("process/zombies", &[Fail])],
})]
#[case::tutorial_fork_keep_client(&["tutorial_fork_keep_client.py"], Expected {
    model: "fork-per-connection",
    verdicts: &[NO_SLEEP, NO_BYTES, BACKLOG_5,
        ("fds/leak", &[Fail]),
        ("fds/close-eof", &[Fail])],
})]
#[case::tutorial_fork_single_wait(&["tutorial_fork_single_wait.py"], Expected {
    model: "fork-per-connection",
    // One os.wait() per signal: zombies under a burst, and a storm of
    // SIGCHLD with no child left makes os.wait() raise ChildProcessError.
    verdicts: &[NO_SLEEP, NO_BYTES, BACKLOG_5,
        ("process/zombies", &[Fail]),
        ("signals/eintr", &[Fail])],
})]
#[case::tutorial_fork_reap(&["tutorial_fork_reap.py"], Expected {
    model: "fork-per-connection",
    verdicts: &[NO_SLEEP, NO_BYTES, BACKLOG_5],
})]
#[case::tutorial_fork_linger(&["tutorial_fork_linger.py"], Expected {
    model: "fork-per-connection",
    // Each child sleeps 3 s after its response before it closes: the body
    // (framed by close) ends late, and the children exit after the settle
    // time; their clients had their answers at once.
    verdicts: &[NO_SLEEP, NO_BYTES, BACKLOG_5,
        ("fds/close-eof", &[Fail]),
        ("process/children-exit", &[Warn])],
})]
#[case::socketserver_forking(&["socketserver_server.py", "forking"], Expected {
    model: "fork-per-connection",
    // ForkingMixIn never closes the listener in the child, SIGTERM's default
    // action leaves the children serving, and TCPServer does not set
    // SO_REUSEADDR unless asked.
    verdicts: &[BACKLOG_5,
        ("fds/child-listener", &[Fail]),
        ("lifecycle/sigterm", &[Fail]),
        ("lifecycle/reuseaddr", &[Fail])],
})]
#[case::socketserver_forking_reuse(&["socketserver_server.py", "forking", "--reuse"], Expected {
    model: "fork-per-connection",
    verdicts: &[BACKLOG_5,
        ("fds/child-listener", &[Fail]),
        ("lifecycle/sigterm", &[Fail])],
})]
#[case::socketserver_threading(&["socketserver_server.py", "threading"], Expected {
    model: "threaded",
    verdicts: &[BACKLOG_5, NO_CHILD, ("lifecycle/reuseaddr", &[Fail])],
})]
#[case::socketserver_threading_reuse(&["socketserver_server.py", "threading", "--reuse"], Expected {
    model: "threaded",
    verdicts: &[BACKLOG_5, NO_CHILD],
})]
#[case::prefork_leak(&["prefork_leak.py"], Expected {
    model: "pre-fork",
    verdicts: &[NO_SLEEP, NO_BYTES, NO_CHILD, ("fds/leak", &[Fail])],
})]
#[case::late_fds(&["late_fds.py"], Expected {
    model: "threaded",
    verdicts: &[NO_SLEEP, NO_BYTES, NO_CHILD, BACKLOG_5],
})]
#[case::fake_sleep(&["fake_sleep.py"], Expected {
    model: "threaded",
    verdicts: &[NO_SLEEP, NO_BYTES, NO_CHILD, BACKLOG_5],
})]
fn each_fixture_gets_its_model_and_verdicts(
    #[case] command: &'static [&'static str],
    #[case] expected: Expected,
) {
    let label = command.join("-").replace(".py", "");
    let report = fixture_report(command);
    assert_eq!(
        report.target.model, expected.model,
        "{label}: model evidence: {}",
        report.target.model_evidence
    );
    let mut wrong = Vec::new();
    for id in ALL_IDS {
        let allowed: &[Verdict] = expected
            .verdicts
            .iter()
            .find(|(listed, _)| *listed == id)
            .map_or(&[Pass], |(_, verdicts)| verdicts);
        if !allowed.contains(&report.verdict(id)) {
            wrong.push(format!(
                "{id}: {:?}, expected one of {allowed:?}\n{}",
                report.verdict(id),
                report.describe(id)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{label}: {} unexpected verdict(s):\n{}\n\nall checks:\n{}",
        wrong.len(),
        wrong.join("\n"),
        report.overview()
    );
}

/// Routes that answer but break their contract are not served: the header
/// says how each breaks it, and the checks that need them are skipped with
/// that reason, never passed on an answer that means nothing.
#[test]
fn routes_that_break_their_contract_are_not_served_and_say_how() {
    let report = fixture_report(&["fake_sleep.py"]);
    for route in ["/sleep", "/echo", "/pid", "/bytes"] {
        assert_eq!(
            report.target.capabilities.get(route),
            Some(&false),
            "{route}: {:?}",
            report.target.capabilities
        );
    }
    let notes = &report.target.capability_notes;
    assert!(notes["/sleep"].contains("answers after"), "{notes:?}");
    assert!(notes["/bytes"].contains("answers 16 bytes"), "{notes:?}");
    assert!(notes["/pid"].contains("not a pid"), "{notes:?}");
    assert!(notes["/echo"].contains("does not reflect"), "{notes:?}");
    let sleep = report.check("concurrency/sleep-latency");
    assert!(
        sleep.summary.contains("not the conformance route"),
        "{}",
        report.describe("concurrency/sleep-latency")
    );
}

/// A pre-fork server whose worker leaks a descriptor per request fails
/// `fds/leak`, and the report names the worker and the kind of what leaked,
/// not the quiet leader.
#[test]
fn a_leaking_prefork_worker_is_named() {
    let report = fixture_report(&["prefork_leak.py"]);
    let leak = report.check("fds/leak");
    assert_eq!(leak.verdict, Fail, "{}", report.describe("fds/leak"));
    assert!(leak.summary.contains("worker"), "{}", leak.summary);
    assert!(
        leak.evidence.iter().any(|e| e.contains("file=")),
        "{}",
        report.describe("fds/leak")
    );
}

/// A server that dies of `os.wait()` in its SIGCHLD handler gets a hint
/// about that cause, with the status and the traceback's lines as evidence.
#[test]
fn a_death_is_reported_with_its_cause() {
    let report = fixture_report(&["tutorial_fork_single_wait.py"]);
    let eintr = report.check("signals/eintr");
    assert_eq!(eintr.verdict, Fail, "{}", report.describe("signals/eintr"));
    assert!(
        eintr
            .evidence
            .iter()
            .any(|e| e.starts_with("server exited:")),
        "{}",
        report.describe("signals/eintr")
    );
    assert!(
        eintr.hint.contains("ECHILD"),
        "{}",
        report.describe("signals/eintr")
    );
}
