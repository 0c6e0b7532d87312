//! The vocabulary every check and every reporter shares.
//!
//! A check measures one requirement of the server and produces one
//! [`CheckResult`]: a graded [`Verdict`], a one-line summary of what was
//! measured, the requirement it checks, a hint for the server's author, the raw
//! figures, and evidence lines shown on failure. Reporters (human, JSON,
//! JUnit) only ever see these types, so a check never formats output itself.
//!
//! Verdicts are graded like h2spec's and Autobahn's rather than plain
//! pass/fail: a server that misses a SHOULD gets [`Verdict::Warn`], which only
//! fails the run under `--strict` (see [`apply_strict`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The outcome of one check.
///
/// The derived order (declaration order) exists only so results can be
/// sorted deterministically; use [`Verdict::is_failure`] to decide whether the
/// run failed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The requirement holds.
    Pass,
    /// A SHOULD is not met, or the server is degraded (slow, partly serial)
    /// without breaking a MUST. Fails the run only under `--strict`.
    Warn,
    /// A MUST is not met.
    Fail,
    /// The check does not apply to this server, or a capability it needs is
    /// missing. Always carries the reason in the summary.
    Skip,
    /// The harness itself could not run the check (could not connect, timed
    /// out setting up, could not read `/proc`). Never counted as a pass.
    Error,
}

impl Verdict {
    /// Lowercase name, as used in JSON output: `"pass"`, `"warn"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::Error => "error",
        }
    }

    /// Whether this verdict makes the run fail: `Fail` and `Error` always,
    /// `Warn` only when `strict`.
    pub fn is_failure(&self, strict: bool) -> bool {
        match self {
            Verdict::Fail | Verdict::Error => true,
            Verdict::Warn => strict,
            Verdict::Pass | Verdict::Skip => false,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Measured numbers of one check, keyed by name (`"parallelism"`, `"wall_ms"`).
///
/// A JSON map so that reporters can print and serialise them without knowing
/// each check's shape.
pub type Figures = serde_json::Map<String, serde_json::Value>;

/// Where a unit of work sends each result as it ends: the one way results
/// travel from the checks and the cases to the run, from any thread.
pub type Emit<'a> = &'a (dyn Fn(CheckResult) + Sync);

/// What one check found.
///
/// Built with the builder-style helpers:
///
/// ```
/// use harness::check::{CheckResult, Verdict};
/// let result = CheckResult::new(
///     "process/zombies",
///     "After load, no descendant of the server may be a zombie (state Z).",
///     "Reap every child: call waitpid(-1, WNOHANG) in a loop until it returns 0.",
/// )
/// .figure("zombies", 0)
/// .pass("no zombies after 2 s settle");
/// assert_eq!(result.verdict, Verdict::Pass);
/// ```
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckResult {
    /// Stable id `group/name`, e.g. `process/zombies`,
    /// `http/content-length/negative`. Used by `--only`/`--skip` and CI.
    pub id: String,
    /// The graded outcome.
    pub verdict: Verdict,
    /// One line saying what was measured, e.g.
    /// `parallelism 7.8 (8 x 300 ms in 307 ms)`. For a skip, the reason.
    pub summary: String,
    /// The requirement sentence this check verifies, quoted to the user.
    pub requirement: String,
    /// What the server's code must do to pass; shown on failure, may be empty.
    pub hint: String,
    /// Measured numbers, e.g. `{"parallelism": 7.8, "wall_ms": 307}`.
    pub figures: Figures,
    /// Extra lines shown on failure: expected vs actual, pids, stderr tail.
    pub evidence: Vec<String>,
    /// How long the check took; serialised as integer `duration_ms`.
    #[serde(rename = "duration_ms", serialize_with = "serialize_duration_ms")]
    pub duration: Duration,
}

/// Serialises a duration as whole milliseconds, saturating at `u64::MAX`
/// (a run will never last that long, but `as` would silently wrap).
fn serialize_duration_ms<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration_ms(*duration))
}

/// Whole milliseconds of `duration`, saturating instead of wrapping.
pub(crate) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl CheckResult {
    /// Under `--strict`, a warning is a failure, and its summary says why.
    pub fn make_strict(&mut self) {
        if self.verdict == Verdict::Warn {
            self.verdict = Verdict::Fail;
            self.summary.push_str(" (strict)");
        }
    }

    /// The figures on one line, `key=value` with strings unquoted
    /// (`model=pre-fork`, not `model="pre-fork"`).
    pub fn figures_line(&self) -> String {
        let figures: Vec<String> = self
            .figures
            .iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}={text}"),
                other => format!("{key}={other}"),
            })
            .collect();
        figures.join(" ")
    }

    /// Starts a result for check `id`.
    ///
    /// The verdict is [`Verdict::Error`] with an empty summary until one of
    /// [`pass`](Self::pass), [`warn`](Self::warn), [`fail`](Self::fail),
    /// [`skip`](Self::skip) or [`error`](Self::error) is called, so a check
    /// that forgets to decide is never reported as passing.
    pub fn new(
        id: impl Into<String>,
        requirement: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        CheckResult {
            id: id.into(),
            verdict: Verdict::Error,
            summary: String::new(),
            requirement: requirement.into(),
            hint: hint.into(),
            figures: Figures::new(),
            evidence: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Sets `verdict` and `summary` together; the other helpers call this.
    pub fn with_verdict(mut self, verdict: Verdict, summary: impl Into<String>) -> Self {
        self.verdict = verdict;
        self.summary = summary.into();
        self
    }

    /// The requirement holds; `summary` says what was measured.
    pub fn pass(self, summary: impl Into<String>) -> Self {
        self.with_verdict(Verdict::Pass, summary)
    }

    /// A SHOULD is not met or the server is degraded.
    pub fn warn(self, summary: impl Into<String>) -> Self {
        self.with_verdict(Verdict::Warn, summary)
    }

    /// A MUST is not met.
    pub fn fail(self, summary: impl Into<String>) -> Self {
        self.with_verdict(Verdict::Fail, summary)
    }

    /// Not applicable; `reason` says why (e.g. a missing capability).
    pub fn skip(self, reason: impl Into<String>) -> Self {
        self.with_verdict(Verdict::Skip, reason)
    }

    /// The harness could not run the check; `summary` says what went wrong.
    pub fn error(self, summary: impl Into<String>) -> Self {
        self.with_verdict(Verdict::Error, summary)
    }

    /// Records a measured number (or any JSON value) under `key`, replacing
    /// an earlier value with the same key.
    pub fn figure(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.figures.insert(key.into(), value.into());
        self
    }

    /// Appends one evidence line.
    pub fn evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    /// Sets how long the check took.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }
}

/// `--strict`: every [`Verdict::Warn`] becomes [`Verdict::Fail`], with
/// `" (strict)"` appended to its summary so the user sees why a mere SHOULD
/// failed the run.
pub fn apply_strict(results: &mut [CheckResult]) {
    for result in results {
        result.make_strict();
    }
}

/// How many results had each verdict.
#[derive(Default, Clone, Copy, Debug, serde::Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Results with [`Verdict::Pass`].
    pub passed: usize,
    /// Results with [`Verdict::Fail`].
    pub failed: usize,
    /// Results with [`Verdict::Warn`].
    pub warned: usize,
    /// Results with [`Verdict::Skip`].
    pub skipped: usize,
    /// Results with [`Verdict::Error`].
    pub errors: usize,
}

impl Totals {
    /// Counts the verdicts of `results`.
    pub fn tally(results: &[CheckResult]) -> Totals {
        let mut totals = Totals::default();
        for result in results {
            let slot = match result.verdict {
                Verdict::Pass => &mut totals.passed,
                Verdict::Fail => &mut totals.failed,
                Verdict::Warn => &mut totals.warned,
                Verdict::Skip => &mut totals.skipped,
                Verdict::Error => &mut totals.errors,
            };
            *slot += 1;
        }
        totals
    }

    /// Whether the run failed: any failure or any harness error. Warnings
    /// count only after [`apply_strict`] has turned them into failures.
    pub fn any_failure(&self) -> bool {
        self.failed > 0 || self.errors > 0
    }

    /// Number of results counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.warned + self.skipped + self.errors
    }
}

/// What the harness learned about the server under test, shown once at the
/// top of every report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetInfo {
    /// The command line used to start the server, with `{addr}` as given.
    pub command: String,
    /// The server's pid, when the harness started it and it is still known.
    pub pid: Option<i32>,
    /// Concurrency model inferred from behaviour: `"iterative"`,
    /// `"fork-per-connection"`, `"pre-fork"`, `"threaded"`, `"event-loop"` or
    /// `"unknown"`.
    pub model: String,
    /// Why that model was inferred, e.g. `3 children under load, 1 thread`.
    pub model_evidence: String,
    /// Which optional endpoints the server offers (`"/sleep": true`, ...);
    /// checks that need a missing one are skipped.
    pub capabilities: BTreeMap<String, bool>,
    /// Why each route that is not served is not: missing, or answering
    /// without keeping its contract (`"/sleep": "/sleep?ms=60 answers after
    /// 1 ms: not the conformance route"`).
    pub capability_notes: BTreeMap<String, String>,
    /// What the server did with one plain request, learned once for the
    /// whole run: answers nothing, frames by close, keeps connections open,
    /// exits after a request. Empty for a server that behaves.
    pub habits: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Verdict::Pass, false, false)]
    #[case(Verdict::Pass, true, false)]
    #[case(Verdict::Skip, true, false)]
    #[case(Verdict::Warn, false, false)]
    #[case(Verdict::Warn, true, true)]
    #[case(Verdict::Fail, false, true)]
    #[case(Verdict::Error, false, true)]
    fn failing_verdicts_are_fail_error_and_warn_when_strict(
        #[case] verdict: Verdict,
        #[case] strict: bool,
        #[case] expected: bool,
    ) {
        assert_eq!(verdict.is_failure(strict), expected);
    }

    #[rstest]
    #[case(Verdict::Pass, "pass")]
    #[case(Verdict::Warn, "warn")]
    #[case(Verdict::Fail, "fail")]
    #[case(Verdict::Skip, "skip")]
    #[case(Verdict::Error, "error")]
    fn verdict_names_match_their_json_form(#[case] verdict: Verdict, #[case] name: &str) {
        assert_eq!(verdict.as_str(), name);
        assert_eq!(verdict.to_string(), name);
        let json = serde_json::to_value(verdict).expect("a unit enum always serialises");
        assert_eq!(json, serde_json::Value::String(name.to_owned()));
        let back: Verdict =
            serde_json::from_value(json).expect("the serialised name deserialises back");
        assert_eq!(back, verdict);
    }

    #[test]
    fn an_undecided_result_is_an_error_never_a_pass() {
        let result = CheckResult::new("process/zombies", "req", "hint");
        assert_eq!(result.verdict, Verdict::Error);
        assert!(result.summary.is_empty());
    }

    #[test]
    fn builder_records_verdict_summary_figures_evidence_and_duration() {
        let result = CheckResult::new("process/zombies", "no zombies", "reap children")
            .figure("zombies", 12)
            .figure("settle_ms", 2000)
            .evidence("pids 1234 1235")
            .with_duration(Duration::from_millis(2100))
            .fail("12 zombies after 2 s settle");
        assert_eq!(result.verdict, Verdict::Fail);
        assert_eq!(result.summary, "12 zombies after 2 s settle");
        assert_eq!(result.figures["zombies"], 12);
        assert_eq!(result.figures["settle_ms"], 2000);
        assert_eq!(result.evidence, vec!["pids 1234 1235".to_owned()]);
        assert_eq!(result.duration, Duration::from_millis(2100));
    }

    #[test]
    fn serialised_result_has_exactly_the_documented_fields() {
        let result = CheckResult::new("a/b", "req", "hint")
            .figure("ratio", 7.8)
            .with_duration(Duration::from_micros(1_500_700))
            .pass("ok");
        let json = serde_json::to_value(&result).expect("plain data always serialises");
        let object = json.as_object().expect("a struct serialises as an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "duration_ms",
                "evidence",
                "figures",
                "hint",
                "id",
                "requirement",
                "summary",
                "verdict"
            ]
        );
        assert_eq!(object["duration_ms"], serde_json::json!(1500));
        assert_eq!(object["verdict"], "pass");
        assert_eq!(object["figures"]["ratio"], 7.8);
    }

    #[test]
    fn strict_turns_warnings_into_failures_and_says_so() {
        let mut results = vec![
            CheckResult::new("a/warn", "r", "h").warn("slow"),
            CheckResult::new("a/pass", "r", "h").pass("fine"),
            CheckResult::new("a/fail", "r", "h").fail("broken"),
        ];
        apply_strict(&mut results);
        assert_eq!(results[0].verdict, Verdict::Fail);
        assert_eq!(results[0].summary, "slow (strict)");
        assert_eq!(results[1].verdict, Verdict::Pass);
        assert_eq!(results[1].summary, "fine");
        assert_eq!(results[2].summary, "broken");
    }

    #[test]
    fn totals_count_each_verdict_and_errors_fail_the_run() {
        let results = vec![
            CheckResult::new("a/1", "r", "h").pass("ok"),
            CheckResult::new("a/2", "r", "h").pass("ok"),
            CheckResult::new("a/3", "r", "h").warn("meh"),
            CheckResult::new("a/4", "r", "h").skip("n/a"),
            CheckResult::new("a/5", "r", "h").error("could not connect"),
        ];
        let totals = Totals::tally(&results);
        assert_eq!(
            totals,
            Totals {
                passed: 2,
                failed: 0,
                warned: 1,
                skipped: 1,
                errors: 1
            }
        );
        assert_eq!(totals.total(), 5);
        assert!(totals.any_failure(), "a harness error must fail the run");
        assert!(!Totals::tally(&results[..4]).any_failure());
    }
}
