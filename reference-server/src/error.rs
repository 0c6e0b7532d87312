//! Errors that stop the server process itself. Errors on one connection never
//! reach here: the child answers with a status code and exits on its own.

use std::fmt;
use std::net::SocketAddr;

use nix::errno::Errno;

/// Why the server could not start or had to stop.
#[derive(Debug)]
pub enum ServerError {
    /// A flag or environment variable made no sense.
    Config {
        /// What was wrong, for the user.
        what: String,
    },
    /// socket(2) failed.
    Socket(Errno),
    /// setsockopt(2) failed; `option` names which.
    SetOption {
        /// The option being set.
        option: &'static str,
        /// The error.
        errno: Errno,
    },
    /// bind(2) failed, most often because the address is in use.
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The error.
        errno: Errno,
    },
    /// listen(2) failed.
    Listen(Errno),
    /// getsockname(2) failed after bind.
    LocalAddr(Errno),
    /// Installing a signal handler or changing the signal mask failed.
    Signal {
        /// Which signal or operation.
        what: &'static str,
        /// The error.
        errno: Errno,
    },
    /// poll(2) on the listener failed (EINTR only with the `no-eintr-retry` fault).
    Poll(Errno),
    /// accept(2) failed with an error that is not per-connection.
    Accept(Errno),
    /// fork(2) failed.
    Fork(Errno),
    /// Writing the `listening on` line failed.
    Announce(std::io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config { what } => write!(f, "{what}"),
            ServerError::Socket(e) => write!(f, "socket: {}", e.desc()),
            ServerError::SetOption { option, errno } => {
                write!(f, "setsockopt({option}): {}", errno.desc())
            }
            ServerError::Bind { addr, errno } => write!(f, "bind {addr}: {}", errno.desc()),
            ServerError::Listen(e) => write!(f, "listen: {}", e.desc()),
            ServerError::LocalAddr(e) => write!(f, "getsockname: {}", e.desc()),
            ServerError::Signal { what, errno } => write!(f, "{what}: {}", errno.desc()),
            ServerError::Poll(e) => write!(f, "poll: {}", e.desc()),
            ServerError::Accept(e) => write!(f, "accept: {}", e.desc()),
            ServerError::Fork(e) => write!(f, "fork: {}", e.desc()),
            ServerError::Announce(e) => write!(f, "writing the listening line to stdout: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}
