//! Launching the server under test, and always tearing it down again.
//!
//! A [`ServerInstance`] owns one run of the server binary that a
//! [`TargetSpec`] describes: it starts it in a process group of its own,
//! waits until a process of its tree listens on the port, and on drop stops
//! every process of that tree. When it cannot, a [`StartError`] says why.
//!
//! # Layout
//! - [`spec`]: what to launch: program, arguments and their placeholders,
//!   environment, loopback host and port.
//! - [`instance`]: the lifecycle: start, readiness, following a daemonizing
//!   launcher, signals, teardown without hitting a stranger.
//! - [`port`]: choosing a free port outside the ephemeral range, where no
//!   client connection can take it before the server binds.
//! - `tail`: the last lines of the server's stdout and stderr, bounded.
//! - [`error`]: why a start or a signal failed, an exit status in words, and
//!   the result of a check whose server would not start.

pub mod error;
pub mod instance;
pub mod port;
pub mod spec;
mod tail;

pub use error::{describe_status, start_failed, SignalError, StartError};
pub use instance::{ServerInstance, Termination};
pub use spec::{PortChoice, TargetSpec};
