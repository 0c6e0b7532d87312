//! Launching the server under test, and always tearing it down again.
//!
//! A [`ServerInstance`] owns one run of the server binary: it picks a port,
//! starts the program in a process group of its own, drains its stdout and
//! stderr, waits until a process of the server listens on the port, and on
//! [`Drop`] (panics included) stops every process of its tree. Which
//! processes those are, wherever they moved (another group, another session,
//! a new parent), is [`crate::tree`]'s job; this module uses it.
//!
//! The subtle part is teardown without hitting a stranger. Once the group
//! leader has been reaped, its pid (which is also the group id) may be reused
//! by an unrelated process, and `kill(-pgid)` would hit it. So we watch the
//! leader with `waitid(WNOWAIT)`, which reports its exit but leaves it a
//! zombie; a zombie still owns its pid. Only at the end of teardown do we
//! reap it. Other processes are signalled by pid only after checking that
//! their start time is the one seen.
//!
//! A launcher that exits with 0 leaving a process listening on the port (a
//! daemonizing server: double fork and `setsid`) is followed: from then on
//! that process is the server, for signals, exit and census alike.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::error::{SignalError, StartError};
use super::port;
use super::spec::{parse_loopback, substitute_args, PortChoice, TargetSpec};
use super::tail::{lock_tail, spawn_drain, SharedTail};
use crate::procfs;
use crate::tree;

/// How many stderr lines a [`StartError`] carries.
const ERROR_TAIL_LINES: usize = 20;
/// Pause between readiness probes and between liveness polls.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Timeout of one readiness probe `connect`.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long to wait for the last stderr lines of a server that exited during startup.
const FINAL_OUTPUT_WAIT: Duration = Duration::from_millis(500);
/// How long to wait for the leader to die after `SIGKILL` before giving up on reaping it.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// After the leader exits on `SIGTERM`, how long its group may take to follow
/// before the stragglers count as survivors (bounded by the grace period too).
const SURVIVOR_SETTLE: Duration = Duration::from_millis(200);
/// How many times a server that could not bind a port the harness picked is
/// started again on another (see [`ServerInstance::start`]).
pub const PORT_RETRIES: usize = 2;
/// How long a launcher that exited with 0 must look alone (no live process
/// of its tree) before it is taken for a server that exited.
const HANDOVER_WINDOW: Duration = Duration::from_millis(200);

impl std::error::Error for SignalError {}

/// How teardown went.
#[derive(Debug, Clone)]
pub struct Termination {
    /// The leader's exit status (`None` if it could not be collected).
    pub status: Option<ExitStatus>,
    /// `true` if the leader was still running when the grace period ended.
    pub needed_sigkill: bool,
    /// From the start of teardown until the leader was reaped.
    pub elapsed: Duration,
    /// Pids still alive (not zombies) after the leader had exited and the group
    /// had a moment to follow, before the final `SIGKILL`: processes of the group,
    /// and descendants that had left the group. When `needed_sigkill` is true,
    /// this lists the other processes still alive when the grace period ran out.
    pub survivors: Vec<i32>,
}

/// What we know about a process we watch: the leader, or the server process
/// it handed over to.
#[derive(Debug, Clone, Copy)]
enum Leader {
    /// Running (or, for a followed server, still the process first seen).
    Running,
    /// Exited; a zombie (not reaped) until teardown.
    Exited(ExitStatus),
    /// `waitid` says it is not our child any more: someone else reaped it.
    Lost,
    /// Not our child, and no longer running (followed servers only: their
    /// exit is seen in /proc, and the status went to their parent).
    Gone,
}

/// The process judged as the server, when it is not the leader: the
/// process a launcher left listening on the port when it exited with 0.
#[derive(Debug, Clone)]
struct Followed {
    /// The process as first seen (its start time tells a reused pid apart).
    process: procfs::ProcStat,
    /// What we know about it.
    state: Leader,
    /// How the launcher (the leader) exited.
    launcher_exit: ExitStatus,
}

/// One running server. Dropping it stops every process of its tree.
#[derive(Debug)]
pub struct ServerInstance {
    /// The started process, reaped at teardown (not before: as our zombie it
    /// keeps its pid, which is the process group id, from being reused).
    child: Child,
    /// The started process's pid, also its process group id.
    pid: i32,
    /// The tag every process of this instance carries in its environment
    /// (see [`crate::tree`]).
    tag: String,
    /// Where the server listens.
    addr: SocketAddr,
    /// From spawn until a process of the tree listened on the port.
    startup_time: Duration,
    /// Teardown: time between `SIGTERM` and `SIGKILL`.
    grace: Duration,
    /// What we know about the started process.
    leader: Leader,
    /// The server process, when a launcher handed over to it; `None` while
    /// the leader is the server.
    followed: Option<Followed>,
    /// Set once an exit of the server process can no longer be a launcher
    /// handing over: the harness signalled it (the exit is the signal's
    /// doing), or an exit was already judged final.
    hand_over_closed: bool,
    /// The last lines of the server's stdout (every process of the tree
    /// writes to the same pipe), appended by its draining thread until the
    /// pipe's end of file.
    stdout: SharedTail,
    /// The last lines of the server's stderr, likewise; start errors and a
    /// dead server's evidence quote it.
    stderr: SharedTail,
    /// Set once teardown ran; later calls return it again.
    termination: Option<Termination>,
}

/// How a launcher hands over, as seen at one moment.
enum Handover {
    /// The leader runs, or the followed server does.
    Running,
    /// The server process exited with 0 while other processes of the tree
    /// live: a launcher, whose daemon may be listening (or about to).
    Launched(ExitStatus),
    /// The server process exited (any other way, or with nothing left behind).
    Exited(ExitStatus),
    /// It is gone and its status unknown.
    Gone,
}

impl ServerInstance {
    /// Starts the server on the port `spec.port` asks for and waits until a
    /// process of its tree listens there.
    ///
    /// With a port the harness picked, a server that exits saying its address
    /// is in use is started again on another port, up to [`PORT_RETRIES`]
    /// times: the port was free when picked, and another process (another
    /// harness on the same machine, say) took it before the server bound it.
    /// That is the machine's doing, not the server's; the last failure is
    /// the one reported.
    pub fn start(spec: &TargetSpec) -> Result<ServerInstance, StartError> {
        let ip = match spec.port {
            PortChoice::Fixed(port) => return Self::start_on_port(spec, port),
            PortChoice::Auto => parse_loopback(&spec.host)?,
        };
        let mut tries = 0;
        loop {
            let port = port::pick(ip).map_err(StartError::PortPick)?;
            match Self::start_on_port(spec, port) {
                Err(error) if tries < PORT_RETRIES && error.says_address_in_use() => tries += 1,
                result => return result,
            }
        }
    }

    /// Starts the server on `port` (e.g. again on the port of a previous run).
    pub fn start_on_port(spec: &TargetSpec, port: u16) -> Result<ServerInstance, StartError> {
        let ip = parse_loopback(&spec.host)?;
        let addr = SocketAddr::new(ip, port);
        let command = spec.display_command_for(addr);

        // Someone listens there already: the server would be judged on a
        // stranger's answers, or fail to bind. Say who it is, before starting.
        if let Ok(inodes) = procfs::listening_inodes(port) {
            if !inodes.is_empty() {
                return Err(StartError::PortTaken {
                    command,
                    addr,
                    holders: describe_holders(&inodes),
                });
            }
        }

        let mut cmd = Command::new(&spec.program);
        cmd.args(substitute_args(&spec.args, &spec.host, addr))
            .env("HOST", &spec.host)
            .env("PORT", port.to_string())
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own: teardown kills the group, which catches the
            // per-connection children without touching the harness.
            .process_group(0);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        let harness = tree::harness_pid();
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed. It calls sigprocmask, sigaction,
        // prctl and getppid (through nix, which only builds stack values around
        // the libc calls) and builds io::Errors from a raw errno or a static
        // string, which do not allocate.
        unsafe {
            cmd.pre_exec(move || {
                reset_signals_in_child()?;
                tree::die_with_harness(harness)
            });
        }

        let started = Instant::now();
        let tag = tree::new_tag();
        let mut child = tree::spawn(cmd, &tag).map_err(|error| match error {
            tree::SpawnError::Stopping => StartError::Interrupted,
            tree::SpawnError::Io(source) => StartError::Spawn {
                command: command.clone(),
                source,
            },
        })?;
        let pid = child.id() as i32;

        let stdout: SharedTail = Arc::default();
        let stderr: SharedTail = Arc::default();
        if let Some(pipe) = child.stdout.take() {
            spawn_drain("server-stdout", pipe, Arc::clone(&stdout));
        }
        if let Some(pipe) = child.stderr.take() {
            spawn_drain("server-stderr", pipe, Arc::clone(&stderr));
        }

        let mut instance = ServerInstance {
            child,
            pid,
            tag,
            addr,
            startup_time: Duration::ZERO,
            grace: spec.grace,
            leader: Leader::Running,
            followed: None,
            hand_over_closed: false,
            stdout,
            stderr,
            termination: None,
        };

        // Ready means: a process of this server's tree holds a socket
        // listening on the port. Nothing is sent and no connection is made,
        // so a server that cannot bear an empty connection is not disturbed,
        // and a stranger that takes the port meanwhile is not taken for it.
        // A launcher that exits with 0 leaving processes behind is waited
        // past: the process it left listening is the server.
        let deadline = deadline_after(started, spec.startup_timeout);
        let mut taken = false;
        let mut launcher = None;
        loop {
            match instance.handover() {
                Handover::Running => {}
                Handover::Launched(status) => launcher = Some(status),
                Handover::Exited(status) => {
                    instance.wait_for_final_output();
                    let stderr_tail = instance.stderr_tail(ERROR_TAIL_LINES);
                    // Tears down whatever the leader left behind and reaps it.
                    instance.terminate();
                    return Err(StartError::Exited {
                        command,
                        pid,
                        status,
                        stderr_tail,
                    });
                }
                Handover::Gone => break,
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match listener_owner(&instance.tag, pid, port) {
                Owner::Server(holders) => {
                    // The listener is held by another process of the tree,
                    // not the one started: that may be a launcher about to
                    // exit with 0, whose daemon listened before the exit
                    // could be seen. Give it a moment, so that the daemon is
                    // followed instead of the launcher judged.
                    if launcher.is_none() && !holders.iter().any(|p| p.pid == pid) {
                        crate::poll::poll_until(HANDOVER_WINDOW, || {
                            if let Handover::Launched(status) = instance.handover() {
                                launcher = Some(status);
                            }
                            launcher.is_some() || !instance.is_alive()
                        });
                        if launcher.is_none() && !instance.is_alive() {
                            // It exited, and not as a launcher: said above.
                            continue;
                        }
                    }
                    if let Some(launcher_exit) = launcher {
                        instance.follow(&holders, launcher_exit);
                    }
                    instance.startup_time = started.elapsed();
                    return Ok(instance);
                }
                Owner::Other => taken = true,
                Owner::Nobody => taken = false,
                Owner::Unknown => {
                    // No /proc to read: a connection is the only sign left,
                    // and then with a real request, so that the server does
                    // not see a connection that sends nothing.
                    let probe = PROBE_TIMEOUT
                        .min(deadline - now)
                        .max(Duration::from_millis(1));
                    if answers_a_request(addr, probe) {
                        instance.startup_time = started.elapsed();
                        return Ok(instance);
                    }
                }
            }
            thread::sleep(POLL_INTERVAL);
        }
        instance.terminate();
        let stderr_tail = instance.stderr_tail(ERROR_TAIL_LINES);
        if taken {
            let holders = procfs::listening_inodes(port)
                .map(|inodes| describe_holders(&inodes))
                .unwrap_or_default();
            return Err(StartError::PortTaken {
                command,
                addr,
                holders,
            });
        }
        Err(StartError::NotListening {
            command,
            pid,
            addr,
            timeout: spec.startup_timeout,
            launcher_exit: launcher,
            stderr_tail,
        })
    }

    /// The server process's pid: the started process, or the process a
    /// launcher left listening when it exited.
    pub fn pid(&self) -> i32 {
        self.followed.as_ref().map_or(self.pid, |f| f.process.pid)
    }

    /// The pid of the process the harness started (the launcher, when the
    /// server is a process it left behind).
    pub fn leader_pid(&self) -> i32 {
        self.pid
    }

    /// How the launcher exited, when the server is a process it left behind.
    pub fn launcher_exit(&self) -> Option<ExitStatus> {
        self.followed.as_ref().map(|f| f.launcher_exit)
    }

    /// The started process's group id (equal to its pid). Processes of the
    /// tree may have left it; [`ServerInstance::tree`] finds them all.
    pub fn pgid(&self) -> i32 {
        self.pid
    }

    /// The tag this instance's processes carry in their environment.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From spawn until a process of the server listened on the port.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Every process of the server's tree, zombies included, whatever group
    /// or session it is in (see [`crate::tree`]). Empty after teardown.
    pub fn tree(&self) -> Vec<procfs::ProcStat> {
        if self.termination.is_some() || matches!(self.leader, Leader::Lost) {
            return Vec::new();
        }
        tree::members(&self.tag, self.pid)
    }

    /// Live processes of the tree other than the server process (and other
    /// than an exited launcher, which is a zombie).
    pub fn others_alive(&self) -> Vec<procfs::ProcStat> {
        let server = self.pid();
        self.tree()
            .into_iter()
            .filter(|p| p.pid != server && p.is_live())
            .collect()
    }

    /// Has the server process exited? Non-blocking, and it does not reap it:
    /// it stays a zombie holding its pid until teardown.
    ///
    /// Returns `None` while it runs, and also if its status could not be
    /// known (someone else reaped it; then [`ServerInstance::is_alive`] is
    /// still `false`).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        match self.poll() {
            Leader::Exited(status) => Some(status),
            Leader::Running | Leader::Lost | Leader::Gone => None,
        }
    }

    /// Is the server process still running?
    pub fn is_alive(&mut self) -> bool {
        matches!(self.poll(), Leader::Running)
    }

    /// Polls [`ServerInstance::is_alive`] until the server exits or `timeout` passes.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = deadline_after(Instant::now(), timeout);
        loop {
            let alive = self.is_alive();
            if !alive || Instant::now() >= deadline {
                return self.exit_status();
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The server process's state, following a launcher that hands over
    /// after startup (an initial process that listens, forks its daemon and
    /// exits with 0).
    fn poll(&mut self) -> Leader {
        if let Handover::Launched(status) = self.handover() {
            if let Owner::Server(holders) = listener_owner(&self.tag, self.pid, self.port()) {
                if self.follow(&holders, status) {
                    return self.poll();
                }
            }
            // Nothing of the tree listens: the server is gone, whatever
            // it left behind.
            self.hand_over_closed = true;
        }
        match &self.followed {
            Some(followed) => followed.state,
            None => self.leader,
        }
    }

    /// Where the server process stands, without following anyone.
    fn handover(&mut self) -> Handover {
        let (state, pid) = match &mut self.followed {
            None => {
                self.leader = watch(self.pid, self.leader, None);
                (self.leader, self.pid)
            }
            Some(followed) => {
                followed.state = watch(
                    followed.process.pid,
                    followed.state,
                    Some(&followed.process),
                );
                (followed.state, followed.process.pid)
            }
        };
        match state {
            Leader::Running => Handover::Running,
            Leader::Exited(status) => {
                // A daemon is found by scanning /proc, and a scan can miss a
                // process forked while it reads the directory, just as the
                // middle process of a double fork exits: so "nothing left"
                // must hold over a short window before a launcher that exited
                // with 0 counts as a server that exited.
                let others_live = || {
                    tree::members(&self.tag, self.pid)
                        .iter()
                        .any(|p| p.pid != pid && p.is_live())
                };
                if status.code() == Some(0)
                    && !self.hand_over_closed
                    && crate::poll::poll_until(HANDOVER_WINDOW, others_live)
                {
                    Handover::Launched(status)
                } else {
                    self.hand_over_closed = true;
                    Handover::Exited(status)
                }
            }
            Leader::Lost | Leader::Gone => Handover::Gone,
        }
    }

    /// Judges `holders`' topmost process as the server from now on; `false`
    /// if none of them is a new, live process to follow.
    fn follow(&mut self, holders: &[procfs::ProcStat], launcher_exit: ExitStatus) -> bool {
        let current = self.pid();
        let pids: Vec<i32> = holders.iter().map(|p| p.pid).collect();
        let Some(top) = holders
            .iter()
            .filter(|p| p.pid != current && p.is_live() && !pids.contains(&p.ppid))
            .min_by_key(|p| p.start_time)
        else {
            return false;
        };
        let launcher_exit = self
            .followed
            .as_ref()
            .map_or(launcher_exit, |f| f.launcher_exit);
        tree::set_server(self.pid, top.pid);
        self.followed = Some(Followed {
            process: top.clone(),
            state: Leader::Running,
            launcher_exit,
        });
        true
    }

    /// The last `lines` lines the server wrote to stderr (an unfinished last line included).
    pub fn stderr_tail(&self, lines: usize) -> Vec<String> {
        lock_tail(&self.stderr).tail(lines)
    }

    /// The last `lines` lines the server wrote to stdout (an unfinished last line included).
    pub fn stdout_tail(&self, lines: usize) -> Vec<String> {
        lock_tail(&self.stdout).tail(lines)
    }

    /// Waits (briefly, bounded) until stderr reaches end of file, so that an
    /// early exit is reported with its last words.
    fn wait_for_final_output(&self) {
        let deadline = Instant::now() + FINAL_OUTPUT_WAIT;
        while !lock_tail(&self.stderr).eof && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `sig` to the server process only (the leader, or the process a
    /// launcher handed over to).
    pub fn signal_server(&mut self, sig: Signal) -> Result<(), SignalError> {
        if self.termination.is_some() || matches!(self.leader, Leader::Lost) {
            return Err(SignalError::TornDown { pid: self.pid() });
        }
        if let Some(followed) = &self.followed {
            // Not necessarily our child, so its pid is not pinned: check
            // that it is still the process we followed.
            if !tree::still_same_process(&followed.process)
                && !matches!(followed.state, Leader::Exited(_))
            {
                return Err(SignalError::TornDown { pid: self.pid() });
            }
        }
        self.hand_over_closed = true;
        let target = self.pid();
        signal::kill(Pid::from_raw(target), sig).map_err(|errno| SignalError::Kill {
            target,
            signal: sig,
            errno,
        })
    }

    /// Sends `sig` to every live process of the server's tree, whatever its
    /// group or session.
    pub fn signal_tree(&mut self, sig: Signal) -> Result<(), SignalError> {
        if self.termination.is_some() || matches!(self.leader, Leader::Lost) {
            return Err(SignalError::TornDown { pid: self.pid() });
        }
        self.hand_over_closed = true;
        let _ = signal::killpg(Pid::from_raw(self.pid), sig);
        tree::signal_each(&self.tree(), sig);
        Ok(())
    }

    /// Stops the server: `SIGTERM` to every process of its tree, up to
    /// `grace` for the server process to exit, then `SIGKILL` until nothing
    /// of the tree is left, then reap. Calling it again returns the first
    /// result.
    pub fn terminate(&mut self) -> Termination {
        if let Some(done) = &self.termination {
            return done.clone();
        }
        let started = Instant::now();
        let pgid = self.pid;
        let grace_end = deadline_after(started, self.grace);
        // Not if the leader was reaped behind our back: its pid may be a
        // stranger's now, and so may its group's.
        let lost = matches!(self.poll(), Leader::Lost);
        self.hand_over_closed = true;
        let seen: Vec<procfs::ProcStat> = if lost { Vec::new() } else { self.tree() };

        let mut needed_sigkill = false;
        if self.is_alive() || seen.iter().any(|p| p.is_live()) {
            if !lost {
                let _ = signal::killpg(Pid::from_raw(pgid), Signal::SIGTERM);
            }
            tree::signal_each(&seen, Signal::SIGTERM);
            while self.is_alive() && Instant::now() < grace_end {
                thread::sleep(POLL_INTERVAL);
            }
            needed_sigkill = self.is_alive();
        }

        let survivors = if lost {
            Vec::new()
        } else if needed_sigkill {
            self.others_alive().iter().map(|p| p.pid).collect()
        } else {
            // The rest of the tree got the same SIGTERM; give it a moment to
            // follow the server before calling anyone a survivor.
            let settle_end = grace_end.max(Instant::now() + SURVIVOR_SETTLE);
            loop {
                let others: Vec<i32> = self.others_alive().iter().map(|p| p.pid).collect();
                if others.is_empty() || Instant::now() >= settle_end {
                    break others;
                }
                thread::sleep(POLL_INTERVAL);
            }
        };

        // Always, even after a clean exit: cheap insurance against
        // stragglers, and rounds until none is left, for a tree that forks
        // while it is killed.
        let mut last_seen = seen;
        if !lost {
            let _ = signal::killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            let (tag, leader) = (self.tag.clone(), self.pid);
            let found = std::cell::RefCell::new(Vec::new());
            tree::kill_until_gone(
                || {
                    let members = tree::members(&tag, leader);
                    found.borrow_mut().extend(members.iter().cloned());
                    members
                },
                tree::KILL_WAIT,
            );
            last_seen.extend(found.into_inner());
        }
        if needed_sigkill {
            let deadline = deadline_after(Instant::now(), KILL_WAIT);
            while self.is_alive() && Instant::now() < deadline {
                thread::sleep(POLL_INTERVAL);
            }
        }

        // Unregistered and reaped in one step under the registry's lock:
        // nobody may signal the group once its leader is reaped (the pgid
        // may be reused), and the keeper must not reap the leader first.
        let leader = self.leader;
        let child = &mut self.child;
        let status = tree::unregister_and(pgid, || match leader {
            // The leader is a zombie, so wait() returns at once.
            Leader::Exited(status) => Some(child.wait().unwrap_or(status)),
            // Still running after SIGKILL and KILL_WAIT (stuck in the kernel):
            // do not block; it stays our zombie until the harness exits.
            // Lost: someone else reaped it and took the status.
            Leader::Running | Leader::Lost | Leader::Gone => None,
        });
        // The followed server and the orphans adopted from this tree, if
        // they are our children, are our zombies now.
        tree::reap_members(&last_seen, self.pid);
        let status = match &self.followed {
            Some(followed) => match followed.state {
                Leader::Exited(status) => Some(status),
                _ => None,
            },
            None => status,
        };
        let termination = Termination {
            status,
            needed_sigkill,
            elapsed: started.elapsed(),
            survivors,
        };
        self.termination = Some(termination.clone());
        termination
    }
}

/// One non-blocking look at `pid`. `seen`: how a process that may not be
/// our child was first seen, for the /proc fallback.
fn watch(pid: i32, now: Leader, seen: Option<&procfs::ProcStat>) -> Leader {
    if !matches!(now, Leader::Running) {
        return now;
    }
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::Exited(_, code)) => Leader::Exited(ExitStatus::from_raw((code & 0xff) << 8)),
        Ok(WaitStatus::Signaled(_, sig, core)) => Leader::Exited(ExitStatus::from_raw(
            sig as i32 | if core { 0x80 } else { 0 },
        )),
        Ok(_) => Leader::Running,
        Err(Errno::ECHILD) => match seen {
            // The leader is always our child: not any more means reaped.
            None => Leader::Lost,
            Some(first) => {
                if tree::still_same_process(first) {
                    Leader::Running
                } else {
                    Leader::Gone
                }
            }
        },
        // nix cannot name some signals (real-time ones) and reports EINVAL;
        // the kernel still has the raw status of the zombie in /proc.
        Err(_) => match procfs::stat(pid) {
            Ok(st) if st.state == 'Z' => Leader::Exited(ExitStatus::from_raw(
                procfs::raw_exit_code(pid).unwrap_or(0),
            )),
            _ => Leader::Running,
        },
    }
}

/// Who holds the socket listening on a port.
enum Owner {
    /// Processes of the server's tree (the holders).
    Server(Vec<procfs::ProcStat>),
    /// Some process, but none of the server's.
    Other,
    /// No socket listens on the port.
    Nobody,
    /// /proc could not be read.
    Unknown,
}

/// Who holds the socket listening on `port`, seen from the tree tagged
/// `tag` and led by `leader`.
fn listener_owner(tag: &str, leader: i32, port: u16) -> Owner {
    let inodes: std::collections::HashSet<u64> = match procfs::listening_inodes(port) {
        Ok(inodes) => inodes.into_iter().collect(),
        Err(_) => return Owner::Unknown,
    };
    if inodes.is_empty() {
        return Owner::Nobody;
    }
    let holders: Vec<procfs::ProcStat> = tree::members(tag, leader)
        .into_iter()
        .filter(|p| p.is_live() && procfs::holds_any_inode(p.pid, &inodes))
        .collect();
    if holders.is_empty() {
        Owner::Other
    } else {
        Owner::Server(holders)
    }
}

/// Who holds the listening sockets `inodes`, for a person: `pid 123
/// (python3)`, or a note that they belong to a process this user cannot see.
fn describe_holders(inodes: &[u64]) -> Vec<String> {
    let mut names: Vec<String> = inodes
        .iter()
        .flat_map(|&inode| procfs::holders_of_inode(inode))
        .map(|p| format!("pid {} ({})", p.pid, p.comm))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        names.push(
            "a process this user cannot inspect (another user's, or in another namespace)".into(),
        );
    }
    names
}

/// The readiness probe where /proc cannot tell: a whole request, read until
/// the head of an answer arrives (any status). Only then is the server ready.
fn answers_a_request(addr: SocketAddr, timeout: Duration) -> bool {
    use std::io::Write;
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut first = [0u8; 5];
    stream.read_exact(&mut first).is_ok()
}

/// `from + wait`, saturating: a huge duration from the command line must not
/// make the `Instant` addition panic, least of all in `Drop`.
fn deadline_after(from: Instant, wait: Duration) -> Instant {
    const ONE_DAY: Duration = Duration::from_secs(24 * 60 * 60);
    from.checked_add(wait)
        .or_else(|| from.checked_add(ONE_DAY))
        .unwrap_or(from)
}

impl Drop for ServerInstance {
    fn drop(&mut self) {
        // terminate() has no panicking paths; it is idempotent if already run.
        self.terminate();
    }
}

/// Runs in the child between fork and exec. The harness blocks SIGINT, SIGTERM
/// and SIGHUP in all its threads (see `interrupt.rs`) and a blocked mask
/// survives exec, so without this the server could not be stopped by SIGTERM.
/// Ignored dispositions survive exec too, hence the reset to default.
///
/// Only async-signal-safe calls: no allocation, no locks.
fn reset_signals_in_child() -> io::Result<()> {
    let empty = SigSet::empty();
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&empty), None)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
        Signal::SIGCHLD,
    ] {
        // SAFETY: installing SIG_DFL runs no Rust code in a handler; sigaction is
        // async-signal-safe.
        unsafe { signal::signal(sig, SigHandler::SigDfl) }
            .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::tail::TAIL_LINES;
    use crate::test_support::run_test_in_child;
    use std::net::IpAddr;

    /// A tiny TCP server: binds the address from argv (host, port) or from
    /// HOST/PORT, accepts and closes connections forever.
    const PY_SERVER: &str = r#"
import os, socket, sys
host = sys.argv[1] if len(sys.argv) > 2 else os.environ["HOST"]
port = int(sys.argv[2] if len(sys.argv) > 2 else os.environ["PORT"])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(16)
while True:
    c, _ = s.accept()
    c.close()
"#;

    fn python_spec(args: &[&str]) -> TargetSpec {
        let mut spec = TargetSpec::new("python3");
        spec.args = ["-c", PY_SERVER]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect();
        spec
    }

    fn sh_spec(script: &str) -> TargetSpec {
        let mut spec = TargetSpec::new("sh");
        spec.args = vec!["-c".into(), script.into()];
        spec
    }

    /// Polls until no live (non-zombie) process has process group `pgid`.
    fn group_is_gone(pgid: i32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let live: Vec<_> = procfs::group_members(pgid)
                .into_iter()
                .filter(|p| p.is_live())
                .collect();
            if live.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                eprintln!("still alive in group {pgid}: {live:?}");
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_registered(pgid: i32) -> bool {
        tree::is_registered(pgid)
    }

    #[test]
    fn start_waits_until_the_server_accepts_and_reports_its_address() {
        let spec = python_spec(&[]);
        let mut server = ServerInstance::start(&spec).expect("start");
        assert_eq!(
            server.addr().ip(),
            "127.0.0.1".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(server.addr().port(), server.port());
        assert_eq!(server.pgid(), server.pid());
        assert!(server.is_alive());
        assert!(server.exit_status().is_none());
        assert!(is_registered(server.pgid()));
        TcpStream::connect(server.addr()).expect("server accepts connections");

        let pgid = server.pgid();
        let t = server.terminate();
        assert!(!t.needed_sigkill, "python dies on SIGTERM: {t:?}");
        assert_eq!(
            t.status.and_then(|s| s.signal()),
            Some(Signal::SIGTERM as i32)
        );
        assert!(t.survivors.is_empty(), "{t:?}");
        assert!(!is_registered(pgid));
        assert!(group_is_gone(pgid));
        // Idempotent.
        assert_eq!(server.terminate().needed_sigkill, t.needed_sigkill);
        assert!(matches!(
            server.signal_server(Signal::SIGTERM),
            Err(SignalError::TornDown { .. })
        ));
    }

    #[test]
    fn the_server_gets_its_address_from_the_placeholders() {
        let mut spec = python_spec(&["{host}", "{port}"]);
        // Prove the arguments, not the environment, carried the address.
        spec.env = vec![
            ("HOST".into(), "not-an-address".into()),
            ("PORT".into(), "not-a-port".into()),
        ];
        let server = ServerInstance::start(&spec).expect("start");
        TcpStream::connect(server.addr()).expect("connect");
    }

    #[test]
    fn a_program_that_exits_at_once_is_reported_with_status_and_stderr() {
        let spec = sh_spec("echo boom >&2; exit 3");
        let err = ServerInstance::start(&spec).expect_err("must fail");
        match &err {
            StartError::Exited {
                status,
                stderr_tail,
                pid,
                ..
            } => {
                assert_eq!(status.code(), Some(3));
                assert!(
                    stderr_tail.iter().any(|l| l.contains("boom")),
                    "{stderr_tail:?}"
                );
                assert!(!is_registered(*pid));
            }
            other => panic!("expected Exited, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("exit code 3") && text.contains("boom") && text.contains("sh -c"),
            "{text}"
        );
    }

    /// A server that loses its picked port to someone else is started again
    /// on another; one that always says so is reported after the retries,
    /// and one that fails otherwise is not retried at all.
    #[test]
    fn a_server_that_finds_its_picked_port_in_use_gets_another() {
        let dir = std::env::temp_dir().join(format!("harness-port-retry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let count = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_or(0, |text| text.lines().count())
        };
        // First attempt: "in use"; then a real server on the port it is given.
        let once = dir.join("once");
        let mut spec = python_spec(&[]);
        spec.args[1] = format!(
            "import os, sys\nopen({once:?}, 'a').write('x\\n')\n\
             if sum(1 for _ in open({once:?})) == 1:\n    \
             sys.exit('OSError: [Errno 98] Address already in use')\n{PY_SERVER}",
            once = once.to_string_lossy()
        );
        let server = ServerInstance::start(&spec).expect("started on the second port");
        assert_eq!(count("once"), 2);
        drop(server);

        let always = dir.join("always");
        let spec = sh_spec(&format!(
            "echo x >> {always:?}; echo 'bind: Address already in use' >&2; exit 1",
            always = always.to_string_lossy()
        ));
        let err = ServerInstance::start(&spec).expect_err("never binds");
        assert!(err.says_address_in_use(), "{err}");
        assert_eq!(count("always"), 1 + PORT_RETRIES);

        let other = dir.join("other");
        let spec = sh_spec(&format!(
            "echo x >> {other:?}; echo 'no such file' >&2; exit 1",
            other = other.to_string_lossy()
        ));
        let err = ServerInstance::start(&spec).expect_err("fails");
        assert!(!err.says_address_in_use(), "{err}");
        assert_eq!(count("other"), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_program_that_never_listens_times_out_and_is_killed_with_its_group() {
        let mut spec = sh_spec("sleep 30 & sleep 30");
        spec.startup_timeout = Duration::from_secs(1);
        spec.grace = Duration::from_millis(500);
        let err = ServerInstance::start(&spec).expect_err("must fail");
        let StartError::NotListening { pid, timeout, .. } = &err else {
            panic!("expected NotListening, got {err:?}")
        };
        assert_eq!(*timeout, Duration::from_secs(1));
        assert!(!is_registered(*pid));
        assert!(group_is_gone(*pid));
        assert!(err.to_string().contains("did not listen on"), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let spec = TargetSpec::new("/nonexistent/server-binary");
        let err = ServerInstance::start(&spec).expect_err("must fail");
        assert!(matches!(err, StartError::Spawn { .. }), "{err:?}");
    }

    #[test]
    fn non_loopback_hosts_are_refused() {
        let mut spec = python_spec(&[]);
        spec.host = "8.8.8.8".into();
        assert!(matches!(
            ServerInstance::start(&spec),
            Err(StartError::Host { .. })
        ));
        spec.host = "localhost".into();
        assert!(matches!(
            ServerInstance::start(&spec),
            Err(StartError::Host { .. })
        ));
    }

    #[test]
    fn drop_kills_background_children_of_the_server() {
        let spec = sh_spec(&format!("sleep 300 & exec python3 -c '{PY_SERVER}'"));
        let server = ServerInstance::start(&spec).expect("start");
        let pgid = server.pgid();
        let members = procfs::group_members(pgid);
        assert!(members.iter().any(|p| p.comm == "sleep"), "{members:?}");
        drop(server);
        assert!(group_is_gone(pgid));
        assert!(!is_registered(pgid));
    }

    #[test]
    fn terminate_reports_children_that_survive_sigterm() {
        // `sleep` inherits the ignored SIGTERM (an ignored disposition survives
        // fork and exec); the shell restores the default before becoming python.
        let spec = sh_spec(&format!(
            "trap '' TERM; sleep 300 & trap - TERM; exec python3 -c '{PY_SERVER}'"
        ));
        let mut server = ServerInstance::start(&spec).expect("start");
        let pgid = server.pgid();
        let t = server.terminate();
        assert!(!t.needed_sigkill, "{t:?}");
        assert_eq!(t.survivors.len(), 1, "{t:?}");
        assert!(group_is_gone(pgid));
    }

    #[test]
    fn a_leader_that_ignores_sigterm_gets_sigkill() {
        let script =
            format!("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n{PY_SERVER}");
        let mut spec = TargetSpec::new("python3");
        spec.args = vec!["-c".into(), script];
        spec.grace = Duration::from_millis(300);
        let mut server = ServerInstance::start(&spec).expect("start");
        let pgid = server.pgid();
        let t = server.terminate();
        assert!(t.needed_sigkill, "{t:?}");
        assert_eq!(
            t.status.and_then(|s| s.signal()),
            Some(Signal::SIGKILL as i32)
        );
        assert!(group_is_gone(pgid));
    }

    /// Restores the calling thread's signal mask on drop.
    struct MaskGuard(SigSet);
    impl Drop for MaskGuard {
        fn drop(&mut self) {
            let _ = self.0.thread_set_mask();
        }
    }

    /// Environment variable that turns `ignored_sigterm_child_side` into the child side.
    const IGNORED_TERM_CHILD: &str = "HARNESS_TARGET_TEST_IGNORED_TERM";

    /// Child side of `the_server_does_not_inherit_an_ignored_sigterm`. The
    /// environment check keeps it from changing this process's SIGTERM
    /// disposition when `--ignored` runs it outside its parent.
    #[test]
    #[ignore = "child half of the_server_does_not_inherit_an_ignored_sigterm; run by it"]
    fn ignored_sigterm_child_side() {
        if std::env::var_os(IGNORED_TERM_CHILD).is_none() {
            return;
        }
        // SAFETY: SIG_IGN runs no handler code. This runs in a process of its
        // own, so no other test sees the changed disposition.
        unsafe { signal::signal(Signal::SIGTERM, SigHandler::SigIgn) }.expect("ignore SIGTERM");
        let mut spec = python_spec(&[]);
        spec.grace = Duration::from_secs(5);
        let mut server = ServerInstance::start(&spec).expect("start");
        let t = server.terminate();
        assert!(
            !t.needed_sigkill,
            "the server inherited SIG_IGN for SIGTERM: {t:?}"
        );
    }

    #[test]
    fn the_server_does_not_inherit_an_ignored_sigterm() {
        let out = run_test_in_child(
            "target::instance::tests::ignored_sigterm_child_side",
            IGNORED_TERM_CHILD,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the child test did not run:\n{stdout}"
        );
    }

    #[test]
    fn the_exited_leader_keeps_the_group_id_until_teardown() {
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGTERM);
        let previous = blocked
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .expect("block SIGTERM");
        let _restore = MaskGuard(previous);
        let mut server = ServerInstance::start(&python_spec(&[])).expect("start");
        server.signal_server(Signal::SIGTERM).expect("kill");
        let status = server.wait_for_exit(Duration::from_secs(10));
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(Signal::SIGTERM as i32)
        );
        // The exited leader stays a zombie until teardown, so the pgid is still ours.
        assert!(server.signal_tree(Signal::SIGTERM).is_ok());
        assert!(!server.terminate().needed_sigkill);
    }

    #[test]
    fn a_chatty_server_is_drained_and_its_tail_kept() {
        let script = format!("import sys\nfor i in range(20000): sys.stderr.write('line %d ' % i + 'x' * 100 + '\\n')\nsys.stderr.flush()\n{PY_SERVER}");
        let mut spec = TargetSpec::new("python3");
        spec.args = vec!["-c".into(), script];
        let server = ServerInstance::start(&spec).expect("2 MB of stderr must not block startup");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server
            .stderr_tail(1)
            .first()
            .is_some_and(|l| l.starts_with("line 19999 "))
        {
            assert!(Instant::now() < deadline, "{:?}", server.stderr_tail(1));
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(server.stderr_tail(3).len(), 3);
        assert_eq!(server.stderr_tail(10_000).len(), TAIL_LINES);
    }
}
