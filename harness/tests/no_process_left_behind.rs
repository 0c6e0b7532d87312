//! The harness never leaves a server behind: not after a normal run, not
//! when the server's children outlive it or escape its process group
//! (daemonizing, `setsid`, `setpgid`), and not when the harness itself is
//! ended by any signal it can catch in the middle of a run; and an
//! interrupted run still writes its reports.
//!
//! Every server the harness starts carries this test's marker in its
//! environment (`--env HARNESS_TEST_MARKER=...`), and its children inherit
//! it, so a scan of `/proc/*/environ` finds every process the run created,
//! whichever process group or session it ended up in.

mod support;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use rstest::rstest;
use support::{marked_processes, poll_until, GroupChild, HarnessRun, Marker, Verdict, ALL_IDS};

/// `python3 tests/fixtures/escaping_server.py MODE`.
fn escaping(mode: &str) -> Vec<OsString> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("escaping_server.py");
    vec!["python3".into(), script.into_os_string(), mode.into()]
}

/// Servers whose processes leave the process group the harness gave them:
/// a daemon (double fork, `setsid`; the started process exits 0 and the
/// grandchild listens), children that call `setsid()` or `setpgid()`, and
/// grandchildren in a session of their own. The daemon is followed and
/// judged as the server; escaped children alive after SIGTERM fail
/// `lifecycle/sigterm`, whatever their group; and nothing survives the run.
#[rstest]
#[case::a_daemonizing_launcher("daemon", Verdict::Pass)]
#[case::setsid_children("setsid-children", Verdict::Fail)]
#[case::setsid_grandchildren("setsid-grandchildren", Verdict::Fail)]
#[case::setpgid_children("setpgid-children", Verdict::Fail)]
fn processes_that_escape_the_group_are_found_judged_and_stopped(
    #[case] mode: &str,
    #[case] sigterm: Verdict,
) {
    support::require_python3();
    let run = HarnessRun::run_cmd(mode)
        .args(["--format", "json", "--only", "lifecycle/*"])
        .server(escaping(mode));
    let marker = run.marker().clone();
    let outcome = run.run();
    let report = outcome.report();
    assert_eq!(
        report.verdict("lifecycle/startup"),
        Verdict::Pass,
        "{}",
        outcome.context()
    );
    assert_eq!(
        report.verdict("lifecycle/reuseaddr"),
        Verdict::Pass,
        "{}",
        outcome.context()
    );
    assert_eq!(
        report.verdict("lifecycle/sigterm"),
        sigterm,
        "{}",
        report.describe("lifecycle/sigterm")
    );
    if mode == "daemon" {
        assert!(
            report
                .target
                .habits
                .iter()
                .any(|h| h.contains("judged as the server")),
            "the hand-over is not said: {:?}",
            report.target.habits
        );
    }
    // `run` already waited for the marker to disappear; say it again here.
    assert_eq!(marked_processes(&marker), []);
}

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

/// Waits until the run has at least `wanted` marked processes; on failure
/// cleans up and panics with what the harness said.
fn wait_for_processes(harness: &mut GroupChild, marker: &Marker, wanted: usize, what: &str) {
    let started = poll_until(Duration::from_secs(30), || {
        marked_processes(marker).len() >= wanted
    });
    if started {
        return;
    }
    let exited = harness.wait_timeout(Duration::ZERO);
    let (stdout, stderr) = if exited.is_some() {
        harness.output()
    } else {
        Default::default()
    };
    support::assert_nothing_left(marker);
    panic!(
        "{what}: fewer than {wanted} marked processes within 30 s \
         (harness exit: {exited:?}); found {:?}\n{}\n{}",
        marked_processes(marker),
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
}

/// Sends `signal` to the harness's process group, as a terminal or a CI
/// runner does, and asserts that it exits with 128 + the signal number,
/// saying why, with no marked process left. Returns stdout.
fn signal_and_expect_nothing_left(
    mut harness: GroupChild,
    marker: &Marker,
    signal: Signal,
    what: &str,
) -> String {
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
    let left = support::leftovers(marker);
    assert!(
        left.is_empty(),
        "{what}: after {signal}, {} marked process(es) remain: {left:#?}\n\
         harness status: {status:?}\n{stderr}",
        left.len()
    );
    assert!(
        status.is_some(),
        "{what}: the harness did not exit within 20 s of {signal}"
    );
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(128 + signal as i32),
        "{what}: exit status after {signal}: {status:?}\n{stdout}\n{stderr}",
    );
    assert!(
        stderr.contains(&format!("{} received", signal.as_str())),
        "{stderr}"
    );
    stdout
}

/// Every signal that would end the harness and that it can catch, sent
/// mid-check (8 clients wait on `/sleep?ms=10000`, so the server has 8
/// children; the probe before the checks holds only 4 connections, so 9
/// marked processes means the check is running): Ctrl-C, Ctrl-\\, a CI
/// runner's SIGTERM or SIGHUP, and what a server may send its parent.
#[rstest]
fn every_stop_signal_takes_the_servers_down(
    #[values(
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGPIPE
    )]
    signal: Signal,
) {
    let _slot = support::run_slot();
    let run = HarnessRun::run_cmd("interrupt-checks")
        .args(["--only", "concurrency/sleep-latency", "--sleep-ms", "10000"])
        .reference(&[]);
    let marker = run.marker().clone();
    let _sweep = support::MarkerSweep(marker.clone());
    let mut harness = run.spawn();
    wait_for_processes(&mut harness, &marker, 9, "mid-check");
    signal_and_expect_nothing_left(harness, &marker, signal, "mid-check");
}

/// Interrupted while waiting for a server that never listens (60 s startup
/// timeout), and while a server's children linger in sessions of their own.
#[rstest]
#[case::during_startup(&["--startup-timeout", "60s"], vec!["sh".into(), "-c".into(), "sleep 300 & sleep 300".into()], 3)]
#[case::with_children_in_other_sessions(&["--only", "lifecycle/*"], escaping("setsid-children"), 4)]
#[case::with_a_daemon(&["--only", "concurrency/slow-client"], escaping("daemon"), 2)]
fn an_interrupt_takes_down_every_process_of_the_run(
    #[case] args: &[&str],
    #[case] server: Vec<OsString>,
    #[case] wanted: usize,
    #[values(Signal::SIGINT, Signal::SIGTERM)] signal: Signal,
) {
    support::require_python3();
    let _slot = support::run_slot();
    let run = HarnessRun::run_cmd("interrupt-escaped")
        .args(args.iter().copied())
        .server(server);
    let marker = run.marker().clone();
    let _sweep = support::MarkerSweep(marker.clone());
    let mut harness = run.spawn();
    wait_for_processes(&mut harness, &marker, wanted, "escaped");
    signal_and_expect_nothing_left(harness, &marker, signal, "escaped");
}

/// SIGINT after some checks finished: the JSON document (stdout) and the
/// JUnit file are still written, with what finished and every other
/// selected check as an error saying it was interrupted.
#[test]
fn an_interrupted_run_still_writes_its_json_and_junit() {
    let _slot = support::run_slot();
    let dir = support::TempDir::new("interrupted");
    let junit = dir.join("report.xml");
    let run = HarnessRun::run_cmd("interrupt-reports")
        .args(["--format", "json", "--junit"])
        .args([junit.as_os_str()])
        .args([
            "--only",
            "concurrency/sleep-latency",
            "--only",
            "lifecycle/startup",
            "--only",
            "http/*",
            "--sleep-ms",
            "10000",
        ])
        .reference(&[]);
    let marker = run.marker().clone();
    let _sweep = support::MarkerSweep(marker.clone());
    let mut harness = run.spawn();
    wait_for_processes(&mut harness, &marker, 9, "reports");
    let stdout = signal_and_expect_nothing_left(harness, &marker, Signal::SIGINT, "reports");
    let document: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON document after SIGINT ({e}):\n{stdout}"));
    assert_eq!(document["interrupted"], "SIGINT", "{stdout}");
    let checks = document["checks"].as_array().expect("checks");
    let find = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from the document"))
    };
    // It sleeps 10 s: it cannot have finished.
    let sleep = find("concurrency/sleep-latency");
    assert_eq!(sleep["verdict"], "error", "{sleep}");
    assert!(
        sleep["summary"]
            .as_str()
            .is_some_and(|s| s.contains("interrupted by SIGINT")),
        "{sleep}"
    );
    // Every selected check is there, finished or not: the 13 process checks
    // minus 11 unselected, plus every http case.
    let http = checks
        .iter()
        .filter(|c| c["id"].as_str().is_some_and(|id| id.starts_with("http/")))
        .count();
    assert!(http > 100, "only {http} http cases in the document");
    assert_eq!(checks.len(), http + 2, "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("the JUnit file was written");
    assert!(xml.contains("concurrency/sleep-latency"), "{xml}");
}

/// SIGKILL cannot be caught: the parent-death signal is the backstop, so
/// the server the harness started dies with it. (Its own children are the
/// server's to stop: the documented limit.)
#[test]
fn a_sigkilled_harness_takes_its_server_down_by_the_parent_death_signal() {
    let _slot = support::run_slot();
    let run = HarnessRun::run_cmd("sigkill")
        .args(["--only", "concurrency/sleep-latency", "--sleep-ms", "10000"])
        .reference(&[]);
    let marker = run.marker().clone();
    let _sweep = support::MarkerSweep(marker.clone());
    let mut harness = run.spawn();
    wait_for_processes(&mut harness, &marker, 9, "sigkill");
    // The servers started before the check are leaders; find them now.
    let leaders: Vec<i32> = marked_processes(&marker)
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/stat", p.pid))
                .ok()
                .and_then(|stat| {
                    let fields: Vec<String> = stat
                        .rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .map(String::from)
                        .collect();
                    // Field 4 (ppid) is the 2nd after the command name.
                    fields.get(1)?.parse::<u32>().ok()
                })
                == Some(harness.pid() as u32)
        })
        .map(|p| p.pid)
        .collect();
    assert!(!leaders.is_empty(), "no server is the harness's child");
    harness.signal_group(Signal::SIGKILL);
    let _ = harness.wait_timeout(Duration::from_secs(20));
    let gone = poll_until(Duration::from_secs(10), || {
        leaders
            .iter()
            .all(|pid| !marked_processes(&marker).iter().any(|p| p.pid == *pid))
    });
    assert!(gone, "a server outlived the SIGKILLed harness: {leaders:?}");
}

/// A server left from an earlier run still listens on the `--port` asked
/// for: the run is an error (exit 2) before the new server starts, naming
/// the stale server's pid; the stale server is not judged, and the run
/// leaves nothing of its own behind.
#[test]
fn a_stale_server_on_the_fixed_port_is_named_and_nothing_is_judged() {
    support::require_python3();
    let port = support::free_port();
    let stale_marker = Marker::new("stale");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("tutorial_iterative.py");
    let (key, value) = stale_marker
        .env_arg()
        .split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .expect("K=V");
    let mut command = std::process::Command::new("python3");
    command
        .arg(&fixture)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env(key, value);
    let _stale_sweep = support::MarkerSweep(stale_marker.clone());
    let stale = GroupChild::spawn(&mut command, true);
    let listening = poll_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(listening, "the stale server did not listen on {port}");
    let run = HarnessRun::run_cmd("stale-port")
        .args(["--format", "json", "--port", &port.to_string()])
        .server(["python3".into(), fixture.into_os_string()]);
    let marker = run.marker().clone();
    let outcome = run.run();
    outcome.assert_code(2);
    let report = outcome.report();
    let startup = report.check("lifecycle/startup");
    assert_eq!(startup.verdict, Verdict::Fail);
    let named = format!("pid {} (python3)", stale.pid());
    assert!(
        startup.evidence.iter().any(|e| e.contains(&named)),
        "the holder is not named as {named}: {}",
        report.describe("lifecycle/startup")
    );
    assert_eq!(
        report.checks.len(),
        1,
        "something was judged: {}",
        report.overview()
    );
    assert_eq!(marked_processes(&marker), []);
    drop(stale);
    support::assert_nothing_left(&stale_marker);
}
