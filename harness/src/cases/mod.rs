//! Declarative HTTP cases: one TOML file per case, the expectation beside
//! the input, the id taken from the path. The format is documented in
//! `cases/README.md`; this module loads and validates it.
//!
//! # Layout
//! - this file: the case model, loading, and the escape grammar of `send`.
//! - [`preset`]: named sets of warn outcomes (`warn_preset`).
//! - [`observe`]: one delivery: the bytes sent one way, what came back.
//! - [`grade`]: an observation judged against the graded outcomes.
//! - [`run`]: a group of cases, within a deadline each, on the instances the
//!   server's behaviour calls for.

pub mod grade;
pub mod observe;
pub mod preset;
pub mod run;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use std::os::unix::fs::MetadataExt;

use serde::Deserialize;

use crate::files::{self, ReadError};
use crate::probe::Route;
use preset::WarnPreset;

include!(concat!(env!("OUT_DIR"), "/builtin_cases.rs"));

/// Most bytes a case may send in all.
pub const MAX_SEND: usize = 1 << 20;
/// Most milliseconds the pauses between a case's chunks may add up to.
pub const MAX_PAUSES_MS: u64 = 3000;
/// Most bytes a case file may hold: room for [`MAX_SEND`] written entirely
/// in `\xNN` escapes (four characters a byte) and 1 MiB for the rest, so no
/// case the format allows is refused for its size, and no file (or
/// `/dev/zero` behind a link) is read without end.
pub const MAX_CASE_FILE: u64 = 4 * MAX_SEND as u64 + (1 << 20);
/// Most folder levels below a `--cases` folder. Loops cannot make a walk
/// deep (each folder is entered once), so only a real tree this deep, or a
/// chain of links to ever new folders, reaches it.
pub const MAX_DEPTH: usize = 32;

/// Whether a case checks a MUST or a SHOULD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Level {
    /// A MUST of the RFC.
    #[default]
    #[serde(rename = "MUST")]
    Must,
    /// A SHOULD of the RFC.
    #[serde(rename = "SHOULD")]
    Should,
}

/// How the bytes of a case are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each chunk in one write.
    Whole,
    /// One byte per write (the first 4 KiB).
    Bytewise,
    /// All chunks joined and cut at a random point, in two writes.
    Split,
}

impl Mode {
    /// Every mode, in the order they run.
    pub const ALL: [Mode; 3] = [Mode::Whole, Mode::Bytewise, Mode::Split];

    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Whole => "whole",
            Mode::Bytewise => "bytewise",
            Mode::Split => "split",
        }
    }
}

/// A status an outcome accepts: one code, or a class like `4xx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this code.
    Code(u16),
    /// Any code of this hundred (4 for `4xx`).
    Class(u16),
}

impl StatusMatch {
    /// Whether `status` is accepted.
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => status == code,
            StatusMatch::Class(class) => status / 100 == class,
        }
    }
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusMatch::Code(code) => write!(f, "{code}"),
            StatusMatch::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// What the connection did after the responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// The server closed it.
    Closed,
    /// The server still served another request on it.
    Kept,
}

/// One acceptable outcome; every named field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Status of the first final response.
    pub status: Option<StatusMatch>,
    /// Statuses of all final responses, in order.
    pub statuses: Option<Vec<StatusMatch>>,
    /// Number of final responses.
    pub responses: Option<usize>,
    /// Closed or kept.
    pub connection: Option<ConnectionState>,
    /// 1xx statuses before the first final response.
    pub interim: Option<Vec<u16>>,
    /// Meta-variables the app must have seen (values already decoded to text).
    pub echo: BTreeMap<String, String>,
    /// Meta-variables that must be absent.
    pub absent: Vec<String>,
    /// The answer is not an HTTP/1.x response at all but bare bytes, the
    /// way an HTTP/0.9 server answers a request line without a version.
    pub bare: bool,
}

impl Outcome {
    /// How many final responses this outcome needs to be judged.
    pub fn responses_needed(&self) -> usize {
        self.statuses
            .as_ref()
            .map(Vec::len)
            .or(self.responses)
            .unwrap_or(usize::from(
                self.status.is_some() || !self.echo.is_empty() || !self.absent.is_empty(),
            ))
    }

    /// Whether the outcome reads `/echo` output.
    pub fn needs_echo(&self) -> bool {
        !self.echo.is_empty() || !self.absent.is_empty()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(status) = self.status {
            parts.push(format!("status {status}"));
        }
        if let Some(statuses) = &self.statuses {
            let list: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
            parts.push(format!("statuses [{}]", list.join(", ")));
        }
        if let Some(n) = self.responses {
            parts.push(format!("{n} responses"));
        }
        if let Some(interim) = &self.interim {
            parts.push(format!("interim {interim:?}"));
        }
        if let Some(state) = self.connection {
            parts.push(match state {
                ConnectionState::Closed => "closed".into(),
                ConnectionState::Kept => "kept".into(),
            });
        }
        if !self.echo.is_empty() {
            let keys: Vec<&str> = self.echo.keys().map(String::as_str).collect();
            parts.push(format!("echo of {}", keys.join(", ")));
        }
        if !self.absent.is_empty() {
            parts.push(format!("without {}", self.absent.join(", ")));
        }
        if self.bare {
            parts.push("a bare body without a status line".into());
        }
        if parts.is_empty() {
            parts.push("anything".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// One case, loaded and validated.
#[derive(Clone, Debug)]
pub struct CaseFile {
    /// `http/<folder>/<stem>`: the path below the cases root, without `.toml`.
    pub id: String,
    /// Where it was loaded from (`builtin:` for embedded cases).
    pub origin: String,
    /// One line: what the case sends.
    pub description: String,
    /// Section and sentence checked.
    pub requirement: String,
    /// MUST or SHOULD.
    pub level: Level,
    /// The chunks, decoded.
    pub send: Vec<Vec<u8>>,
    /// Pause between chunks in `whole` mode, in ms.
    pub pause_ms: u64,
    /// Modes to run.
    pub modes: Vec<Mode>,
    /// Whether the responses answer HEAD requests.
    pub head: bool,
    /// What to do on failure.
    pub hint: Option<String>,
    /// Outcomes for pass.
    pub pass: Vec<Outcome>,
    /// Outcomes for warn.
    pub warn: Vec<Outcome>,
}

/// Whether any line of `bytes` reads like a request line whose target is
/// `/echo` or below it, in origin form or absolute form.
fn targets_echo(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'\n').any(|line| {
        let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
        let (Some(_method), Some(target)) = (parts.next(), parts.next()) else {
            return false;
        };
        let path = match target.windows(3).position(|w| w == b"://") {
            // Absolute form: the path starts after the authority.
            Some(at) => {
                let rest = &target[at + 3..];
                match rest.iter().position(|&b| b == b'/') {
                    Some(slash) => &rest[slash..],
                    None => return false,
                }
            }
            None => target,
        };
        path.starts_with(b"/echo")
    })
}

impl CaseFile {
    /// All chunks joined.
    pub fn bytes(&self) -> Vec<u8> {
        self.send.concat()
    }

    /// The routes the case cannot run without: `/echo` when a request
    /// targets it, whether or not an outcome reads the echo. A server that
    /// answers 404 there (or `Hello, World!` everywhere) would otherwise be
    /// graded on an answer that says nothing about the rule the case tests.
    pub fn needs(&self) -> Vec<Route> {
        if self.pass.iter().chain(&self.warn).any(Outcome::needs_echo)
            || targets_echo(&self.bytes())
        {
            vec![Route::Echo]
        } else {
            Vec::new()
        }
    }

    /// How many final responses to wait for.
    pub fn responses_needed(&self) -> usize {
        self.pass
            .iter()
            .chain(&self.warn)
            .map(Outcome::responses_needed)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The hint shown on failure.
    pub fn hint(&self) -> String {
        self.hint.clone().unwrap_or_else(|| {
            let outcomes: Vec<String> = self.pass.iter().map(|o| o.to_string()).collect();
            format!(
                "A conforming server answers with: {}.",
                outcomes.join("; or ")
            )
        })
    }
}

/// Why a case file could not be loaded.
#[derive(Debug)]
pub enum CaseError {
    /// A folder or file could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the format.
    Format {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A case file is not a regular file, too large, or unreadable.
    File(ReadError),
    /// A path given as a folder of cases is something else.
    NotAFolder {
        /// The path.
        path: PathBuf,
        /// What it is instead (`a regular file`, `a FIFO`, ...).
        kind: &'static str,
    },
    /// Folders nest deeper than [`MAX_DEPTH`] below the folder given.
    TooDeep {
        /// The first folder too deep.
        path: PathBuf,
    },
    /// Two files give the same id.
    DuplicateId {
        /// The id.
        id: String,
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseError::Read { path, source } => write!(f, "reading {}: {source}", path.display()),
            CaseError::Format { origin, message } => write!(f, "{origin}: {message}"),
            CaseError::File(error) => write!(f, "case file {error}"),
            CaseError::NotAFolder { path, kind } => {
                write!(
                    f,
                    "{} is {kind}, not a folder of case files",
                    path.display()
                )
            }
            CaseError::TooDeep { path } => write!(
                f,
                "{}: more than {MAX_DEPTH} folder levels below the cases folder",
                path.display()
            ),
            CaseError::DuplicateId { id, first, second } => {
                write!(f, "case id {id} is given by both {first} and {second}")
            }
        }
    }
}

impl std::error::Error for CaseError {}

/// Decodes the escape grammar of `send`: `\r \n \t \\ \xNN`; any other
/// backslash sequence is an error naming the offset.
pub fn decode_escapes(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = bytes
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .filter(|_| hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                    None => return Err(format!("\\x at offset {i} needs two hex digits")),
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape \\{} at offset {i} (use \\r \\n \\t \\\\ or \\xNN)",
                    char::from(*other)
                ))
            }
            None => {
                return Err(format!(
                    "lone backslash at the end (offset {i}); write \\\\ for a backslash"
                ))
            }
        }
        i += 2;
    }
    Ok(out)
}

/// Bytes to text one to one (ISO-8859-1), as WSGI and the reference gateway map them.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    description: String,
    requirement: String,
    #[serde(default)]
    level: Level,
    send: Vec<RawChunk>,
    #[serde(default)]
    pause_ms: u64,
    modes: Option<Vec<Mode>>,
    #[serde(default)]
    head: bool,
    hint: Option<String>,
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawChunk {
    Text(String),
    Repeat { repeat: String, times: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    pass: Vec<RawOutcome>,
    #[serde(default)]
    warn: Vec<RawOutcome>,
    warn_preset: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    status: Option<RawStatus>,
    statuses: Option<Vec<RawStatus>>,
    responses: Option<usize>,
    connection: Option<ConnectionState>,
    interim: Option<Vec<u16>>,
    #[serde(default)]
    echo: BTreeMap<String, String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    bare: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawStatus {
    Code(u16),
    Class(String),
}

fn status(raw: &RawStatus) -> Result<StatusMatch, String> {
    match raw {
        RawStatus::Code(code) if (100..=599).contains(code) => Ok(StatusMatch::Code(*code)),
        RawStatus::Code(code) => Err(format!("status {code} is not between 100 and 599")),
        RawStatus::Class(text) => match text.as_bytes() {
            [d @ b'1'..=b'5', b'x', b'x'] => Ok(StatusMatch::Class(u16::from(d - b'0'))),
            _ => Err(format!(
                "status {text:?} is neither a code nor a class like \"4xx\""
            )),
        },
    }
}

fn outcome(raw: RawOutcome) -> Result<Outcome, String> {
    let mut echo = BTreeMap::new();
    for (key, value) in raw.echo {
        let decoded = decode_escapes(&value).map_err(|e| format!("echo.{key}: {e}"))?;
        echo.insert(key, latin1(&decoded));
    }
    Ok(Outcome {
        status: raw.status.as_ref().map(status).transpose()?,
        statuses: raw
            .statuses
            .as_ref()
            .map(|list| list.iter().map(status).collect())
            .transpose()?,
        responses: raw.responses,
        connection: raw.connection,
        interim: raw.interim,
        echo,
        absent: raw.absent,
        bare: raw.bare,
    })
}

/// Parses one case file's text; `id` and `origin` come from its path.
pub fn parse_case(id: &str, origin: &str, text: &str) -> Result<CaseFile, CaseError> {
    let bad = |message: String| CaseError::Format {
        origin: origin.to_string(),
        message,
    };
    let raw: RawCase = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
    if raw.description.trim().is_empty() || raw.requirement.trim().is_empty() {
        return Err(bad("description and requirement must not be empty".into()));
    }
    let mut send: Vec<Vec<u8>> = Vec::new();
    let mut after_repeat = false;
    let mut total = 0usize;
    for (i, chunk) in raw.send.iter().enumerate() {
        let (bytes, is_repeat) = match chunk {
            RawChunk::Text(text) => (
                decode_escapes(text).map_err(|e| bad(format!("send[{i}]: {e}")))?,
                false,
            ),
            RawChunk::Repeat { repeat, times } => {
                let unit =
                    decode_escapes(repeat).map_err(|e| bad(format!("send[{i}].repeat: {e}")))?;
                // Checked against what came before it too, before anything
                // is expanded: many repeats must not add up in memory first.
                if total.saturating_add(unit.len().saturating_mul(*times)) > MAX_SEND {
                    return Err(bad(format!(
                        "send[{i}]: repeat makes more than {MAX_SEND} bytes in all"
                    )));
                }
                (unit.repeat(*times), true)
            }
        };
        total += bytes.len();
        match send.last_mut() {
            // A repeat joins the chunk before it, and the chunk after a
            // repeat joins it too.
            Some(last) if is_repeat || after_repeat => last.extend_from_slice(&bytes),
            _ => send.push(bytes),
        }
        after_repeat = is_repeat;
    }
    if total == 0 {
        return Err(bad("send is empty".into()));
    }
    if total > MAX_SEND {
        return Err(bad(format!("send is larger than {MAX_SEND} bytes")));
    }
    if raw.expect.pass.is_empty() {
        return Err(bad("expect.pass needs at least one outcome".into()));
    }
    let pass = raw
        .expect
        .pass
        .into_iter()
        .map(outcome)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let mut warn = raw
        .expect
        .warn
        .into_iter()
        .map(outcome)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if let Some(name) = &raw.expect.warn_preset {
        warn.extend(WarnPreset::from_name(name).map_err(bad)?.outcomes());
    }
    // The pauses of one delivery together must leave the case time to be
    // answered within its deadline (cases::run::CASE_BUDGET).
    let pauses = raw
        .pause_ms
        .saturating_mul(send.len().saturating_sub(1) as u64);
    if pauses > MAX_PAUSES_MS {
        return Err(bad(format!(
            "pause_ms {} between {} chunks adds up to {pauses} ms; at most {MAX_PAUSES_MS} ms in all",
            raw.pause_ms,
            send.len()
        )));
    }
    let modes = match raw.modes {
        Some(modes) if modes.is_empty() => {
            return Err(bad("modes must name at least one mode".into()))
        }
        Some(modes) => modes,
        None => Mode::ALL.to_vec(),
    };
    Ok(CaseFile {
        id: id.to_string(),
        origin: origin.to_string(),
        description: raw.description.trim().to_string(),
        requirement: raw.requirement.trim().to_string(),
        level: raw.level,
        send,
        pause_ms: raw.pause_ms,
        modes,
        head: raw.head,
        hint: raw.hint,
        pass,
        warn,
    })
}

/// The id of a case from its path below the root: the path without `.toml`.
fn id_of(relative: &str) -> String {
    relative
        .strip_suffix(".toml")
        .unwrap_or(relative)
        .to_string()
}

/// The cases built into the harness.
pub fn builtin() -> Result<Vec<CaseFile>, CaseError> {
    BUILTIN_CASES
        .iter()
        .map(|(path, text)| parse_case(&id_of(path), &format!("cases/{path}"), text))
        .collect()
}

/// Cases loaded from files, and what the user should hear about loading them.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The cases, built-in ones first, then each folder's sorted by path.
    pub cases: Vec<CaseFile>,
    /// What was skipped and why, one sentence each, to be shown as warnings.
    pub warnings: Vec<String>,
}

/// The walk of one folder of cases: what it found, and where it has been.
#[derive(Default)]
struct Walk {
    /// Folders entered, by (device, inode), with the path each was first
    /// entered by. A link to one of them again is a loop (`up -> ..`), or a
    /// second way to the same cases, which would load them twice under two
    /// ids; either way it is skipped.
    visited: BTreeMap<(u64, u64), PathBuf>,
    /// The case files found.
    files: Vec<PathBuf>,
    /// What was skipped and why.
    warnings: Vec<String>,
}

impl Walk {
    /// Walks `dir`, which is `depth` levels below the root and already visited.
    fn walk(&mut self, dir: &Path, depth: usize) -> Result<(), CaseError> {
        let read_error = |source| CaseError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = std::fs::read_dir(dir)
            .map_err(read_error)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error)?;
        // Sorted, so that which of two ways to a folder comes first, and so
        // its cases' ids, do not depend on the order the file system lists.
        paths.sort();
        for path in paths {
            let is_case = path.extension().is_some_and(|e| e == "toml");
            // Links followed: a link to a folder is walked, a link to a case
            // file loaded.
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(source) if is_case => return Err(CaseError::Read { path, source }),
                // A dangling or looping link that names no case: not ours.
                Err(_) => continue,
            };
            if meta.is_dir() {
                if let Some(first) = self.visited.get(&(meta.dev(), meta.ino())) {
                    self.warnings.push(format!(
                        "{} leads to the folder {}, already loaded; skipped",
                        path.display(),
                        first.display()
                    ));
                    continue;
                }
                if depth >= MAX_DEPTH {
                    return Err(CaseError::TooDeep { path });
                }
                self.visited.insert((meta.dev(), meta.ino()), path.clone());
                self.walk(&path, depth + 1)?;
            } else if is_case && meta.is_file() {
                self.files.push(path);
            } else if is_case {
                // Opening a FIFO waits for a writer that never comes, and a
                // device may never end: never opened, only named.
                self.warnings.push(format!(
                    "{} is {}, not a regular file; skipped without opening it",
                    path.display(),
                    files::kind(meta.file_type())
                ));
            }
        }
        Ok(())
    }
}

/// The cases in a folder of the user's, ids relative to it, with warnings
/// for what was skipped: links to a folder already walked, and files named
/// `*.toml` that are not regular files.
pub fn load_dir(root: &Path) -> Result<Loaded, CaseError> {
    let meta = std::fs::metadata(root).map_err(|source| CaseError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(CaseError::NotAFolder {
            path: root.to_path_buf(),
            kind: files::kind(meta.file_type()),
        });
    }
    let mut walk = Walk::default();
    walk.visited
        .insert((meta.dev(), meta.ino()), root.to_path_buf());
    walk.walk(root, 0)?;
    walk.files.sort();
    let cases = walk
        .files
        .iter()
        .map(|path| {
            let text = files::read_regular(path, MAX_CASE_FILE).map_err(CaseError::File)?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .replace('\\', "/");
            parse_case(&id_of(&relative), &path.display().to_string(), &text)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded {
        cases,
        warnings: walk.warnings,
    })
}

/// Built-in cases plus the user's folders, with ids checked for uniqueness.
pub fn load_all(extra: &[PathBuf]) -> Result<Loaded, CaseError> {
    let mut all = Loaded {
        cases: builtin()?,
        warnings: Vec::new(),
    };
    for dir in extra {
        let loaded = load_dir(dir)?;
        all.cases.extend(loaded.cases);
        all.warnings.extend(loaded.warnings);
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for case in &all.cases {
        if let Some(first) = seen.insert(&case.id, &case.origin) {
            return Err(CaseError::DuplicateId {
                id: case.id.clone(),
                first: first.to_string(),
                second: case.origin.clone(),
            });
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(r"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\n".as_slice())]
    #[case(r"a\tb\\c", b"a\tb\\c".as_slice())]
    #[case(r"\x00\x7f\xFF", b"\x00\x7f\xff".as_slice())]
    #[case("caf\u{e9}", "caf\u{e9}".as_bytes())]
    fn escapes_decode(#[case] text: &str, #[case] bytes: &[u8]) {
        assert_eq!(decode_escapes(text).unwrap(), bytes);
    }

    #[rstest]
    #[case(r"\q")]
    #[case(r"\x4")]
    #[case(r"\xzz")]
    #[case(r"\x+1")]
    #[case("trailing\\")]
    fn bad_escapes_are_errors(#[case] text: &str) {
        assert!(decode_escapes(text).is_err(), "{text}");
    }

    const MINIMAL: &str = r#"
description = "d"
requirement = "r"
send = ['GET / HTTP/1.1\r\nHost: a\r\n\r\n']
[[expect.pass]]
status = 200
"#;

    #[test]
    fn a_minimal_case_loads_with_defaults() {
        let case = parse_case("http/x/y", "test", MINIMAL).unwrap();
        assert_eq!(case.modes, Mode::ALL);
        assert_eq!(case.level, Level::Must);
        assert_eq!(
            case.send,
            vec![b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()]
        );
        assert_eq!(case.pass[0].status, Some(StatusMatch::Code(200)));
        assert!(case.needs().is_empty());
    }

    #[test]
    fn repeat_tables_join_their_neighbours() {
        let text = MINIMAL.replace(
            r"send = ['GET / HTTP/1.1\r\nHost: a\r\n\r\n']",
            r"send = ['GET /', { repeat = 'ab', times = 3 }, ' HTTP/1.1\r\n\r\n', 'X']",
        );
        let case = parse_case("t", "test", &text).unwrap();
        assert_eq!(
            case.send,
            vec![b"GET /ababab HTTP/1.1\r\n\r\n".to_vec(), b"X".to_vec()]
        );
    }

    #[rstest]
    #[case::unknown_key("description = 'd'\nrequirement = 'r'\nsend = ['x']\nbogus = 1\n[[expect.pass]]\nstatus = 200\n")]
    #[case::no_pass("description = 'd'\nrequirement = 'r'\nsend = ['x']\n[expect]\npass = []\n")]
    #[case::bad_class(
        "description = 'd'\nrequirement = 'r'\nsend = ['x']\n[[expect.pass]]\nstatus = '4yy'\n"
    )]
    #[case::bad_escape(
        "description = 'd'\nrequirement = 'r'\nsend = ['\\q']\n[[expect.pass]]\nstatus = 200\n"
    )]
    #[case::empty_send(
        "description = 'd'\nrequirement = 'r'\nsend = []\n[[expect.pass]]\nstatus = 200\n"
    )]
    #[case::huge_repeat("description = 'd'\nrequirement = 'r'\nsend = [{ repeat = 'a', times = 99999999 }]\n[[expect.pass]]\nstatus = 200\n")]
    #[case::not_toml("description = ")]
    #[case::many_repeats_add_up(&format!(
        "description = 'd'\nrequirement = 'r'\nsend = [{}]\n[[expect.pass]]\nstatus = 200\n",
        vec!["{ repeat = 'a', times = 1048576 }"; 600].join(", ")
    ))]
    #[case::pauses_too_long(
        "description = 'd'\nrequirement = 'r'\nsend = ['a', 'b', 'c', 'd']\npause_ms = 1500\n[[expect.pass]]\nstatus = 200\n"
    )]
    fn bad_case_files_are_clear_errors(#[case] text: &str) {
        let error = parse_case("t", "file.toml", text).unwrap_err();
        assert!(error.to_string().starts_with("file.toml: "), "{error}");
    }

    #[rstest]
    #[case(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n", true)]
    #[case(b"POST /echo/x?y=1 HTTP/1.1\r\n\r\n", true)]
    #[case(b"GET http://a.test/echo HTTP/1.1\r\n\r\n", true)]
    #[case(b"GET / HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\n\r\n", true)]
    #[case(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false)]
    #[case(b"GET http://a.test/ HTTP/1.1\r\n\r\n", false)]
    #[case(b"GET /hello HTTP/1.1\r\n\r\n", false)]
    fn a_case_whose_request_targets_echo_needs_it(#[case] bytes: &[u8], #[case] needs: bool) {
        assert_eq!(targets_echo(bytes), needs);
    }

    #[test]
    fn every_builtin_case_loads_and_ids_are_unique() {
        let cases = load_all(&[]).unwrap().cases;
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), cases.len());
        for case in &cases {
            assert!(
                case.id.starts_with("http/") || case.id.starts_with("gateway/"),
                "{}",
                case.id
            );
        }
    }

    /// The block `warn_preset = "rejection"` stands for, written out.
    const REJECTION_BLOCK: &str = r#"
[[expect.warn]]
status = "4xx"

[[expect.warn]]
status = "5xx"

[[expect.warn]]
responses = 0
connection = "closed"
"#;

    /// MINIMAL with `expect_keys` in an `[expect]` table before its pass
    /// outcome, and `warn` after it.
    fn minimal_with(expect_keys: &str, warn: &str) -> String {
        // MINIMAL is written above with exactly one pass outcome.
        let (head, pass) = MINIMAL.split_once("[[expect.pass]]").unwrap();
        format!("{head}[expect]\n{expect_keys}\n[[expect.pass]]{pass}{warn}")
    }

    #[rstest]
    #[case::alone("")]
    #[case::after_explicit_warns("[[expect.warn]]\nstatus = 200\n")]
    fn the_rejection_preset_is_its_block_written_out_after_explicit_warns(#[case] explicit: &str) {
        let with_preset = minimal_with("warn_preset = 'rejection'", explicit);
        let written_out = format!("{MINIMAL}{explicit}{REJECTION_BLOCK}");
        let with_preset = parse_case("t", "test", &with_preset).unwrap();
        let written_out = parse_case("t", "test", &written_out).unwrap();
        assert_eq!(with_preset.pass, written_out.pass);
        assert_eq!(with_preset.warn, written_out.warn);
        let explicit = parse_case("t", "test", &format!("{MINIMAL}{explicit}")).unwrap();
        let mut expected = explicit.warn;
        expected.extend(WarnPreset::Rejection.outcomes());
        assert_eq!(with_preset.warn, expected);
    }

    #[test]
    fn an_unknown_warn_preset_is_an_error_naming_the_known_ones() {
        let text = minimal_with("warn_preset = 'lenient'", "");
        let error = parse_case("t", "file.toml", &text).unwrap_err().to_string();
        assert_eq!(
            error,
            "file.toml: unknown warn_preset \"lenient\"; the known presets are \"rejection\""
        );
    }

    /// A fresh folder in the temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("harness-cases-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        /// Writes the minimal case at `relative`, creating its folders.
        fn case(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, MINIMAL).unwrap();
            path
        }

        fn link(&self, relative: &str, target: &str) {
            std::os::unix::fs::symlink(target, self.0.join(relative)).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ids(loaded: &Loaded) -> Vec<&str> {
        loaded.cases.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn links_back_up_the_tree_load_each_case_once_and_the_walk_ends() {
        let root = Scratch::new("loops");
        let outside = Scratch::new("loops-outside");
        root.case("a.toml");
        root.case("sub/b.toml");
        root.link("sub/up1", "..");
        root.link("sub/up2", "..");
        root.link("self", ".");
        // A link to a folder outside the tree is a folder like any other.
        outside.case("c.toml");
        root.link("ext", outside.0.to_str().unwrap());
        let loaded = load_dir(&root.0).unwrap();
        assert_eq!(ids(&loaded), ["a", "ext/c", "sub/b"]);
        assert_eq!(loaded.warnings.len(), 3, "{:#?}", loaded.warnings);
        for (warning, link) in loaded.warnings.iter().zip(["self", "sub/up1", "sub/up2"]) {
            assert_eq!(
                *warning,
                format!(
                    "{} leads to the folder {}, already loaded; skipped",
                    root.0.join(link).display(),
                    root.0.display()
                )
            );
        }
    }

    #[test]
    fn a_fifo_named_like_a_case_is_skipped_with_a_warning_never_opened() {
        let root = Scratch::new("fifo");
        root.case("a.toml");
        let fifo = root.0.join("x.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // No writer ever comes: opening it would block this test forever.
        let loaded = load_dir(&root.0).unwrap();
        assert_eq!(ids(&loaded), ["a"]);
        assert_eq!(
            loaded.warnings,
            [format!(
                "{} is a FIFO, not a regular file; skipped without opening it",
                fifo.display()
            )]
        );
    }

    #[test]
    fn a_link_to_an_endless_device_named_like_a_case_is_skipped() {
        let root = Scratch::new("zero");
        root.link("zero.toml", "/dev/zero");
        let loaded = load_dir(&root.0).unwrap();
        assert!(loaded.cases.is_empty());
        assert!(
            loaded.warnings[0].contains("zero.toml is a character device"),
            "{:?}",
            loaded.warnings
        );
    }

    #[rstest]
    #[case::regular_file("file", "a regular file")]
    #[case::fifo("fifo", "a FIFO")]
    #[case::device("/dev/null", "a character device")]
    fn a_cases_path_that_is_not_a_folder_is_a_clear_error(#[case] what: &str, #[case] kind: &str) {
        let scratch = Scratch::new(&format!("not-a-folder-{what}").replace('/', "-"));
        let path = match what {
            "file" => scratch.case("one.toml"),
            "fifo" => {
                let path = scratch.0.join("pipe");
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
                path
            }
            device => PathBuf::from(device),
        };
        let error = load_dir(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} is {kind}, not a folder of case files", path.display())
        );
    }

    #[test]
    fn folders_nest_at_most_the_depth_limit() {
        let root = Scratch::new("deep");
        let deepest = vec!["d"; MAX_DEPTH].join("/");
        root.case(&format!("{deepest}/ok.toml"));
        let loaded = load_dir(&root.0).unwrap();
        assert_eq!(ids(&loaded), [format!("{deepest}/ok")]);
        root.case(&format!("{deepest}/d/too-deep.toml"));
        let error = load_dir(&root.0).unwrap_err();
        assert!(matches!(error, CaseError::TooDeep { .. }), "{error}");
        assert!(
            error.to_string().contains("more than 32 folder levels"),
            "{error}"
        );
    }

    #[test]
    fn a_case_file_past_the_size_limit_is_an_error_naming_it_and_the_limit() {
        let root = Scratch::new("huge");
        let path = root.0.join("huge.toml");
        // Sparse: no disk is spent on it.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_CASE_FILE + 1)
            .unwrap();
        let error = load_dir(&root.0).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "case file {}: larger than 5 MiB (the most the harness reads)",
                path.display()
            )
        );
    }

    #[test]
    fn echo_values_are_decoded_then_mapped_to_text() {
        let text = format!("{MINIMAL}[expect.pass.echo]\nbody = '\\x00\\xff'\n");
        let case = parse_case("t", "test", &text).unwrap();
        assert_eq!(case.pass[0].echo["body"], "\u{0}\u{ff}");
        assert_eq!(case.needs(), vec![Route::Echo]);
    }
}
