//! Reporters: turning check results into something a person or a CI server
//! reads.
//!
//! Like nextest's, every reporter consumes one event stream: the runner emits
//! [`Event::RunStarted`], one [`Event::CheckFinished`] per check as it
//! completes, and [`Event::RunFinished`] with the final results (after
//! `--strict` has been applied) and their totals. Streaming reporters
//! ([`human::HumanReporter`]) print as events arrive; document reporters
//! ([`json::JsonReporter`], [`junit::JunitReporter`]) write once at the end.
//! [`Fanout`] sends the stream to several reporters at once.
//!
//! Layout:
//! - [`human`]: aligned, coloured terminal lines with a summary line last.
//! - [`json`]: one JSON document for scripts.
//! - [`junit`]: a JUnit XML file for CI test-result UIs.
//! - [`list`]: `harness list`, every check id with its requirement.

pub mod human;
pub mod json;
pub mod junit;
pub mod list;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::check::{CheckResult, TargetInfo, Totals};
use crate::cli::Format;

/// One step of a run, as seen by reporters.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The server is up and probed; `planned` checks are about to run.
    RunStarted {
        /// What is being tested.
        target: &'a TargetInfo,
        /// How many checks were selected.
        planned: usize,
    },
    /// One check has finished.
    CheckFinished(&'a CheckResult),
    /// All checks have finished.
    RunFinished {
        /// Every result, in run order, with `--strict` already applied.
        results: &'a [CheckResult],
        /// Verdict counts of `results`.
        totals: Totals,
        /// Wall time of the whole run.
        wall: Duration,
        /// Whether `--strict` was in force.
        strict: bool,
        /// The stop signal that cut the run short (`SIGINT`, ...): results
        /// that had not finished are errors saying so.
        interrupted: Option<&'a str>,
    },
}

/// Something that consumes the event stream.
pub trait Reporter {
    /// Handles one event. An error means this reporter's output is lost
    /// (closed pipe, unwritable file); the run itself goes on.
    fn event(&mut self, event: &Event<'_>) -> std::io::Result<()>;
}

/// Forwards every event to each of its reporters, in order.
#[derive(Default)]
pub struct Fanout(pub Vec<Box<dyn Reporter>>);

impl Fanout {
    /// A fanout over `reporters`.
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Fanout {
        Fanout(reporters)
    }

    /// Adds one more reporter.
    pub fn push(&mut self, reporter: Box<dyn Reporter>) {
        self.0.push(reporter);
    }

    /// The reporters of `harness run`: one on stdout in `format` (colours
    /// only on a terminal), and a JUnit file when `junit` names one.
    pub fn for_run(format: Format, verbose: bool, junit: Option<PathBuf>) -> Fanout {
        let stdout = Box::new(std::io::stdout());
        let mut fanout = Fanout::new(vec![match format {
            Format::Human => {
                let color = human::color_wanted(std::io::stdout().is_terminal());
                Box::new(human::HumanReporter::new(stdout, color, verbose))
            }
            Format::Json => Box::new(json::JsonReporter::new(stdout)),
        }]);
        if let Some(path) = junit {
            fanout.push(Box::new(junit::JunitReporter::new(path)));
        }
        fanout
    }
}

impl Reporter for Fanout {
    /// Delivers the event to every reporter even if an earlier one fails, so
    /// that a closed stdout (`harness ... | head`) does not also lose the
    /// JUnit file; the first error is returned.
    fn event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        let mut first_error = None;
        for reporter in &mut self.0 {
            if let Err(err) = reporter.event(event) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A fixed, representative run shared by the reporter tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;
    use std::io::{self, Write};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{Event, Reporter};
    use crate::check::{CheckResult, TargetInfo, Totals};

    pub(crate) const ZOMBIE_REQUIREMENT: &str =
        "After load, no descendant of the server may be a zombie (state Z).";
    pub(crate) const ZOMBIE_HINT: &str = "Reap every child: in the SIGCHLD handler call \
         waitpid(-1, WNOHANG) in a loop until it returns 0.";

    pub(crate) fn target() -> TargetInfo {
        TargetInfo {
            command: "./target/release/server --listen {addr}".to_owned(),
            pid: Some(4242),
            model: "fork-per-connection".to_owned(),
            model_evidence: "3 children under load, 1 thread".to_owned(),
            capabilities: BTreeMap::from([
                ("/bytes".to_owned(), true),
                ("/echo".to_owned(), true),
                ("/pid".to_owned(), false),
                ("/sleep".to_owned(), true),
            ]),
            capability_notes: BTreeMap::from([(
                "/pid".to_owned(),
                "not served (answers 404)".to_owned(),
            )]),
            habits: Vec::new(),
        }
    }

    /// One result of each verdict, plus a second pass.
    pub(crate) fn results() -> Vec<CheckResult> {
        vec![
            CheckResult::new(
                "concurrency/sleep-latency",
                "Slow requests on separate connections must be served in parallel.",
                "Serve each connection in its own process.",
            )
            .figure("parallelism", 7.8)
            .figure("wall_ms", 307)
            .with_duration(Duration::from_millis(310))
            .pass("parallelism 7.8 (8 x 300 ms in 307 ms)"),
            CheckResult::new("process/zombies", ZOMBIE_REQUIREMENT, ZOMBIE_HINT)
                .figure("zombies", 12)
                .figure("settle_ms", 2000)
                .evidence("pids 1234 1235 ...")
                .with_duration(Duration::from_millis(2150))
                .fail("12 zombies after 2 s settle"),
            CheckResult::new(
                "http/content-length/negative",
                "RFC 9112 §6.3: a server MUST respond 400 to an invalid Content-Length.",
                "Reject a Content-Length that is not 1*DIGIT with 400.",
            )
            .evidence("expected: status 400")
            .evidence("actual:   status 200")
            .with_duration(Duration::from_millis(12))
            .warn("answered 200 instead of 400"),
            CheckResult::new(
                "fds/child-listener",
                "A child must close the listening socket.",
                "Close the listener in the child right after fork.",
            )
            .skip("pre-fork server: workers accept on the listener by design"),
            CheckResult::new(
                "signals/sigpipe",
                "A client closing early must not kill the server.",
                "Ignore SIGPIPE or use MSG_NOSIGNAL.",
            )
            .with_duration(Duration::from_millis(5003))
            .error("could not connect to 127.0.0.1:40000: connection refused"),
            CheckResult::new("process/orphans", "No orphans after shutdown.", "")
                .with_duration(Duration::from_millis(40))
                .pass("0 orphans"),
        ]
    }

    /// A writer the test can read back after a reporter owns its clone.
    #[derive(Clone, Default)]
    pub(crate) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuf {
        /// Everything written so far.
        pub(crate) fn text(&self) -> String {
            let bytes = self.0.lock().expect("no writer panicked").clone();
            String::from_utf8(bytes).expect("reporters write UTF-8")
        }
    }

    /// Feeds the whole fixed run to `reporter`.
    pub(crate) fn run(reporter: &mut dyn Reporter, strict: bool) {
        let target = target();
        let results = results();
        reporter
            .event(&Event::RunStarted {
                target: &target,
                planned: results.len(),
            })
            .expect("run started");
        for result in &results {
            reporter
                .event(&Event::CheckFinished(result))
                .expect("check finished");
        }
        reporter
            .event(&Event::RunFinished {
                results: &results,
                totals: Totals::tally(&results),
                wall: Duration::from_millis(4230),
                strict,
                interrupted: None,
            })
            .expect("run finished");
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;
    use std::rc::Rc;

    use super::*;

    /// Records which events it saw; optionally fails each one.
    struct Recorder {
        seen: Rc<RefCell<Vec<&'static str>>>,
        fail: bool,
    }

    impl Reporter for Recorder {
        fn event(&mut self, event: &Event<'_>) -> io::Result<()> {
            let name = match event {
                Event::RunStarted { .. } => "started",
                Event::CheckFinished(_) => "check",
                Event::RunFinished { .. } => "finished",
            };
            self.seen.borrow_mut().push(name);
            if self.fail {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn fanout_delivers_to_every_reporter_even_after_one_fails() {
        let first = Rc::new(RefCell::new(Vec::new()));
        let second = Rc::new(RefCell::new(Vec::new()));
        let mut fanout = Fanout::new(vec![Box::new(Recorder {
            seen: Rc::clone(&first),
            fail: true,
        })]);
        fanout.push(Box::new(Recorder {
            seen: Rc::clone(&second),
            fail: false,
        }));
        let target = fixtures::target();
        let err = fanout
            .event(&Event::RunStarted {
                target: &target,
                planned: 0,
            })
            .expect_err("the failing reporter's error is returned");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(*first.borrow(), ["started"]);
        assert_eq!(*second.borrow(), ["started"]);
    }

    #[test]
    fn fanout_forwards_the_whole_stream_in_order() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut fanout = Fanout::new(vec![Box::new(Recorder {
            seen: Rc::clone(&seen),
            fail: false,
        })]);
        fixtures::run(&mut fanout, false);
        let expected: Vec<&str> = std::iter::once("started")
            .chain(std::iter::repeat_n("check", fixtures::results().len()))
            .chain(std::iter::once("finished"))
            .collect();
        assert_eq!(*seen.borrow(), expected);
    }
}
