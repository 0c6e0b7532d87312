//! The JSON reporter: one pretty-printed document for scripts, written when
//! the run finishes.
//!
//! ```json
//! {
//!   "target": { "command": "...", "pid": 4242, "model": "fork-per-connection",
//!               "model_evidence": "...", "capabilities": { "/sleep": true },
//!               "capability_notes": { "/pid": "not served (answers 404)" },
//!               "habits": [ "frames its responses by closing the connection ..." ] },
//!   "checks": [ { "id": "process/zombies", "verdict": "fail", "summary": "...",
//!                 "requirement": "...", "hint": "...", "figures": { "zombies": 12 },
//!                 "evidence": [ "pids 1234 1235" ], "duration_ms": 2150 } ],
//!   "totals": { "passed": 0, "failed": 1, "warned": 0, "skipped": 0, "errors": 0 },
//!   "strict": false,
//!   "wall_ms": 4230
//! }
//! ```
//!
//! Only one document is written, never a stream of fragments, so a consumer
//! can always parse the whole output with one call.

use std::io::{self, Write};

use super::{Event, Reporter};
use crate::check::{duration_ms, CheckResult, TargetInfo, Totals};

/// The document's shape; field order is the order written.
#[derive(serde::Serialize)]
struct Document<'a> {
    /// `null` only if the run finished without ever starting (a runner bug).
    target: Option<&'a TargetInfo>,
    checks: &'a [CheckResult],
    totals: Totals,
    strict: bool,
    wall_ms: u64,
    /// The stop signal that cut the run short, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupted: Option<&'a str>,
}

/// Writes the whole run as one JSON document at [`Event::RunFinished`].
pub struct JsonReporter {
    /// Destination (stdout or a file).
    out: Box<dyn Write + Send>,
    /// Remembered from [`Event::RunStarted`] for the final document.
    target: Option<TargetInfo>,
}

impl JsonReporter {
    /// A reporter that will write its document to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> JsonReporter {
        JsonReporter { out, target: None }
    }
}

impl Reporter for JsonReporter {
    fn event(&mut self, event: &Event<'_>) -> io::Result<()> {
        match event {
            Event::RunStarted { target, .. } => {
                self.target = Some((*target).clone());
                Ok(())
            }
            // The final results (with --strict applied) arrive all together
            // in RunFinished, so nothing needs collecting here.
            Event::CheckFinished(_) => Ok(()),
            Event::RunFinished {
                results,
                totals,
                wall,
                strict,
                interrupted,
            } => {
                let document = Document {
                    target: self.target.as_ref(),
                    checks: results,
                    totals: *totals,
                    strict: *strict,
                    wall_ms: duration_ms(*wall),
                    interrupted: *interrupted,
                };
                serde_json::to_writer_pretty(&mut self.out, &document).map_err(io::Error::from)?;
                writeln!(self.out)?;
                self.out.flush()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::report::fixtures::{self, SharedBuf};

    fn render(strict: bool) -> (String, Value) {
        let buf = SharedBuf::default();
        let mut reporter = JsonReporter::new(Box::new(buf.clone()));
        fixtures::run(&mut reporter, strict);
        let text = buf.text();
        let value = serde_json::from_str(&text).expect("output is one valid JSON document");
        (text, value)
    }

    fn sorted_keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn document_has_target_checks_totals_strict_and_wall_time() {
        let (_, doc) = render(true);
        assert_eq!(
            sorted_keys(&doc),
            ["checks", "strict", "target", "totals", "wall_ms"]
        );
        assert_eq!(doc["strict"], true);
        assert_eq!(doc["wall_ms"], 4230);
        assert_eq!(doc["target"]["model"], "fork-per-connection");
        assert_eq!(doc["target"]["pid"], 4242);
        assert_eq!(doc["target"]["capabilities"]["/pid"], false);
        assert_eq!(
            doc["totals"],
            serde_json::json!({"passed": 2, "failed": 1, "warned": 1, "skipped": 1, "errors": 1})
        );
    }

    #[test]
    fn every_check_has_exactly_the_documented_fields() {
        let (_, doc) = render(false);
        let checks = doc["checks"].as_array().expect("checks is an array");
        assert_eq!(checks.len(), fixtures::results().len());
        for check in checks {
            assert_eq!(
                sorted_keys(check),
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
            assert!(check["figures"].is_object());
            assert!(check["evidence"].is_array());
            assert!(check["duration_ms"].is_u64());
        }
        let zombies = &checks[1];
        assert_eq!(zombies["id"], "process/zombies");
        assert_eq!(zombies["verdict"], "fail");
        assert_eq!(zombies["figures"]["zombies"], 12);
        assert_eq!(zombies["evidence"][0], "pids 1234 1235 ...");
        assert_eq!(zombies["duration_ms"], 2150);
    }

    #[test]
    fn output_is_one_pretty_document_ending_in_a_newline() {
        let (text, _) = render(false);
        assert!(text.starts_with("{\n  \"target\": {"), "{text}");
        assert!(text.ends_with("  \"wall_ms\": 4230\n}\n"), "{text}");
        assert_eq!(
            text.matches("\n}").count(),
            1,
            "exactly one top-level document"
        );
    }

    #[test]
    fn nothing_is_written_before_the_run_finishes() {
        let buf = SharedBuf::default();
        let mut reporter = JsonReporter::new(Box::new(buf.clone()));
        let target = fixtures::target();
        let results = fixtures::results();
        reporter
            .event(&Event::RunStarted {
                target: &target,
                planned: 1,
            })
            .expect("nothing to write");
        reporter
            .event(&Event::CheckFinished(&results[0]))
            .expect("nothing to write");
        assert!(buf.text().is_empty());
    }
}
