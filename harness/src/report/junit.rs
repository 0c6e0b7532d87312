//! The JUnit reporter: a JUnit XML file for CI test-result pages, written
//! when the run finishes.
//!
//! Each check group (the part of the id before the first `/`: `process`,
//! `http`, ...) becomes one `<testsuite>`, so CI pages fold checks by topic;
//! each check is one `<testcase>` named by its full id, with the group as
//! `classname`. Verdicts map onto JUnit's fixed vocabulary:
//!
//! | verdict | JUnit                                             |
//! |---------|---------------------------------------------------|
//! | pass    | success                                           |
//! | warn    | success, with `WARN: <summary>` in `<system-out>` |
//! | fail    | `<failure message="<summary>">` + details         |
//! | error   | `<error message="<summary>">` + details           |
//! | skip    | `<skipped message="<reason>">`                    |
//!
//! The details text holds the requirement, figures, evidence and hint, the
//! same facts the terminal shows under a failure.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Event, Reporter};
use crate::check::{CheckResult, Verdict};

/// Writes the run as a JUnit XML file at [`Event::RunFinished`].
pub struct JunitReporter {
    /// Where the XML file goes; created or truncated at the end of the run.
    path: PathBuf,
}

impl JunitReporter {
    /// A reporter that will write its XML to `path`.
    pub fn new(path: PathBuf) -> JunitReporter {
        JunitReporter { path }
    }

    /// Serialises and writes the report, naming the path in any error.
    fn write(&self, results: &[CheckResult], wall: Duration) -> io::Result<()> {
        let xml = build_report(results, wall).to_string().map_err(|err| {
            io::Error::other(format!(
                "serialising JUnit report for {}: {err}",
                self.path.display()
            ))
        })?;
        std::fs::write(&self.path, xml).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("writing JUnit report to {}: {err}", self.path.display()),
            )
        })
    }
}

impl Reporter for JunitReporter {
    fn event(&mut self, event: &Event<'_>) -> io::Result<()> {
        match event {
            Event::RunFinished { results, wall, .. } => self.write(results, *wall),
            Event::RunStarted { .. } | Event::CheckFinished(_) => Ok(()),
        }
    }
}

/// The group of a check id: the part before the first `/` (the whole id if
/// it has none).
fn group(id: &str) -> &str {
    id.split_once('/').map_or(id, |(group, _)| group)
}

/// One suite per group, in the order groups first appear in the run.
fn build_report(results: &[CheckResult], wall: Duration) -> Report {
    let mut suites: Vec<TestSuite> = Vec::new();
    let mut suite_times: Vec<Duration> = Vec::new();
    for result in results {
        let name = group(&result.id);
        let index = match suites.iter().position(|s| s.name.as_str() == name) {
            Some(index) => index,
            None => {
                suites.push(TestSuite::new(name));
                suite_times.push(Duration::ZERO);
                suites.len() - 1
            }
        };
        suites[index].add_test_case(test_case(result));
        suite_times[index] += result.duration;
    }
    for (suite, time) in suites.iter_mut().zip(suite_times) {
        suite.set_time(time);
    }
    let mut report = Report::new("harness");
    report.set_time(wall).add_test_suites(suites);
    report
}

fn test_case(result: &CheckResult) -> TestCase {
    let status = match result.verdict {
        Verdict::Pass | Verdict::Warn => TestCaseStatus::success(),
        Verdict::Fail | Verdict::Error => {
            let kind = if result.verdict == Verdict::Fail {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut status = TestCaseStatus::non_success(kind);
            status
                .set_message(result.summary.as_str())
                .set_type(result.verdict.as_str())
                .set_description(details(result));
            status
        }
        Verdict::Skip => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(result.summary.as_str());
            status
        }
    };
    let mut case = TestCase::new(result.id.as_str(), status);
    case.set_classname(group(&result.id))
        .set_time(result.duration);
    if result.verdict == Verdict::Warn {
        // JUnit has no "passed with a warning"; system-out is where CI pages
        // show it without turning the build red.
        case.set_system_out(format!("WARN: {}\n{}", result.summary, details(result)));
    }
    case
}

/// The facts shown under a failure: requirement, figures, evidence, hint.
fn details(result: &CheckResult) -> String {
    let mut lines = Vec::new();
    if !result.requirement.is_empty() {
        lines.push(format!("requirement: {}", result.requirement));
    }
    if !result.figures.is_empty() {
        lines.push(format!("figures: {}", result.figures_line()));
    }
    for line in &result.evidence {
        lines.push(format!("evidence: {line}"));
    }
    if !result.hint.is_empty() {
        lines.push(format!("hint: {}", result.hint));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use quick_junit::Report;

    use super::*;
    use crate::report::fixtures;

    /// A file path in the temp dir, unique per test and process, removed on
    /// drop so tests leave nothing behind even when they panic.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(name: &str) -> TempPath {
            TempPath(
                std::env::temp_dir()
                    .join(format!("harness-junit-{}-{name}.xml", std::process::id())),
            )
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            // Absent when the test failed before writing; nothing to do then.
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn render(name: &str) -> (String, Report) {
        let path = TempPath::new(name);
        let mut reporter = JunitReporter::new(path.0.clone());
        fixtures::run(&mut reporter, false);
        let xml = std::fs::read_to_string(&path.0).expect("the report file was written");
        let report = Report::deserialize_from_str(&xml).expect("the file is valid JUnit XML");
        (xml, report)
    }

    fn case<'r>(report: &'r Report, id: &str) -> &'r TestCase {
        report
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .find(|c| c.name.as_str() == id)
            .unwrap_or_else(|| panic!("no testcase {id}"))
    }

    #[test]
    fn one_suite_per_group_in_run_order_with_right_counts() {
        let (xml, report) = render("suites");
        assert_eq!(report.name.as_str(), "harness");
        assert_eq!(report.tests, fixtures::results().len());
        assert_eq!(report.failures, 1);
        assert_eq!(report.errors, 1);
        let names: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["concurrency", "process", "http", "fds", "signals"]);
        let process = &report.test_suites[1];
        assert_eq!(process.tests, 2);
        assert_eq!(process.failures, 1);
        // Suite time is the sum of its checks' times (2150 ms + 40 ms).
        assert!(
            xml.contains(r#"<testsuite name="process" tests="2""#),
            "{xml}"
        );
        assert!(xml.contains(r#"time="2.190""#), "{xml}");
        assert_eq!(report.test_suites[3].disabled, 1, "the skip is counted");
    }

    #[test]
    fn failure_carries_summary_as_message_and_details_as_text() {
        let (xml, report) = render("failure");
        let zombies = case(&report, "process/zombies");
        assert_eq!(
            zombies.classname.as_ref().map(|c| c.as_str()),
            Some("process")
        );
        assert!(xml.contains(r#"classname="process" time="2.150""#), "{xml}");
        let TestCaseStatus::NonSuccess {
            kind,
            message,
            description,
            ..
        } = &zombies.status
        else {
            panic!("expected a failure, got {:?}", zombies.status);
        };
        assert_eq!(*kind, NonSuccessKind::Failure);
        assert_eq!(
            message.as_ref().map(|m| m.as_str()),
            Some("12 zombies after 2 s settle")
        );
        let text = description.as_ref().expect("failure has details").as_str();
        assert!(text.contains(fixtures::ZOMBIE_REQUIREMENT), "{text}");
        assert!(text.contains("zombies=12"), "{text}");
        assert!(text.contains("evidence: pids 1234 1235 ..."), "{text}");
        assert!(text.contains(fixtures::ZOMBIE_HINT), "{text}");
        assert_eq!(xml.matches("<failure").count(), 1);
        assert_eq!(xml.matches("<error").count(), 1);
        assert_eq!(xml.matches("<testcase").count(), fixtures::results().len());
    }

    #[test]
    fn error_skip_and_warn_map_onto_junit_vocabulary() {
        let (_, report) = render("vocabulary");
        assert!(matches!(
            case(&report, "signals/sigpipe").status,
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Error,
                ..
            }
        ));
        let TestCaseStatus::Skipped { message, .. } = &case(&report, "fds/child-listener").status
        else {
            panic!("expected a skip");
        };
        assert_eq!(
            message.as_ref().map(|m| m.as_str()),
            Some("pre-fork server: workers accept on the listener by design")
        );
        let warn = case(&report, "http/content-length/negative");
        assert!(matches!(warn.status, TestCaseStatus::Success { .. }));
        let out = warn.system_out.as_ref().expect("warn goes to system-out");
        assert!(
            out.as_str()
                .starts_with("WARN: answered 200 instead of 400"),
            "{}",
            out.as_str()
        );
    }

    #[test]
    fn unwritable_path_is_an_error_naming_the_path() {
        let dir = TempPath::new("missing-dir");
        let path = dir.0.join("report.xml");
        let mut reporter = JunitReporter::new(path.clone());
        let err = reporter
            .event(&Event::RunFinished {
                results: &fixtures::results(),
                totals: Default::default(),
                wall: Duration::ZERO,
                strict: false,
                interrupted: None,
            })
            .expect_err("the directory does not exist");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!Path::new(&path).exists());
    }

    #[test]
    fn group_is_the_id_up_to_the_first_slash() {
        assert_eq!(group("http/content-length/negative"), "http");
        assert_eq!(group("standalone"), "standalone");
    }
}
