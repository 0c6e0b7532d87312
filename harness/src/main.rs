//! `harness`: thin wrapper over the library. Parses the command line, calls
//! [`run`], prints its error in one place, and maps the outcome to an exit
//! code CI can trust.

use std::fmt;
use std::process::ExitCode;

use clap::Parser;
use harness::cli::{Cli, Command, FuzzArgs, ListArgs, RunArgs, REFERENCE_SERVER};
use harness::runner::{RunConfig, RunError};
use harness::{baseline, cases, exit, fuzz, interrupt, report};

fn main() -> ExitCode {
    // Before any thread exists (see its docs).
    harness::budget::tune_allocator();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The built-in reference server runs in a child process started from
    // this same binary; it must not inherit the harness's signal setup.
    if args.get(1).is_some_and(|a| a == REFERENCE_SERVER) {
        return reference_server::main_with_args(
            std::iter::once("server".into()).chain(args.into_iter().skip(2)),
        );
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
        }
    };
    // A panic unwinds this thread only; the servers that other threads own
    // would outlive the process. Stop them all before it ends.
    let outcome = std::panic::catch_unwind(|| run(cli));
    interrupt::kill_all_registered();
    match outcome {
        Ok(Ok(code)) => code,
        // The one place an error is printed.
        Ok(Err(error)) => {
            eprintln!("harness: {}", error.message);
            ExitCode::from(error.code)
        }
        Err(_) => ExitCode::from(exit::PANICKED),
    }
}

/// Why a subcommand ended without a verdict of its own: what to say, and
/// the exit code that goes with it.
struct Error {
    /// The message, printed after `harness: `.
    message: String,
    /// [`exit::USAGE_OR_TARGET`] for a bad flag, file or target, or a server
    /// that would not start; [`exit::SUCCESS`] for nothing to do.
    code: u8,
}

/// A usage error from anything that says what went wrong.
fn usage(error: impl fmt::Display) -> Error {
    let (message, code) = (error.to_string(), exit::USAGE_OR_TARGET);
    Error { message, code }
}

/// Runs the subcommand.
fn run(cli: Cli) -> Result<ExitCode, Error> {
    interrupt::install().map_err(usage)?;
    // Every child of this process is a server or an orphan adopted from one.
    harness::tree::reap_every_orphan();
    match cli.command {
        Command::List(list) => list_checks(list),
        Command::Run(run) => run_checks(*run),
        Command::Fuzz(fuzz) => fuzz_server(*fuzz),
    }
}

/// `harness list`.
fn list_checks(list: ListArgs) -> Result<ExitCode, Error> {
    let cases = load_cases(&list.cases)?;
    // Errors ignored: `harness list | head` closes the pipe early, which is
    // not an error of ours.
    let _ = report::list::write_list(&mut std::io::stdout().lock(), &cases, list.format);
    Ok(ExitCode::from(exit::SUCCESS))
}

/// The cases from the built-in set and `dirs`, once what was skipped
/// loading them is on stderr as warnings.
fn load_cases(dirs: &[std::path::PathBuf]) -> Result<Vec<cases::CaseFile>, Error> {
    let loaded = cases::load_all(dirs).map_err(usage)?;
    for warning in &loaded.warnings {
        eprintln!("harness: warning: {warning}");
    }
    Ok(loaded.cases)
}

/// `harness run`.
fn run_checks(run: RunArgs) -> Result<ExitCode, Error> {
    let selection = harness::select::Selection::new(&run.only, &run.skip).map_err(usage)?;
    let cases = load_cases(&run.cases)?;
    let (jobs, settings, strict, shard) =
        (run.jobs_or_default(), run.settings(), run.strict, run.shard);
    // Checked now, told in the order below.
    let outputs = run.check_output_files();
    let (spec, command_label) = run.launch.into_target().map_err(usage)?;
    #[rustfmt::skip]
    let config = RunConfig { spec, command_label, jobs, selection, strict, settings, cases, shard };
    // Read the baseline before the run, so a bad file costs no time.
    let expected = run.baseline.as_deref().map(baseline::read);
    let expected = expected.transpose().map_err(usage)?;
    outputs.map_err(usage)?;
    let mut reporter = report::Fanout::for_run(run.format, run.verbose, run.junit);
    let outcome = harness::runner::run(&config, &mut reporter);
    interrupt::wait_if_interrupted();
    let outcome = outcome.map_err(|error| match error {
        RunError::EmptyShard { .. } => Error {
            code: exit::SUCCESS,
            ..usage(error)
        },
        error => usage(error),
    })?;
    if let Some(error) = outcome.start_error {
        return Err(usage(format!("the server could not be started:\n{error}")));
    }
    let (write_to, notes) = (run.write_baseline.as_deref(), &mut std::io::stderr());
    let failed = baseline::judge(&outcome.results, expected.as_ref(), write_to, notes);
    Ok(exit_code(failed.map_err(usage)?))
}

/// `harness fuzz`.
fn fuzz_server(args: FuzzArgs) -> Result<ExitCode, Error> {
    let (config, label) = args.into_config().map_err(usage)?;
    let mut out = std::io::stdout();
    let _ = fuzz::summary::write_plan(&mut out, &label, &config);
    let outcome = fuzz::fuzz(&config);
    interrupt::wait_if_interrupted();
    let outcome = outcome.map_err(usage)?;
    let failed =
        fuzz::summary::write_outcome(&mut out, &mut std::io::stderr(), &outcome, config.seed);
    // A lost summary (a closed stdout) changes no verdict.
    Ok(exit_code(failed.unwrap_or(outcome.failure.is_some())))
}

/// Exit 1 when something failed, else 0.
fn exit_code(failed: bool) -> ExitCode {
    ExitCode::from(if failed {
        exit::CHECKS_FAILED
    } else {
        exit::SUCCESS
    })
}
