//! The accept loop: `accept → fork → close`, and shutdown.
//!
//! ```text
//! socket → setsockopt → bind → listen        (listener.rs)
//! loop:
//!     accept (non-blocking)                  retry on EINTR
//!     none queued: poll(listener, shutdown pipe), retry on EINTR
//!     fork
//!       child:  close listener, serve the connection, _exit
//!       parent: close the client socket, record the child
//! SIGCHLD → waitpid(-1, WNOHANG) in a loop   (reaper.rs)
//! SIGTERM → close listener, wait, kill, reap (here)
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recv, send, shutdown, MsgFlags, Shutdown};
use nix::unistd::{close, fork, ForkResult};

use crate::config::Config;
use crate::connection;
use crate::error::ServerError;
use crate::faults::Fault;
use crate::gateway::App;
use crate::listener::Listener;
use crate::reaper::{self, Reaping};
use crate::signals::{self, ShutdownPipe};

/// Runs the server until a shutdown signal (SIGTERM, SIGINT, SIGHUP, SIGQUIT). `announce` receives the one
/// `listening on http://HOST:PORT` line once the socket listens.
pub fn run(config: &Config, app: &dyn App, announce: &mut dyn Write) -> Result<(), ServerError> {
    let faults = config.faults;
    // A client that vanishes mid-response must cost us an EPIPE, not the
    // process (signals.rs says why SIGPIPE is set explicitly either way).
    if faults.ignores_sigpipe() {
        signals::ignore_sigpipe()?;
    } else {
        signals::default_sigpipe()?;
    }

    // socket → setsockopt(SO_REUSEADDR) → bind → listen.
    let backlog = if faults.honours_backlog() {
        config.backlog
    } else {
        // The `tiny-backlog` fault: the listen(1) of many tutorials.
        1
    };
    let listener = Listener::bind(config.addr, backlog, faults.reuses_address())?;
    listener.set_client_options(config.read_timeout)?;
    let local = listener.local_addr();

    // The child table, and the SIGCHLD handler that empties it. A server that
    // never forks (`iterative`) has no children to record.
    reaper::init(if faults.forks_per_connection() {
        config.max_children
    } else {
        0
    });
    // SIGCHLD → waitpid(-1, WNOHANG) in a loop, because signals of one kind
    // coalesce (reaper.rs); installed with SA_RESTART so that it does not
    // turn every blocking syscall into an EINTR.
    let reaping = if !faults.reaps_children() {
        Reaping::Never
    } else if !faults.reaps_in_a_loop() {
        Reaping::Once
    } else {
        Reaping::Loop
    };
    reaper::install(reaping, faults.restarts_interrupted_syscalls())?;
    let shutdown_pipe = ShutdownPipe::install(faults.handles_shutdown_signals())?;

    if !faults.is_empty() {
        let names: Vec<&str> = faults.iter().map(Fault::name).collect();
        eprintln!("server: teaching faults on: {}", names.join(", "));
    }
    writeln!(announce, "listening on http://{local}").map_err(ServerError::Announce)?;
    announce.flush().map_err(ServerError::Announce)?;

    // httparse picks its SIMD code on first use, with CPUID, which is slow
    // in a virtual machine. Do it once here, so every child inherits the
    // answer instead of asking again.
    let _ = crate::parse::parse_head(b"GET / HTTP/1.1\r\nHost: warm-up\r\n\r\n", 0);

    let server = Server {
        config,
        app,
        listener: &listener,
        shutdown_pipe: &shutdown_pipe,
        local,
    };
    let result = server.accept_loop();

    // Stop accepting: new connections are refused from here on.
    drop(listener);
    stop_children(config.grace);
    result
}

/// What the accept loop needs at hand.
struct Server<'a> {
    config: &'a Config,
    app: &'a dyn App,
    listener: &'a Listener,
    shutdown_pipe: &'a ShutdownPipe,
    local: SocketAddr,
}

impl Server<'_> {
    fn accept_loop(&self) -> Result<(), ServerError> {
        let faults = self.config.faults;
        let mut last_complaint: Option<Instant> = None;
        while !signals::shutdown_requested() {
            // The listener is non-blocking: take a connection if one is
            // queued. Under load one always is, and poll is never called.
            if let Some((client, peer)) = self.accept_one(&mut last_complaint)? {
                self.dispatch(client, peer)?;
                continue;
            }
            // Nothing queued: wait for a connection or a shutdown request.
            // poll is never restarted by the kernel, so EINTR is normal
            // here: retry.
            let mut fds = [
                PollFd::new(borrow(self.listener.raw_fd()), PollFlags::POLLIN),
                PollFd::new(borrow(self.shutdown_pipe.raw_fd()), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) if faults.retries_eintr() => continue,
                Err(Errno::EINTR) => return Err(ServerError::Poll(Errno::EINTR)),
                Err(errno) => return Err(ServerError::Poll(errno)),
            }
        }
        Ok(())
    }

    /// Accepts one queued connection; `None` when the queue is empty.
    fn accept_one(
        &self,
        last_complaint: &mut Option<Instant>,
    ) -> Result<Option<(OwnedFd, SocketAddr)>, ServerError> {
        let faults = self.config.faults;
        loop {
            return match self.listener.accept() {
                Ok(accepted) => Ok(Some(accepted)),
                // A signal arrived during accept: try again (the classic bug is
                // to treat this as fatal).
                Err(Errno::EINTR) if faults.retries_eintr() => continue,
                Err(Errno::EINTR) => Err(ServerError::Accept(Errno::EINTR)),
                // Nothing queued any more.
                Err(Errno::EAGAIN) => Ok(None),
                // The client gave up before we accepted; not our problem.
                Err(Errno::ECONNABORTED | Errno::EPROTO) => continue,
                // Out of descriptors or memory: the connection stays queued.
                // Complain once a second and back off instead of spinning.
                Err(errno @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)) => {
                    if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                        eprintln!("server: accept: {} (backing off)", errno.desc());
                        *last_complaint = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    Ok(None)
                }
                Err(errno) => Err(ServerError::Accept(errno)),
            };
        }
    }

    /// Hands a new connection to a child, or serves it here under `iterative`.
    fn dispatch(&self, client: OwnedFd, peer: SocketAddr) -> Result<(), ServerError> {
        let faults = self.config.faults;
        if faults.leaks_a_file_per_connection() {
            // The `leak-fd` bug: a file opened per connection and never closed.
            if let Ok(file) = std::fs::File::open("/dev/null") {
                std::mem::forget(file);
            }
        }
        if !faults.forks_per_connection() {
            // The `iterative` bug: everyone else waits in the backlog meanwhile.
            connection::serve(client, self.config, self.local, peer, self.app);
        } else if reaper::live() >= self.config.max_children {
            refuse_busy(client);
        } else {
            self.fork_child(client, peer)?;
        }
        Ok(())
    }

    /// Forks a child to serve `client`.
    fn fork_child(&self, client: OwnedFd, peer: SocketAddr) -> Result<(), ServerError> {
        let faults = self.config.faults;
        let mask = signals::block_sigchld()?;
        // SAFETY: the server process is single-threaded, so the child gets a
        // consistent copy of memory (no lock held by another thread) and may
        // run ordinary code before it exits.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { child }) => {
                // Recorded with SIGCHLD still blocked, so the handler cannot
                // reap the child before it is in the table.
                reaper::record(child);
                signals::restore(&mask)?;
                if faults.closes_client_in_parent() {
                    // The child has its own copy; ours must go, or the
                    // connection outlives the child that serves it.
                    drop(client);
                } else {
                    // The `keep-client-fd` bug: our copy keeps the connection
                    // open after the child closes its own, so the client
                    // never sees EOF and the parent runs out of descriptors.
                    std::mem::forget(client);
                }
                Ok(())
            }
            Ok(ForkResult::Child) => {
                if !faults.exits_after_serving() {
                    signals::default_in_child(&mask);
                    // The `no-exit` bug: no exit after serving. The child
                    // returns into its copy of the accept loop and becomes a
                    // second acceptor; every connection leaves one more process.
                    connection::serve(client, self.config, self.local, peer, self.app);
                    return Ok(());
                }
                if faults.closes_listener_in_child() {
                    // The child never accepts; holding the listener would keep
                    // the port open after the parent dies.
                    let _ = close(self.listener.raw_fd());
                }
                let _ = close(self.shutdown_pipe.raw_fd());
                signals::reset_in_child(&mask);
                // A panic must end this child, never unwind back into the
                // parent's accept loop that the child has a copy of.
                let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    connection::serve(client, self.config, self.local, peer, self.app);
                }));
                let code = if served.is_ok() { 0 } else { 101 };
                // SAFETY: _exit ends the child at once, without running exit
                // handlers or flushing stdio buffers copied from the parent.
                unsafe { libc::_exit(code) }
            }
            Err(errno) => {
                signals::restore(&mask)?;
                eprintln!("server: fork: {}", errno.desc());
                refuse_busy(client);
                Ok(())
            }
        }
    }
}

/// Answers 503 from the parent when no child can be forked. Never blocks:
/// the parent must get back to accept.
fn refuse_busy(client: OwnedFd) {
    let fd = client.as_raw_fd();
    // Drain what the client already sent, so that closing does not reset the
    // connection before it reads the answer.
    let mut scratch = [0u8; 8192];
    let _ = recv(fd, &mut scratch, MsgFlags::MSG_DONTWAIT);
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 19\r\nRetry-After: 1\r\nConnection: close\r\n\r\nserver at capacity\n";
    let _ = send(fd, answer, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL);
    let _ = shutdown(fd, Shutdown::Write);
}

/// Shutdown: ask every child to finish (SIGTERM: an idle connection closes
/// at once, a request in progress is answered with `Connection: close`),
/// wait up to `grace` for them, then SIGKILL and reap the stragglers, so that
/// no child outlives the server.
fn stop_children(grace: Duration) {
    let deadline = Instant::now() + grace;
    for pid in reaper::pids() {
        let _ = kill(pid, Signal::SIGTERM);
    }
    while reaper::live() > 0 && Instant::now() < deadline {
        // Reap here too: under `no-reap` nobody else will.
        reaper::reap_exited();
        std::thread::sleep(Duration::from_millis(5));
    }
    for pid in reaper::pids() {
        let _ = kill(pid, Signal::SIGKILL);
        reaper::reap_blocking(pid);
    }
}

/// A descriptor borrowed for one poll call.
fn borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the listener and the pipe outlive every poll call in the loop.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
