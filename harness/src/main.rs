//! `harness`: thin wrapper over the library. Parses the command line, runs,
//! prints errors once, and maps the outcome to an exit code CI can trust.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use harness::cli::{Cli, Command, Format, FuzzArgs, LaunchArgs, ListArgs, RunArgs};
use harness::exit;
use harness::report::human::{color_wanted, HumanReporter};
use harness::report::json::JsonReporter;
use harness::report::junit::JunitReporter;
use harness::report::{Fanout, Reporter};
use harness::runner::{self, RunConfig};
use harness::select::Selection;
use harness::target::{PortChoice, TargetSpec};

/// The hidden subcommand that runs the built-in reference server.
const REFERENCE_SERVER: &str = "__reference-server";

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
    if let Err(error) = harness::interrupt::install() {
        eprintln!("harness: {error}");
        return ExitCode::from(exit::USAGE_OR_TARGET);
    }
    // Every child of this process is a server or an orphan adopted from one.
    harness::tree::reap_every_orphan();
    // A panic unwinds this thread only; the servers that other threads own
    // would outlive the process. Stop them all before it ends.
    let code = std::panic::catch_unwind(|| dispatch(&args));
    harness::interrupt::kill_all_registered();
    code.unwrap_or_else(|_| ExitCode::from(exit::PANICKED))
}

/// Parses the command line and runs the subcommand.
fn dispatch(args: &[std::ffi::OsString]) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
        }
    };
    match cli.command {
        Command::List(list) => list_checks(list),
        Command::Run(run) => run_checks(*run),
        Command::Fuzz(fuzz) => fuzz_server(*fuzz),
    }
}

fn list_checks(list: ListArgs) -> ExitCode {
    let cases = match harness::cases::load_all(&list.cases) {
        Ok(loaded) => warned(loaded),
        Err(error) => {
            eprintln!("harness: {error}");
            return ExitCode::from(exit::USAGE_OR_TARGET);
        }
    };
    // (id, what it checks, routes it needs)
    let mut rows: Vec<(String, String, Vec<&str>)> = harness::checks::catalog()
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                squeeze(c.requirement),
                c.needs.iter().map(|r| r.path()).collect(),
            )
        })
        .collect();
    let checks = rows.len();
    rows.extend(cases.iter().map(|c| {
        (
            c.id.clone(),
            c.description.clone(),
            c.needs().iter().map(|r| r.path()).collect(),
        )
    }));
    // Written with errors checked: `harness list | head` closes the pipe
    // early, which is not an error of ours.
    let mut out = std::io::stdout().lock();
    let _ = match list.format {
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|(id, text, needs)| serde_json::json!({"id": id, "requirement": text, "needs": needs}))
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            )
        }
        Format::Human => {
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            rows.iter()
                .try_for_each(|(id, text, _)| writeln!(out, "{id:width$}  {text}"))
                .and_then(|()| writeln!(out, "{checks} process checks, {} cases", cases.len()))
        }
    };
    ExitCode::from(exit::SUCCESS)
}

/// The cases loaded, once what was skipped loading them is on stderr.
fn warned(loaded: harness::cases::Loaded) -> Vec<harness::cases::CaseFile> {
    for warning in &loaded.warnings {
        eprintln!("harness: warning: {warning}");
    }
    loaded.cases
}

/// Requirement sentences are wrapped in the source; print them on one line.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run_checks(run: RunArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("harness: {message}");
        ExitCode::from(exit::USAGE_OR_TARGET)
    };
    let selection = match Selection::new(&run.only, &run.skip) {
        Ok(selection) => selection,
        Err(error) => return usage(error.to_string()),
    };
    let cases = match harness::cases::load_all(&run.cases) {
        Ok(loaded) => warned(loaded),
        Err(error) => return usage(error.to_string()),
    };
    let (spec, command_label) = match target_spec(run.launch) {
        Ok(target) => target,
        Err(message) => return usage(message),
    };
    let jobs = run.jobs.map(usize::from).unwrap_or_else(default_jobs);
    let config = RunConfig {
        spec,
        command_label,
        jobs,
        selection,
        strict: run.strict,
        settings: harness::checks::Settings {
            sleep_clients: usize::from(run.sleep_clients),
            sleep_ms: run.sleep_ms,
            settle: run.settle,
        },
        cases,
        shard: run.shard,
    };
    // Read the baseline before the run, so a bad file costs no time.
    let baseline = match run
        .baseline
        .as_deref()
        .map(harness::baseline::read)
        .transpose()
    {
        Ok(baseline) => baseline,
        Err(error) => return usage(error.to_string()),
    };
    // The reports are written only when the run is over: a folder that is
    // not there must cost no run, and lose no result.
    for (flag, path) in [
        ("--junit", &run.junit),
        ("--write-baseline", &run.write_baseline),
    ] {
        if let Some(path) = path {
            if let Err(error) = harness::files::check_output_file(path) {
                return usage(format!("{flag} {}: {error}", path.display()));
            }
        }
    }

    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    match run.format {
        Format::Human => {
            let color = color_wanted(std::io::stdout().is_terminal());
            reporters.push(Box::new(HumanReporter::new(
                Box::new(std::io::stdout()),
                color,
                run.verbose,
            )));
        }
        Format::Json => reporters.push(Box::new(JsonReporter::new(Box::new(std::io::stdout())))),
    }
    if let Some(path) = run.junit {
        reporters.push(Box::new(JunitReporter::new(path)));
    }
    let mut reporter = Fanout::new(reporters);

    let outcome = runner::run(&config, &mut reporter);
    harness::interrupt::wait_if_interrupted();
    match outcome {
        Err(error @ runner::RunError::EmptyShard { .. }) => {
            eprintln!("harness: {error}");
            ExitCode::from(exit::SUCCESS)
        }
        Err(error) => usage(error.to_string()),
        Ok(outcome) => {
            if let Some(error) = outcome.start_error {
                eprintln!("harness: the server could not be started:\n{error}");
                return ExitCode::from(exit::USAGE_OR_TARGET);
            }
            let failing = harness::baseline::failing(&outcome.results);
            if let Some(path) = &run.write_baseline {
                if let Err(error) = harness::baseline::write(path, &failing) {
                    return usage(error.to_string());
                }
                eprintln!(
                    "harness: wrote {} failing ids to {}",
                    failing.len(),
                    path.display()
                );
            }
            let failed = match &baseline {
                Some(expected) => {
                    let comparison =
                        harness::baseline::compare(expected, &failing, &outcome.results);
                    eprintln!("{comparison}");
                    !comparison.is_exact()
                }
                None => !failing.is_empty(),
            };
            ExitCode::from(if failed {
                exit::CHECKS_FAILED
            } else {
                exit::SUCCESS
            })
        }
    }
}

/// The target of a run or a fuzz: the given server, or the built-in one.
/// Returns the spec and the label reports show, or a usage error.
fn target_spec(launch: LaunchArgs) -> Result<(TargetSpec, String), String> {
    let (program, args, label) = match launch.server.split_first() {
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
    if let Some(dir) = &launch.cwd {
        if !dir.is_dir() {
            return Err(format!("--cwd {}: not a directory", dir.display()));
        }
    }
    let spec = TargetSpec {
        program,
        args,
        env: launch.env,
        cwd: launch.cwd,
        host: "127.0.0.1".into(),
        port: launch.port.map_or(PortChoice::Auto, PortChoice::Fixed),
        startup_timeout: launch.startup_timeout,
        grace: launch.grace,
    };
    let label = label.map_or_else(|| spec.display_command(), str::to_string);
    Ok((spec, label))
}

fn fuzz_server(args: FuzzArgs) -> ExitCode {
    let (spec, label) = match target_spec(args.launch) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("harness: {message}");
            return ExitCode::from(exit::USAGE_OR_TARGET);
        }
    };
    // A failure is saved only once it is found: a folder that cannot take
    // it must cost no fuzzing.
    if let Err(error) = harness::files::check_output_folder(&args.save) {
        eprintln!("harness: --save {}: {error}", args.save.display());
        return ExitCode::from(exit::USAGE_OR_TARGET);
    }
    let seed = args.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    println!("harness fuzz: {label}");
    println!(
        "  seed {seed}, up to {} cases or {:?}; failures saved to {}",
        args.cases,
        args.time,
        args.save.display()
    );
    let config = harness::fuzz::FuzzConfig {
        spec,
        cases: args.cases,
        seed,
        time: args.time,
        save_dir: args.save,
    };
    let outcome = harness::fuzz::fuzz(&config);
    harness::interrupt::wait_if_interrupted();
    match outcome {
        Err(error) => {
            eprintln!("harness: {error}");
            ExitCode::from(exit::USAGE_OR_TARGET)
        }
        Ok(outcome) => {
            let rate = outcome.requests as f64 / outcome.elapsed.as_secs_f64().max(0.001);
            let summary = format!(
                "{} cases, {} requests in {:.1} s ({rate:.0} req/s)",
                outcome.cases,
                outcome.requests,
                outcome.elapsed.as_secs_f64()
            );
            match outcome.failure {
                None => {
                    println!("{summary}, no failure");
                    ExitCode::from(exit::SUCCESS)
                }
                Some(failure) => {
                    println!("FAIL  {}", failure.reason);
                    if let Some(input) = &failure.input {
                        println!("      input:   {input}");
                        println!("      bytes:   '{}'", harness::fuzz::escape(&input.bytes()));
                    }
                    println!(
                        "      seed:    {seed} (batch {}); replay with --seed {seed}",
                        failure.batch
                    );
                    match &failure.saved {
                        Some(Ok(path)) => {
                            let dir = path
                                .parent()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default();
                            println!(
                                "      saved:   {} (replay: harness run --cases {dir})",
                                path.display()
                            );
                        }
                        // Still exit 1, as for any failure: the finding is
                        // the server's, and the seed and bytes above replay
                        // it; only the case file is missing.
                        Some(Err(error)) => eprintln!(
                            "harness: the failing input could not be saved as a case file: {error}"
                        ),
                        None => {}
                    }
                    println!("{summary}, 1 failure");
                    ExitCode::from(exit::CHECKS_FAILED)
                }
            }
        }
    }
}

/// Units of work at once when `--jobs` is not given: the cores, and at least
/// four, since most checks wait on the server rather than compute.
fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(4)
}
