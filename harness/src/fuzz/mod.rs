//! `harness fuzz`: property-based request fuzzing with proptest.
//!
//! Inputs are valid requests from a model ([`model`]), or valid requests with
//! named mutations ([`mutate`]). The oracles:
//! - a valid request (or pipeline) to `/echo` comes back with exactly the
//!   model's method, path, query, headers and body, one response per request;
//! - a mutated request gets responses or a close, never a hang, and never
//!   more responses than it has request lines (smuggling);
//! - the server never dies, and between batches /proc shows no zombie and no
//!   leaked descriptor.
//!
//! On failure proptest shrinks the input; the harness prints it escaped with
//! the seed and writes it as a ready case file that `harness run --cases DIR`
//! replays.
//!
//! # Layout
//! - this file: the driver, the oracles, saving regressions.
//! - [`model`]: the valid-request model and its strategies.
//! - [`mutate`]: the named mutations.
//! - [`summary`]: what `harness fuzz` prints before and after a run.

pub mod model;
pub mod mutate;
pub mod summary;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::IsTerminal;
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::client::{ClientError, Conn, Response};
use crate::procfs;
use crate::target::{ServerInstance, StartError, TargetSpec};
use model::RequestModel;
use mutate::Mutation;

/// How long one response may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Cases between two /proc checks.
const BATCH: u64 = 250;
/// Descriptors the server may hold above its baseline between batches.
const FD_TOLERANCE: usize = 4;

/// One fuzz input.
#[derive(Clone, Debug)]
pub enum Input {
    /// A valid pipeline of requests.
    Valid(Vec<RequestModel>),
    /// A valid pipeline, then mutations of its bytes.
    Mutated(Vec<RequestModel>, Vec<Mutation>),
}

impl Input {
    /// The bytes sent.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Input::Valid(pipeline) => pipeline.iter().flat_map(RequestModel::render).collect(),
            Input::Mutated(pipeline, mutations) => {
                let mut bytes: Vec<u8> = pipeline.iter().flat_map(RequestModel::render).collect();
                for mutation in mutations {
                    mutate::apply(&mut bytes, mutation);
                }
                bytes
            }
        }
    }

    /// Requests sent.
    pub fn requests(&self) -> usize {
        match self {
            Input::Valid(pipeline) | Input::Mutated(pipeline, _) => pipeline.len(),
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Valid(pipeline) => write!(f, "valid pipeline of {}", pipeline.len()),
            Input::Mutated(pipeline, mutations) => {
                let steps: Vec<String> = mutations.iter().map(|m| m.to_string()).collect();
                write!(
                    f,
                    "pipeline of {} with mutations: {}",
                    pipeline.len(),
                    steps.join("; ")
                )
            }
        }
    }
}

/// Valid inputs and mutated ones, half and half.
pub fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        model::pipeline().prop_map(Input::Valid),
        (model::pipeline(), mutate::mutations()).prop_map(|(p, m)| Input::Mutated(p, m)),
    ]
}

/// Settings of a fuzz run.
pub struct FuzzConfig {
    /// How to launch the server.
    pub spec: TargetSpec,
    /// Most cases to run.
    pub cases: u64,
    /// The seed; the same seed replays the same inputs.
    pub seed: u64,
    /// Longest the run may take (shrinking a failure may add to it).
    pub time: Duration,
    /// Where failures are written as case files.
    pub save_dir: PathBuf,
}

/// A failure found and shrunk.
#[derive(Debug)]
pub struct Failure {
    /// What the oracle saw.
    pub reason: String,
    /// The minimal input, if the failure is about one input.
    pub input: Option<Input>,
    /// Where the input was saved as a case file, or why it could not be;
    /// `None` when the failure is about no one input.
    pub saved: Option<Result<PathBuf, SaveError>>,
    /// The batch (of the seed) in which it was found.
    pub batch: u64,
}

/// What a fuzz run did.
#[derive(Debug)]
pub struct FuzzOutcome {
    /// Inputs sent to the server (shrinking steps not counted, nor the rest
    /// of a batch that the time budget left unrun).
    pub cases: u64,
    /// Requests sent.
    pub requests: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The failure, if one was found.
    pub failure: Option<Failure>,
}

/// Why a fuzz run could not run.
#[derive(Debug)]
pub enum FuzzError {
    /// The server did not start.
    Start(StartError),
}

impl fmt::Display for FuzzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FuzzError::Start(error) => write!(f, "the server could not be started:\n{error}"),
        }
    }
}

impl std::error::Error for FuzzError {}

/// Why a failing input could not be saved as a case file. The failure is
/// still the finding: its seed and bytes are printed either way.
#[derive(Debug)]
pub enum SaveError {
    /// The folder could not be created.
    CreateFolder {
        /// The folder.
        folder: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The case file could not be written.
    Write {
        /// The case file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::CreateFolder { folder, source } => {
                write!(f, "creating the folder {}: {source}", folder.display())
            }
            SaveError::Write { path, source } => write!(f, "writing {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for SaveError {}

/// The server under fuzz and a keep-alive connection to it.
struct Target<'a> {
    spec: &'a TargetSpec,
    server: Option<ServerInstance>,
    /// Reused for valid inputs while the server keeps it open.
    conn: Option<Conn>,
    requests: u64,
}

impl Target<'_> {
    fn server(&mut self) -> Result<&mut ServerInstance, String> {
        if !self.server.as_mut().is_some_and(|s| s.is_alive()) {
            self.server = None;
            self.conn = None;
            self.server = Some(
                ServerInstance::start(self.spec)
                    .map_err(|e| format!("the server could not be restarted: {e}"))?,
            );
        }
        self.server.as_mut().ok_or_else(|| "no server".to_string())
    }

    /// If the server died, why, with the tail of its stderr. `suspect`: the
    /// check already failed, so give a dying server a moment to finish dying.
    fn death(&mut self, suspect: bool) -> Option<String> {
        let server = self.server.as_mut()?;
        if server.is_alive() {
            if suspect {
                let _ = crate::poll::poll_until(Duration::from_millis(500), || !server.is_alive());
            }
            if server.is_alive() {
                return None;
            }
        }
        let (status, tail) = crate::death::exit_details(server);
        Some(format!(
            "server exited ({status}); stderr: {}",
            tail.join(" | ")
        ))
    }

    fn check(&mut self, input: &Input) -> Result<(), String> {
        let addr = self.server()?.addr();
        self.requests += input.requests() as u64;
        let mut listener_gone = false;
        let verdict = match input {
            Input::Valid(pipeline) => self.check_valid(addr, pipeline, &input.bytes()),
            Input::Mutated(pipeline, mutations) => {
                // Our kept connection would hold an iterative server; let it go.
                self.conn = None;
                // Each cut-and-append may repeat every request once more.
                let splits = mutations
                    .iter()
                    .filter(|m| matches!(m, Mutation::SplitConcat(_)))
                    .count();
                let verdict = check_mutated(addr, &input.bytes(), pipeline.len() << splits);
                // Did the input kill the server? Its close of our connection
                // can reach us before it is a zombie (a panicking process
                // drops its sockets while it unwinds), so ask it something:
                // a dying server cannot answer.
                listener_gone = crate::client::get(addr, "/", RESPONSE_TIMEOUT).is_err();
                verdict.map(drop)
            }
        };
        // Only a lost connection hints at a death still in progress.
        let suspect = listener_gone
            || verdict.as_ref().err().is_some_and(|e| {
                ["closed", "reset", "refused", "onnect", "hang"]
                    .iter()
                    .any(|w| e.contains(w))
            });
        if let Some(death) = self.death(suspect) {
            return Err(death);
        }
        verdict
    }

    /// A valid pipeline: exactly one echo per request, each exactly the model.
    fn check_valid(
        &mut self,
        addr: std::net::SocketAddr,
        pipeline: &[RequestModel],
        bytes: &[u8],
    ) -> Result<(), String> {
        let (mut conn, reused) = match self.conn.take() {
            Some(conn) => (conn, true),
            None => (
                Conn::connect(addr, RESPONSE_TIMEOUT).map_err(|e| e.to_string())?,
                false,
            ),
        };
        // A server may close an idle persistent connection at any time (RFC
        // 9112 §9.5): a reused connection that closes before any answer is
        // retried once on a new one, as clients do.
        if reused && !answers_at_all(&mut conn, bytes) {
            conn = Conn::connect(addr, RESPONSE_TIMEOUT).map_err(|e| e.to_string())?;
            conn.send(bytes).map_err(|e| format!("sending: {e}"))?;
        } else if !reused {
            conn.send(bytes).map_err(|e| format!("sending: {e}"))?;
        }
        let mut keep = true;
        for (i, request) in pipeline.iter().enumerate() {
            let response = match conn.read_response(Instant::now() + RESPONSE_TIMEOUT, false) {
                Ok(Some(response)) => response,
                Ok(None) | Err(ClientError::Reset) => {
                    return Err(format!(
                        "{} responses to a pipeline of {}: the connection closed",
                        i,
                        pipeline.len()
                    ))
                }
                Err(error) => {
                    return Err(format!("response {} of {}: {error}", i + 1, pipeline.len()))
                }
            };
            compare_echo(request, &response)
                .map_err(|e| format!("response {} of {}: {e}", i + 1, pipeline.len()))?;
            keep &= !response
                .header_str("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        }
        if keep {
            self.conn = Some(conn);
        }
        Ok(())
    }
}

/// Sends `bytes` on a reused connection and tells whether it is still
/// alive: false when the send fails or the server closes before answering.
/// The first response is left in the connection's buffer for the caller.
fn answers_at_all(conn: &mut Conn, bytes: &[u8]) -> bool {
    if conn.send(bytes).is_err() {
        return false;
    }
    conn.peek_open(Instant::now() + RESPONSE_TIMEOUT)
}

/// The echo must be exactly what the model says.
fn compare_echo(request: &RequestModel, response: &Response) -> Result<(), String> {
    if response.status != 200 {
        return Err(format!("status {} instead of 200", response.status));
    }
    let echo: serde_json::Map<String, serde_json::Value> =
        match serde_json::from_slice(&response.body) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err("the body is not an /echo JSON object".into()),
        };
    for (key, want) in request.expected_echo() {
        let got = echo.get(&key).and_then(|v| v.as_str());
        if got != Some(want.as_str()) {
            return Err(format!("{key} = {got:?} instead of {want:?}"));
        }
    }
    let body = echo
        .get("body")
        .and_then(|v| v.as_str())
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or("no base64 body in the echo")?;
    let want = request.body.decoded();
    if body != want {
        return Err(format!(
            "body of {} bytes instead of {} ({:?} instead of {:?})",
            body.len(),
            want.len(),
            escape(&body),
            escape(&want)
        ));
    }
    if request.body.decoded().is_empty()
        && matches!(request.body, model::BodyModel::None)
        && echo.contains_key("CONTENT_LENGTH")
    {
        return Err("CONTENT_LENGTH is set for a request without a body".into());
    }
    Ok(())
}

/// A mutated input: answers or a close, no hang, no more responses than
/// the requests it can hold. Our side half-closes after sending, so a server waiting
/// for more of a body sees the end of the input instead of waiting.
fn check_mutated(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    requests: usize,
) -> Result<usize, String> {
    let mut conn = Conn::connect(addr, RESPONSE_TIMEOUT).map_err(|e| e.to_string())?;
    let _ = conn.send(bytes);
    let _ = conn.stream().shutdown(Shutdown::Write);
    // Requests the server processed: an error answer to leftover garbage is
    // fine, a success for a request that is not there is smuggling.
    let mut served = 0;
    let mut answers = 0;
    loop {
        match conn.read_response(Instant::now() + RESPONSE_TIMEOUT, false) {
            Ok(Some(response)) if (100..200).contains(&response.status) => continue,
            Ok(Some(response)) if response.status < 400 => {
                served += 1;
                answers += 1;
            }
            Ok(Some(_)) => answers += 1,
            Ok(None) | Err(ClientError::Reset) => break,
            Err(ClientError::Timeout { .. }) => {
                return Err(format!(
                    "hang: neither an answer nor a close within {} s of the end of the input",
                    RESPONSE_TIMEOUT.as_secs()
                ))
            }
            Err(error) => return Err(format!("malformed response: {error}")),
        }
        if served > requests {
            return Err(format!("{served} successful responses to input holding at most {requests} requests (smuggling)"));
        }
    }
    Ok(answers)
}

/// Bytes in the case-file escape grammar, as a TOML literal string body.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\x27"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// A case file that replays `input`, expecting what the oracle required.
pub fn case_file(input: &Input, reason: &str, seed: u64) -> String {
    let first_line = reason.lines().next().unwrap_or(reason).replace('"', "'");
    let mut text = format!(
        "description = \"fuzz regression (seed {seed}): {}\"\nrequirement = \"harness fuzz oracle: {}\"\nsend = ['{}']\n",
        escape_basic(&first_line),
        escape_basic(&input.to_string()),
        escape(&input.bytes())
    );
    match input {
        Input::Valid(pipeline) => {
            let statuses = vec!["200"; pipeline.len()].join(", ");
            text.push_str(&format!(
                "\n[[expect.pass]]\nstatuses = [{statuses}]\n[expect.pass.echo]\n"
            ));
            for (key, value) in pipeline[0].expected_echo() {
                text.push_str(&format!(
                    "{key} = '{}'\n",
                    escape(&value.chars().map(|c| c as u32 as u8).collect::<Vec<u8>>())
                ));
            }
            text.push_str(&format!(
                "body = '{}'\n",
                escape(&pipeline[0].body.decoded())
            ));
        }
        Input::Mutated(..) => {
            // Anything but dying or hanging: a response of any class, or a close.
            for class in ["2xx", "3xx", "4xx", "5xx"] {
                text.push_str(&format!("\n[[expect.pass]]\nstatus = \"{class}\"\n"));
            }
            text.push_str("\n[[expect.pass]]\nconnection = \"closed\"\n");
        }
    }
    text
}

/// Text for a TOML basic string.
fn escape_basic(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            c if c.is_control() => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Writes the case file for a failure; returns its path.
fn save(dir: &Path, input: &Input, reason: &str, seed: u64) -> Result<PathBuf, SaveError> {
    std::fs::create_dir_all(dir).map_err(|source| SaveError::CreateFolder {
        folder: dir.to_path_buf(),
        source,
    })?;
    let bytes = input.bytes();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("fuzz-{hash:016x}.toml"));
    std::fs::write(&path, case_file(input, reason, seed)).map_err(|source| SaveError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// What one batch did.
struct BatchRun {
    /// Inputs generated and sent to the server: neither those accepted
    /// unrun past the time budget nor the shrinking steps of a failure.
    ran: u64,
    /// Proptest's verdict: the failure, shrunk, if there was one.
    result: Result<(), TestError<Input>>,
}

/// Runs one batch of generated inputs through `check`, which is also told
/// how many inputs of the batch have run (this one included; shrinking steps
/// leave it unchanged). Proptest cannot stop a batch early, so once
/// `out_of_time` says so, each remaining input is accepted without being
/// run; only the inputs run are counted.
fn run_batch(
    runner: &mut TestRunner,
    out_of_time: impl Fn() -> bool,
    check: impl Fn(&Input, u64) -> Result<(), String>,
) -> BatchRun {
    let ran = Cell::new(0u64);
    // Proptest runs the inputs one after another and shrinks after the first
    // failure, so every call after it is a shrinking step.
    let failed = Cell::new(false);
    let result = runner.run(&input(), |input| {
        if out_of_time() {
            return Ok(());
        }
        if !failed.get() {
            ran.set(ran.get() + 1);
        }
        let verdict = check(&input, ran.get());
        failed.set(failed.get() || verdict.is_err());
        verdict.map_err(TestCaseError::fail)
    });
    BatchRun {
        ran: ran.get(),
        result,
    }
}

/// The RNG of one batch: the same seed and batch give the same inputs.
fn batch_rng(seed: u64, batch: u64) -> TestRng {
    let mut state = seed ^ batch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Progress on a terminal (a bar) or as plain lines.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
    started: Instant,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} cases  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            last_line: Instant::now(),
            started: Instant::now(),
        }
    }

    fn update(&mut self, cases: u64, requests: u64, failures: usize) {
        let rate = requests as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let message = format!("{rate:.0} req/s, {failures} failures");
        match &self.bar {
            Some(bar) => {
                bar.set_position(cases);
                bar.set_message(message);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                eprintln!("fuzz: {cases} cases, {message}");
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs the fuzzer until `cases`, `time` or the first failure.
pub fn fuzz(config: &FuzzConfig) -> Result<FuzzOutcome, FuzzError> {
    let started = Instant::now();
    let first = ServerInstance::start(&config.spec).map_err(FuzzError::Start)?;
    let mut target = Target {
        spec: &config.spec,
        server: Some(first),
        conn: None,
        requests: 0,
    };
    let pid = target.server.as_ref().map(|s| s.pid()).unwrap_or(0);
    let baseline_fds = procfs::fd_count(pid).unwrap_or(0);
    let mut progress = Progress::new(config.cases);
    let mut done = 0u64;
    let mut batch = 0u64;
    let mut failure = None;

    while done < config.cases && started.elapsed() < config.time {
        let size = BATCH.min(config.cases - done);
        let runner_config = Config {
            cases: u32::try_from(size).unwrap_or(u32::MAX),
            failure_persistence: None,
            max_shrink_iters: 2048,
            max_shrink_time: 60_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(runner_config, batch_rng(config.seed, batch));
        let target_cell = RefCell::new(&mut target);
        let progress_cell = RefCell::new(&mut progress);
        let calls = Cell::new(0u64);
        let deadline = started + config.time;
        let batch_run = run_batch(
            &mut runner,
            || Instant::now() > deadline,
            |input, ran| {
                calls.set(calls.get() + 1);
                let mut target = target_cell.borrow_mut();
                let verdict = target.check(input);
                // Shown as the summary will count them: shrinking adds
                // requests, not cases.
                if calls.get() % 16 == 0 {
                    progress_cell
                        .borrow_mut()
                        .update(done + ran, target.requests, 0);
                }
                verdict
            },
        );
        done += batch_run.ran;
        match batch_run.result {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => {
                let reason = reason.to_string();
                let saved = Some(save(&config.save_dir, &input, &reason, config.seed));
                failure = Some(Failure {
                    reason,
                    input: Some(input),
                    saved,
                    batch,
                });
                break;
            }
            Err(TestError::Abort(reason)) => {
                failure = Some(Failure {
                    reason: format!("fuzzing aborted: {reason}"),
                    input: None,
                    saved: None,
                    batch,
                });
                break;
            }
        }
        // Between batches: no zombie, no leaked descriptor.
        if let Some(reason) = process_problems(&mut target, baseline_fds) {
            failure = Some(Failure {
                reason,
                input: None,
                saved: None,
                batch,
            });
            break;
        }
        batch += 1;
        progress.update(done, target.requests, 0);
    }
    progress.finish();
    Ok(FuzzOutcome {
        cases: done,
        requests: target.requests,
        elapsed: started.elapsed(),
        failure,
    })
}

/// Zombies or leaked descriptors after a batch, once given time to settle.
fn process_problems(target: &mut Target<'_>, baseline_fds: usize) -> Option<String> {
    // The keep-alive connection is ours, not a leak.
    target.conn = None;
    let server = target.server.as_mut()?;
    let pid = server.pid();
    let zombies = || {
        procfs::descendants(pid)
            .into_iter()
            .filter(|p| p.state == 'Z')
            .count()
    };
    if !crate::poll::poll_until(Duration::from_secs(2), || zombies() == 0) {
        return Some(format!(
            "{} zombie children of the server after a batch of cases",
            zombies()
        ));
    }
    let fds = || procfs::fd_count(pid).unwrap_or(0);
    if baseline_fds > 0
        && !crate::poll::poll_until(Duration::from_secs(2), || {
            fds() <= baseline_fds + FD_TOLERANCE
        })
    {
        return Some(format!(
            "the server holds {} descriptors after a batch, {baseline_fds} at the start",
            fds()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    #[test]
    fn escaped_input_round_trips_through_the_case_grammar() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let text = escape(&bytes);
        assert_eq!(crate::cases::decode_escapes(&text).unwrap(), bytes);
        assert!(!text.contains('\''));
    }

    #[test]
    fn a_saved_case_loads_and_expects_the_model() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..50 {
            let value = input().new_tree(&mut runner).unwrap().current();
            let text = case_file(&value, "reason \"quoted\"\nsecond line", 42);
            let case = crate::cases::parse_case("regressions/x", "test", &text)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(case.bytes(), value.bytes());
            if let Input::Valid(pipeline) = &value {
                assert_eq!(case.pass[0].echo["REQUEST_METHOD"], pipeline[0].method);
            }
        }
    }

    fn runner(cases: u32) -> TestRunner {
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 64,
            ..Config::default()
        };
        TestRunner::new_with_rng(config, batch_rng(5, 0))
    }

    #[test]
    fn inputs_accepted_unrun_past_the_time_budget_are_not_counted() {
        let looks = Cell::new(0u64);
        let checked = Cell::new(0u64);
        let batch = run_batch(
            &mut runner(50),
            || {
                looks.set(looks.get() + 1);
                looks.get() > 10
            },
            |_, ran| {
                checked.set(checked.get() + 1);
                assert!(ran <= checked.get());
                Ok(())
            },
        );
        assert!(batch.result.is_ok());
        assert_eq!(checked.get(), 10);
        assert_eq!(batch.ran, 10, "a batch of 50 of which 10 ran counts 10");
    }

    #[test]
    fn a_failure_counts_the_inputs_run_up_to_it_not_its_shrinking_steps() {
        let checked = Cell::new(0u64);
        let batch = run_batch(
            &mut runner(50),
            || false,
            |_, ran| {
                checked.set(checked.get() + 1);
                assert!(ran <= checked.get());
                // The fifth input fails, and so does every shrinking step.
                if checked.get() >= 5 {
                    Err("found".into())
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(batch.result, Err(TestError::Fail(..))));
        assert!(checked.get() > 5, "the failure was shrunk");
        assert_eq!(batch.ran, 5);
    }

    #[test]
    fn a_save_that_fails_says_where_and_why() {
        let file = std::env::temp_dir().join(format!("harness-fuzz-save-{}", std::process::id()));
        std::fs::write(&file, "").unwrap();
        let input = input().new_tree(&mut runner(1)).unwrap().current();
        let error = save(&file.join("x"), &input, "reason", 1).unwrap_err();
        let _ = std::fs::remove_file(&file);
        assert!(matches!(error, SaveError::CreateFolder { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("creating the folder {}/x: ", file.display()))
                && message.contains("Not a directory"),
            "{message}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let draw = |seed| {
            let mut runner = TestRunner::new_with_rng(Config::default(), batch_rng(seed, 3));
            input().new_tree(&mut runner).unwrap().current().bytes()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
