//! The command line as a user and CI see it: what `harness list` and
//! `harness run` print, which checks a selection runs, the reports they
//! write, and the exit codes scripts branch on (0 nothing failed, 1 a check
//! failed, 2 usage error or a server that could not start).
//!
//! Runs that need a server use the built-in reference server (cheap, and
//! `--only` keeps them short) or a few lines of Python where the point is a
//! server the harness knows nothing about.

mod support;

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use predicates::prelude::*;
use rstest::rstest;
use support::{HarnessRun, TempDir, Verdict, ALL_IDS, HARNESS, REFERENCE_SERVER};

/// The repository root (the workspace), for `apps/conformance_app.py`.
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate lives inside the workspace")
        .to_path_buf()
}

/// A tiny threaded HTTP server that sheds load: it answers 200 while it
/// holds no other connection and 503 while it does, so that
/// `concurrency/burst`, which asks `GET /` alone at idle and then on 64
/// connections opened together, warns every time (the 64 are all open before
/// any request is sent, so the later ones at least see company). It
/// takes its address from its arguments only: `HOST PORT`, or `HOST:PORT`.
const PY_503_SERVER: &str = r#"
import socket, sys, threading
if len(sys.argv) == 2:
    host, _, port = sys.argv[1].rpartition(":")
else:
    host, port = sys.argv[1], sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(128)
open_now = [0]
lock = threading.Lock()
def serve(c):
    c.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                return
            data += chunk
        with lock:
            alone = open_now[0] == 1
        if alone:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!")
        else:
            c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    finally:
        # Counted out before the close, so that a client that saw the end of
        # its connection finds the server alone again.
        with lock:
            open_now[0] -= 1
        c.close()
while True:
    c, _ = s.accept()
    with lock:
        open_now[0] += 1
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The load-shedding server with its address arguments.
fn py_503_server(address_args: &[&str]) -> Vec<String> {
    ["python3", "-c", PY_503_SERVER]
        .iter()
        .chain(address_args)
        .map(|s| s.to_string())
        .collect()
}

/// `harness list` names every process check exactly once, in catalog
/// order, before the HTTP case files; the last line counts them.
#[test]
fn list_shows_every_check_id_exactly_once() {
    let outcome = HarnessRun::bare(["list"]).run();
    outcome.assert_code(0);
    let text = outcome.stdout();
    let lines: Vec<&str> = text.lines().collect();
    let (last, rows) = lines.split_last().expect("list prints something");
    let ids: Vec<&str> = rows
        .iter()
        .map(|line| line.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(ids[..ALL_IDS.len()], ALL_IDS, "{text}");
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an id is listed twice:\n{text}");
    // Each row also carries what the check requires.
    for row in rows {
        assert!(row.split_whitespace().count() > 3, "no requirement: {row}");
    }
    // "13 checks", or "13 process checks, 43 cases" with case files.
    assert!(
        last.starts_with(&format!("{} ", ALL_IDS.len())) && last.contains("checks"),
        "last line {last:?}:\n{text}"
    );
    if let Some(cases) = last
        .split(", ")
        .nth(1)
        .and_then(|part| part.strip_suffix(" cases"))
    {
        assert_eq!(
            cases.parse::<usize>().ok(),
            Some(ids.len() - ALL_IDS.len()),
            "{last}"
        );
    }

    let json = HarnessRun::bare(["list", "--format", "json"]).run();
    json.assert_code(0);
    let items: Vec<serde_json::Value> =
        serde_json::from_str(&json.stdout()).expect("list --format json prints a JSON array");
    let json_ids: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(json_ids, ids);
}

/// Human output: one line per selected check, nothing else, and the summary
/// line last.
#[test]
fn only_a_group_runs_that_group_and_the_summary_line_comes_last() {
    let outcome = HarnessRun::run_cmd("only-process")
        .args(["--only", "process"])
        .reference(&[])
        .run();
    outcome.assert_code(0);
    let text = outcome.stdout();
    let verdict_lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["PASS ", "WARN ", "FAIL ", "SKIP ", "ERROR "]
                .iter()
                .any(|w| l.starts_with(w))
        })
        .collect();
    let ids: Vec<&str> = verdict_lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(ids, ["process/zombies", "process/children-exit"], "{text}");
    assert!(
        verdict_lines.iter().all(|l| l.starts_with("PASS  ")),
        "{text}"
    );
    let last = text.lines().last().expect("output is not empty");
    assert!(
        predicate::str::is_match(r"^2 passed, 0 failed, 0 warned, 0 skipped  \(\d+\.\d s\)$")
            .expect("valid regex")
            .eval(last),
        "last line: {last:?}\n{text}"
    );
}

#[test]
fn a_failure_shows_requirement_evidence_and_hint_and_exits_1() {
    let outcome = HarnessRun::run_cmd("human-failure")
        .args(["--only", "fds/child-listener"])
        .reference(&["keep-listener"])
        .run();
    outcome.assert_code(1);
    let text = outcome.stdout();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("FAIL  fds/child-listener"))
        .unwrap_or_else(|| panic!("no FAIL line:\n{text}"));
    let block: Vec<&str> = lines[at + 1..]
        .iter()
        .copied()
        .take_while(|l| l.starts_with("      "))
        .collect();
    for label in ["requirement:", "evidence:", "hint:"] {
        assert!(
            block.iter().any(|l| l.trim_start().starts_with(label)),
            "no {label} under the failure:\n{text}"
        );
    }
    let last = lines.last().expect("output is not empty");
    assert!(
        last.starts_with("0 passed, 1 failed, 0 warned, 0 skipped  ("),
        "{last:?}"
    );
}

/// The process checks but `fds/*`: a skip glob removes the whole group,
/// and wins over the `--only fds` that selected it.
#[test]
fn skip_with_a_glob_leaves_out_the_whole_group() {
    let outcome = HarnessRun::run_cmd("skip-fds")
        .args(support::only_process_checks())
        .args(["--skip", "fds/*", "--format", "json"])
        .reference(&[])
        .run();
    outcome.assert_code(0);
    let report = outcome.report();
    let expected: Vec<&str> = ALL_IDS
        .iter()
        .copied()
        .filter(|id| !id.starts_with("fds/"))
        .collect();
    assert_eq!(report.ids(), expected, "{}", report.overview());
    assert!(
        report.checks.iter().all(|c| c.verdict == Verdict::Pass),
        "{}",
        report.overview()
    );
}

#[test]
fn an_only_that_matches_nothing_is_a_usage_error() {
    let outcome = HarnessRun::run_cmd("only-nothing")
        .args(["--only", "nothing-matches"])
        .reference(&[])
        .run();
    outcome
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(
            predicate::str::contains("no check matches")
                .and(predicate::str::contains("harness list")),
        );
}

#[rstest]
#[case::zero_jobs(&["run", "--jobs", "0"], "--jobs")]
#[case::port_zero(&["run", "--port", "0", "--", "./server"], "--port")]
#[case::unknown_format(&["run", "--format", "xml"], "xml")]
#[case::env_without_equals(&["run", "--env", "novalue"], "novalue")]
#[case::bad_duration(&["run", "--startup-timeout", "soon"], "soon")]
#[case::too_few_sleep_clients(&["run", "--sleep-clients", "1"], "--sleep-clients")]
#[case::missing_value(&["run", "--only"], "--only")]
#[case::invalid_glob(&["run", "--only", "process/[z"], "process/[z")]
#[case::unknown_subcommand(&["frobnicate"], "frobnicate")]
// A misspelt option must not become the server command (`--josb` run as a
// program); clap rejects it and suggests `--jobs`.
#[case::unknown_option(&["run", "--strict", "--josb", "2", "--", "./server"], "--jobs")]
fn bad_usage_exits_2_and_names_the_culprit(#[case] args: &[&str], #[case] culprit: &str) {
    let outcome = HarnessRun::bare(args.iter().copied()).run();
    outcome
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(culprit));
}

#[test]
fn junit_report_has_a_testcase_per_check_and_a_failure_for_the_faulty_one() {
    let dir = TempDir::new("junit");
    let path = dir.join("junit.xml");
    let outcome = HarnessRun::run_cmd("junit")
        .args(support::only_process_checks())
        .args(["--format", "json", "--junit"])
        .args([&path])
        .reference(&["keep-listener"])
        .run();
    outcome.assert_code(1);
    let json = outcome.report();
    let xml = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("--junit {} was not written: {e}", path.display()));
    assert_eq!(xml.matches("<testcase").count(), ALL_IDS.len(), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert_eq!(xml.matches("<error").count(), 0, "{xml}");

    let report = quick_junit::Report::deserialize_from_str(&xml)
        .unwrap_or_else(|e| panic!("not valid JUnit XML: {e}\n{xml}"));
    let cases: Vec<&quick_junit::TestCase> = report
        .test_suites
        .iter()
        .flat_map(|suite| &suite.test_cases)
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ALL_IDS, "{xml}");
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                quick_junit::TestCaseStatus::NonSuccess {
                    kind: quick_junit::NonSuccessKind::Failure,
                    ..
                }
            )
        })
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["fds/child-listener"], "{xml}");
    // The XML and the JSON tell the same story.
    assert_eq!(json.verdict("fds/child-listener"), Verdict::Fail);
    assert_eq!(json.totals.failed, 1, "{}", json.overview());
}

/// A deterministic warning: `concurrency/burst` warns when all 64
/// connections are answered but not as `GET /` was at idle, and a server
/// that answers 200 alone and 503 in company does exactly that, every time. (A partly serial
/// server would make `concurrency/sleep-latency` warn, but how serial it
/// looks depends on scheduling; shedding load with 503 does not.)
#[rstest]
#[case::warn_is_not_a_failure(false, Verdict::Warn, 0)]
#[case::strict_turns_warn_into_fail(true, Verdict::Fail, 1)]
fn strict_turns_a_warning_into_a_failure(
    #[case] strict: bool,
    #[case] verdict: Verdict,
    #[case] code: i32,
) {
    support::require_python3();
    let mut run =
        HarnessRun::run_cmd("strict").args(["--only", "concurrency/burst", "--format", "json"]);
    if strict {
        run = run.args(["--strict"]);
    }
    let outcome = run.server(py_503_server(&["{host}", "{port}"])).run();
    let report = outcome.report();
    let burst = report.check("concurrency/burst");
    assert_eq!(
        burst.verdict,
        verdict,
        "{}",
        report.describe("concurrency/burst")
    );
    assert!(
        burst.summary.contains("as at idle"),
        "{}",
        report.describe("concurrency/burst")
    );
    assert_eq!(report.strict, strict);
    assert_eq!(
        burst.summary.ends_with("(strict)"),
        strict,
        "{}",
        burst.summary
    );
    outcome.assert_code(code);
}

/// `--strict` decides the verdict before it is streamed: the line printed
/// while the run goes says FAIL, as the summary counts it, never WARN.
#[test]
fn strict_verdicts_are_streamed_as_failures() {
    support::require_python3();
    let outcome = HarnessRun::run_cmd("strict-human")
        .args(["--only", "concurrency/burst", "--strict"])
        .server(py_503_server(&["{host}", "{port}"]))
        .run();
    let stdout = outcome.stdout();
    let line = stdout
        .lines()
        .find(|line| line.contains("concurrency/burst"))
        .unwrap_or_else(|| panic!("no line for concurrency/burst:\n{stdout}"));
    assert!(line.starts_with("FAIL "), "streamed as: {line}\n{stdout}");
    assert!(
        !stdout.lines().any(|line| line.starts_with("WARN ")),
        "{stdout}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.contains("1 failed, 0 warned"), "{summary}");
    outcome.assert_code(1);
}

/// A server that never listens, exits at once, or cannot be executed: exit
/// 2, with the command, how it ended and its last stderr lines on stderr;
/// JSON still reports `lifecycle/startup` as failed.
#[rstest]
#[case::never_listens(
    &["--startup-timeout", "1s", "--grace", "500ms"],
    &["sleep", "30"],
    &["sleep 30", "did not listen on"],
)]
#[case::exits_at_once(
    &[],
    &["sh", "-c", "echo boom >&2; exit 3"],
    &["sh -c", "exit code 3", "boom"],
)]
#[case::cannot_be_executed(
    &[],
    &["/nonexistent/server-binary"],
    &["/nonexistent/server-binary", "could not start"],
)]
fn a_server_that_does_not_start_exits_2_and_says_why(
    #[case] options: &[&str],
    #[case] server: &[&str],
    #[case] expected: &[&str],
    #[values(false, true)] json: bool,
) {
    let mut run = HarnessRun::run_cmd("no-start").args(options.iter().copied());
    if json {
        run = run.args(["--format", "json"]);
    }
    let outcome = run.server(server.iter().copied()).run();
    let mut assert = outcome.assert().code(2);
    for text in expected {
        assert = assert.stderr(predicate::str::contains(*text));
    }
    if json {
        let report = outcome.report();
        assert_eq!(report.ids(), ["lifecycle/startup"], "{}", report.overview());
        assert_eq!(report.verdict("lifecycle/startup"), Verdict::Fail);
        assert_eq!(report.target.model, "unknown");
        let evidence = report.check("lifecycle/startup").evidence.join("\n");
        for text in expected {
            assert!(
                evidence.contains(text),
                "{text:?} not in evidence:\n{evidence}"
            );
        }
    } else {
        let _ = assert.stdout(predicate::str::contains("FAIL  lifecycle/startup"));
    }
}

#[test]
fn a_missing_working_directory_is_a_usage_error() {
    let outcome = HarnessRun::run_cmd("cwd-missing")
        .args(["--cwd", "/nonexistent", "--only", "lifecycle/startup"])
        .reference(&[])
        .run();
    outcome
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("/nonexistent"));
}

/// `--cwd` is where the server runs: a script path relative to it works.
#[test]
fn the_server_runs_in_the_working_directory_given() {
    support::require_python3();
    let outcome = HarnessRun::run_cmd("cwd")
        .args(["--only", "lifecycle/startup", "--format", "json", "--cwd"])
        .args([repo_root().join("apps")])
        .server(["python3", "conformance_app.py"])
        .run();
    outcome.assert_code(0);
    assert_eq!(outcome.report().verdict("lifecycle/startup"), Verdict::Pass);
}

/// The server takes its address from `{host}`/`{port}` or `{addr}` in its
/// arguments; HOST and PORT in its environment are overridden with garbage
/// (`--env` applies after them) to prove the arguments carried it. The burst
/// check's warning (200 alone, 503 in company) proves the harness talked HTTP to
/// that very server.
#[rstest]
#[case::host_and_port(&["{host}", "{port}"])]
#[case::addr(&["{addr}"])]
fn placeholders_in_the_server_arguments_are_substituted(#[case] address_args: &[&str]) {
    support::require_python3();
    let outcome = HarnessRun::run_cmd("placeholders")
        .args([
            "--env",
            "HOST=not-a-host",
            "--env",
            "PORT=not-a-port",
            "--only",
            "concurrency/burst",
            "--format",
            "json",
        ])
        .server(py_503_server(address_args))
        .run();
    outcome.assert_code(0);
    let report = outcome.report();
    assert_eq!(
        report.verdict("concurrency/burst"),
        Verdict::Warn,
        "{}",
        report.describe("concurrency/burst")
    );
    // Reports show the command as given, placeholders unsubstituted.
    for placeholder in address_args {
        assert!(
            report.target.command.contains(placeholder),
            "{}",
            report.target.command
        );
    }
}

#[test]
fn a_fixed_port_is_used_for_every_server() {
    let port = support::free_port();
    let outcome = HarnessRun::run_cmd("fixed-port")
        .args([
            "--port",
            &port.to_string(),
            "--only",
            "lifecycle",
            "--format",
            "json",
        ])
        .reference(&[])
        .run();
    outcome.assert_code(0);
    let report = outcome.report();
    let reuse = report.check("lifecycle/reuseaddr");
    assert_eq!(
        reuse.figures.get("port").and_then(|p| p.as_u64()),
        Some(u64::from(port)),
        "{}",
        report.describe("lifecycle/reuseaddr")
    );
    assert!(
        report.checks.iter().all(|c| c.verdict == Verdict::Pass),
        "{}",
        report.overview()
    );
}

/// Runs the harness with its stdout on a pseudo-terminal and returns the
/// exit code and what it wrote there.
fn run_on_a_terminal(run: HarnessRun) -> (i32, Vec<u8>) {
    let _slot = support::run_slot();
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the two out-pointers,
    // which point at live locals; name, termios and window size may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created by openpty and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };

    let mut command = run.command();
    command.stdout(Stdio::from(slave));
    let mut child = support::GroupChild::spawn(&mut command, false);
    // The command holds our copy of the slave: without dropping it, the
    // master would never see the end of the output.
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut master = File::from(master);
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        // Linux reports EIO once every slave descriptor is closed.
        while let Ok(n @ 1..) = master.read(&mut buf) {
            bytes.extend_from_slice(&buf[..n]);
        }
        bytes
    });
    let status = child
        .wait_timeout(support::RUN_TIMEOUT)
        .expect("the harness finished");
    let _ = child.output();
    assert!(
        support::poll_until(Duration::from_secs(10), || reader.is_finished()),
        "the terminal was still open 10 s after the harness exited"
    );
    let bytes = reader.join().expect("the reader thread does not panic");
    support::assert_nothing_left(run.marker());
    (status.code().expect("the harness exited normally"), bytes)
}

/// Colour only on a terminal, and never when NO_COLOR is set to a
/// non-empty value (<https://no-color.org>).
#[rstest]
#[case::piped(false, None, false)]
#[case::terminal(true, None, true)]
#[case::terminal_with_no_color(true, Some("1"), false)]
#[case::terminal_with_empty_no_color(true, Some(""), true)]
fn colour_only_on_a_terminal_without_no_color(
    #[case] terminal: bool,
    #[case] no_color: Option<&str>,
    #[case] coloured: bool,
) {
    let mut run = HarnessRun::run_cmd("colour")
        .args(["--only", "lifecycle/startup"])
        .server([HARNESS, REFERENCE_SERVER]);
    if let Some(value) = no_color {
        run = run.env("NO_COLOR", value);
    }
    let (code, bytes) = if terminal {
        run_on_a_terminal(run)
    } else {
        let outcome = run.run();
        (outcome.code(), outcome.output.stdout.clone())
    };
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("lifecycle/startup"), "{text}");
    assert_eq!(
        bytes.contains(&0x1b),
        coloured,
        "escape bytes present should be {coloured}:\n{text:?}"
    );
}

/// A case any HTTP server passes: `GET /` answered.
const PLAIN_GET_CASE: &str = r#"
description = "a plain GET"
requirement = "RFC 9110 §9.3.1: the GET method requests transfer of a current selected representation"
send = ['GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n']
[[expect.pass]]
status = "2xx"
"#;

/// The `harness: warning: ` lines of a run's stderr.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("harness: warning: "))
        .collect()
}

/// A `--cases` folder whose subfolder holds two links to `..`, and a FIFO
/// named like a case: `list` and `run` load each case once, end, never open
/// the FIFO (that would block forever), and say once each what they skipped.
#[test]
fn links_back_up_a_cases_folder_and_a_fifo_load_each_case_once_with_warnings() {
    let dir = TempDir::new("cases-loops");
    dir.write("a.toml", PLAIN_GET_CASE);
    dir.write("sub/b.toml", PLAIN_GET_CASE);
    std::os::unix::fs::symlink("..", dir.0.join("sub/up1")).unwrap();
    std::os::unix::fs::symlink("..", dir.0.join("sub/up2")).unwrap();
    let fifo = dir.fifo("x.toml");
    let expected_warnings = [
        format!(
            "{} leads to the folder {}, already loaded; skipped",
            dir.0.join("sub/up1").display(),
            dir.0.display()
        ),
        format!(
            "{} leads to the folder {}, already loaded; skipped",
            dir.0.join("sub/up2").display(),
            dir.0.display()
        ),
        format!(
            "{} is a FIFO, not a regular file; skipped without opening it",
            fifo.display()
        ),
    ];

    let listed = HarnessRun::bare(["list", "--format", "json", "--cases"])
        .args([&dir.0])
        .run();
    listed.assert_code(0);
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(&listed.output.stdout).expect("list --format json is JSON");
    let mine: Vec<&str> = items
        .iter()
        .filter_map(|item| item["id"].as_str())
        .filter(|id| !id.starts_with("http/") && !id.starts_with("gateway/"))
        .filter(|id| !ALL_IDS.contains(id))
        .collect();
    assert_eq!(mine, ["a", "sub/b"], "{}", listed.context());
    assert_eq!(
        warnings(&listed.stderr()),
        expected_warnings,
        "{}",
        listed.context()
    );

    let ran = HarnessRun::run_cmd("cases-loops")
        .args([
            "--only", "a", "--only", "sub", "--format", "json", "--cases",
        ])
        .args([&dir.0])
        .reference(&[])
        .run();
    ran.assert_code(0);
    assert_eq!(ran.report().case_ids(), ["a", "sub/b"], "{}", ran.context());
    assert_eq!(
        warnings(&ran.stderr()),
        expected_warnings,
        "{}",
        ran.context()
    );
}

/// `--baseline` reads only a regular file: a FIFO would block the harness
/// before the run, `/dev/zero` would never end, a folder is no list. Each is
/// a usage error before anything runs.
#[rstest]
#[case::fifo("fifo", "a FIFO, not a regular file")]
#[case::endless_device("/dev/zero", "a character device, not a regular file")]
#[case::folder("folder", "a folder, not a regular file")]
fn a_baseline_that_is_not_a_regular_file_is_a_usage_error_before_the_run(
    #[case] what: &str,
    #[case] reason: &str,
) {
    let dir = TempDir::new(&format!("baseline-{}", what.replace('/', "-")));
    let path = match what {
        "fifo" => dir.fifo("baseline.json"),
        "folder" => dir.0.clone(),
        device => std::path::PathBuf::from(device),
    };
    let outcome = HarnessRun::run_cmd("baseline-not-regular")
        .args(["--only", "lifecycle/startup", "--baseline"])
        .args([&path])
        .reference(&[])
        .run();
    outcome
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "harness: baseline {}: {reason}",
            path.display()
        )));
}

/// The reports are written when the run is over; a path they cannot be
/// written to is a usage error before the run (no check line on stdout),
/// and nothing is created.
#[rstest]
#[case::junit_in_a_missing_root_folder(
    "--junit",
    "/nonexistent-dir/x.xml",
    "the folder /nonexistent-dir does not exist"
)]
#[case::junit_in_a_missing_folder(
    "--junit",
    "missing/x.xml",
    "the folder {dir}/missing does not exist"
)]
#[case::junit_at_a_folder("--junit", "existing", "{dir}/existing is a folder, not a file")]
#[case::baseline_in_a_missing_folder(
    "--write-baseline",
    "missing/b.json",
    "the folder {dir}/missing does not exist"
)]
#[case::baseline_under_a_file(
    "--write-baseline",
    "plain/b.json",
    "{dir}/plain is a regular file, not a folder"
)]
fn an_output_path_that_cannot_be_written_is_a_usage_error_before_the_run(
    #[case] flag: &str,
    #[case] relative: &str,
    #[case] reason: &str,
) {
    // One folder per case: rstest cases run in parallel.
    let name: String = format!("output{flag}-{relative}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = TempDir::new(&name);
    std::fs::create_dir(dir.0.join("existing")).unwrap();
    dir.write("plain", "");
    // An absolute `relative` replaces the folder (Path::join).
    let path = dir.0.join(relative);
    let outcome = HarnessRun::run_cmd("output-unwritable")
        .args(["--only", "lifecycle/startup", flag])
        .args([&path])
        .reference(&[])
        .run();
    let reason = reason.replace("{dir}", &dir.0.display().to_string());
    outcome
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "harness: {flag} {}: {reason}",
            path.display()
        )));
    assert!(!dir.0.join("missing").exists(), "nothing is created");
}

/// `fuzz --save` into a folder that cannot be made (a path below a regular
/// file) is a usage error before any fuzzing, naming the file in the way.
#[test]
fn fuzz_save_below_a_regular_file_is_a_usage_error_before_fuzzing() {
    let dir = TempDir::new("fuzz-save");
    let file = dir.write("plain", "");
    let save = file.join("regressions");
    let outcome = HarnessRun::fuzz_cmd("fuzz-save-unwritable")
        .args(["--cases", "10", "--time", "2s", "--save"])
        .args([&save])
        .run();
    outcome
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "harness: --save {}: {} is a regular file, not a folder",
            save.display(),
            file.display()
        )));
}
