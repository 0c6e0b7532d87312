//! Teaching faults: each one switches on exactly one classic defect of
//! hand-written forking servers, so that a learner can watch it happen and the
//! harness can prove that its checks catch it.
//!
//! The clean code paths live where they belong (`server.rs`, `reaper.rs`,
//! `connection.rs`, ...). Each asks [`Faults`] one question, named for the
//! step it decides (`faults.closes_client_in_parent()`,
//! `faults.reaps_children()`), at the one place where the defect would be, so
//! reading the `if` shows both the bug and the fix. The questions are below,
//! one per decision, each naming the fault that changes its answer.

use std::fmt;

/// One classic defect. The doc comment of each variant is the line that
/// `server --help` prints for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// No fork: the parent serves one connection at a time.
    Iterative,
    /// SIGCHLD is never handled, so every finished child stays a zombie.
    NoReap,
    /// The SIGCHLD handler reaps one child per signal; signals coalesce, zombies pile up.
    SingleWait,
    /// The parent keeps its copy of every client socket: clients never see EOF, fds run out.
    KeepClientFd,
    /// The child keeps the listening socket open while it serves.
    KeepListener,
    /// SIGCHLD is installed without SA_RESTART and EINTR from accept is fatal.
    NoEintrRetry,
    /// SO_REUSEADDR is not set: a quick restart fails with "address in use".
    NoReuseaddr,
    /// SIGPIPE keeps its default action and writes go unchecked (with `iterative`, kills the server).
    Sigpipe,
    /// The parent opens a file for every connection and never closes it.
    LeakFd,
    /// The request is read with a single read of 1024 bytes.
    SingleRead,
    /// The request line is split on whitespace, panicking on fewer than three parts.
    NaiveParse,
    /// The child does not exit after serving: it falls back into the accept loop.
    NoExit,
    /// SIGTERM (and every other signal) keeps its default action: the parent dies at once, its children live on.
    OrphanChildren,
    /// listen(1), as in many tutorials: a burst of connections overflows the accept queue.
    TinyBacklog,
}

impl Fault {
    /// Every fault, in the order `--help` lists them.
    pub const ALL: [Fault; 14] = [
        Fault::Iterative,
        Fault::NoReap,
        Fault::SingleWait,
        Fault::KeepClientFd,
        Fault::KeepListener,
        Fault::NoEintrRetry,
        Fault::NoReuseaddr,
        Fault::Sigpipe,
        Fault::LeakFd,
        Fault::SingleRead,
        Fault::NaiveParse,
        Fault::NoExit,
        Fault::OrphanChildren,
        Fault::TinyBacklog,
    ];

    /// The name used on the command line (`--fault NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::Iterative => "iterative",
            Fault::NoReap => "no-reap",
            Fault::SingleWait => "single-wait",
            Fault::KeepClientFd => "keep-client-fd",
            Fault::KeepListener => "keep-listener",
            Fault::NoEintrRetry => "no-eintr-retry",
            Fault::NoReuseaddr => "no-reuseaddr",
            Fault::Sigpipe => "sigpipe",
            Fault::LeakFd => "leak-fd",
            Fault::SingleRead => "single-read",
            Fault::NaiveParse => "naive-parse",
            Fault::NoExit => "no-exit",
            Fault::OrphanChildren => "orphan-children",
            Fault::TinyBacklog => "tiny-backlog",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of faults switched on for this run. Empty for the clean server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults(u16);

impl Faults {
    /// No fault: the server as it should be written.
    pub const NONE: Faults = Faults(0);

    /// Whether `fault` is switched on.
    pub fn has(self, fault: Fault) -> bool {
        self.0 & fault.bit() != 0
    }

    /// Whether no fault is switched on.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The faults switched on, in `Fault::ALL` order.
    pub fn iter(self) -> impl Iterator<Item = Fault> {
        Fault::ALL.into_iter().filter(move |f| self.has(*f))
    }
}

/// The decisions the faults make, one per step of the server. Most are named
/// for what the clean server does, and are true without faults; the two
/// faults that only add a step (`leak-fd`, `naive-parse`) are named for it.
impl Faults {
    /// Whether SIGPIPE is ignored, so that a write to a vanished client fails
    /// with EPIPE instead of killing the process. False under `sigpipe`.
    pub fn ignores_sigpipe(self) -> bool {
        !self.has(Fault::Sigpipe)
    }

    /// Whether a failed write ends the connection. False under `sigpipe`,
    /// where the error goes unchecked and the next write raises SIGPIPE.
    pub fn checks_writes(self) -> bool {
        !self.has(Fault::Sigpipe)
    }

    /// Whether listen(2) gets the configured backlog. False under
    /// `tiny-backlog`, which listens with a backlog of 1.
    pub fn honours_backlog(self) -> bool {
        !self.has(Fault::TinyBacklog)
    }

    /// Whether SO_REUSEADDR is set before bind. False under `no-reuseaddr`.
    pub fn reuses_address(self) -> bool {
        !self.has(Fault::NoReuseaddr)
    }

    /// Whether each connection gets a forked child. False under `iterative`,
    /// where the parent serves one connection at a time.
    pub fn forks_per_connection(self) -> bool {
        !self.has(Fault::Iterative)
    }

    /// Whether a SIGCHLD handler reaps children at all. False under `no-reap`.
    pub fn reaps_children(self) -> bool {
        !self.has(Fault::NoReap)
    }

    /// Whether the SIGCHLD handler loops over waitpid until nothing is left,
    /// since signals coalesce. False under `single-wait` (one per signal).
    pub fn reaps_in_a_loop(self) -> bool {
        !self.has(Fault::SingleWait)
    }

    /// Whether SIGCHLD is installed with SA_RESTART, so that the kernel
    /// restarts the syscalls it interrupts. False under `no-eintr-retry`.
    pub fn restarts_interrupted_syscalls(self) -> bool {
        !self.has(Fault::NoEintrRetry)
    }

    /// Whether poll and accept are retried when they fail with EINTR. False
    /// under `no-eintr-retry`, where EINTR is fatal.
    pub fn retries_eintr(self) -> bool {
        !self.has(Fault::NoEintrRetry)
    }

    /// Whether the shutdown signals are caught for a graceful shutdown (and the
    /// stray ones ignored). False under `orphan-children`: the parent dies at once, its children live on.
    pub fn handles_shutdown_signals(self) -> bool {
        !self.has(Fault::OrphanChildren)
    }

    /// Whether the parent opens a file for each connection and never closes
    /// it. True only under `leak-fd`.
    pub fn leaks_a_file_per_connection(self) -> bool {
        self.has(Fault::LeakFd)
    }

    /// Whether the parent closes its copy of the client socket after fork.
    /// False under `keep-client-fd`.
    pub fn closes_client_in_parent(self) -> bool {
        !self.has(Fault::KeepClientFd)
    }

    /// Whether the child closes its copy of the listening socket. False under
    /// `keep-listener`.
    pub fn closes_listener_in_child(self) -> bool {
        !self.has(Fault::KeepListener)
    }

    /// Whether the child exits once it has served its connection. False under
    /// `no-exit`, where it falls back into the accept loop.
    pub fn exits_after_serving(self) -> bool {
        !self.has(Fault::NoExit)
    }

    /// Whether reads go on until the request is complete. False under
    /// `single-read`: one read of 1024 bytes is taken as the whole request.
    pub fn reads_until_complete(self) -> bool {
        !self.has(Fault::SingleRead)
    }

    /// Whether the request line is first split on whitespace, panicking on
    /// fewer than three parts. True only under `naive-parse`.
    pub fn parses_request_line_naively(self) -> bool {
        self.has(Fault::NaiveParse)
    }
}

impl FromIterator<Fault> for Faults {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        Faults(iter.into_iter().fold(0, |bits, f| bits | f.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_fault_round_trips_through_its_cli_name() {
        for fault in Fault::ALL {
            assert_eq!(Fault::from_str(fault.name(), false), Ok(fault));
        }
    }

    #[test]
    fn a_set_holds_exactly_what_was_put_in() {
        let set: Faults = [Fault::Iterative, Fault::NaiveParse].into_iter().collect();
        assert!(set.has(Fault::Iterative) && set.has(Fault::NaiveParse));
        assert!(!set.has(Fault::NoReap));
        assert_eq!(set.iter().count(), 2);
        assert!(Faults::NONE.is_empty());
    }

    /// Each decision changes under exactly its own fault and no other, so
    /// that `--fault X` reproduces X and nothing else.
    #[test]
    fn each_decision_answers_to_exactly_its_fault() {
        type Decision = fn(Faults) -> bool;
        let decisions: [(&str, Decision, Fault); 16] = [
            ("ignores_sigpipe", Faults::ignores_sigpipe, Fault::Sigpipe),
            ("checks_writes", Faults::checks_writes, Fault::Sigpipe),
            (
                "honours_backlog",
                Faults::honours_backlog,
                Fault::TinyBacklog,
            ),
            ("reuses_address", Faults::reuses_address, Fault::NoReuseaddr),
            (
                "forks_per_connection",
                Faults::forks_per_connection,
                Fault::Iterative,
            ),
            ("reaps_children", Faults::reaps_children, Fault::NoReap),
            (
                "reaps_in_a_loop",
                Faults::reaps_in_a_loop,
                Fault::SingleWait,
            ),
            (
                "restarts_interrupted_syscalls",
                Faults::restarts_interrupted_syscalls,
                Fault::NoEintrRetry,
            ),
            ("retries_eintr", Faults::retries_eintr, Fault::NoEintrRetry),
            (
                "handles_shutdown_signals",
                Faults::handles_shutdown_signals,
                Fault::OrphanChildren,
            ),
            (
                "leaks_a_file_per_connection",
                Faults::leaks_a_file_per_connection,
                Fault::LeakFd,
            ),
            (
                "closes_client_in_parent",
                Faults::closes_client_in_parent,
                Fault::KeepClientFd,
            ),
            (
                "closes_listener_in_child",
                Faults::closes_listener_in_child,
                Fault::KeepListener,
            ),
            (
                "exits_after_serving",
                Faults::exits_after_serving,
                Fault::NoExit,
            ),
            (
                "reads_until_complete",
                Faults::reads_until_complete,
                Fault::SingleRead,
            ),
            (
                "parses_request_line_naively",
                Faults::parses_request_line_naively,
                Fault::NaiveParse,
            ),
        ];
        for (name, decide, own) in decisions {
            let clean = decide(Faults::NONE);
            for fault in Fault::ALL {
                let answer = decide([fault].into_iter().collect());
                assert_eq!(answer != clean, fault == own, "{name} under {fault}");
            }
        }
    }
}
