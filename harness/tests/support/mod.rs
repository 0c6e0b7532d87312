//! Shared helpers for the end-to-end tests of the `harness` binary.
//!
//! Every test here runs the real binary, the way a user or CI would, and
//! judges what it prints and how it exits. Three rules keep those tests
//! honest on a small shared machine:
//!
//! - **A few harness runs at a time.** The harness measures timing
//!   (parallelism, latency) and its runs mostly wait on servers, so a test
//!   binary lets [`DEFAULT_RUNS_AT_ONCE`] of them overlap (`HARNESS_TEST_RUNS`
//!   changes it; 1 serialises them) and no more: the checks are built for a
//!   loaded machine, not for an unbounded pile of runs. [`HarnessRun::run`]
//!   holds a [`RunSlot`] for the whole run, leftover scan included.
//! - **Every run is marked.** Each run passes `--env HARNESS_TEST_MARKER=<unique>`,
//!   which the harness hands to every server it starts, and the server's
//!   children inherit it. After the run, [`assert_nothing_left`] scans
//!   `/proc/*/environ` for that marker: any process still carrying it was
//!   left behind by the harness.
//! - **Nothing outlives a test.** The harness runs in a process group of its
//!   own, owned by a [`GroupChild`] that kills the group on drop, panics
//!   included; servers left behind are killed by the leftover scan after it
//!   has recorded them.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

mod group;
pub use group::ProcessGroup;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The harness binary under test.
pub const HARNESS: &str = env!("CARGO_BIN_EXE_harness");

/// The hidden subcommand that runs the built-in reference server.
pub const REFERENCE_SERVER: &str = "__reference-server";

/// The environment variable that marks every server of one test run.
pub const MARKER_KEY: &str = "HARNESS_TEST_MARKER";

/// Every process check id, in catalog (report) order. The tests are the
/// spec: a new check must be added here on purpose. (The HTTP case files,
/// `http/...`, are data; their own tests cover them.)
pub const ALL_IDS: [&str; 13] = [
    "concurrency/sleep-latency",
    "concurrency/slow-client",
    "concurrency/burst",
    "process/zombies",
    "process/children-exit",
    "fds/leak",
    "fds/close-eof",
    "fds/child-listener",
    "signals/eintr",
    "signals/sigpipe",
    "lifecycle/startup",
    "lifecycle/reuseaddr",
    "lifecycle/sigterm",
];

/// The groups of the process checks: `--only` each of them selects exactly
/// [`ALL_IDS`], leaving out the HTTP case files that also run by default.
pub const PROCESS_GROUPS: [&str; 5] = ["concurrency", "process", "fds", "signals", "lifecycle"];

/// `--only GROUP` for every process group.
pub fn only_process_checks() -> Vec<String> {
    PROCESS_GROUPS
        .iter()
        .flat_map(|group| ["--only".to_string(), group.to_string()])
        .collect()
}

/// Whether `id` is one of the process checks (not an HTTP case).
pub fn is_process_check(id: &str) -> bool {
    ALL_IDS.contains(&id)
}

/// How long one harness run may take before the test gives up on it. The
/// slowest run in these tests takes about 35 s on a quiet machine.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long servers may take to disappear after the harness has exited. The
/// harness kills and reaps its servers before it exits, so this is slack for
/// a loaded machine, not an expected wait.
pub const LEFTOVER_DEADLINE: Duration = Duration::from_secs(10);

/// Pause between polls of a condition.
pub const POLL: Duration = Duration::from_millis(20);

/// How many harness runs one test binary lets go at once, unless
/// `HARNESS_TEST_RUNS` says otherwise (1 serialises them, for a machine that
/// is busy with something else).
pub const DEFAULT_RUNS_AT_ONCE: usize = 3;

/// The number of runs at once (see [`DEFAULT_RUNS_AT_ONCE`]).
fn runs_at_once() -> usize {
    static RUNS: OnceLock<usize> = OnceLock::new();
    *RUNS.get_or_init(|| {
        std::env::var("HARNESS_TEST_RUNS")
            .ok()
            .and_then(|text| text.parse().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(DEFAULT_RUNS_AT_ONCE)
    })
}

/// Runs in progress in this test binary, and their wake-up call.
static RUNS_GOING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A place among the runs allowed at once; given back on drop.
pub struct RunSlot(());

impl Drop for RunSlot {
    fn drop(&mut self) {
        let (going, freed) = &RUNS_GOING;
        *going
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) -= 1;
        freed.notify_one();
    }
}

/// Waits for a place among the runs allowed at once. A test that panicked
/// holding one gave it back on unwinding (the count guards nothing else),
/// so poisoning is ignored.
pub fn run_slot() -> RunSlot {
    let (going, freed) = &RUNS_GOING;
    let mut count = going
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    while *count >= runs_at_once() {
        count = freed
            .wait(count)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    *count += 1;
    RunSlot(())
}

/// A value unique to one harness run, carried by every server it starts.
#[derive(Clone, Debug)]
pub struct Marker(String);

impl Marker {
    /// A fresh marker; `label` only makes leftovers easier to attribute.
    pub fn new(label: &str) -> Marker {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let clean: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        Marker(format!("h5-{}-{n}-{clean}", std::process::id()))
    }

    /// The `K=V` argument for `--env`.
    pub fn env_arg(&self) -> String {
        format!("{MARKER_KEY}={}", self.0)
    }

    /// Whether a raw `/proc/PID/environ` carries this marker.
    fn is_in(&self, environ: &[u8]) -> bool {
        let wanted = self.env_arg();
        environ
            .split(|&b| b == 0)
            .any(|entry| entry == wanted.as_bytes())
    }
}

/// A process that carries a marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked {
    /// Its pid.
    pub pid: i32,
    /// Its command line, for the failure message.
    pub cmdline: String,
}

/// Every live process whose environment carries `marker`. Zombies have an
/// empty environ and are not listed: they hold no resources but a pid, and
/// their parent (or init) reaps them.
pub fn marked_processes(marker: &Marker) -> Vec<Marked> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading: skip it then.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if marker.is_in(&environ) {
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            found.push(Marked {
                pid,
                cmdline: cmdline.trim_end().to_string(),
            });
        }
    }
    found
}

/// Polls until `condition` holds or `timeout` passes: the harness's own.
pub use harness::poll::poll_until;

/// A port free now, outside the ephemeral range (so that no client
/// connection takes it before the server binds), as the harness picks them.
pub fn free_port() -> u16 {
    harness::target::port::pick(std::net::Ipv4Addr::LOCALHOST.into()).expect("a free port")
}

/// The processes still carrying `marker` once they had [`LEFTOVER_DEADLINE`]
/// to disappear (empty as soon as none is left).
pub fn leftovers(marker: &Marker) -> Vec<Marked> {
    let mut left = Vec::new();
    poll_until(LEFTOVER_DEADLINE, || {
        left = marked_processes(marker);
        left.is_empty()
    });
    left
}

/// Asserts that no live process carries `marker`, polling up to
/// [`LEFTOVER_DEADLINE`]. Leftovers are killed before the panic, so that a
/// failing test still leaves nothing behind.
pub fn assert_nothing_left(marker: &Marker) {
    let left = leftovers(marker);
    if left.is_empty() {
        return;
    }
    drop(MarkerSweep(marker.clone()));
    panic!(
        "{} process(es) with {} outlived the harness by {:?}: {left:#?}",
        left.len(),
        marker.env_arg(),
        LEFTOVER_DEADLINE
    );
}

/// Kills every process still carrying the marker when dropped, panics
/// included, so that a failing assertion never leaves servers running.
/// It asserts nothing: [`assert_nothing_left`] does that.
pub struct MarkerSweep(pub Marker);

impl Drop for MarkerSweep {
    fn drop(&mut self) {
        for process in marked_processes(&self.0) {
            // Only processes carrying this run's marker: never a stranger.
            let _ = kill(Pid::from_raw(process.pid), Signal::SIGKILL);
        }
    }
}

/// A child process in a process group of its own ([`ProcessGroup`]), its
/// stdout and stderr collected by threads; the whole group is killed on
/// drop, panics included.
pub struct GroupChild {
    group: ProcessGroup,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl GroupChild {
    /// Spawns `command` in a new process group, with stdin closed and stdout
    /// and stderr collected by threads (so a chatty child never blocks on a
    /// full pipe). Stdout is left alone if the caller already set it.
    pub fn spawn(command: &mut Command, capture_stdout: bool) -> GroupChild {
        command.stdin(Stdio::null()).stderr(Stdio::piped());
        if capture_stdout {
            command.stdout(Stdio::piped());
        }
        let group = ProcessGroup::spawn(command)
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
            pipe.map(|mut pipe| {
                thread::spawn(move || {
                    let mut bytes = Vec::new();
                    // A read error only truncates what the test sees.
                    let _ = pipe.read_to_end(&mut bytes);
                    bytes
                })
            })
        }
        GroupChild {
            stdout: drain(group.take_stdout()),
            stderr: drain(group.take_stderr()),
            group,
        }
    }

    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> i32 {
        self.group.pid()
    }

    /// Sends `signal` to the child's process group, as a terminal does for
    /// Ctrl-C. Refuses once the child was reaped (its pgid may be reused).
    pub fn signal_group(&self, signal: Signal) {
        self.group
            .signal_group(signal)
            .unwrap_or_else(|e| panic!("killpg({}, {signal}): {e}", self.pid()));
    }

    /// Waits up to `timeout` for the child to exit, then reaps it; `None` if
    /// it did not exit (it is killed with its group on drop).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.group.wait_timeout(timeout)?;
        self.group.reap_ended()
    }

    /// The child's peak resident set in KiB, once it was reaped (see
    /// [`ProcessGroup::peak_rss_kb`]; for the harness, larger than its
    /// servers, it is the harness's own).
    pub fn peak_rss_kb(&self) -> Option<u64> {
        self.group.peak_rss_kb()
    }

    /// What the child wrote, once it has exited and its pipes are closed.
    /// Collection is bounded: if a descendant still holds a pipe open, the
    /// test fails instead of hanging.
    pub fn output(&mut self) -> (Vec<u8>, Vec<u8>) {
        let collect = |handle: Option<JoinHandle<Vec<u8>>>, name: &str| {
            let Some(handle) = handle else {
                return Vec::new();
            };
            let finished = poll_until(LEFTOVER_DEADLINE, || handle.is_finished());
            assert!(
                finished,
                "the harness's {name} is still open {LEFTOVER_DEADLINE:?} after it exited: \
                 a process it started holds it"
            );
            handle.join().unwrap_or_default()
        };
        let stdout = collect(self.stdout.take(), "stdout");
        let stderr = collect(self.stderr.take(), "stderr");
        (stdout, stderr)
    }
}

/// One invocation of the harness binary, built up argument by argument.
#[derive(Clone, Debug)]
pub struct HarnessRun {
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    marker: Marker,
    timeout: Duration,
}

impl HarnessRun {
    /// `harness ARGS...` with no marker argument (for `list`, usage errors).
    pub fn bare<I, S>(args: I) -> HarnessRun
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        HarnessRun {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            env_remove: vec!["NO_COLOR".into()],
            marker: Marker::new("bare"),
            timeout: RUN_TIMEOUT,
        }
    }

    /// `harness run --env HARNESS_TEST_MARKER=<fresh>`; add options, then a
    /// server with [`HarnessRun::server`] or [`HarnessRun::reference`].
    pub fn run_cmd(label: &str) -> HarnessRun {
        let marker = Marker::new(label);
        let mut run = HarnessRun::bare(["run", "--env"]);
        run.args.push(marker.env_arg().into());
        run.marker = marker;
        run
    }

    /// `harness fuzz --env HARNESS_TEST_MARKER=<fresh>`, the same for
    /// `harness fuzz`; without a server it fuzzes the built-in one.
    pub fn fuzz_cmd(label: &str) -> HarnessRun {
        let marker = Marker::new(label);
        let mut run = HarnessRun::bare(["fuzz", "--env"]);
        run.args.push(marker.env_arg().into());
        run.marker = marker;
        run
    }

    /// Appends harness arguments.
    pub fn args<I, S>(mut self, args: I) -> HarnessRun
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends `-- SERVER ARGS...`.
    pub fn server<I, S>(self, command: I) -> HarnessRun
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args(["--"]).args(command)
    }

    /// Appends `-- HARNESS __reference-server [--fault F]...`.
    pub fn reference(self, faults: &[&str]) -> HarnessRun {
        let mut command: Vec<String> = vec![HARNESS.into(), REFERENCE_SERVER.into()];
        for fault in faults {
            command.push("--fault".into());
            command.push((*fault).into());
        }
        self.server(command)
    }

    /// Sets an environment variable for the harness process itself.
    pub fn env(mut self, key: &str, value: &str) -> HarnessRun {
        self.env_remove.retain(|k| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// This run's marker.
    pub fn marker(&self) -> &Marker {
        &self.marker
    }

    /// The command, ready to spawn.
    pub fn command(&self) -> Command {
        let mut command = Command::new(HARNESS);
        command.args(&self.args);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Spawns the harness in its own process group, stdout and stderr
    /// captured. The caller should hold [`exclusive`] while it runs.
    pub fn spawn(&self) -> GroupChild {
        GroupChild::spawn(&mut self.command(), true)
    }

    /// Runs the harness to completion (holding the run lock), then asserts
    /// that none of its servers outlived it.
    pub fn run(self) -> Outcome {
        let _slot = run_slot();
        let _sweep = MarkerSweep(self.marker.clone());
        let started = Instant::now();
        let mut child = self.spawn();
        let status = child.wait_timeout(self.timeout);
        let Some(status) = status else {
            drop(child);
            assert_nothing_left(&self.marker);
            panic!(
                "harness {:?} did not finish within {:?}",
                self.args, self.timeout
            );
        };
        let elapsed = started.elapsed();
        let (stdout, stderr) = child.output();
        assert_nothing_left(&self.marker);
        Outcome {
            args: self.args,
            output: Output {
                status,
                stdout,
                stderr,
            },
            elapsed,
            peak_rss_kb: child.peak_rss_kb(),
        }
    }
}

/// What one harness run did.
#[derive(Debug)]
pub struct Outcome {
    /// The harness arguments, for failure messages.
    pub args: Vec<OsString>,
    /// Exit status and everything written.
    pub output: Output,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The harness's peak resident set in KiB (see [`GroupChild::peak_rss_kb`]).
    pub peak_rss_kb: Option<u64>,
}

impl Outcome {
    /// Stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The harness's peak resident set in MB (10^6 bytes); panics if it
    /// was not measured.
    pub fn peak_rss_mb(&self) -> f64 {
        let kb = self
            .peak_rss_kb
            .unwrap_or_else(|| panic!("no peak RSS for {:?}", self.args));
        kb as f64 * 1024.0 / 1e6
    }

    /// The exit code; panics (with the output) if the harness died of a signal.
    pub fn code(&self) -> i32 {
        match self.output.status.code() {
            Some(code) => code,
            None => panic!(
                "harness {:?} was killed by signal {:?}\n{}",
                self.args,
                self.output.status.signal(),
                self.context()
            ),
        }
    }

    /// Asserts the exit code, showing everything on mismatch.
    pub fn assert_code(&self, expected: i32) -> &Outcome {
        assert_eq!(
            self.code(),
            expected,
            "harness {:?} exited {} instead of {expected}\n{}",
            self.args,
            self.code(),
            self.context()
        );
        self
    }

    /// `assert_cmd`'s assertion API over this run's output.
    pub fn assert(&self) -> assert_cmd::assert::Assert {
        use assert_cmd::assert::OutputAssertExt;
        self.output.clone().assert()
    }

    /// Parses stdout as the JSON report.
    pub fn report(&self) -> Report {
        let text = self.stdout();
        let report: Report = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "stdout of {:?} is not the JSON report: {e}\n{}",
                self.args,
                self.context()
            )
        });
        report.assert_consistent();
        report
    }

    /// Stdout and stderr, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

/// A verdict as the JSON report spells it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
    Skip,
    Error,
}

/// `target` of the JSON report.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Target {
    pub command: String,
    pub pid: Option<i64>,
    pub model: String,
    pub model_evidence: String,
    pub capabilities: BTreeMap<String, bool>,
    pub capability_notes: BTreeMap<String, String>,
    /// What the server did with one plain request (empty when it behaves).
    #[serde(default)]
    pub habits: Vec<String>,
}

/// One entry of `checks`.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct Check {
    pub id: String,
    pub verdict: Verdict,
    pub summary: String,
    pub requirement: String,
    pub hint: String,
    pub figures: serde_json::Map<String, serde_json::Value>,
    pub evidence: Vec<String>,
    pub duration_ms: u64,
}

/// `totals` of the JSON report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub warned: usize,
    pub skipped: usize,
    pub errors: usize,
}

/// The JSON report (`harness run --format json`).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Report {
    pub target: Target,
    pub checks: Vec<Check>,
    pub totals: Totals,
    pub strict: bool,
    pub wall_ms: u64,
}

impl Report {
    /// Verdict per check id.
    pub fn verdicts(&self) -> BTreeMap<&str, Verdict> {
        self.checks
            .iter()
            .map(|c| (c.id.as_str(), c.verdict))
            .collect()
    }

    /// The ids in report order.
    pub fn ids(&self) -> Vec<&str> {
        self.checks.iter().map(|c| c.id.as_str()).collect()
    }

    /// The ids of the process checks, in report order.
    pub fn process_ids(&self) -> Vec<&str> {
        self.ids()
            .into_iter()
            .filter(|id| is_process_check(id))
            .collect()
    }

    /// The ids of everything else (HTTP case files), in report order.
    pub fn case_ids(&self) -> Vec<&str> {
        self.ids()
            .into_iter()
            .filter(|id| !is_process_check(id))
            .collect()
    }

    /// The check `id`; panics with the whole report if it is missing.
    pub fn check(&self, id: &str) -> &Check {
        self.checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id} in the report; ids: {:?}", self.ids()))
    }

    /// The verdict of check `id`.
    pub fn verdict(&self, id: &str) -> Verdict {
        self.check(id).verdict
    }

    /// One check as pretty JSON, for failure messages.
    pub fn describe(&self, id: &str) -> String {
        serde_json::to_string_pretty(self.check(id)).unwrap_or_else(|e| e.to_string())
    }

    /// One line per check: `id verdict summary`.
    pub fn overview(&self) -> String {
        self.checks
            .iter()
            .map(|c| format!("{:<28} {:<5?} {}", c.id, c.verdict, c.summary))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Ids appear once each, and the totals count the verdicts listed.
    fn assert_consistent(&self) {
        let mut seen = std::collections::BTreeSet::new();
        for id in self.ids() {
            assert!(
                seen.insert(id),
                "check {id} reported twice:\n{}",
                self.overview()
            );
        }
        let mut totals = Totals::default();
        for check in &self.checks {
            match check.verdict {
                Verdict::Pass => totals.passed += 1,
                Verdict::Warn => totals.warned += 1,
                Verdict::Fail => totals.failed += 1,
                Verdict::Skip => totals.skipped += 1,
                Verdict::Error => totals.errors += 1,
            }
        }
        assert_eq!(
            self.totals,
            totals,
            "totals do not match the verdicts:\n{}",
            self.overview()
        );
    }
}

/// A folder in the temp dir, unique per test process, name and call,
/// created empty and removed with what it holds on drop, panics included.
/// The one temporary-file type of these tests: a file they need is a path
/// inside one of these.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh, empty folder; `name` only makes it easy to attribute.
    pub fn new(name: &str) -> TempDir {
        // rstest cases run in parallel threads of one process, and may share
        // a name: the counter keeps their folders apart.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let clean: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = std::env::temp_dir().join(format!("h5-{}-{n}-{clean}", std::process::id()));
        // Left by an earlier process with the same pid, if at all.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    /// The folder.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `relative` inside the folder (nothing is created).
    pub fn join(&self, relative: &str) -> std::path::PathBuf {
        self.0.join(relative)
    }

    /// Writes `text` at `relative`, creating its folders; returns the path.
    pub fn write(&self, relative: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Makes a FIFO at `relative`; returns the path.
    pub fn fifo(&self, relative: &str) -> std::path::PathBuf {
        let path = self.0.join(relative);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU)
            .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
        path
    }

    /// The entries of the folder `relative` inside this one (empty if it
    /// does not exist).
    pub fn entries(&self, relative: &str) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(self.0.join(relative))
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment variable that turns the soak tests on. `.ci/run` sets
/// it, so CI runs every test; without it `cargo test --workspace` skips the
/// soak tests, each saying so on stderr.
pub const SOAK_KEY: &str = "HARNESS_SOAK";

/// Whether the soak tests run (`HARNESS_SOAK` set, not empty or `0`). When
/// they do not, prints that `test` was skipped and how to run it: a soak
/// test calls this first and returns at once when it says no. Its name ends
/// in `_soak`, so that cargo test's list of passes shows which ones ran as
/// skips (the printed line is shown only with `--nocapture`).
pub fn soak(test: &str) -> bool {
    let on = std::env::var(SOAK_KEY).is_ok_and(|v| !v.is_empty() && v != "0");
    if !on {
        eprintln!("skipped soak test {test}: set {SOAK_KEY}=1 to run it (.ci/run does)");
    }
    on
}

/// Panics with a clear message unless `python3` runs: the tests that use it
/// must not pass vacuously on a machine without it.
pub fn require_python3() {
    let found = Command::new("python3")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match found {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 --version failed ({}): {}; these tests need python3 on PATH",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("python3 is needed on PATH for these tests and could not be run: {e}"),
    }
}
