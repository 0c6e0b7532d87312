//! `harness fuzz` end to end: a bounded run against the reference server
//! passes; against a server that dies on a malformed request line it finds
//! the crash and saves a case that `harness run --cases` replays; against a
//! server that trusts one read it finds a mismatch. The two campaigns that
//! hunt a defect (up to 30 s each) are soak tests: they run with
//! `HARNESS_SOAK=1`, as `.ci/run` sets, and say they were skipped otherwise.

mod support;

use std::ffi::OsString;
use std::path::PathBuf;

use support::{HarnessRun, Outcome, TempDir};

/// Where a fuzz run saves its regressions: a folder it creates itself,
/// inside a temporary folder removed on drop.
struct SaveDir(TempDir);

impl SaveDir {
    fn new(name: &str) -> SaveDir {
        SaveDir(TempDir::new(&format!("fuzz-{name}")))
    }

    fn path(&self) -> PathBuf {
        self.0.join("saved")
    }

    fn saved(&self) -> Vec<PathBuf> {
        self.0.entries("saved")
    }
}

/// A bounded fuzz run (at most `cases` inputs and `time`) through
/// `support::HarnessRun`: one at a time, a timeout, a leftover scan.
/// `faults` names the reference server's faults, passed as the server
/// command; `None` fuzzes the built-in server.
fn fuzz(save: &SaveDir, seed: &str, cases: &str, time: &str, faults: Option<&[&str]>) -> Outcome {
    let run = HarnessRun::fuzz_cmd(&format!("fuzz-{seed}"))
        .args(["--cases", cases, "--time", time, "--seed", seed, "--save"])
        .args([save.path()]);
    match faults {
        Some(faults) => run.reference(faults),
        None => run,
    }
    .run()
}

fn text(outcome: &Outcome) -> String {
    format!("{}{}", outcome.stdout(), outcome.stderr())
}

/// `harness run --format json --only fuzz-* --cases SAVED` and the first check.
fn replay(save: &SaveDir, faults: Option<&[&str]>) -> serde_json::Value {
    let run = HarnessRun::run_cmd("fuzz-replay")
        .args(["--format", "json", "--only", "fuzz-*", "--cases"])
        .args([OsString::from(save.path())]);
    let outcome = match faults {
        Some(faults) => run.reference(faults),
        None => run,
    }
    .run();
    let json: serde_json::Value = serde_json::from_slice(&outcome.output.stdout)
        .unwrap_or_else(|e| panic!("not the JSON report ({e})\n{}", outcome.context()));
    json["checks"][0].clone()
}

#[test]
fn a_bounded_run_against_the_reference_server_passes() {
    let save = SaveDir::new("clean");
    let output = fuzz(&save, "11", "1000", "4s", None);
    let report = text(&output);
    assert_eq!(output.code(), 0, "{report}");
    assert!(report.contains("no failure"), "{report}");
    assert!(
        save.saved().is_empty(),
        "nothing is saved when nothing fails"
    );
}

#[test]
fn a_crash_on_a_malformed_request_line_is_found_saved_and_replayed_soak() {
    // A campaign of up to 3,000 inputs and 30 s until the defect is found: a soak.
    if !support::soak("a_crash_on_a_malformed_request_line_is_found_saved_and_replayed_soak") {
        return;
    }
    let save = SaveDir::new("naive");
    let server: &[&str] = &["iterative", "naive-parse"];
    let output = fuzz(&save, "3", "3000", "30s", Some(server));
    let report = text(&output);
    assert_eq!(output.code(), 1, "{report}");
    assert!(report.contains("server exited"), "{report}");
    assert!(
        report.contains("seed:    3"),
        "the seed is printed: {report}"
    );
    let saved = save.saved();
    assert_eq!(saved.len(), 1, "{report}");

    // The saved case reproduces the crash under `harness run --cases`.
    let case = replay(&save, Some(server));
    assert_eq!(case["verdict"], "fail", "{case}");
    assert!(
        case["summary"]
            .as_str()
            .unwrap_or("")
            .contains("server exited"),
        "{case}"
    );
    // The clean server (the built-in one) passes the same case.
    let clean = replay(&save, None);
    assert_eq!(clean["verdict"], "pass", "{clean}");
}

#[test]
fn a_server_that_trusts_one_read_is_caught_with_a_mismatch_soak() {
    // A campaign of up to 3,000 inputs and 30 s until the defect is found: a soak.
    if !support::soak("a_server_that_trusts_one_read_is_caught_with_a_mismatch_soak") {
        return;
    }
    let save = SaveDir::new("single-read");
    let output = fuzz(&save, "3", "3000", "30s", Some(&["single-read"]));
    let report = text(&output);
    assert_eq!(output.code(), 1, "{report}");
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
        let output = HarnessRun::bare(args.iter().copied()).run();
        assert_eq!(output.code(), 2, "{args:?}: {}", output.context());
    }
}
