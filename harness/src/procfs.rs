//! Reading `/proc` (Linux only): processes, their descriptors, and TCP sockets.
//!
//! The harness judges a server from the outside, so everything it knows about
//! zombies, leaked descriptors, stray children and lingering sockets comes from
//! here. The kernel can change `/proc` under our feet at any moment (a process
//! exits between `readdir` and `open`, a descriptor closes between listing and
//! `readlink`), so the scanning functions skip entries that vanished instead of
//! failing, and only report errors for the one object the caller asked about.
//!
//! Formats parsed here are documented in proc(5): `/proc/PID/stat`,
//! `/proc/PID/fd/`, `/proc/net/tcp` and `/proc/net/tcp6`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::Serialize;

/// One line of `/proc/PID/stat`, reduced to the fields the harness uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id (field 1).
    pub pid: i32,
    /// Parent process id (field 4); changes to the reaper when the parent dies.
    pub ppid: i32,
    /// Process group id (field 5); the harness starts every server in its own group.
    pub pgrp: i32,
    /// State letter (field 3): `R` running, `S` sleeping, `Z` zombie, `X` dead, ...
    pub state: char,
    /// Number of threads (field 20).
    pub num_threads: u32,
    /// Command name (field 2) without the surrounding parentheses; may hold spaces and `)`.
    pub comm: String,
    /// Start time in clock ticks since boot (field 22). Together with `pid` it
    /// identifies a process across pid reuse.
    pub start_time: u64,
    /// Minor faults of the children this process has waited for (field 11,
    /// cminflt). Every forked child faults in pages, so this grows whenever
    /// the process reaps a child: a sign of forking that does not depend on
    /// catching the child alive.
    pub child_minflt: u64,
}

impl ProcStat {
    /// Is this process still running code, as opposed to a zombie (`Z`) or dead (`X`)?
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Why a `/proc` read failed. One variant per file the module reads.
#[derive(Debug)]
pub enum ProcError {
    /// Reading `/proc/PID/stat` failed (most often: the process does not exist).
    Stat {
        /// The process asked about.
        pid: i32,
        /// The error from `read`.
        source: io::Error,
    },
    /// `/proc/PID/stat` did not have the documented layout.
    StatFormat {
        /// The process asked about.
        pid: i32,
        /// What was wrong with the line.
        reason: String,
    },
    /// Listing `/proc/PID/fd` failed (no such process, or not ours to look at).
    FdDir {
        /// The process asked about.
        pid: i32,
        /// The error from `readdir`.
        source: io::Error,
    },
    /// `readlink /proc/PID/fd/N` failed for a reason other than the fd closing meanwhile.
    FdLink {
        /// The process asked about.
        pid: i32,
        /// The descriptor number.
        fd: i32,
        /// The error from `readlink`.
        source: io::Error,
    },
    /// Reading a socket table (`/proc/net/tcp` or `/proc/net/tcp6`) failed.
    NetTable {
        /// The file read.
        path: PathBuf,
        /// The error from `read`.
        source: io::Error,
    },
    /// A line of a socket table did not have the documented layout.
    NetTableFormat {
        /// The file read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with the line.
        reason: String,
    },
}

impl fmt::Display for ProcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcError::Stat { pid, source } => write!(f, "reading /proc/{pid}/stat: {source}"),
            ProcError::StatFormat { pid, reason } => {
                write!(f, "unexpected format of /proc/{pid}/stat: {reason}")
            }
            ProcError::FdDir { pid, source } => write!(f, "listing /proc/{pid}/fd: {source}"),
            ProcError::FdLink { pid, fd, source } => {
                write!(f, "readlink /proc/{pid}/fd/{fd}: {source}")
            }
            ProcError::NetTable { path, source } => {
                write!(f, "reading {}: {source}", path.display())
            }
            ProcError::NetTableFormat { path, line, reason } => {
                write!(
                    f,
                    "unexpected format of {} line {line}: {reason}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for ProcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcError::Stat { source, .. }
            | ProcError::FdDir { source, .. }
            | ProcError::FdLink { source, .. }
            | ProcError::NetTable { source, .. } => Some(source),
            ProcError::StatFormat { .. } | ProcError::NetTableFormat { .. } => None,
        }
    }
}

/// Reads and parses `/proc/PID/stat`.
pub fn stat(pid: i32) -> Result<ProcStat, ProcError> {
    let raw = std::fs::read(format!("/proc/{pid}/stat"))
        .map_err(|source| ProcError::Stat { pid, source })?;
    parse_stat(pid, &String::from_utf8_lossy(&raw))
}

/// The fields of a stat line after the closing parenthesis of `comm`, split on
/// whitespace. Index 0 is field 3 (`state`).
fn stat_fields_after_comm(pid: i32, line: &str) -> Result<(String, Vec<&str>), ProcError> {
    let bad = |reason: &str| ProcError::StatFormat {
        pid,
        reason: reason.to_string(),
    };
    // comm is "(name)" where name may contain spaces and ')' itself, so the only
    // reliable delimiters are the FIRST '(' and the LAST ')'.
    let open = line
        .find('(')
        .ok_or_else(|| bad("no '(' before the command name"))?;
    let close = line
        .rfind(')')
        .ok_or_else(|| bad("no ')' after the command name"))?;
    if close < open {
        return Err(bad("')' before '('"));
    }
    let comm = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    Ok((comm, rest))
}

fn parse_stat(pid: i32, line: &str) -> Result<ProcStat, ProcError> {
    let (comm, rest) = stat_fields_after_comm(pid, line)?;
    let bad = |reason: String| ProcError::StatFormat { pid, reason };
    let pid_field = line.split_whitespace().next().unwrap_or("");
    let parsed_pid: i32 = pid_field
        .parse()
        .map_err(|_| bad(format!("pid field {pid_field:?} is not a number")))?;
    // rest[k] is field k + 3 (1-based, as numbered in proc(5)).
    let field = |number: usize, name: &str| -> Result<&str, ProcError> {
        rest.get(number - 3)
            .copied()
            .ok_or_else(|| bad(format!("missing field {number} ({name})")))
    };
    let num = |number: usize, name: &str| -> Result<i64, ProcError> {
        let text = field(number, name)?;
        text.parse::<i64>()
            .map_err(|_| bad(format!("field {number} ({name}) {text:?} is not a number")))
    };
    let state = field(3, "state")?.chars().next().unwrap_or('?');
    let start_time = field(22, "starttime")?;
    Ok(ProcStat {
        pid: parsed_pid,
        ppid: num(4, "ppid")? as i32,
        pgrp: num(5, "pgrp")? as i32,
        state,
        num_threads: num(20, "num_threads")?.max(0) as u32,
        comm,
        child_minflt: num(11, "cminflt")?.max(0) as u64,
        start_time: start_time.parse().map_err(|_| {
            bad(format!(
                "field 22 (starttime) {start_time:?} is not a number"
            ))
        })?,
    })
}

/// The raw wait status a zombie will report (field 52 of `/proc/PID/stat`,
/// Linux 3.5+), or `None` if it cannot be read.
pub(crate) fn raw_exit_code(pid: i32) -> Option<i32> {
    let raw = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (_, rest) = stat_fields_after_comm(pid, &text).ok()?;
    rest.get(52 - 3)?.parse().ok()
}

/// Numeric entries of a `/proc`-style directory, in no particular order.
fn numeric_entries(dir: &str) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        // An entry that errors while iterating belongs to something that just vanished.
        let Ok(entry) = entry else { continue };
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        {
            out.push(n);
        }
    }
    Ok(out)
}

/// Every process whose `/proc/PID/stat` could be read. Processes that exit
/// during the scan are skipped silently.
pub fn all_processes() -> Vec<ProcStat> {
    let pids = numeric_entries("/proc").unwrap_or_default();
    pids.into_iter().filter_map(|pid| stat(pid).ok()).collect()
}

/// All processes descending from `pid` (children, grandchildren, ...),
/// excluding `pid` itself, found in one scan of `/proc`.
///
/// Descendants whose parent already died were re-parented to a reaper and are
/// no longer found here; use [`group_members`] for those.
pub fn descendants(pid: i32) -> Vec<ProcStat> {
    descendants_in(pid, all_processes())
}

fn descendants_in(pid: i32, all: Vec<ProcStat>) -> Vec<ProcStat> {
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    for (index, proc_) in all.iter().enumerate() {
        children.entry(proc_.ppid).or_default().push(index);
    }
    let mut seen: HashSet<i32> = HashSet::from([pid]);
    let mut queue = vec![pid];
    let mut found = Vec::new();
    // `seen` makes every pid enter the queue at most once, so this terminates
    // even if a racy scan produced a parent cycle.
    while let Some(parent) = queue.pop() {
        for &index in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            let child = &all[index];
            if seen.insert(child.pid) {
                queue.push(child.pid);
                found.push(index);
            }
        }
    }
    found.sort_unstable();
    let mut found = found.into_iter().peekable();
    all.into_iter()
        .enumerate()
        .filter_map(|(index, proc_)| {
            if found.peek() == Some(&index) {
                found.next();
                Some(proc_)
            } else {
                None
            }
        })
        .collect()
}

/// All processes whose process group is `pgid` (zombies included; see [`ProcStat::is_live`]).
pub fn group_members(pgid: i32) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid)
        .collect()
}

/// What an open descriptor refers to, from the target of its `/proc/PID/fd/N` link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FdKind {
    /// `socket:[INODE]`
    Socket,
    /// `pipe:[INODE]`
    Pipe,
    /// A path in the file system (regular file, directory, device, ...).
    File,
    /// `anon_inode:[eventfd]`, `anon_inode:[eventpoll]`, ...
    AnonInode,
    /// Anything else (`/memfd:...` counts as a file; this is for the unknown).
    Other,
}

impl FdKind {
    /// Classifies a `readlink` target.
    pub fn of_target(target: &str) -> FdKind {
        if target.starts_with("socket:[") {
            FdKind::Socket
        } else if target.starts_with("pipe:[") {
            FdKind::Pipe
        } else if target.starts_with("anon_inode:") {
            FdKind::AnonInode
        } else if target.starts_with('/') {
            FdKind::File
        } else {
            FdKind::Other
        }
    }
}

impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FdKind::Socket => "socket",
            FdKind::Pipe => "pipe",
            FdKind::File => "file",
            FdKind::AnonInode => "anon_inode",
            FdKind::Other => "other",
        })
    }
}

/// One open descriptor of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdInfo {
    /// The descriptor number.
    pub fd: i32,
    /// The link target, e.g. `socket:[12345]`, `/dev/null`, `pipe:[678]`.
    pub target: String,
    /// `target` classified.
    pub kind: FdKind,
}

/// The open descriptors of `pid`, sorted by number. Descriptors that close
/// while we list them are skipped.
pub fn fds(pid: i32) -> Result<Vec<FdInfo>, ProcError> {
    let dir = format!("/proc/{pid}/fd");
    let numbers = numeric_entries(&dir).map_err(|source| ProcError::FdDir { pid, source })?;
    let mut out = Vec::with_capacity(numbers.len());
    for fd in numbers {
        match std::fs::read_link(format!("{dir}/{fd}")) {
            Ok(path) => {
                let target = path.to_string_lossy().into_owned();
                let kind = FdKind::of_target(&target);
                out.push(FdInfo { fd, target, kind });
            }
            // Closed between readdir and readlink: not open any more, not an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ProcError::FdLink { pid, fd, source }),
        }
    }
    out.sort_by_key(|info| info.fd);
    Ok(out)
}

/// How many descriptors `pid` has open (cheaper than [`fds`]: no `readlink`).
pub fn fd_count(pid: i32) -> Result<usize, ProcError> {
    numeric_entries(&format!("/proc/{pid}/fd"))
        .map(|v| v.len())
        .map_err(|source| ProcError::FdDir { pid, source })
}

/// The inode of a socket descriptor: `socket:[12345]` gives `12345`.
pub fn socket_inode(info: &FdInfo) -> Option<u64> {
    info.target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The value of the environment variable `name` as `pid` was started with
/// (`/proc/PID/environ`), or `None`: not set, the process is gone or a
/// zombie (whose environment is freed), or not ours to read. At most
/// `MAX_ENVIRON` bytes are read, so a huge environment cannot grow our memory.
pub fn environ_var(pid: i32, name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(format!("/proc/{pid}/environ")).ok()?;
    let mut raw = Vec::new();
    file.take(MAX_ENVIRON).read_to_end(&mut raw).ok()?;
    raw.split(|&b| b == 0).find_map(|entry| {
        entry
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
            .map(<[u8]>::to_vec)
    })
}

/// How much of a process's environment [`environ_var`] reads (Linux caps
/// arguments and environment together at a quarter of the stack limit,
/// 2 MiB by default).
const MAX_ENVIRON: u64 = 4 * 1024 * 1024;

/// The processes holding a descriptor for the socket with this inode,
/// among those whose descriptors can be read (our own user's). One scan of
/// every process's descriptors: for error messages, not for loops.
pub fn holders_of_inode(inode: u64) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| holds_inode(p.pid, inode))
        .collect()
}

/// One row of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TcpRow {
    local_port: u16,
    remote_port: u16,
    state: u8,
    inode: u64,
}

const TCP_TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// `st` value of a listening socket in `/proc/net/tcp` (include/net/tcp_states.h).
const TCP_LISTEN: u8 = 0x0A;

/// Parses one table. A missing `tcp6` (IPv6 disabled) is an empty table.
fn read_tcp_table(path: &str) -> Result<Vec<TcpRow>, ProcError> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ProcError::NetTable {
                path: path.into(),
                source,
            })
        }
    };
    let mut rows = Vec::new();
    // Line 1 is the column header.
    for (index, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let row = parse_tcp_row(line).map_err(|reason| ProcError::NetTableFormat {
            path: path.into(),
            line: index + 1,
            reason,
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...`
/// with addresses as `HEXADDR:HEXPORT`.
fn parse_tcp_row(line: &str) -> Result<TcpRow, String> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    if cols.len() < 10 {
        return Err(format!("{} columns, expected at least 10", cols.len()));
    }
    let port = |addr: &str| -> Result<u16, String> {
        let (_, hex) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("address {addr:?} has no ':'"))?;
        u16::from_str_radix(hex, 16).map_err(|_| format!("port {hex:?} is not hex"))
    };
    Ok(TcpRow {
        local_port: port(cols[1])?,
        remote_port: port(cols[2])?,
        state: u8::from_str_radix(cols[3], 16)
            .map_err(|_| format!("state {:?} is not hex", cols[3]))?,
        inode: cols[9]
            .parse()
            .map_err(|_| format!("inode {:?} is not a number", cols[9]))?,
    })
}

fn all_tcp_rows() -> Result<Vec<TcpRow>, ProcError> {
    let mut rows = Vec::new();
    for path in TCP_TABLES {
        rows.extend(read_tcp_table(path)?);
    }
    Ok(rows)
}

/// Inodes of the TCP sockets (IPv4 and IPv6) listening on `port`.
pub fn listening_inodes(port: u16) -> Result<Vec<u64>, ProcError> {
    Ok(all_tcp_rows()?
        .into_iter()
        .filter(|row| row.state == TCP_LISTEN && row.local_port == port)
        .map(|row| row.inode)
        .collect())
}

/// Every local port a TCP socket (IPv4 or IPv6, any state, TIME_WAIT
/// included) uses now.
pub fn local_tcp_ports() -> Result<BTreeSet<u16>, ProcError> {
    Ok(all_tcp_rows()?
        .into_iter()
        .map(|row| row.local_port)
        .collect())
}

/// Inode of the server's end of the TCP connection from `client_port` to
/// `server_port`, once the server has accepted it (`None` while it waits in
/// the accept queue: such a socket has no descriptor, so no inode, yet).
pub fn accepted_inode(server_port: u16, client_port: u16) -> Result<Option<u64>, ProcError> {
    Ok(all_tcp_rows()?
        .into_iter()
        .find(|row| {
            row.local_port == server_port
                && row.remote_port == client_port
                && row.state != TCP_LISTEN
                && row.inode != 0
        })
        .map(|row| row.inode))
}

/// Inodes of the server's ends of the connections it has accepted on
/// `port` (every state but LISTEN, including CLOSE_WAIT after the client
/// closed).
pub fn accepted_inodes(port: u16) -> Result<Vec<u64>, ProcError> {
    Ok(all_tcp_rows()?
        .into_iter()
        .filter(|row| row.local_port == port && row.state != TCP_LISTEN && row.inode != 0)
        .map(|row| row.inode)
        .collect())
}

/// Does `pid` hold a descriptor for the socket with this inode? `false` when
/// the process cannot be inspected (gone, or not ours).
pub fn holds_inode(pid: i32, inode: u64) -> bool {
    holds_any_inode(pid, &HashSet::from([inode]))
}

/// Does `pid` hold a descriptor for any of these sockets? One read of its
/// descriptor table, however many inodes are asked about. `false` when the
/// process cannot be inspected (gone, or not ours).
pub fn holds_any_inode(pid: i32, inodes: &HashSet<u64>) -> bool {
    !inodes.is_empty()
        && fds(pid).is_ok_and(|list| {
            list.iter()
                .filter_map(socket_inode)
                .any(|inode| inodes.contains(&inode))
        })
}

/// Name of a TCP state number as used by `ss` and netstat (include/net/tcp_states.h).
fn tcp_state_name(state: u8) -> String {
    match state {
        0x01 => "ESTABLISHED".into(),
        0x02 => "SYN_SENT".into(),
        0x03 => "SYN_RECV".into(),
        0x04 => "FIN_WAIT1".into(),
        0x05 => "FIN_WAIT2".into(),
        0x06 => "TIME_WAIT".into(),
        0x07 => "CLOSE".into(),
        0x08 => "CLOSE_WAIT".into(),
        0x09 => "LAST_ACK".into(),
        0x0A => "LISTEN".into(),
        0x0B => "CLOSING".into(),
        0x0C => "NEW_SYN_RECV".into(),
        other => format!("UNKNOWN_{other:02X}"),
    }
}

/// Counts TCP sockets by state, over every socket whose local OR remote port is
/// `port` (so both ends of a loopback connection are counted), e.g.
/// `{"ESTABLISHED": 2, "LISTEN": 1, "TIME_WAIT": 12}`.
pub fn tcp_state_counts(port: u16) -> Result<BTreeMap<String, usize>, ProcError> {
    let mut counts = BTreeMap::new();
    for row in all_tcp_rows()? {
        if row.local_port == port || row.remote_port == port {
            *counts.entry(tcp_state_name(row.state)).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ProcessGroup;
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};

    /// A `sleep 30` in a process group of its own, killed on drop.
    fn spawn_sleep() -> ProcessGroup {
        let mut cmd = Command::new("sleep");
        cmd.arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ProcessGroup::spawn(&mut cmd).expect("spawn sleep")
    }

    fn self_pid() -> i32 {
        std::process::id() as i32
    }

    #[test]
    fn stat_of_self_parses() {
        let me = stat(self_pid()).expect("stat self");
        assert_eq!(me.pid, self_pid());
        assert!(me.ppid > 0);
        assert!(me.num_threads >= 1);
        assert!(!me.comm.is_empty());
        assert!(me.is_live());
    }

    #[test]
    fn stat_comm_may_contain_spaces_and_parens() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 3 0 79907 3133440 396";
        let parsed = parse_stat(4242, line).expect("parse");
        assert_eq!(parsed.comm, "a) b (c)");
        assert_eq!(parsed.state, 'S');
        assert_eq!(parsed.ppid, 1);
        assert_eq!(parsed.pgrp, 4242);
        assert_eq!(parsed.num_threads, 3);
        assert_eq!(parsed.start_time, 79907);
    }

    #[test]
    fn stat_of_truncated_line_is_an_error_not_a_panic() {
        for line in ["", "12", "12 (x", "12 x) S", "12 (x) S 1 2"] {
            assert!(parse_stat(12, line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn stat_of_missing_process_is_stat_error() {
        // pid_max is at most 2^22, so this pid never exists.
        assert!(matches!(stat(i32::MAX), Err(ProcError::Stat { .. })));
    }

    #[test]
    fn descendants_find_a_spawned_child() {
        let child = spawn_sleep();
        let pid = child.pid();
        let found = descendants(self_pid());
        assert!(found.iter().any(|p| p.pid == pid), "{pid} not in {found:?}");
        assert!(found.iter().all(|p| p.pid != self_pid()));
    }

    #[test]
    fn descendants_are_transitive_and_exclude_the_root() {
        let row = |pid, ppid| ProcStat {
            pid,
            ppid,
            pgrp: 1,
            state: 'S',
            num_threads: 1,
            comm: "x".into(),
            start_time: 0,
            child_minflt: 0,
        };
        let all = vec![
            row(1, 0),
            row(10, 1),
            row(11, 10),
            row(12, 11),
            row(20, 2),
            row(13, 10),
        ];
        let mut pids: Vec<i32> = descendants_in(10, all).iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, vec![11, 12, 13]);
    }

    #[test]
    fn group_members_find_a_child_in_its_own_group() {
        let child = spawn_sleep();
        let pid = child.pid();
        let members = group_members(pid);
        assert!(members.iter().any(|p| p.pid == pid), "{members:?}");
        assert!(members.iter().all(|p| p.pgrp == pid));
    }

    #[test]
    fn fds_of_self_include_a_listening_socket_that_listening_inodes_find() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let list = fds(self_pid()).expect("fds self");
        assert!(
            list.iter().any(|info| info.kind == FdKind::Socket),
            "{list:?}"
        );
        assert!(fd_count(self_pid()).expect("fd_count") >= 1);

        let inodes = listening_inodes(port).expect("listening inodes");
        assert_eq!(inodes.len(), 1, "{inodes:?}");
        assert!(holds_inode(self_pid(), inodes[0]));
        // Any of several: one held is enough; none asked about is no.
        let unheld = u64::MAX;
        assert!(holds_any_inode(
            self_pid(),
            &HashSet::from([unheld, inodes[0]])
        ));
        assert!(!holds_any_inode(self_pid(), &HashSet::from([unheld])));
        assert!(!holds_any_inode(self_pid(), &HashSet::new()));
        let ours = list
            .iter()
            .filter_map(socket_inode)
            .any(|inode| inode == inodes[0]);
        // The listener was open before `fds` ran, so its inode is in the list.
        assert!(ours);
    }

    #[test]
    fn tcp_state_counts_see_both_ends_of_a_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _server_side = listener.accept().expect("accept");
        let counts = tcp_state_counts(port).expect("counts");
        assert_eq!(counts.get("LISTEN"), Some(&1), "{counts:?}");
        assert_eq!(counts.get("ESTABLISHED"), Some(&2), "{counts:?}");
    }

    #[test]
    fn socket_inode_parses_only_sockets() {
        let info = |target: &str| FdInfo {
            fd: 3,
            target: target.into(),
            kind: FdKind::of_target(target),
        };
        assert_eq!(socket_inode(&info("socket:[12345]")), Some(12345));
        assert_eq!(socket_inode(&info("pipe:[12345]")), None);
        assert_eq!(socket_inode(&info("socket:[x]")), None);
        assert_eq!(
            FdKind::of_target("anon_inode:[eventpoll]"),
            FdKind::AnonInode
        );
        assert_eq!(FdKind::of_target("/dev/null"), FdKind::File);
        assert_eq!(FdKind::AnonInode.to_string(), "anon_inode");
        assert_eq!(
            serde_json::to_string(&FdKind::AnonInode).expect("json"),
            "\"anon_inode\""
        );
    }

    #[test]
    fn tcp_rows_parse_and_reject_garbage() {
        let row = parse_tcp_row(
            "   1: 0100007F:A08D 0100007F:1F90 06 00000000:00000000 03:00001327 00000000     0        0 0 3 000000005067e357",
        )
        .expect("row");
        assert_eq!(
            row,
            TcpRow {
                local_port: 0xA08D,
                remote_port: 0x1F90,
                state: 6,
                inode: 0
            }
        );
        assert!(parse_tcp_row("0: nonsense").is_err());
        assert!(parse_tcp_row("0: 0100007F:ZZZZ 0:0 0A a b c d e 1").is_err());
    }
}
