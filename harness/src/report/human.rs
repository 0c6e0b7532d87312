//! The terminal reporter: one aligned line per check as it finishes, a detail
//! block under every failure, error and warning, and the summary line last.
//!
//! ```text
//! harness: ./target/release/server --listen {addr}
//!   model: fork-per-connection (idle: 0 children, 1 thread; 8 connections held ...)
//!   capabilities: /echo /sleep (missing: /pid)
//!     /pid: not served (answers 404)
//!
//! PASS  concurrency/sleep-latency           parallelism 7.8 (8 x 300 ms in 307 ms)
//! FAIL  process/zombies                     12 zombies after 2 s settle
//!       requirement: After load, no descendant of the server may be a zombie (state Z).
//!       figures:     settle_ms=2000 zombies=12
//!       evidence:    pids 1234 1235 ...
//!       hint:        Reap every child: in the SIGCHLD handler call waitpid(-1, WNOHANG) ...
//! SKIP  fds/child-listener                  pre-fork server: workers accept on the listener by design
//! 12 passed, 1 failed, 2 warned, 3 skipped  (4.2 s)
//! ```
//!
//! It is meant to be read in ten seconds: the verdict word comes first and is
//! coloured, ids sit in one column, passes take one line each, and the last
//! line says whether the run went well. Text that came from the server
//! (summaries, evidence) has control characters escaped, so a hostile or
//! broken server cannot repaint the user's terminal.

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Duration;

use super::{Event, Reporter};
use crate::check::{CheckResult, TargetInfo, Totals, Verdict};

/// Width the id is padded to. Fixed rather than "longest so far" so that
/// streamed lines never shift; longer ids simply push the summary right.
const ID_WIDTH: usize = 34;

/// Width of the verdict column: the longest word (`ERROR`) plus one space.
const VERDICT_WIDTH: usize = 6;

/// Width of a detail label such as `requirement: `.
const LABEL_WIDTH: usize = 13;

/// Evidence lines shown per check unless verbose; the JSON report has all.
const MAX_EVIDENCE_LINES: usize = 12;

/// ANSI escapes, kept to the basic set every terminal understands.
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED_BOLD: &str = "\x1b[1;31m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Whether to colour output: never when `NO_COLOR` is set to a non-empty
/// value (<https://no-color.org>), otherwise only when writing to a terminal.
pub fn color_wanted(is_terminal: bool) -> bool {
    decide_color(std::env::var_os("NO_COLOR").as_deref(), is_terminal)
}

/// [`color_wanted`] without the environment, so it can be tested without
/// mutating process-global state.
fn decide_color(no_color: Option<&std::ffi::OsStr>, is_terminal: bool) -> bool {
    let disabled = no_color.is_some_and(|value| !value.is_empty());
    !disabled && is_terminal
}

/// Streams human-readable lines to a writer (normally stdout).
pub struct HumanReporter {
    /// Where lines go; flushed after every event so progress shows live.
    out: Box<dyn Write + Send>,
    /// Whether to emit ANSI colour escapes.
    color: bool,
    /// Whether to show the detail block for every check, passes included.
    verbose: bool,
}

impl HumanReporter {
    /// A reporter writing to `out`; see [`color_wanted`] for `color`.
    /// `verbose` shows requirement, figures and time for every check.
    pub fn new(out: Box<dyn Write + Send>, color: bool, verbose: bool) -> HumanReporter {
        HumanReporter {
            out,
            color,
            verbose,
        }
    }

    /// Wraps `text` in `style` when colouring.
    fn paint<'t>(&self, style: &str, text: &'t str) -> Cow<'t, str> {
        if self.color {
            Cow::Owned(format!("{style}{text}{RESET}"))
        } else {
            Cow::Borrowed(text)
        }
    }

    fn run_started(&mut self, target: &TargetInfo, planned: usize) -> io::Result<()> {
        writeln!(self.out, "harness: {}", printable(&target.command))?;
        let mut model = format!("  model: {}", printable(&target.model));
        if !target.model_evidence.is_empty() {
            model.push_str(&format!(" ({})", printable(&target.model_evidence)));
        }
        writeln!(self.out, "{model}")?;
        writeln!(self.out, "  capabilities: {}", capabilities(target))?;
        for (route, note) in &target.capability_notes {
            writeln!(self.out, "    {}: {}", printable(route), printable(note))?;
        }
        for habit in &target.habits {
            writeln!(self.out, "  behaviour: {}", printable(habit))?;
        }
        if self.verbose {
            let pid = target
                .pid
                .map_or_else(|| "unknown".to_owned(), |pid| pid.to_string());
            writeln!(self.out, "  pid: {pid}   checks planned: {planned}")?;
        }
        writeln!(self.out)
    }

    fn check_finished(&mut self, result: &CheckResult) -> io::Result<()> {
        let (word, style) = match result.verdict {
            Verdict::Pass => ("PASS", GREEN),
            Verdict::Warn => ("WARN", YELLOW),
            Verdict::Fail => ("FAIL", RED_BOLD),
            Verdict::Skip => ("SKIP", DIM),
            Verdict::Error => ("ERROR", RED_BOLD),
        };
        // Pad outside the escapes: escape bytes would count towards the width.
        let padding = " ".repeat(VERDICT_WIDTH.saturating_sub(word.len()));
        let line = format!(
            "{}{padding}{:<ID_WIDTH$}  {}",
            self.paint(style, word),
            printable(&result.id),
            printable(&result.summary),
        );
        writeln!(self.out, "{}", line.trim_end())?;

        let problem = matches!(
            result.verdict,
            Verdict::Fail | Verdict::Error | Verdict::Warn
        );
        if problem || self.verbose {
            self.detail_block(result, problem)?;
        }
        Ok(())
    }

    /// The indented block under a check line. `problem` adds the hint, which
    /// only helps when something is wrong.
    fn detail_block(&mut self, result: &CheckResult, problem: bool) -> io::Result<()> {
        if !result.requirement.is_empty() {
            self.detail("requirement:", &printable(&result.requirement))?;
        }
        if !result.figures.is_empty() {
            self.detail("figures:", &printable(&result.figures_line()))?;
        }
        let shown = if self.verbose {
            result.evidence.len()
        } else {
            MAX_EVIDENCE_LINES
        };
        for (index, line) in result.evidence.iter().take(shown).enumerate() {
            let label = if index == 0 { "evidence:" } else { "" };
            self.detail(label, &printable(line))?;
        }
        if result.evidence.len() > shown {
            let more = result.evidence.len() - shown;
            self.detail(
                "",
                &format!("... {more} more lines (see --verbose or --format json)"),
            )?;
        }
        if problem && !result.hint.is_empty() {
            self.detail("hint:", &printable(&result.hint))?;
        }
        if self.verbose {
            self.detail("time:", &format!("{} ms", result.duration.as_millis()))?;
        }
        Ok(())
    }

    fn detail(&mut self, label: &str, value: &str) -> io::Result<()> {
        let indent = " ".repeat(VERDICT_WIDTH);
        let line = format!("{indent}{label:<LABEL_WIDTH$}{value}");
        writeln!(self.out, "{}", line.trim_end())
    }

    fn run_finished(
        &mut self,
        totals: &Totals,
        wall: Duration,
        interrupted: Option<&str>,
    ) -> io::Result<()> {
        let count = |n: usize, what: &str, style: &str| {
            let text = format!("{n} {what}");
            if n > 0 {
                self.paint(style, &text).into_owned()
            } else {
                text
            }
        };
        let mut line = format!(
            "{}, {}, {}, {}",
            count(totals.passed, "passed", GREEN),
            count(totals.failed, "failed", RED_BOLD),
            count(totals.warned, "warned", YELLOW),
            count(totals.skipped, "skipped", DIM),
        );
        if totals.errors > 0 {
            line.push_str(&format!(", {}", count(totals.errors, "errors", RED_BOLD)));
        }
        if let Some(signal) = interrupted {
            line.push_str(&format!(
                ", {}",
                self.paint(RED_BOLD, &format!("interrupted by {signal}"))
            ));
        }
        writeln!(self.out, "{line}  ({:.1} s)", wall.as_secs_f64())
    }
}

impl Reporter for HumanReporter {
    fn event(&mut self, event: &Event<'_>) -> io::Result<()> {
        match event {
            Event::RunStarted { target, planned } => self.run_started(target, *planned)?,
            Event::CheckFinished(result) => self.check_finished(result)?,
            Event::RunFinished {
                totals,
                wall,
                interrupted,
                ..
            } => self.run_finished(totals, *wall, *interrupted)?,
        }
        self.out.flush()
    }
}

/// `/echo /sleep`, plus `(missing: /pid)` when the probe found gaps.
fn capabilities(target: &TargetInfo) -> String {
    let names = |present: bool| -> Vec<String> {
        target
            .capabilities
            .iter()
            .filter(|(_, &has)| has == present)
            .map(|(name, _)| printable(name).into_owned())
            .collect()
    };
    let (present, missing) = (names(true), names(false));
    let mut text = if present.is_empty() {
        "none".to_owned()
    } else {
        present.join(" ")
    };
    if !missing.is_empty() {
        text.push_str(&format!(" (missing: {})", missing.join(" ")));
    }
    text
}

/// Escapes control characters (other than tab) so text that came from the
/// server cannot move the cursor, clear the screen or break a line.
fn printable(text: &str) -> Cow<'_, str> {
    let is_unsafe = |c: char| c.is_control() && c != '\t';
    if !text.contains(is_unsafe) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if is_unsafe(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use rstest::rstest;

    use super::*;
    use crate::report::fixtures::{self, SharedBuf};

    fn render(color: bool, verbose: bool) -> String {
        let buf = SharedBuf::default();
        let mut reporter = HumanReporter::new(Box::new(buf.clone()), color, verbose);
        fixtures::run(&mut reporter, false);
        buf.text()
    }

    /// Removes `ESC [ ... m` sequences.
    fn strip_ansi(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The lines from the one starting with `prefix` up to the next check line.
    fn block<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
        let mut lines = text.lines().skip_while(|l| !l.starts_with(prefix));
        let head = lines.next().expect("check line present");
        std::iter::once(head)
            .chain(lines.take_while(|l| l.starts_with("      ")))
            .collect()
    }

    #[test]
    fn summary_line_is_last_and_exact() {
        let text = render(false, false);
        let last = text.lines().last().expect("output is not empty");
        assert_eq!(
            last,
            "2 passed, 1 failed, 1 warned, 1 skipped, 1 errors  (4.2 s)"
        );
    }

    #[test]
    fn summary_line_omits_errors_when_there_are_none() {
        let buf = SharedBuf::default();
        let mut reporter = HumanReporter::new(Box::new(buf.clone()), false, false);
        let totals = Totals {
            passed: 12,
            failed: 1,
            warned: 2,
            skipped: 3,
            errors: 0,
        };
        reporter
            .event(&Event::RunFinished {
                results: &[],
                totals,
                wall: Duration::from_millis(4230),
                strict: false,
                interrupted: None,
            })
            .expect("writing to memory succeeds");
        assert_eq!(
            buf.text(),
            "12 passed, 1 failed, 2 warned, 3 skipped  (4.2 s)\n"
        );
    }

    #[test]
    fn header_names_command_model_and_capabilities() {
        let text = render(false, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "harness: ./target/release/server --listen {addr}");
        assert_eq!(
            lines[1],
            "  model: fork-per-connection (3 children under load, 1 thread)"
        );
        assert_eq!(
            lines[2],
            "  capabilities: /bytes /echo /sleep (missing: /pid)"
        );
        assert_eq!(lines[3], "    /pid: not served (answers 404)");
        assert_eq!(lines[4], "");
    }

    #[test]
    fn passes_and_skips_take_one_aligned_line() {
        let text = render(false, false);
        let pass = block(&text, "PASS  concurrency/sleep-latency");
        assert_eq!(
            pass,
            [format!(
                "PASS  {:<34}  parallelism 7.8 (8 x 300 ms in 307 ms)",
                "concurrency/sleep-latency"
            )]
        );
        let skip = block(&text, "SKIP ");
        assert_eq!(skip.len(), 1, "{skip:?}");
        // Summaries start in the same column whatever the verdict word.
        let column = |line: &str, summary: &str| line.find(summary).expect("summary present");
        assert_eq!(
            column(pass[0], "parallelism"),
            column(skip[0], "pre-fork server")
        );
        assert_eq!(column(pass[0], "parallelism"), 6 + 34 + 2);
    }

    #[test]
    fn failure_shows_requirement_figures_evidence_and_hint() {
        let text = render(false, false);
        let fail = block(&text, "FAIL  process/zombies");
        assert_eq!(fail.len(), 5, "{fail:#?}");
        assert!(
            fail[0].ends_with("  12 zombies after 2 s settle"),
            "{}",
            fail[0]
        );
        assert_eq!(
            fail[1],
            format!("      requirement: {}", fixtures::ZOMBIE_REQUIREMENT)
        );
        assert!(fail[2].starts_with("      figures:     "), "{}", fail[2]);
        assert!(fail[2].contains("zombies=12") && fail[2].contains("settle_ms=2000"));
        assert_eq!(fail[3], "      evidence:    pids 1234 1235 ...");
        assert_eq!(
            fail[4],
            format!("      hint:        {}", fixtures::ZOMBIE_HINT)
        );
    }

    #[rstest]
    #[case("WARN  http/content-length/negative", 4)] // requirement, 2 evidence lines, hint
    #[case("ERROR signals/sigpipe", 2)] // requirement, hint
    fn warnings_and_errors_also_get_the_detail_block(
        #[case] prefix: &str,
        #[case] detail_lines: usize,
    ) {
        let text = render(false, false);
        let lines = block(&text, prefix);
        assert_eq!(lines.len(), 1 + detail_lines, "{lines:#?}");
        assert!(lines[1].starts_with("      requirement: "));
        assert!(lines
            .last()
            .is_some_and(|l| l.starts_with("      hint:        ")));
    }

    #[test]
    fn evidence_lines_after_the_first_are_indented_under_it() {
        let text = render(false, false);
        let warn = block(&text, "WARN ");
        assert_eq!(warn[2], "      evidence:    expected: status 400");
        assert_eq!(warn[3], "                   actual:   status 200");
    }

    #[test]
    fn verbose_shows_figures_and_time_for_passes_but_no_hint() {
        let text = render(false, true);
        assert!(text.contains("  pid: 4242   checks planned: 6"));
        let pass = block(&text, "PASS  concurrency/sleep-latency");
        assert!(pass.iter().any(|l| l.starts_with("      figures:     ")));
        assert!(pass.contains(&"      time:        310 ms"));
        assert!(!pass.iter().any(|l| l.contains("hint:")), "{pass:#?}");
    }

    #[test]
    fn long_evidence_is_truncated_unless_verbose() {
        let mut result = CheckResult::new("fds/leak", "r", "h").fail("leaked");
        result.evidence = (0..40).map(|i| format!("fd {i}")).collect();
        for (verbose, shown) in [(false, MAX_EVIDENCE_LINES), (true, 40)] {
            let buf = SharedBuf::default();
            let mut reporter = HumanReporter::new(Box::new(buf.clone()), false, verbose);
            reporter
                .event(&Event::CheckFinished(&result))
                .expect("writing to memory succeeds");
            let text = buf.text();
            assert_eq!(text.matches("fd ").count(), shown, "verbose={verbose}");
            assert_eq!(text.contains("28 more lines"), !verbose);
        }
    }

    #[test]
    fn colour_wraps_only_the_verdict_words_and_counts() {
        let coloured = render(true, false);
        assert!(coloured.contains("\x1b[32mPASS\x1b[0m  concurrency/sleep-latency"));
        assert!(coloured.contains("\x1b[1;31mFAIL\x1b[0m  process/zombies"));
        assert!(coloured.contains("\x1b[33mWARN\x1b[0m  "));
        assert!(coloured.contains("\x1b[2mSKIP\x1b[0m  "));
        assert!(coloured.contains("\x1b[1;31mERROR\x1b[0m "));
        // Without the escapes it is exactly the uncoloured output.
        assert_eq!(strip_ansi(&coloured), render(false, false));
    }

    #[test]
    fn uncoloured_output_has_no_escapes() {
        assert!(!render(false, true).contains('\x1b'));
    }

    #[test]
    fn control_characters_from_the_server_are_escaped() {
        let result = CheckResult::new("http/x", "r", "h")
            .evidence("body: \x1b[2J\r\nHTTP/1.1 200")
            .fail("got \x1b[31mred");
        let buf = SharedBuf::default();
        let mut reporter = HumanReporter::new(Box::new(buf.clone()), false, false);
        reporter
            .event(&Event::CheckFinished(&result))
            .expect("writing to memory succeeds");
        let text = buf.text();
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
        assert!(text.contains(r"got \u{1b}[31mred"), "{text}");
        assert!(text.contains(r"body: \u{1b}[2J\r\nHTTP/1.1 200"), "{text}");
    }

    #[rstest]
    #[case(None, true, true)]
    #[case(None, false, false)]
    #[case(Some(""), true, true)]
    #[case(Some("1"), true, false)]
    #[case(Some("yes"), false, false)]
    fn colour_only_on_a_terminal_and_never_with_no_color(
        #[case] no_color: Option<&str>,
        #[case] is_terminal: bool,
        #[case] expected: bool,
    ) {
        assert_eq!(
            decide_color(no_color.map(OsStr::new), is_terminal),
            expected
        );
    }
}
