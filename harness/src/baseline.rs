//! Known-failure baselines: a JSON list of the ids expected to fail, so that
//! a server with known gaps can still gate CI on new regressions.
//!
//! With `--baseline FILE` the run passes when exactly the listed ids fail:
//! a check that newly fails, and one that newly passes (a fixed gap, which
//! should leave the list), both fail the run and are named. Ids in the list
//! that did not run (selection, sharding) are ignored. `--write-baseline
//! FILE` records the ids that failed in this run.
//!
//! A baseline is read only if it is a regular file of at most
//! [`MAX_BASELINE`] bytes: a FIFO would block the harness before the run,
//! and `/dev/zero` would never end.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::check::{CheckResult, Verdict};
use crate::files::{self, ReadError};

/// Most bytes a baseline file may hold: every id of a very large suite,
/// many times over (ids are tens of bytes; the built-in suite has under 200).
pub const MAX_BASELINE: u64 = 16 << 20;

/// Why a baseline file could not be used.
#[derive(Debug)]
pub enum BaselineError {
    /// The file is not a regular file, too large, or unreadable.
    Read(ReadError),
    /// The file could not be written.
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a JSON list of strings.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for BaselineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaselineError::Read(error) => write!(f, "baseline {error}"),
            BaselineError::Write { path, source } => {
                write!(f, "baseline {}: {source}", path.display())
            }
            BaselineError::Format { path, message } => {
                write!(
                    f,
                    "baseline {}: {message} (expected a JSON list of check ids)",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for BaselineError {}

/// Reads a baseline: a JSON array of id strings.
pub fn read(path: &Path) -> Result<BTreeSet<String>, BaselineError> {
    let text = files::read_regular(path, MAX_BASELINE).map_err(BaselineError::Read)?;
    serde_json::from_str::<Vec<String>>(&text)
        .map(|ids| ids.into_iter().collect())
        .map_err(|e| BaselineError::Format {
            path: path.into(),
            message: e.to_string(),
        })
}

/// Writes `ids` as a baseline, sorted, one per line.
pub fn write(path: &Path, ids: &BTreeSet<String>) -> Result<(), BaselineError> {
    let list: Vec<&String> = ids.iter().collect();
    let text = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into()) + "\n";
    std::fs::write(path, text).map_err(|source| BaselineError::Write {
        path: path.into(),
        source,
    })
}

/// The ids that count as failing: fail and error (strict mode has already
/// turned warnings into failures).
pub fn failing(results: &[CheckResult]) -> BTreeSet<String> {
    results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Error))
        .map(|r| r.id.clone())
        .collect()
}

/// How a run compares with its baseline.
#[derive(Debug, PartialEq, Eq)]
pub struct Comparison {
    /// Expected failures that did fail.
    pub expected: usize,
    /// Failing, but not in the baseline.
    pub newly_failing: Vec<String>,
    /// In the baseline, ran, and did not fail.
    pub newly_passing: Vec<String>,
}

impl Comparison {
    /// Whether exactly the baseline failed.
    pub fn is_exact(&self) -> bool {
        self.newly_failing.is_empty() && self.newly_passing.is_empty()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "baseline: {} expected failures failed", self.expected)?;
        if !self.newly_failing.is_empty() {
            write!(
                f,
                "\nbaseline: {} newly failing: {}",
                self.newly_failing.len(),
                self.newly_failing.join(" ")
            )?;
        }
        if !self.newly_passing.is_empty() {
            write!(
                f,
                "\nbaseline: {} newly passing (remove them from the baseline): {}",
                self.newly_passing.len(),
                self.newly_passing.join(" ")
            )?;
        }
        if self.is_exact() {
            write!(f, "; the run matches the baseline")?;
        }
        Ok(())
    }
}

/// Compares the failing ids of a run with the baseline.
pub fn compare(
    baseline: &BTreeSet<String>,
    failing: &BTreeSet<String>,
    results: &[CheckResult],
) -> Comparison {
    let ran: BTreeSet<&str> = results.iter().map(|r| r.id.as_str()).collect();
    Comparison {
        expected: failing.intersection(baseline).count(),
        newly_failing: failing.difference(baseline).cloned().collect(),
        newly_passing: baseline
            .iter()
            .filter(|id| ran.contains(id.as_str()) && !failing.contains(*id))
            .cloned()
            .collect(),
    }
}

/// Whether a finished run fails, once `--write-baseline` (`write_to`) and
/// `--baseline` (`expected`) are applied: writes the failing ids to
/// `write_to`, and says so and how the run compares with `expected` on
/// `notes`. Without a baseline the run fails when anything failed.
pub fn judge(
    results: &[CheckResult],
    expected: Option<&BTreeSet<String>>,
    write_to: Option<&Path>,
    notes: &mut dyn std::io::Write,
) -> Result<bool, BaselineError> {
    let failing = failing(results);
    // Lost notes (a closed stderr) change no verdict.
    if let Some(path) = write_to {
        write(path, &failing)?;
        let _ = writeln!(
            notes,
            "harness: wrote {} failing ids to {}",
            failing.len(),
            path.display()
        );
    }
    Ok(match expected {
        Some(expected) => {
            let comparison = compare(expected, &failing, results);
            let _ = writeln!(notes, "{comparison}");
            !comparison.is_exact()
        }
        None => !failing.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, verdict: Verdict) -> CheckResult {
        CheckResult::new(id, "r", "h").with_verdict(verdict, "s")
    }

    #[test]
    fn exactly_the_baseline_failing_passes_and_differences_are_named() {
        let results = [
            result("a/x", Verdict::Fail),
            result("a/y", Verdict::Pass),
            result("a/z", Verdict::Error),
        ];
        let failing = failing(&results);
        let exact: BTreeSet<String> = ["a/x", "a/z", "not/run"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(compare(&exact, &failing, &results).is_exact());
        let stale: BTreeSet<String> = ["a/x", "a/y"].iter().map(|s| s.to_string()).collect();
        let comparison = compare(&stale, &failing, &results);
        assert_eq!(comparison.newly_failing, ["a/z"]);
        assert_eq!(comparison.newly_passing, ["a/y"]);
        assert!(comparison.to_string().contains("newly failing: a/z"));
    }

    #[test]
    fn a_baseline_round_trips_and_bad_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("harness-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("baseline.json");
        let ids: BTreeSet<String> = ["b", "a"].iter().map(|s| s.to_string()).collect();
        write(&path, &ids).unwrap();
        assert_eq!(read(&path).unwrap(), ids);
        std::fs::write(&path, "{\"not\": \"a list\"}").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("JSON list"));
        assert!(read(&dir.join("missing.json")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[rstest::rstest]
    #[case::endless_device("/dev/zero", "a character device, not a regular file")]
    #[case::folder("/", "a folder, not a regular file")]
    fn only_a_regular_file_is_read_as_a_baseline(#[case] path: &str, #[case] reason: &str) {
        let error = read(Path::new(path)).unwrap_err();
        assert_eq!(error.to_string(), format!("baseline {path}: {reason}"));
    }

    #[test]
    fn a_baseline_past_the_size_limit_is_an_error_naming_it() {
        let path =
            std::env::temp_dir().join(format!("harness-baseline-big-{}", std::process::id()));
        // Sparse: no disk is spent on it.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_BASELINE + 1)
            .unwrap();
        let error = read(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(error.contains("larger than 16 MiB"), "{error}");
    }

    #[test]
    fn a_run_fails_on_any_failure_or_else_on_any_difference_from_its_baseline() {
        let results = [result("a/x", Verdict::Fail), result("a/y", Verdict::Pass)];
        let mut notes = Vec::new();
        assert!(judge(&results, None, None, &mut notes).unwrap());
        assert!(!judge(&[result("a/y", Verdict::Pass)], None, None, &mut notes).unwrap());
        assert!(notes.is_empty());
        let expected: BTreeSet<String> = ["a/x".to_string()].into();
        assert!(!judge(&results, Some(&expected), None, &mut notes).unwrap());
        let path = std::env::temp_dir().join(format!("harness-judge-{}", std::process::id()));
        assert!(judge(&results, Some(&BTreeSet::new()), Some(&path), &mut notes).unwrap());
        assert_eq!(read(&path).unwrap(), expected);
        let _ = std::fs::remove_file(&path);
        let notes = String::from_utf8(notes).unwrap();
        assert!(
            notes.contains(&format!(
                "harness: wrote 1 failing ids to {}",
                path.display()
            )),
            "{notes}"
        );
        assert!(notes.contains("newly failing: a/x"), "{notes}");
    }
}
