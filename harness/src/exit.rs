//! Named exit codes of the `harness` binary.
//!
//! CI scripts branch on these, so they are part of the interface: a failing
//! server (1) must be distinguishable from a harness that could not even
//! start it (2).

/// Every selected check passed, warned (without `--strict`) or was skipped.
pub const SUCCESS: u8 = 0;

/// At least one check failed or hit a harness error (or, under `--strict`,
/// warned).
pub const CHECKS_FAILED: u8 = 1;

/// Bad command-line usage, unreadable input (case files, config), or a
/// server that could not be started or never began listening. No verdict
/// about the server was reached.
pub const USAGE_OR_TARGET: u8 = 2;

/// The run was interrupted by SIGINT (Ctrl-C): 128 + signal number 2, as
/// shells report it. Every other stop signal the harness catches (SIGTERM,
/// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE) ends it with 128 +
/// its number too, after the JSON and JUnit reports were written.
pub const INTERRUPTED: u8 = 130;

/// The harness itself panicked (a bug of ours, reported on stderr); every
/// server was stopped before it exited. Rust's own code for a panic.
pub const PANICKED: u8 = 101;
