//! The command line, all in one place.
//!
//! ```text
//! harness run  [OPTIONS] [--] [SERVER [ARGS...]]   run the checks
//! harness list                                     every check id and its requirement
//! harness fuzz [OPTIONS] [--] [SERVER [ARGS...]]   fuzz the request parsing
//! ```
//! Without SERVER, `run` checks the reference server built into the harness.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::target::{PortChoice, TargetSpec};

/// The hidden first argument that makes the harness binary run the built-in
/// reference server instead (see `main.rs`).
pub const REFERENCE_SERVER: &str = "__reference-server";

/// Conformance suite for HTTP/1.1 gateway servers: concurrency, zombies,
/// descriptor leaks, signals and lifecycle, with evidence and a hint for
/// every failure.
#[derive(Debug, Parser)]
#[command(name = "harness", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the checks against a server (the built-in reference server if none is given).
    Run(Box<RunArgs>),
    /// List every check id with its one-line requirement.
    List(ListArgs),
    /// Fuzz the server's request parsing with generated and mutated requests.
    Fuzz(Box<FuzzArgs>),
}

/// `harness fuzz`.
#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Launch options.
    #[command(flatten)]
    pub launch: LaunchArgs,

    /// Most inputs to try.
    #[arg(long = "cases", value_name = "N", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub cases: u64,

    /// Seed of the input sequence; the same seed replays the same inputs [default: random].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,

    /// Longest the run may take, e.g. 30s or 5m (shrinking a failure may add to it).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub time: Duration,

    /// Where a failing input is written as a case file.
    #[arg(long, value_name = "DIR", default_value = "cases/regressions")]
    pub save: PathBuf,
}

/// How to launch the server under test.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Use this fixed port instead of a free one (for servers that hard-code it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Working directory for the server.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Extra environment variable for the server (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// How long the server may take to listen on its port.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub startup_timeout: Duration,

    /// How long the server gets between SIGTERM and SIGKILL when the harness stops it.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub grace: Duration,

    /// The server command and its arguments; {port}, {host} and {addr} are substituted.
    /// The server also gets HOST and PORT in its environment.
    #[arg(trailing_var_arg = true, value_name = "SERVER [ARGS]...")]
    pub server: Vec<String>,
}

impl LaunchArgs {
    /// The target these options describe, and the label reports show for
    /// it: the given server, or without one the built-in reference server,
    /// run from this same executable. An error says which option is wrong.
    pub fn into_target(self) -> Result<(TargetSpec, String), String> {
        let (program, args, label) = match self.server.split_first() {
            Some((program, args)) => (program.into(), args.to_vec(), None),
            None => match std::env::current_exe() {
                Ok(exe) => (
                    exe.into_os_string(),
                    vec![REFERENCE_SERVER.to_string()],
                    Some("built-in reference server"),
                ),
                Err(error) => {
                    return Err(format!(
                        "cannot find the harness executable to run the reference server: {error}"
                    ))
                }
            },
        };
        if let Some(dir) = &self.cwd {
            if !dir.is_dir() {
                return Err(format!("--cwd {}: not a directory", dir.display()));
            }
        }
        let spec = TargetSpec {
            program,
            args,
            env: self.env,
            cwd: self.cwd,
            host: "127.0.0.1".into(),
            port: self.port.map_or(PortChoice::Auto, PortChoice::Fixed),
            startup_timeout: self.startup_timeout,
            grace: self.grace,
        };
        let label = label.map_or_else(|| spec.display_command(), str::to_string);
        Ok((spec, label))
    }
}

impl FuzzArgs {
    /// The fuzz run these options describe, and the label of its target;
    /// an error says which option is wrong.
    pub fn into_config(self) -> Result<(crate::fuzz::FuzzConfig, String), String> {
        let seed = self.seed_or_fresh();
        let (spec, label) = self.launch.into_target()?;
        // A failure is saved only once it is found: a folder that cannot
        // take it must cost no fuzzing.
        crate::files::check_output_folder(&self.save)
            .map_err(|error| format!("--save {}: {error}", self.save.display()))?;
        let config = crate::fuzz::FuzzConfig {
            spec,
            cases: self.cases,
            seed,
            time: self.time,
            save_dir: self.save,
        };
        Ok((config, label))
    }

    /// `--seed`, or a fresh one from the clock and the pid.
    fn seed_or_fresh(&self) -> u64 {
        self.seed.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        })
    }
}

/// Output formats on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per check, details for failures, summary last.
    Human,
    /// One JSON document.
    Json,
}

/// `harness run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Launch options.
    #[command(flatten)]
    pub launch: LaunchArgs,

    /// Units of work run at once (a process check, or a group of cases), each on its own server instance [default: the number of cores, at least 4].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    /// Run only checks whose id matches GLOB, or lies under it (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub only: Vec<String>,

    /// Skip checks whose id matches GLOB, or lies under it (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub skip: Vec<String>,

    /// Count warnings as failures.
    #[arg(long)]
    pub strict: bool,

    /// Also run the case files in DIR (ids are paths below DIR); repeatable.
    #[arg(long = "cases", value_name = "DIR")]
    pub cases: Vec<PathBuf>,

    /// A JSON list of ids expected to fail: the run passes when exactly those fail.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Write the ids that failed in this run to FILE, as a baseline.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Run only shard K of N (1-based): checks are split deterministically by id.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,

    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Show figures and requirements for every check, not only failures.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Concurrent clients for concurrency/sleep-latency.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(2..=256))]
    pub sleep_clients: u16,

    /// Milliseconds each sleep-latency client asks the server to sleep.
    #[arg(long, value_name = "MS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub sleep_ms: u64,

    /// How long zombie, child and descriptor counts may take to settle after load.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub settle: Duration,
}

impl RunArgs {
    /// `--jobs`, or the cores and at least four, since most checks wait on
    /// the server rather than compute.
    pub fn jobs_or_default(&self) -> usize {
        self.jobs.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(4)
        })
    }

    /// The load settings of the process checks.
    pub fn settings(&self) -> crate::checks::Settings {
        crate::checks::Settings {
            sleep_clients: usize::from(self.sleep_clients),
            sleep_ms: self.sleep_ms,
            settle: self.settle,
        }
    }

    /// That the report files can be written, checked before the run: the
    /// reports are written only when it is over, and a folder that is not
    /// there must cost no run, and lose no result.
    pub fn check_output_files(&self) -> Result<(), String> {
        for (flag, path) in [
            ("--junit", &self.junit),
            ("--write-baseline", &self.write_baseline),
        ] {
            if let Some(path) = path {
                crate::files::check_output_file(path)
                    .map_err(|error| format!("{flag} {}: {error}", path.display()))?;
            }
        }
        Ok(())
    }
}

/// `harness list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Also list the case files in DIR; repeatable.
    #[arg(long = "cases", value_name = "DIR")]
    pub cases: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// `K/N` for `--shard`, with 1 <= K <= N.
fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not K/N with 1 <= K <= N (e.g. 2/4)");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u32, u32) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// `K=V` for `--env`.
fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains('\0') && !value.contains('\0') => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not K=V")),
    }
}

/// Durations for `--startup-timeout`, `--grace`, `--settle` and `--time`:
/// `5s`, `500ms`, `1.5s`, `2m`, or a bare number of seconds, up to a day.
/// The grammar is the reference server's, so one spelling works for both.
fn parse_duration(text: &str) -> Result<Duration, String> {
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

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("harness").chain(args.iter().copied()))
    }

    #[test]
    fn the_server_command_keeps_its_own_flags() {
        let cli = parse(&[
            "run", "--strict", "--", "./server", "--listen", "{addr}", "-v",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(run.strict && !run.verbose);
        assert_eq!(run.launch.server, ["./server", "--listen", "{addr}", "-v"]);
    }

    #[test]
    fn a_server_without_double_dash_is_accepted() {
        let cli = parse(&["run", "python3", "app.py"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.launch.server, ["python3", "app.py"]);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["run", "--env", "novalue"][..],
            &["run", "--jobs", "0"],
            &["run", "--port", "0"],
            &["run", "--startup-timeout", "soon"],
            &["run", "--format", "xml"],
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn env_pairs_split_at_the_first_equals() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
    }

    #[rstest]
    #[case("5s", 5000)]
    #[case("500ms", 500)]
    #[case("1.5s", 1500)]
    #[case("2", 2000)]
    #[case("1m", 60000)]
    #[case(" 10s ", 10000)]
    fn durations_parse(#[case] text: &str, #[case] ms: u128) {
        assert_eq!(parse_duration(text).unwrap().as_millis(), ms);
    }

    #[rstest]
    #[case("soon", r#""soon" is not a duration (try 5s or 500ms)"#)]
    #[case(
        "5 parsecs",
        r#""5 parsecs": unknown unit " parsecs" (use ms, s or m)"#
    )]
    #[case("3h", r#""3h": unknown unit "h" (use ms, s or m)"#)]
    #[case("1441m", r#""1441m" is out of range (0 to 24 hours)"#)]
    fn bad_durations_say_why(#[case] text: &str, #[case] message: &str) {
        assert_eq!(parse_duration(text).unwrap_err(), message);
    }
}
