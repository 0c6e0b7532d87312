//! Baselines and sharding through the real binary: a baseline of known
//! failures passes exactly when those fail; shards split the checks with each
//! id in exactly one shard.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// One harness run at a time: the runs share 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn harness() -> &'static str {
    env!("CARGO_BIN_EXE_harness")
}

fn run(args: &[&str]) -> Output {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    Command::new(harness())
        .arg("run")
        .args(args)
        .output()
        .expect("run harness")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A temporary file path, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!("harness-{name}-{}.json", std::process::id())))
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_baseline_passes_exactly_when_its_checks_fail() {
    let baseline = TempFile::new("baseline");
    let no_reap = [
        "--only",
        "process",
        "--",
        harness(),
        "__reference-server",
        "--fault",
        "no-reap",
    ];

    // Record the failures of a server with a known defect.
    let mut args = vec!["--write-baseline", baseline.path()];
    args.extend(no_reap);
    let recorded = run(&args);
    assert_eq!(recorded.status.code(), Some(1), "{}", stderr(&recorded));
    let ids: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&baseline.0).unwrap()).unwrap();
    assert_eq!(ids, ["process/zombies"]);

    // The same server against its baseline: exactly those fail, so it passes.
    let mut args = vec!["--baseline", baseline.path()];
    args.extend(no_reap);
    let matched = run(&args);
    assert_eq!(matched.status.code(), Some(0), "{}", stderr(&matched));
    assert!(
        stderr(&matched).contains("the run matches the baseline"),
        "{}",
        stderr(&matched)
    );

    // The clean server: the known failure newly passes, which is named and fails the run.
    let fixed = run(&["--baseline", baseline.path(), "--only", "process"]);
    assert_eq!(fixed.status.code(), Some(1), "{}", stderr(&fixed));
    assert!(
        stderr(&fixed).contains("newly passing (remove them from the baseline): process/zombies"),
        "{}",
        stderr(&fixed)
    );

    // A new defect: newly failing, named, and the run fails.
    std::fs::write(&baseline.0, "[]").unwrap();
    let mut args = vec!["--baseline", baseline.path()];
    args.extend(no_reap);
    let regressed = run(&args);
    assert_eq!(regressed.status.code(), Some(1));
    assert!(
        stderr(&regressed).contains("newly failing: process/zombies"),
        "{}",
        stderr(&regressed)
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
        let output = run(&["--shard", &shard, "--only", "lifecycle/startup"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shard}: {}",
            stderr(&output)
        );
        if stderr(&output).contains("nothing to run") {
            assert!(output.stdout.is_empty(), "{shard}");
        } else {
            ran += 1;
        }
    }
    assert_eq!(ran, 1, "exactly one shard holds the check");
}

#[test]
fn a_bad_baseline_file_is_a_usage_error() {
    let baseline = TempFile::new("bad-baseline");
    std::fs::write(&baseline.0, "{\"not\": \"a list\"}").unwrap();
    let output = run(&["--baseline", baseline.path(), "--only", "process"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("JSON list"), "{}", stderr(&output));
    let missing = run(&["--baseline", "/nonexistent/baseline.json"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn shards_split_every_check_exactly_once() {
    let listed = Command::new(harness())
        .args(["list", "--format", "json"])
        .output()
        .expect("run harness");
    let all: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("JSON list");
    let all: BTreeSet<String> = all
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let output = run(&["--shard", &shard, "--format", "json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
        let ids: Vec<String> = doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
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
        let output = Command::new(harness())
            .args(["run", "--shard", shard])
            .output()
            .expect("run harness");
        assert_eq!(output.status.code(), Some(2), "{shard}");
    }
}
