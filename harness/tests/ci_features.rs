//! Baselines and sharding through the real binary: a baseline of known
//! failures passes exactly when those fail; shards split the checks with each
//! id in exactly one shard.
//!
//! Every run goes through `support::HarnessRun`: one at a time, with a
//! timeout, and a scan for leftover servers after it.

mod support;

use std::collections::BTreeSet;
use std::ffi::OsString;

use support::{HarnessRun, Outcome, TempDir};

/// `harness run --env MARKER ARGS...`, run to completion.
fn run<I, S>(label: &str, args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    HarnessRun::run_cmd(label).args(args).run()
}

/// `--only process` against the reference server with the `no-reap` fault.
fn no_reap(run: HarnessRun) -> HarnessRun {
    run.args(["--only", "process"]).reference(&["no-reap"])
}

#[test]
fn a_baseline_passes_exactly_when_its_checks_fail() {
    let dir = TempDir::new("baseline");
    let baseline = dir.join("baseline.json");

    // Record the failures of a server with a known defect.
    let recorded = no_reap(
        HarnessRun::run_cmd("baseline-record")
            .args([OsString::from("--write-baseline"), baseline.clone().into()]),
    )
    .run();
    recorded.assert_code(1);
    let ids: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(ids, ["process/zombies"]);

    // The same server against its baseline: exactly those fail, so it passes.
    let with_baseline = |label: &str| {
        HarnessRun::run_cmd(label).args([OsString::from("--baseline"), baseline.clone().into()])
    };
    let matched = no_reap(with_baseline("baseline-matched")).run();
    matched.assert_code(0);
    assert!(
        matched.stderr().contains("the run matches the baseline"),
        "{}",
        matched.context()
    );

    // The clean server: the known failure newly passes, which is named and fails the run.
    let fixed = with_baseline("baseline-fixed")
        .args(["--only", "process"])
        .run();
    fixed.assert_code(1);
    assert!(
        fixed
            .stderr()
            .contains("newly passing (remove them from the baseline): process/zombies"),
        "{}",
        fixed.context()
    );

    // A new defect: newly failing, named, and the run fails.
    std::fs::write(&baseline, "[]").unwrap();
    let regressed = no_reap(with_baseline("baseline-regressed")).run();
    regressed.assert_code(1);
    assert!(
        regressed
            .stderr()
            .contains("newly failing: process/zombies"),
        "{}",
        regressed.context()
    );
}

/// A CI matrix that combines `--shard` with `--only`: the shards that hold
/// none of the selected checks run nothing and pass, saying so; the one
/// that holds it runs it.
#[test]
fn an_empty_shard_runs_nothing_and_passes() {
    let mut ran = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let output = run(
            "empty-shard",
            ["--shard", &shard, "--only", "lifecycle/startup"],
        );
        output.assert_code(0);
        if output.stderr().contains("nothing to run") {
            assert!(
                output.output.stdout.is_empty(),
                "{shard}: {}",
                output.context()
            );
        } else {
            ran += 1;
        }
    }
    assert_eq!(ran, 1, "exactly one shard holds the check");
}

#[test]
fn a_bad_baseline_file_is_a_usage_error() {
    let dir = TempDir::new("bad-baseline");
    let baseline = dir.write("baseline.json", "{\"not\": \"a list\"}");
    let output = HarnessRun::run_cmd("bad-baseline")
        .args([OsString::from("--baseline"), baseline.into()])
        .args(["--only", "process"])
        .run();
    output.assert_code(2);
    assert!(
        output.stderr().contains("JSON list"),
        "{}",
        output.context()
    );
    let missing = run(
        "missing-baseline",
        ["--baseline", "/nonexistent/baseline.json"],
    );
    missing.assert_code(2);
}

#[test]
fn shards_split_every_check_exactly_once() {
    let listed = HarnessRun::bare(["list", "--format", "json"]).run();
    listed.assert_code(0);
    let all: Vec<serde_json::Value> =
        serde_json::from_slice(&listed.output.stdout).expect("JSON list");
    let all: BTreeSet<String> = all
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let output = run("shard", ["--shard", &shard, "--format", "json"]);
        output.assert_code(0);
        let ids: Vec<String> = output
            .report()
            .ids()
            .into_iter()
            .map(str::to_string)
            .collect();
        assert!(!ids.is_empty(), "shard {shard} is empty");
        total += ids.len();
        seen.extend(ids);
    }
    assert_eq!(total, all.len(), "no id runs twice");
    assert_eq!(seen, all, "every id runs in some shard");
}

#[test]
fn bad_shards_are_usage_errors() {
    for shard in ["0/3", "4/3", "1/0", "x/2", "2"] {
        let output = HarnessRun::bare(["run", "--shard", shard]).run();
        assert_eq!(output.code(), 2, "{shard}: {}", output.context());
    }
}
