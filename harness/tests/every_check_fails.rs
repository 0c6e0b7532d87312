//! A check that cannot fail is a defect: each check must fail against a
//! server that has exactly its defect, and only that check.
//!
//! The reference server built into the harness has teaching faults
//! (`--fault NAME`), each switching on one classic defect of hand-written
//! forking servers. For each fault this runs the whole suite against the
//! faulty server and asserts which checks fail, that the checks hit only as a
//! side effect get one of the verdicts listed for them, and that every other
//! check passes (or is skipped, where it does not apply). The clean server
//! passes everything.
//!
//! Each run selects the process checks (`--only` their five groups), not
//! `--only` the expected group: the groups run in parallel, so a run takes
//! as long as its slowest group, and a narrower run would hardly be faster
//! while proving much less ("only this check fails" needs all the others to
//! run). The HTTP case files, which also run by default, are left out
//! except in two runs of the whole suite: against the clean server and
//! against `keep-listener`, whose defect no HTTP exchange can see. There
//! no case may fail either.
//!
//! Two faults only show on an iterative server (in a forking server,
//! `no-eintr-retry` kills the server at the first child exit, and `sigpipe`
//! only kills a child), so they are tested on top of `iterative` and
//! compared with `iterative` alone: exactly the one check must differ.
//!
//! After every run no process carrying the run's marker may remain
//! (`support::HarnessRun::run` asserts it).

mod support;

use std::sync::OnceLock;

use rstest::rstest;
use support::{only_process_checks, HarnessRun, Report, Verdict, ALL_IDS};

/// What a run against one server must show.
struct Expected {
    /// The process models the harness may find (one, unless the server is
    /// honestly two things at once).
    model: &'static [&'static str],
    /// Checks that must fail: the ones the fault is meant for.
    fail: &'static [&'static str],
    /// Checks that must be skipped because they do not apply to the server.
    skip: &'static [&'static str],
    /// Checks hit as a side effect of the fault, with the verdicts each may
    /// get. Every check not named anywhere must pass.
    collateral: &'static [(&'static str, &'static [Verdict])],
}

const FORK: &str = "fork-per-connection";

/// The clean reference server.
const CLEAN: Expected = Expected {
    model: &[FORK],
    fail: &[],
    skip: &[],
    collateral: &[],
};

/// Checks that a fork-per-connection server with only `fail` wrong must pass.
const fn fork_fails(fail: &'static [&'static str]) -> Expected {
    Expected {
        model: &[FORK],
        fail,
        skip: &[],
        collateral: &[],
    }
}

/// The iterative fault: no fork, one client at a time.
const ITERATIVE: Expected = Expected {
    model: &["iterative"],
    fail: &["concurrency/sleep-latency", "concurrency/slow-client"],
    // Without a child per connection there is no child to hold the listener.
    skip: &["fds/child-listener"],
    collateral: &[],
};

/// A child that does not exit falls back into the accept loop and becomes a
/// second acceptor. The readiness probe's own connection leaves one such
/// child behind before the harness looks, so at idle the server has children
/// that accept, and new connections still fork. `fds/child-listener` judges the process that serves its
/// request: a leftover acceptor that existed before it (skip: a pre-fork
/// worker holds the listener by design) or a child forked for it, which
/// holds the listener because no-exit children keep it to accept again
/// (fail, a true finding of this fault). On SIGTERM the server kills its children
/// but not the grandchildren they forked; whether one is still alive when
/// the check looks, and whether the server exits within the limit, depends
/// on timing, so `lifecycle/sigterm` may get any verdict but error.
const NO_EXIT: Expected = Expected {
    // Leftover children accept (pre-fork), and every connection the parent
    // accepts still forks (fork-per-connection): which the held connections
    // show first depends on who accepts them.
    model: &["pre-fork", FORK],
    fail: &["process/children-exit"],
    skip: &[],
    collateral: &[
        ("fds/child-listener", &[Verdict::Skip, Verdict::Fail]),
        (
            "lifecycle/sigterm",
            &[Verdict::Pass, Verdict::Warn, Verdict::Fail],
        ),
    ],
};

/// listen(1): the bursts overflow the accept queue, which is
/// `concurrency/burst`'s finding. `sleep-latency` connects its clients first
/// and times the service from the requests sent, so the SYNs the kernel drops
/// (a second each) never make it fail; but a connection whose handshake the
/// full queue left half-done can still have its request retransmitted after
/// 200 ms or more, which may make it warn. The zombie and children checks see
/// the children of the requests that got through, and pass, naming the
/// unanswered ones.
const TINY_BACKLOG: Expected = Expected {
    model: &[FORK],
    fail: &["concurrency/burst"],
    skip: &[],
    collateral: &[("concurrency/sleep-latency", &[Verdict::Pass, Verdict::Warn])],
};

/// Which checks a run selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    /// Everything the harness runs by default, HTTP cases included.
    Whole,
    /// The 13 process checks.
    Process,
}

/// Runs `suite` against the reference server with `faults`.
fn run_reference(faults: &[&str], suite: Suite) -> (i32, Report) {
    let label = if faults.is_empty() {
        "clean".to_string()
    } else {
        faults.join("+")
    };
    let mut run = HarnessRun::run_cmd(&label).args(["--format", "json"]);
    if suite == Suite::Process {
        run = run.args(only_process_checks());
    }
    let outcome = run.reference(faults).run();
    let report = outcome.report();
    eprintln!(
        "faults {faults:?} ({suite:?}): exit {} in {:.1} s\n{}",
        outcome.code(),
        outcome.elapsed.as_secs_f64(),
        report.overview()
    );
    (outcome.code(), report)
}

/// Asserts every check of `report` against `expected`, listing all
/// mismatches (with each mismatched check's JSON) at once.
fn assert_verdicts(faults: &[&str], report: &Report, expected: &Expected, suite: Suite) {
    assert_eq!(
        report.process_ids(),
        ALL_IDS,
        "faults {faults:?}: not every process check ran, or not in catalog order"
    );
    let mut mismatches = Vec::new();
    let cases = report.case_ids();
    match suite {
        Suite::Process => assert_eq!(cases, [] as [&str; 0], "faults {faults:?}: --only leaked"),
        Suite::Whole => {
            assert!(!cases.is_empty(), "faults {faults:?}: no HTTP case ran");
            // The cases' exact verdicts are their own tests' business (the
            // reference server answers some SHOULDs differently and warns);
            // here none may fail, or the fault would reach further than its
            // one defect.
            for id in cases {
                let got = report.verdict(id);
                if !matches!(got, Verdict::Pass | Verdict::Warn | Verdict::Skip) {
                    mismatches.push(format!(
                        "{id}: {got:?}, expected no failure\n{}",
                        report.describe(id)
                    ));
                }
            }
        }
    }
    for id in ALL_IDS {
        let allowed: &[Verdict] = if expected.fail.contains(&id) {
            &[Verdict::Fail]
        } else if expected.skip.contains(&id) {
            &[Verdict::Skip]
        } else if let Some((_, verdicts)) = expected.collateral.iter().find(|(c, _)| *c == id) {
            verdicts
        } else {
            &[Verdict::Pass]
        };
        let got = report.verdict(id);
        if !allowed.contains(&got) {
            mismatches.push(format!(
                "{id}: {got:?}, expected one of {allowed:?}\n{}",
                report.describe(id)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "faults {faults:?}: {} check(s) with an unexpected verdict:\n{}\n\nall checks:\n{}",
        mismatches.len(),
        mismatches.join("\n"),
        report.overview()
    );
    assert!(
        expected.model.contains(&report.target.model.as_str()),
        "faults {faults:?}: model {} (expected one of {:?}), evidence: {}",
        report.target.model,
        expected.model,
        report.target.model_evidence
    );
}

/// The exit code CI branches on: 1 when a check failed, 0 otherwise.
fn expected_exit_code(expected: &Expected) -> i32 {
    if expected.fail.is_empty() {
        0
    } else {
        1
    }
}

#[rstest]
#[case::clean(&[], CLEAN, Suite::Whole)]
#[case::no_reap(&["no-reap"], fork_fails(&["process/zombies"]), Suite::Process)]
#[case::single_wait(&["single-wait"], fork_fails(&["process/zombies"]), Suite::Process)]
#[case::keep_client_fd(
    &["keep-client-fd"],
    fork_fails(&["fds/leak", "fds/close-eof"]),
    Suite::Process
)]
#[case::keep_listener(&["keep-listener"], fork_fails(&["fds/child-listener"]), Suite::Whole)]
#[case::leak_fd(&["leak-fd"], fork_fails(&["fds/leak"]), Suite::Process)]
#[case::no_reuseaddr(&["no-reuseaddr"], fork_fails(&["lifecycle/reuseaddr"]), Suite::Process)]
#[case::orphan_children(
    &["orphan-children"],
    fork_fails(&["lifecycle/sigterm"]),
    Suite::Process
)]
#[case::no_exit(&["no-exit"], NO_EXIT, Suite::Process)]
#[case::tiny_backlog(&["tiny-backlog"], TINY_BACKLOG, Suite::Process)]
fn each_fault_fails_exactly_its_checks(
    #[case] faults: &[&str],
    #[case] expected: Expected,
    #[case] suite: Suite,
) {
    let (code, report) = run_reference(faults, suite);
    assert_verdicts(faults, &report, &expected, suite);
    assert_eq!(
        code,
        expected_exit_code(&expected),
        "faults {faults:?}: wrong exit code\n{}",
        report.overview()
    );
}

/// The iterative run, shared by the tests that compare against it.
fn iterative_baseline() -> &'static (i32, Report) {
    static BASELINE: OnceLock<(i32, Report)> = OnceLock::new();
    BASELINE.get_or_init(|| run_reference(&["iterative"], Suite::Process))
}

#[test]
fn an_iterative_server_fails_only_the_concurrency_checks() {
    let (code, report) = iterative_baseline();
    assert_verdicts(&["iterative"], report, &ITERATIVE, Suite::Process);
    assert_eq!(*code, 1, "{}", report.overview());
}

#[rstest]
#[case::eintr_is_fatal("no-eintr-retry", "signals/eintr")]
#[case::sigpipe_kills("sigpipe", "signals/sigpipe")]
fn on_top_of_iterative_exactly_one_more_check_fails(#[case] fault: &str, #[case] id: &str) {
    let (_, baseline) = iterative_baseline();
    let (code, report) = run_reference(&["iterative", fault], Suite::Process);
    assert_eq!(code, 1, "{}", report.overview());
    assert_eq!(report.ids(), ALL_IDS);
    assert_eq!(
        baseline.verdict(id),
        Verdict::Pass,
        "{id} must pass on the iterative server without {fault}:\n{}",
        baseline.describe(id)
    );
    assert_eq!(
        report.verdict(id),
        Verdict::Fail,
        "{id} must fail with {fault}:\n{}",
        report.describe(id)
    );
    let differing: Vec<String> = ALL_IDS
        .iter()
        .filter(|other| **other != id && report.verdict(other) != baseline.verdict(other))
        .map(|other| {
            format!(
                "{other}: {:?} with {fault}, {:?} without\n{}",
                report.verdict(other),
                baseline.verdict(other),
                report.describe(other)
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "besides {id}, {fault} changed:\n{}",
        differing.join("\n")
    );
    assert_eq!(report.target.model, "iterative");
}
