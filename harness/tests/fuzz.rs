//! `harness fuzz` end to end: a bounded run against the reference server
//! passes; against a server that dies on a malformed request line it finds
//! the crash and saves a case that `harness run --cases` replays; against a
//! server that trusts one read it finds a mismatch.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// One harness run at a time: the runs share 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn harness() -> &'static str {
    env!("CARGO_BIN_EXE_harness")
}

/// A temporary folder for saved regressions, removed on drop.
struct SaveDir(PathBuf);

impl SaveDir {
    fn new(name: &str) -> SaveDir {
        let dir = std::env::temp_dir().join(format!("harness-fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        SaveDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }

    fn saved(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.0)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for SaveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bounded fuzz run: at most `cases` inputs and `time`.
fn fuzz(save: &SaveDir, seed: &str, cases: &str, time: &str, server: &[&str]) -> Output {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut command = Command::new(harness());
    command.args([
        "fuzz",
        "--cases",
        cases,
        "--time",
        time,
        "--seed",
        seed,
        "--save",
        save.path(),
    ]);
    if !server.is_empty() {
        command.arg("--").args(server);
    }
    command.output().expect("run harness fuzz")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_bounded_run_against_the_reference_server_passes() {
    let save = SaveDir::new("clean");
    let output = fuzz(&save, "11", "1000", "4s", &[]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(report.contains("no failure"), "{report}");
    assert!(
        save.saved().is_empty(),
        "nothing is saved when nothing fails"
    );
}

#[test]
fn a_crash_on_a_malformed_request_line_is_found_saved_and_replayed() {
    let save = SaveDir::new("naive");
    let server = [
        harness(),
        "__reference-server",
        "--fault",
        "iterative",
        "--fault",
        "naive-parse",
    ];
    let output = fuzz(&save, "3", "3000", "30s", &server);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("server exited"), "{report}");
    assert!(
        report.contains("seed:    3"),
        "the seed is printed: {report}"
    );
    let saved = save.saved();
    assert_eq!(saved.len(), 1, "{report}");

    // The saved case reproduces the crash under `harness run --cases`.
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let replay = Command::new(harness())
        .args([
            "run",
            "--format",
            "json",
            "--only",
            "fuzz-*",
            "--cases",
            save.path(),
            "--",
        ])
        .args(server)
        .output()
        .expect("run harness");
    let json: serde_json::Value = serde_json::from_slice(&replay.stdout).expect("JSON report");
    let case = &json["checks"][0];
    assert_eq!(case["verdict"], "fail", "{case}");
    assert!(
        case["summary"]
            .as_str()
            .unwrap_or("")
            .contains("server exited"),
        "{case}"
    );
    // The clean server passes the same case.
    let clean = Command::new(harness())
        .args([
            "run",
            "--format",
            "json",
            "--only",
            "fuzz-*",
            "--cases",
            save.path(),
        ])
        .output()
        .expect("run harness");
    let json: serde_json::Value = serde_json::from_slice(&clean.stdout).expect("JSON report");
    assert_eq!(
        json["checks"][0]["verdict"], "pass",
        "{}",
        json["checks"][0]
    );
}

#[test]
fn a_server_that_trusts_one_read_is_caught_with_a_mismatch() {
    let save = SaveDir::new("single-read");
    let server = [harness(), "__reference-server", "--fault", "single-read"];
    let output = fuzz(&save, "3", "3000", "30s", &server);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL"), "{report}");
    assert_eq!(save.saved().len(), 1, "{report}");
}

#[test]
fn bad_fuzz_flags_are_usage_errors() {
    for args in [
        &["fuzz", "--cases", "0"][..],
        &["fuzz", "--time", "soon"],
        &["fuzz", "--seed", "-1"],
    ] {
        let output = Command::new(harness())
            .args(args)
            .output()
            .expect("run harness");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}
