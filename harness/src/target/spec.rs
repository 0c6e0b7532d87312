//! What to launch: the server's program, its arguments with their
//! `{port}`, `{host}` and `{addr}` placeholders, its environment, and the
//! loopback address it must listen on.
//!
//! Placeholders are substituted only at start, once the port is known, so
//! that reports can show the command as the user wrote it.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::error::StartError;

/// Which port the server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// Ask the kernel for a free port (bind port 0, read it, close it).
    Auto,
    /// Always this port.
    Fixed(u16),
}

/// How to run the server under test.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// The server binary.
    pub program: OsString,
    /// Arguments; `{port}`, `{host}` and `{addr}` (= `host:port`) are substituted at start.
    pub args: Vec<String>,
    /// Extra environment, applied after `HOST` and `PORT` (so it can override them).
    pub env: Vec<(String, String)>,
    /// Working directory; `None` = the harness's own.
    pub cwd: Option<PathBuf>,
    /// Loopback address the server must listen on, e.g. `127.0.0.1` or `::1`.
    pub host: String,
    /// Which port to use.
    pub port: PortChoice,
    /// How long the server may take to listen on its port.
    pub startup_timeout: Duration,
    /// Teardown: time between `SIGTERM` and `SIGKILL`.
    pub grace: Duration,
}

impl TargetSpec {
    /// A spec with the defaults: no arguments, `127.0.0.1`, automatic port,
    /// 10 s startup timeout, 2 s grace.
    pub fn new(program: impl Into<OsString>) -> TargetSpec {
        TargetSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            host: "127.0.0.1".to_string(),
            port: PortChoice::Auto,
            startup_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(2),
        }
    }

    /// The command line, quoted like a shell would need it, for reports.
    /// Placeholders are shown unsubstituted.
    pub fn display_command(&self) -> String {
        let program = self.program.to_string_lossy();
        std::iter::once(program.as_ref())
            .chain(self.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command line with placeholders substituted for `addr`.
    pub(super) fn display_command_for(&self, addr: SocketAddr) -> String {
        let program = self.program.to_string_lossy();
        let args = substitute_args(&self.args, &self.host, addr);
        std::iter::once(program.into_owned())
            .chain(args)
            .map(|s| shell_quote(&s))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes `word` for a POSIX shell if it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-{}".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Substitutes `{port}`, `{host}` and `{addr}` in every argument.
pub(super) fn substitute_args(args: &[String], host: &str, addr: SocketAddr) -> Vec<String> {
    let port = addr.port().to_string();
    let addr = addr.to_string();
    args.iter()
        .map(|arg| {
            arg.replace("{addr}", &addr)
                .replace("{port}", &port)
                .replace("{host}", host)
        })
        .collect()
}

/// Parses `host` as an IP address and insists on loopback: the suite never
/// talks to anything but this machine.
pub(super) fn parse_loopback(host: &str) -> Result<IpAddr, StartError> {
    let ip: IpAddr = host.parse().map_err(|_| StartError::Host {
        host: host.to_string(),
        reason: "not an IP address (use 127.0.0.1 or ::1)".to_string(),
    })?;
    if !ip.is_loopback() {
        return Err(StartError::Host {
            host: host.to_string(),
            reason: "only loopback addresses are allowed".to_string(),
        });
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted_in_arguments() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let args: Vec<String> = ["--listen={addr}", "{host}", "-p", "{port}"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            substitute_args(&args, "127.0.0.1", addr),
            ["--listen=127.0.0.1:8080", "127.0.0.1", "-p", "8080"]
        );
        let v6: SocketAddr = "[::1]:9".parse().expect("addr");
        assert_eq!(
            substitute_args(&["{addr}".to_string()], "::1", v6),
            ["[::1]:9"]
        );
    }

    #[test]
    fn display_command_quotes_like_a_shell() {
        let mut spec = TargetSpec::new("./server");
        spec.args = vec![
            "--port".into(),
            "{port}".into(),
            "it's".into(),
            "".into(),
            "a b".into(),
        ];
        assert_eq!(
            spec.display_command(),
            r#"./server --port {port} 'it'\''s' '' 'a b'"#
        );
    }

    #[test]
    fn only_loopback_ip_addresses_are_accepted() {
        assert!(parse_loopback("127.0.0.1").is_ok());
        assert!(parse_loopback("::1").is_ok());
        for host in ["8.8.8.8", "localhost", ""] {
            assert!(
                matches!(parse_loopback(host), Err(StartError::Host { .. })),
                "{host:?}"
            );
        }
    }
}
