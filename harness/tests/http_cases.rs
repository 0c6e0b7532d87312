//! The HTTP case files through the real harness binary: the reference server
//! passes every MUST case, a server that trusts one `recv(1024)` fails the
//! split deliveries, and a server that dies on a malformed request line is
//! reported as "server exited".

mod support;

use std::ffi::OsString;

use serde_json::Value;
use support::{HarnessRun, Outcome, TempDir, HARNESS, REFERENCE_SERVER};

/// Runs `harness run --format json ARGS` through `support::HarnessRun` (one
/// run at a time, a timeout, a leftover scan) and returns (exit code,
/// checks by id).
fn run_json<I, S>(label: &str, args: I) -> (i32, Vec<Value>)
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let outcome = HarnessRun::run_cmd(label)
        .args(["--format", "json"])
        .args(args)
        .run();
    (outcome.code(), checks_of(&outcome))
}

/// The checks of a `--format json` run's document.
fn checks_of(outcome: &Outcome) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&outcome.output.stdout)
        .unwrap_or_else(|e| panic!("harness did not print JSON ({e})\n{}", outcome.context()));
    doc["checks"].as_array().cloned().unwrap_or_default()
}

fn verdict<'a>(checks: &'a [Value], id: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["verdict"].as_str())
        .unwrap_or("missing")
}

/// A folder of cases made for one test, removed when dropped.
fn case_dir(name: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new(name);
    for (path, text) in files {
        dir.write(path, text);
    }
    dir
}

/// A valid request of more than 1 KiB, which one `recv(1024)` cannot hold.
const LARGE_ECHO: &str = r#"
description = "POST /echo with a 1500-byte body"
requirement = "RFC 9112 §6.2: the message body length is the Content-Length"
send = ['POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1500\r\n\r\n', { repeat = 'x', times = 1500 }]
[[expect.pass]]
status = 200
[expect.pass.echo]
CONTENT_LENGTH = "1500"
"#;

/// A small valid request: fits in one read whole, not when split.
const SMALL_ECHO: &str = r#"
description = "POST /echo with a short body"
requirement = "RFC 9112 §6.2"
send = ['POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello']
[[expect.pass]]
status = 200
[expect.pass.echo]
body = 'hello'
"#;

const MALFORMED_LINE: &str = r#"
description = "a request line with only a method"
requirement = "RFC 9112 §3: a server that receives a malformed request-line SHOULD respond with 400"
send = ['GET\r\nHost: example.com\r\n\r\n']
[[expect.pass]]
status = 400
"#;

#[test]
fn the_reference_server_passes_every_must_case() {
    let (code, checks) = run_json("reference-cases", ["--only", "http", "--only", "gateway"]);
    assert!(checks.len() >= 120, "only {} cases ran", checks.len());
    let not_passing: Vec<String> = checks
        .iter()
        .filter(|c| c["verdict"] != "pass" && c["verdict"] != "skip")
        .map(|c| {
            format!(
                "{} {}: {} {}",
                c["id"], c["verdict"], c["summary"], c["evidence"]
            )
        })
        .collect();
    assert!(
        not_passing.is_empty(),
        "cases not passing against the reference server:\n{}",
        not_passing.join("\n")
    );
    assert_eq!(code, 0);
}

#[test]
fn a_server_that_trusts_one_read_fails_split_delivery() {
    let dir = case_dir(
        "single-read",
        &[
            ("demo/large-echo.toml", LARGE_ECHO),
            ("demo/small-echo.toml", SMALL_ECHO),
        ],
    );
    let cases = |run: HarnessRun| run.args(["--only", "demo", "--cases"]).args([dir.path()]);
    let outcome = cases(HarnessRun::run_cmd("single-read").args(["--format", "json"]))
        .reference(&["single-read"])
        .run();
    let (code, checks) = (outcome.code(), checks_of(&outcome));
    assert_eq!(code, 1);
    for id in ["demo/large-echo", "demo/small-echo"] {
        let case = checks.iter().find(|c| c["id"] == id).expect("case ran");
        assert_eq!(case["verdict"], "fail", "{case}");
        let evidence = case["evidence"].to_string();
        // The report names the delivery mode that failed.
        assert!(
            evidence.contains("bytewise delivery") && evidence.contains("split delivery"),
            "{evidence}"
        );
    }
    // One read takes a small request whole: only the split modes fail.
    let small = checks
        .iter()
        .find(|c| c["id"] == "demo/small-echo")
        .expect("case ran");
    assert!(
        !small["evidence"].to_string().contains("whole delivery"),
        "{small}"
    );

    // The clean server passes the same cases in every mode.
    let outcome = cases(HarnessRun::run_cmd("single-read-clean").args(["--format", "json"]))
        .server([HARNESS, REFERENCE_SERVER])
        .run();
    let (code, checks) = (outcome.code(), checks_of(&outcome));
    assert_eq!(code, 0, "{checks:?}");
    assert_eq!(verdict(&checks, "demo/large-echo"), "pass");
}

#[test]
fn a_server_killed_by_a_malformed_request_line_is_reported_as_exited() {
    let dir = case_dir(
        "naive",
        &[
            ("demo/malformed-line.toml", MALFORMED_LINE),
            ("demo/small-echo.toml", SMALL_ECHO),
        ],
    );
    let mut args: Vec<OsString> = vec!["--only".into(), "demo".into(), "--cases".into()];
    args.push(dir.path().into());
    let outcome = HarnessRun::run_cmd("naive")
        .args(["--format", "json"])
        .args(args)
        .reference(&["iterative", "naive-parse"])
        .run();
    let (code, checks) = (outcome.code(), checks_of(&outcome));
    assert_eq!(code, 1);
    let case = checks
        .iter()
        .find(|c| c["id"] == "demo/malformed-line")
        .expect("case ran");
    assert_eq!(case["verdict"], "fail");
    assert!(
        case["summary"]
            .as_str()
            .unwrap_or("")
            .contains("server exited"),
        "{case}"
    );
    let evidence = case["evidence"].to_string();
    assert!(
        evidence.contains("panicked"),
        "the stderr tail shows the panic: {evidence}"
    );
    // The server is restarted: the next case still runs and passes.
    assert_eq!(verdict(&checks, "demo/small-echo"), "pass", "{checks:?}");
}

#[test]
fn a_bad_case_file_is_a_usage_error_naming_the_file() {
    let dir = case_dir(
        "bad",
        &[(
            "demo/broken.toml",
            "description = 'd'\nrequirement = 'r'\nsend = ['\\q']\n[[expect.pass]]\nstatus = 200\n",
        )],
    );
    let output = HarnessRun::run_cmd("bad-case")
        .args([OsString::from("--cases"), dir.path().into()])
        .run();
    output.assert_code(2);
    let stderr = output.stderr();
    assert!(
        stderr.contains("broken.toml") && stderr.contains("unknown escape"),
        "{stderr}"
    );
}

#[test]
fn list_shows_every_case() {
    let output = HarnessRun::bare(["list"]).run();
    output.assert_code(0);
    let stdout = output.stdout();
    let cases = stdout
        .lines()
        .filter(|l| l.starts_with("http/") || l.starts_with("gateway/"))
        .count();
    assert!(cases >= 120, "{cases} cases listed");
}
