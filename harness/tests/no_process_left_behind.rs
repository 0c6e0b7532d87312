//! The harness never leaves a server behind: not after a normal run, not
//! when the server's children outlive it, and not when the harness itself is
//! interrupted (Ctrl-C, SIGTERM) in the middle of a run.
//!
//! Every server the harness starts carries this test's marker in its
//! environment (`--env HARNESS_TEST_MARKER=...`), and its children inherit
//! it, so a scan of `/proc/*/environ` finds every process the run created,
//! whichever process group it ended up in.

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use rstest::rstest;
use support::{marked_processes, poll_until, HarnessRun, Verdict, ALL_IDS};

/// After a run of the whole suite (HTTP cases included) against the clean
/// reference server, nothing remains.
#[test]
fn a_full_run_leaves_no_process_behind() {
    let run = HarnessRun::run_cmd("full-run")
        .args(["--format", "json"])
        .reference(&[]);
    let marker = run.marker().clone();
    let outcome = run.run();
    outcome.assert_code(0);
    assert_eq!(outcome.report().process_ids(), ALL_IDS);
    // `run` already waited for the marker to disappear; say it again here,
    // where it is the point of the test.
    assert_eq!(marked_processes(&marker), []);
}

/// Servers whose children outlive them: `orphan-children` dies on SIGTERM
/// and leaves its children running; `no-exit` piles up children that never
/// exit. The harness must still take every one of them down.
#[rstest]
#[case::orphaned_children(&["orphan-children"], "lifecycle/sigterm")]
#[case::children_that_never_exit(&["no-exit"], "process/children-exit")]
fn children_that_outlive_the_server_are_killed_too(#[case] faults: &[&str], #[case] id: &str) {
    let run = HarnessRun::run_cmd("outliving")
        .args(["--format", "json", "--only", id])
        .reference(faults);
    let marker = run.marker().clone();
    let outcome = run.run();
    outcome.assert_code(1);
    assert_eq!(outcome.report().verdict(id), Verdict::Fail);
    assert_eq!(marked_processes(&marker), []);
}

/// Where the harness is when the signal arrives.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// Mid-check: 8 clients wait on `/sleep?ms=10000`, so the server has 8
    /// children, and the run would go on for 10 s. (The probe before the
    /// checks holds only 4 connections, so 9 marked processes means the
    /// check is running.)
    DuringChecks,
    /// Waiting for a server that never listens (60 s startup timeout).
    DuringStartup,
}

impl Moment {
    /// The run, and how many marked processes show that the moment has come.
    fn run(self) -> (HarnessRun, usize) {
        match self {
            Moment::DuringChecks => (
                HarnessRun::run_cmd("interrupt-checks")
                    .args(["--only", "concurrency/sleep-latency", "--sleep-ms", "10000"])
                    .reference(&[]),
                // The server and its 8 children serving /sleep.
                9,
            ),
            Moment::DuringStartup => (
                HarnessRun::run_cmd("interrupt-startup")
                    .args(["--startup-timeout", "60s"])
                    .server(["sh", "-c", "sleep 300 & sleep 300"]),
                // The shell and both sleeps.
                3,
            ),
        }
    }
}

/// Ctrl-C (SIGINT to the harness's process group, as a terminal sends it),
/// SIGTERM or SIGHUP: the harness exits with 128 + the signal number and
/// takes every server with it.
#[rstest]
fn an_interrupted_harness_takes_its_servers_down(
    #[values(Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP)] signal: Signal,
    #[values(Moment::DuringChecks, Moment::DuringStartup)] moment: Moment,
) {
    let _one_at_a_time = support::exclusive();
    let (run, wanted) = moment.run();
    let marker = run.marker().clone();
    let _sweep = support::MarkerSweep(marker.clone());
    let mut harness = run.spawn();
    let started = poll_until(Duration::from_secs(30), || {
        marked_processes(&marker).len() >= wanted
    });
    if !started {
        let exited = harness.wait_timeout(Duration::ZERO);
        let (stdout, stderr) = if exited.is_some() {
            harness.output()
        } else {
            Default::default()
        };
        drop(harness);
        support::assert_nothing_left(&marker);
        panic!(
            "{moment:?}: fewer than {wanted} marked processes within 30 s \
             (harness exit: {exited:?}); found {:?}\n{}\n{}",
            marked_processes(&marker),
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    harness.signal_group(signal);
    // The harness gives its servers about 1 s after SIGTERM before SIGKILL.
    let status = harness.wait_timeout(Duration::from_secs(20));
    let (stdout, stderr) = if status.is_some() {
        harness.output()
    } else {
        Default::default()
    };
    let stderr = String::from_utf8_lossy(&stderr);
    // Leftovers first: they are the point, and a wrong exit code must not hide them.
    let left = support::leftovers(&marker);
    assert!(
        left.is_empty(),
        "{moment:?}: after {signal}, {} marked process(es) remain: {left:#?}\n\
         harness status: {status:?}\n{stderr}",
        left.len()
    );
    assert!(
        status.is_some(),
        "{moment:?}: the harness did not exit within 20 s of {signal}"
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(128 + signal as i32),
        "{moment:?}: exit status after {signal}: {status:?}\n{}\n{stderr}",
        String::from_utf8_lossy(&stdout),
    );
    assert!(
        stderr.contains(&format!("{} received", signal.as_str())),
        "{stderr}"
    );
}
