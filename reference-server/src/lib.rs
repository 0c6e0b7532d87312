//! A fork-per-connection HTTP/1.1 gateway server on raw syscalls, written to
//! be read, and the yardstick of the conformance harness.
//!
//! A reader who knows the classic Python forking server should find every
//! step in a file named for it:
//!
//! # Layout
//! - [`listener`]: `socket → setsockopt(SO_REUSEADDR) → bind → listen`.
//! - [`server`]: the accept loop, `fork` per connection, the child limit, shutdown.
//! - [`reaper`]: the SIGCHLD handler that reaps children, and the child table.
//! - [`signals`]: SIGPIPE, the shutdown signals through a self-pipe, the ignored ones.
//! - [`connection`]: one connection in a child: read, call the app, respond, repeat.
//! - [`parse`]: the request head (httparse tokenises; the rules are here).
//! - [`framing`]: Content-Length, Transfer-Encoding and the chunked decoder.
//! - [`grammar`]: the rules both build on (tchar, OWS, quoted-string, field-line),
//!   and [`Rejection`](grammar::Rejection) and [`Version`](grammar::Version).
//!   Imports run one way: `parse → framing → grammar`.
//! - [`response`]: the response head.
//! - [`gateway`]: the CGI/WSGI-style interface between server and [`app`].
//! - [`app`]: the conformance app every server under test must serve.
//! - [`faults`]: the classic defects, switched on with `--fault NAME`.
//! - [`config`], [`error`]: flags, environment, and what can go wrong at start.

pub mod app;
pub mod config;
pub mod connection;
pub mod error;
pub mod faults;
pub mod framing;
pub mod gateway;
pub mod grammar;
pub mod listener;
pub mod parse;
pub mod reaper;
pub mod response;
pub mod server;
pub mod signals;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// Exit status for a server that could not start (bad flags, port in use...).
pub const EXIT_STARTUP: u8 = 2;
/// Exit status for a server that failed while running.
pub const EXIT_RUNTIME: u8 = 1;

/// The whole `server` program, from its arguments (the first is the program
/// name). The harness calls this too, to run the built-in reference server.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match config::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_STARTUP)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let config = match cli.into_config(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("server: {error}");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    match server::run(&config, &app::ConformanceApp, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(
            error @ (error::ServerError::Bind { .. }
            | error::ServerError::Socket(_)
            | error::ServerError::SetOption { .. }
            | error::ServerError::Listen(_)),
        ) => {
            eprintln!("server: {error}");
            ExitCode::from(EXIT_STARTUP)
        }
        Err(error) => {
            eprintln!("server: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
