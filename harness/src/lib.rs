//! A conformance suite for HTTP/1.1 gateway servers. It launches any server
//! binary and reports, with evidence and a hint for each failure, whether it
//! serves clients concurrently, leaves no zombies, leaks no descriptors,
//! survives signal storms, and restarts and stops cleanly.
//!
//! # Layout
//! - [`cli`]: the command line; [`exit`]: the exit codes.
//! - [`target`]: the target spec, launching the server in its own process
//!   group, readiness, its output tail, teardown, and why a start failed.
//! - [`tree`]: every process a server starts, found and stopped wherever it went.
//! - [`interrupt`]: a stop signal never leaves a server behind nor loses results.
//! - [`procfs`]: children, zombies, threads, descriptors and sockets from /proc.
//! - [`timed`]: one request with its moments; "answered" means its head arrived.
//! - [`client`]: the harness's own small HTTP/1.1 client.
//! - [`budget`]: the response bytes held at once, bounded across all connections.
//! - [`death`]: what a dead server's status and stderr say, and the hint for it.
//! - [`census`]: the process tree's numbers, settled, persistent and watched.
//! - [`model`]: the process model, judged by what changes with held connections.
//! - [`probe`]: which conformance-app routes keep their contract.
//! - [`habits`]: what the server does with every request, learned once per run.
//! - [`checks`]: the process checks, by group.
//! - [`cases`]: the HTTP/1.1 and gateway cases from `cases/`, sent three ways.
//! - [`fuzz`]: `harness fuzz`, property-based request fuzzing with proptest.
//! - [`check`]: verdicts, results and totals; [`select`]: `--only`/`--skip`.
//! - [`baseline`]: known-failure lists (`--baseline`, `--write-baseline`).
//! - [`files`]: the user's files checked before use: bounded reads of regular
//!   files only, output paths writable before the run.
//! - [`runner`]: the one executor: learns the server, then runs every check
//!   and group of cases in parallel, each on servers of its own.
//! - [`slot`]: a server slot, started on first use and again when it died.
//! - [`poll`]: polling until a deadline, jobs side by side, a work queue.
//! - [`report`]: human, JSON and JUnit reporters over one event stream, and
//!   `harness list`.
//! - `test_support` (unit tests only): running one test in a child process.

pub mod baseline;
pub mod budget;
pub mod cases;
pub mod census;
pub mod check;
pub mod checks;
pub mod cli;
pub mod client;
pub mod death;
pub mod exit;
pub mod files;
pub mod fuzz;
pub mod habits;
pub mod interrupt;
pub mod model;
pub mod poll;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod select;
pub mod slot;
pub mod target;
#[cfg(test)]
mod test_support;
pub mod timed;
pub mod tree;
