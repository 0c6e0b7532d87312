//! Teaching faults: each one switches on exactly one classic defect of
//! hand-written forking servers, so that a learner can watch it happen and the
//! harness can prove that its checks catch it.
//!
//! The clean code paths live where they belong (`server.rs`, `reaper.rs`,
//! `connection.rs`, ...); each of them asks [`Faults::has`] at the one place
//! where the defect would be, so reading the `if` shows both the bug and the fix.

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
    /// SIGTERM keeps its default action: the parent dies at once, its children live on.
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
}
