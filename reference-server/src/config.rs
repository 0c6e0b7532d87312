//! Command line and environment: everything the server can be told at start.
//!
//! The address comes from `--listen HOST:PORT`, or else from the `HOST` and
//! `PORT` environment variables (defaults 127.0.0.1 and 8888), which is how
//! the harness and most deployment tools hand a port to a server.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;

use crate::error::ServerError;
use crate::faults::{Fault, Faults};

/// Default host when neither `--listen` nor `HOST` is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default port when neither `--listen` nor `PORT` is given: the classic 8888.
pub const DEFAULT_PORT: u16 = 8888;

/// A fork-per-connection HTTP/1.1 gateway server on raw syscalls, written to be
/// read, that serves the conformance app and reproduces classic bugs on demand.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
pub struct Cli {
    /// Address to listen on, HOST:PORT ([::1]:PORT for IPv6). Port 0 picks a free port.
    /// Without it, HOST and PORT come from the environment (defaults 127.0.0.1 and 8888).
    #[allow(rustdoc::broken_intra_doc_links)] // `[::1]` is an address, not a link
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// Length of the kernel's queue of connections waiting for accept().
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub backlog: i32,

    /// Children allowed at once; beyond it the parent answers 503 itself.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_children: u32,

    /// How long shutdown waits for children before killing them (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,

    /// How long a client may take to send a request (e.g. 10s, 500ms); then 408 and close.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body: u64,

    /// Reproduce a classic defect (repeatable).
    #[arg(long = "fault", value_enum, value_name = "NAME")]
    pub faults: Vec<Fault>,
}

/// The resolved settings the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to bind.
    pub addr: SocketAddr,
    /// listen(2) backlog.
    pub backlog: i32,
    /// Most children alive at once.
    pub max_children: usize,
    /// Shutdown grace period for children.
    pub grace: Duration,
    /// Time a client has to deliver one request (head and body).
    pub read_timeout: Duration,
    /// Largest accepted request body.
    pub max_body: u64,
    /// Defects switched on.
    pub faults: Faults,
}

impl Cli {
    /// Resolves the address and turns the flags into a [`Config`].
    /// `env` looks up an environment variable (a parameter so tests need not
    /// touch the process environment).
    pub fn into_config(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ServerError> {
        let addr = match &self.listen {
            Some(listen) => resolve(listen)?,
            None => {
                let host = env("HOST").unwrap_or_else(|| DEFAULT_HOST.to_string());
                let port = match env("PORT") {
                    None => DEFAULT_PORT,
                    Some(text) => text
                        .trim()
                        .parse::<u16>()
                        .map_err(|_| ServerError::Config {
                            what: format!("PORT={text:?} is not a port number (0-65535)"),
                        })?,
                };
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host
                };
                resolve(&format!("{host}:{port}"))?
            }
        };
        Ok(Config {
            addr,
            backlog: self.backlog,
            max_children: self.max_children as usize,
            grace: self.grace,
            read_timeout: self.read_timeout,
            max_body: self.max_body,
            faults: self.faults.into_iter().collect(),
        })
    }
}

/// Turns `HOST:PORT` into one socket address (the first the resolver gives).
fn resolve(listen: &str) -> Result<SocketAddr, ServerError> {
    let bad = |why: &str| ServerError::Config {
        what: format!(
            "--listen {listen:?}: {why} (expected HOST:PORT, e.g. 127.0.0.1:8888 or [::1]:0)"
        ),
    };
    if listen.rsplit_once(':').is_none() {
        return Err(bad("missing port"));
    }
    let mut addrs = listen.to_socket_addrs().map_err(|e| bad(&e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| bad("the host resolves to no address"))
}

/// Parses `5s`, `500ms`, `1.5s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 5s or 500ms)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is out of range (0 to 24 hours)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ServerError> {
        let cli = Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .map_err(|e| ServerError::Config {
                what: e.to_string(),
            })?;
        cli.into_config(|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[rstest]
    #[case(&[], &[], "127.0.0.1:8888")]
    #[case(&[], &[("PORT", "9000")], "127.0.0.1:9000")]
    #[case(&[], &[("HOST", "::1"), ("PORT", "0")], "[::1]:0")]
    #[case(&["--listen", "127.0.0.1:0"], &[("PORT", "9000")], "127.0.0.1:0")]
    #[case(&["--listen", "[::1]:7000"], &[], "[::1]:7000")]
    fn address_comes_from_listen_then_environment(
        #[case] args: &[&str],
        #[case] env: &[(&str, &str)],
        #[case] expected: &str,
    ) {
        assert_eq!(config(args, env).unwrap().addr.to_string(), expected);
    }

    #[rstest]
    #[case(&["--listen", "127.0.0.1"], &[])]
    #[case(&["--listen", "127.0.0.1:99999"], &[])]
    #[case(&[], &[("PORT", "eighty")])]
    #[case(&["--backlog", "0"], &[])]
    #[case(&["--fault", "no-such-fault"], &[])]
    #[case(&["--grace", "5 parsecs"], &[])]
    fn bad_settings_are_clear_errors(#[case] args: &[&str], #[case] env: &[(&str, &str)]) {
        assert!(config(args, env).is_err());
    }

    #[rstest]
    #[case("5s", 5000)]
    #[case("500ms", 500)]
    #[case("1.5s", 1500)]
    #[case("2", 2000)]
    #[case("1m", 60000)]
    fn durations_parse(#[case] text: &str, #[case] ms: u128) {
        assert_eq!(parse_duration(text).unwrap().as_millis(), ms);
    }

    #[test]
    fn faults_are_collected() {
        let c = config(&["--fault", "iterative", "--fault", "naive-parse"], &[]).unwrap();
        assert!(c.faults.has(Fault::Iterative) && c.faults.has(Fault::NaiveParse));
    }
}
