//! The process checks: how the server behaves as a process under load,
//! signals and restarts. Each check has a stable id, the requirement it
//! tests, a hint for the server's author, and the capabilities it needs.
//!
//! # Layout
//! - [`concurrency`]: serving clients at the same time.
//! - [`process`]: zombies and children that do not exit.
//! - [`fds`]: descriptor leaks and sockets held open.
//! - [`signals`]: EINTR storms and SIGPIPE.
//! - [`lifecycle`]: startup, restart on the same port, SIGTERM.
//! - [`load`]: the requests the checks send, bounded so a dead server costs little.

pub mod concurrency;
pub mod fds;
pub mod lifecycle;
pub mod load;
pub mod process;
pub mod signals;

use std::time::Duration;

use crate::death::Death;
use crate::habits::{Answers, Habits};

use crate::check::CheckResult;
use crate::model::ModelReport;
use crate::probe::{Capabilities, Route};
use crate::slot::Slot;
use crate::target::{ServerInstance, StartError, TargetSpec};

/// Settings that shape the load the checks apply.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Concurrent clients for `concurrency/sleep-latency`.
    pub sleep_clients: usize,
    /// Milliseconds each of them asks the server to sleep.
    pub sleep_ms: u64,
    /// How long zombie and descriptor counts may take to settle after load.
    pub settle: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            sleep_clients: 8,
            sleep_ms: 300,
            settle: Duration::from_secs(2),
        }
    }
}

/// One process check, as the catalog lists it.
#[derive(Clone, Copy)]
pub struct CheckDef {
    /// Stable id, `group/name`.
    pub id: &'static str,
    /// The requirement, one sentence.
    pub requirement: &'static str,
    /// What the server's code must do when the check fails.
    pub hint: &'static str,
    /// Conformance-app routes the check cannot run without.
    pub needs: &'static [Route],
    /// How many answers the check needs from one instance: against a server
    /// that gives fewer (see [`crate::habits`]) it reports an error at once
    /// instead of waiting out its own timeouts.
    pub answers: Answers,
    /// Runs the check; the result arrives pre-filled with id, requirement and hint.
    pub run: fn(&mut Ctx<'_>, CheckResult) -> CheckResult,
}

impl CheckDef {
    /// The group, the part of the id before the first `/`.
    pub fn group(&self) -> &'static str {
        self.id.split('/').next().unwrap_or(self.id)
    }

    /// A result carrying this check's id, requirement and hint.
    pub fn blank_result(&self) -> CheckResult {
        CheckResult::new(self.id, self.requirement, self.hint)
    }
}

/// Every process check, in report order.
pub fn catalog() -> Vec<CheckDef> {
    let mut all = Vec::new();
    all.extend_from_slice(concurrency::CHECKS);
    all.extend_from_slice(process::CHECKS);
    all.extend_from_slice(fds::CHECKS);
    all.extend_from_slice(signals::CHECKS);
    all.extend_from_slice(lifecycle::CHECKS);
    all
}

/// What a check works with: the target, what the probe found, and the
/// server instance of its group, started on first use.
pub struct Ctx<'a> {
    /// How to launch the server.
    pub spec: &'a TargetSpec,
    /// Routes the server serves.
    pub caps: &'a Capabilities,
    /// How the server handles connections.
    pub model: &'a ModelReport,
    /// What the server does with every request.
    pub habits: &'a Habits,
    /// Load settings.
    pub settings: &'a Settings,
    /// The group's server slot.
    slot: Slot<'a>,
    /// How the group's server died during the current check, once a check
    /// has noticed; taken by the runner when the check ends.
    death: Option<Death>,
}

impl<'a> Ctx<'a> {
    /// A context with no server started yet.
    pub fn new(
        spec: &'a TargetSpec,
        caps: &'a Capabilities,
        model: &'a ModelReport,
        habits: &'a Habits,
        settings: &'a Settings,
    ) -> Ctx<'a> {
        Ctx {
            spec,
            caps,
            model,
            habits,
            settings,
            slot: Slot::new(spec, habits),
            death: None,
        }
    }

    /// The group's server, started (or restarted, if it died) on demand.
    pub fn server(&mut self) -> Result<&mut ServerInstance, StartError> {
        self.slot.server()
    }

    /// The group's server as it is, without starting or restarting it.
    pub fn server_if_running(&mut self) -> Option<&mut ServerInstance> {
        self.slot.current()
    }

    /// Takes the group's server out of the context (to stop or restart it).
    pub fn take_server(&mut self) -> Option<ServerInstance> {
        self.slot.take()
    }

    /// Puts a server back as the group's server.
    pub fn set_server(&mut self, instance: ServerInstance) {
        self.slot.put(instance);
    }

    /// Whether the group's server died during this check (noticed by the
    /// check itself or now). A dead server is forgotten, so that the next
    /// check starts afresh, and its death is kept for [`Ctx::take_death`].
    pub fn died(&mut self) -> Option<&Death> {
        if let Some(instance) = self.slot.current() {
            if !instance.is_alive() {
                self.death = Some(Death::of(instance));
                self.slot.take();
            }
        }
        self.death.as_ref()
    }

    /// How the server died during the check that just ended, if it did.
    pub fn take_death(&mut self) -> Option<Death> {
        self.died();
        self.death.take()
    }
}
