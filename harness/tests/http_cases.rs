//! The HTTP case files through the real harness binary: the reference server
//! passes every MUST case, a server that trusts one `recv(1024)` fails the
//! split deliveries, and a server that dies on a malformed request line is
//! reported as "server exited".

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

/// One harness run at a time: the runs measure timing on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn harness() -> &'static str {
    env!("CARGO_BIN_EXE_harness")
}

/// Runs `harness run --format json ARGS` and returns (exit code, checks by id).
fn run_json(args: &[&str]) -> (i32, Vec<Value>) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let output = Command::new(harness())
        .arg("run")
        .arg("--format")
        .arg("json")
        .args(args)
        .output()
        .expect("run harness");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "harness did not print JSON ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let checks = doc["checks"].as_array().cloned().unwrap_or_default();
    (output.status.code().unwrap_or(-1), checks)
}

fn verdict<'a>(checks: &'a [Value], id: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["verdict"].as_str())
        .unwrap_or("missing")
}

/// A folder of cases made for one test, removed when dropped.
struct CaseDir(PathBuf);

impl CaseDir {
    fn new(name: &str, files: &[(&str, &str)]) -> CaseDir {
        let root =
            std::env::temp_dir().join(format!("harness-cases-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(file, text).expect("write case");
        }
        CaseDir(root)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for CaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    let (code, checks) = run_json(&["--only", "http", "--only", "gateway"]);
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
    let dir = CaseDir::new(
        "single-read",
        &[
            ("demo/large-echo.toml", LARGE_ECHO),
            ("demo/small-echo.toml", SMALL_ECHO),
        ],
    );
    let server = [harness(), "__reference-server", "--fault", "single-read"];
    let mut args = vec!["--only", "demo", "--cases", dir.path(), "--"];
    args.extend(server);
    let (code, checks) = run_json(&args);
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
    let args = vec![
        "--only",
        "demo",
        "--cases",
        dir.path(),
        "--",
        harness(),
        "__reference-server",
    ];
    let (code, checks) = run_json(&args);
    assert_eq!(code, 0, "{checks:?}");
    assert_eq!(verdict(&checks, "demo/large-echo"), "pass");
}

#[test]
fn a_server_killed_by_a_malformed_request_line_is_reported_as_exited() {
    let dir = CaseDir::new(
        "naive",
        &[
            ("demo/malformed-line.toml", MALFORMED_LINE),
            ("demo/small-echo.toml", SMALL_ECHO),
        ],
    );
    let args = [
        "--only",
        "demo",
        "--cases",
        dir.path(),
        "--",
        harness(),
        "__reference-server",
        "--fault",
        "iterative",
        "--fault",
        "naive-parse",
    ];
    let (code, checks) = run_json(&args);
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
    let dir = CaseDir::new(
        "bad",
        &[(
            "demo/broken.toml",
            "description = 'd'\nrequirement = 'r'\nsend = ['\\q']\n[[expect.pass]]\nstatus = 200\n",
        )],
    );
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let output = Command::new(harness())
        .args(["run", "--cases", dir.path()])
        .output()
        .expect("run harness");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.toml") && stderr.contains("unknown escape"),
        "{stderr}"
    );
}

#[test]
fn list_shows_every_case() {
    let output = Command::new(harness())
        .arg("list")
        .output()
        .expect("run harness");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let cases = stdout
        .lines()
        .filter(|l| l.starts_with("http/") || l.starts_with("gateway/"))
        .count();
    assert!(cases >= 120, "{cases} cases listed");
}
