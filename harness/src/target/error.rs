//! How starting or signalling the server can fail, in words a server's
//! author can act on, and the result a check reports when its server would
//! not start.
//!
//! Each variant of [`StartError`] is one way startup failed and carries what
//! a person needs to tell why: the command, the pid, the exit status, the
//! last stderr lines, who else listens on the port.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::check::CheckResult;

/// Describes an exit status for a person: `exit code 3`, `killed by signal 9 (SIGKILL)`.
pub fn describe_status(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig)
            .map(|s| s.as_str())
            .unwrap_or("unknown signal");
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        format!("killed by signal {sig} ({name}{core})")
    } else {
        format!("wait status {:#x}", status.into_raw())
    }
}

/// Why the server could not be started (or did not come up).
#[derive(Debug)]
pub enum StartError {
    /// `spec.host` is not a loopback IP address.
    Host {
        /// The host given.
        host: String,
        /// Why it was refused.
        reason: String,
    },
    /// Binding port 0 to pick a free port failed.
    PortPick(io::Error),
    /// The program could not be executed at all (not found, not executable, ...).
    Spawn {
        /// The command line.
        command: String,
        /// The error from `fork`/`exec`.
        source: io::Error,
    },
    /// The program exited before it accepted a connection.
    Exited {
        /// The command line.
        command: String,
        /// The pid it had (its group is gone).
        pid: i32,
        /// How it exited.
        status: ExitStatus,
        /// Its last stderr lines.
        stderr_tail: Vec<String>,
    },
    /// The port is listened on by a process this run did not start (a
    /// server left from an earlier run, say): found before the server was
    /// started, or while it started (then it was stopped).
    PortTaken {
        /// The command line.
        command: String,
        /// The address someone else listens on.
        addr: SocketAddr,
        /// Who listens there: `pid 123 (python3)`, or why it cannot be told.
        holders: Vec<String>,
    },
    /// The harness is stopping (it was interrupted): no server starts.
    Interrupted,
    /// The program kept running but did not accept a connection in time; it was killed.
    NotListening {
        /// The command line.
        command: String,
        /// The pid it had (its group is gone).
        pid: i32,
        /// Where we tried to connect.
        addr: SocketAddr,
        /// How long we tried.
        timeout: Duration,
        /// How the started process exited, if it was a launcher that exited
        /// with 0 leaving processes behind, none of which listened.
        launcher_exit: Option<ExitStatus>,
        /// Its last stderr lines.
        stderr_tail: Vec<String>,
    },
}

/// Writes a stderr tail under a start error, or says it was empty.
fn write_tail(f: &mut fmt::Formatter<'_>, tail: &[String]) -> fmt::Result {
    if tail.is_empty() {
        return writeln!(f, "  stderr: (empty)");
    }
    writeln!(f, "  last {} stderr line(s):", tail.len())?;
    for line in tail {
        writeln!(f, "    | {line}")?;
    }
    Ok(())
}

impl StartError {
    /// Whether the server exited at startup saying that its address was in
    /// use, in any of the words runtimes use for EADDRINUSE ("Address
    /// already in use" from strerror, Python, Java and Go, `EADDRINUSE` from
    /// Node and Erlang). Only ever a reason to try another port.
    pub fn says_address_in_use(&self) -> bool {
        match self {
            StartError::Exited { stderr_tail, .. } => stderr_tail.iter().any(|line| {
                let line = line.to_ascii_lowercase();
                line.contains("address already in use")
                    || line.contains("eaddrinuse")
                    || line.contains("address in use")
            }),
            _ => false,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Host { host, reason } => write!(f, "cannot use host {host:?}: {reason}"),
            StartError::PortPick(e) => {
                write!(f, "could not pick a free port (binding port 0 failed): {e}")
            }
            StartError::Spawn { command, source } => {
                writeln!(f, "could not start the server: {source}")?;
                write!(f, "  command: {command}")
            }
            StartError::Exited {
                command,
                pid,
                status,
                stderr_tail,
            } => {
                writeln!(f, "the server exited before accepting any connection")?;
                writeln!(f, "  command: {command}")?;
                writeln!(f, "  pid {pid}: {}", describe_status(status))?;
                write_tail(f, stderr_tail)
            }
            StartError::PortTaken {
                command,
                addr,
                holders,
            } => {
                writeln!(
                    f,
                    "{addr} is already listened on by a process this run did not start: {}",
                    holders.join(", ")
                )?;
                writeln!(f, "  command: {command}")?;
                write!(
                    f,
                    "  hint: stop what still listens on port {} (a server left from an earlier run?), or let the harness pick a free port (no --port)",
                    addr.port(),
                )
            }
            StartError::Interrupted => {
                write!(f, "the harness was interrupted; no server is started")
            }
            StartError::NotListening {
                command,
                pid,
                addr,
                timeout,
                launcher_exit,
                stderr_tail,
            } => {
                writeln!(
                    f,
                    "the server did not listen on {addr} within {:.1}s; it was stopped",
                    timeout.as_secs_f64()
                )?;
                writeln!(f, "  command: {command}")?;
                writeln!(f, "  pid: {pid}")?;
                if let Some(status) = launcher_exit {
                    writeln!(
                        f,
                        "  the started process exited ({}) leaving processes behind, none of which listened",
                        describe_status(status)
                    )?;
                }
                writeln!(
                    f,
                    "  hint: the harness passes the address as HOST/PORT in the environment and as \
                     {{host}}/{{port}}/{{addr}} in the arguments; does the server use one of them?"
                )?;
                write_tail(f, stderr_tail)
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::PortPick(source) | StartError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a signal could not be sent to the server.
#[derive(Debug)]
pub enum SignalError {
    /// The server was already torn down and reaped; its pid may belong to someone else now.
    TornDown {
        /// The pid it had.
        pid: i32,
    },
    /// `kill(2)` failed.
    Kill {
        /// The pid (negative: the group) signalled.
        target: i32,
        /// The signal.
        signal: Signal,
        /// The error.
        errno: Errno,
    },
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::TornDown { pid } => {
                write!(f, "server {pid} was already stopped; not signalling it")
            }
            SignalError::Kill {
                target,
                signal,
                errno,
            } => {
                write!(f, "kill({target}, {}): {}", signal.as_str(), errno.desc())
            }
        }
    }
}

/// The result of a check (or a case) whose server could not be started: an
/// error, with every line of `error` as evidence.
pub fn start_failed(result: CheckResult, error: &StartError) -> CheckResult {
    let mut result = result.error("the server could not be started for this check");
    for line in error.to_string().lines() {
        result = result.evidence(line.to_string());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;

    #[test]
    fn describe_status_names_codes_and_signals() {
        assert_eq!(
            describe_status(&ExitStatus::from_raw(3 << 8)),
            "exit code 3"
        );
        assert_eq!(
            describe_status(&ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn a_server_that_did_not_start_is_an_error_with_each_line_as_evidence() {
        let error = StartError::Spawn {
            command: "./server --port 9".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let result = start_failed(
            CheckResult::new("group/name", "requirement", "hint"),
            &error,
        );
        assert_eq!(result.verdict, Verdict::Error);
        assert_eq!(
            result.summary,
            "the server could not be started for this check"
        );
        assert_eq!(result.evidence.len(), 2, "{:?}", result.evidence);
        assert!(result.evidence[1].contains("command: ./server --port 9"));
    }
}
