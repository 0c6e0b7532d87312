//! What a dead server's exit status and stderr say.
//!
//! When the server dies during a check, whatever that check's verdict, its
//! result carries the exit status and the part of stderr that names the
//! cause; and where stderr or the status names a cause the harness knows (a
//! traceback from a SIGCHLD handler that recursed, `os.wait()` with no child
//! left, EINTR, EPIPE, a signal), the hint speaks to that cause instead of
//! the check's general advice.

use crate::check::{CheckResult, Verdict};
use crate::target::ServerInstance;

/// How a server died: its status in words and its stderr excerpt.
#[derive(Clone, Debug)]
pub struct Death {
    /// `exit code 1`, `killed by signal 13 (SIGPIPE)`, ...
    pub status: String,
    /// The lines of stderr worth showing.
    pub stderr: Vec<String>,
}

impl Death {
    /// How `server`, which has exited, ended.
    pub fn of(server: &mut ServerInstance) -> Death {
        let (status, stderr) = exit_details(server);
        Death { status, stderr }
    }

    /// The hint for this death's cause, when the status or stderr names one.
    pub fn cause_hint(&self) -> Option<&'static str> {
        let text = self.stderr.join("\n");
        CAUSES
            .iter()
            .find(|(markers, _)| {
                markers
                    .iter()
                    .any(|m| text.contains(m) || self.status.contains(m))
            })
            .map(|(_, hint)| *hint)
    }

    /// Adds this death to `result`: the status and stderr as evidence, the
    /// hint for its cause, and a verdict that cannot pass: a check during
    /// which the server died fails, unless it already failed or could not run.
    pub fn record(&self, result: CheckResult) -> CheckResult {
        let mut result = result.evidence(format!("server exited: {}", self.status));
        for line in &self.stderr {
            result = result.evidence(format!("stderr: {line}"));
        }
        // A check that diagnosed the death itself (its summary says so)
        // keeps its own hint, which speaks to what it did to the server.
        let diagnosed = result.summary.contains("server exited");
        if let Some(hint) = self.cause_hint().filter(|_| !diagnosed) {
            result.hint = hint.to_string();
        }
        match result.verdict {
            Verdict::Pass | Verdict::Warn | Verdict::Skip => {
                let summary = format!("server exited during the check ({})", self.status);
                result.fail(summary)
            }
            Verdict::Fail | Verdict::Error => {
                if !result.summary.contains("server exited") {
                    result.summary = format!("server exited ({}); {}", self.status, result.summary);
                }
                result
            }
        }
    }
}

/// Causes recognised in stderr or the status, first match wins.
const CAUSES: &[(&[&str], &str)] = &[
    (
        &["RecursionError", "maximum recursion depth"],
        "The server died of unbounded recursion, most often a signal handler that runs again inside \
         itself (a SIGCHLD handler that prints, logs or blocks while more children exit). Keep the \
         handler minimal: call waitpid(-1, WNOHANG) in a loop until it returns 0, and nothing else.",
    ),
    (
        &["ChildProcessError", "No child processes", "ECHILD"],
        "wait()/waitpid() failed with ECHILD because no child was left to reap: a SIGCHLD handler \
         must call waitpid(-1, WNOHANG) in a loop and stop when it returns 0 or fails with ECHILD, \
         never a blocking os.wait() once per signal.",
    ),
    (
        &["InterruptedError", "Interrupted system call", "EINTR"],
        "A blocking call failed with EINTR when a signal arrived: retry accept (and every blocking \
         call: read, write, waitpid, poll) on EINTR, and install handlers with SA_RESTART.",
    ),
    (
        &["BrokenPipeError", "Broken pipe", "EPIPE", "SIGPIPE"],
        "Writing to a client that had gone away killed the server: ignore SIGPIPE (or send with \
         MSG_NOSIGNAL) and treat EPIPE and ECONNRESET from write as the end of that one connection.",
    ),
    (
        &["ConnectionResetError", "Connection reset by peer", "ECONNRESET"],
        "A client's reset killed the server: treat ECONNRESET from read or write as the end of that \
         one connection, not of the server.",
    ),
    (
        &["Too many open files", "EMFILE"],
        "The server ran out of descriptors (EMFILE): close every descriptor opened per connection, \
         in the parent its copy of the client socket right after fork.",
    ),
    (
        &["Resource temporarily unavailable", "EAGAIN", "fork failed", "BlockingIOError"],
        "fork failed (EAGAIN): the process limit was reached, usually because children are never \
         reaped or never exit. Reap every child and make each one exit when its connection ends.",
    ),
    (
        &["SIGSEGV", "Segmentation fault"],
        "The server crashed with a segmentation fault: run it under a debugger or a sanitizer with \
         the request shown in the evidence.",
    ),
    (
        &["IndexError", "ValueError", "KeyError", "panicked"],
        "The server crashed on a request it did not expect (see the stderr above): parse defensively, \
         answer 400 to what it cannot parse, and never let one connection's error end the server.",
    ),
];

/// How a dead server ended: its exit status in words, and the part of its
/// stderr worth showing.
pub fn exit_details(server: &mut ServerInstance) -> (String, Vec<String>) {
    let status = server
        .exit_status()
        .map(|s| crate::target::describe_status(&s))
        .unwrap_or_else(|| "unknown status".into());
    (status, stderr_excerpt(server.stderr_tail(80)))
}

/// The part of a dead server's stderr worth showing: from the first line
/// that names the failure (a panic, a traceback, an error) a few lines on,
/// then the last lines; a long backtrace would otherwise push the cause out.
pub fn stderr_excerpt(tail: Vec<String>) -> Vec<String> {
    const MARKERS: [&str; 7] = [
        "panicked",
        "Traceback",
        "error",
        "Error",
        "fatal",
        "Segmentation",
        "Abort",
    ];
    if tail.len() <= 12 {
        return tail;
    }
    let Some(start) = tail
        .iter()
        .position(|l| MARKERS.iter().any(|m| l.contains(m)))
    else {
        return tail[tail.len() - 10..].to_vec();
    };
    let head_end = (start + 6).min(tail.len());
    let mut lines = tail[start..head_end].to_vec();
    if head_end < tail.len() - 4 {
        lines.push(format!("... ({} lines)", tail.len() - 4 - head_end));
    }
    lines.extend_from_slice(&tail[(tail.len() - 4).max(head_end)..]);
    lines
}
