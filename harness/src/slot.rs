//! A server slot: the instance a check or a group of cases delivers to,
//! started on first use and started again when it died. The checks' context
//! ([`crate::checks::Ctx`]) holds one; a group of cases holds one per worker,
//! or one shared by all of them.

use crate::habits::Habits;
use crate::target::{ServerInstance, StartError, TargetSpec};

/// One server slot.
pub struct Slot<'a> {
    /// How to start an instance.
    spec: &'a TargetSpec,
    /// What the server does with every request: a restarted instance is
    /// warmed up the way the first one was learned.
    habits: &'a Habits,
    /// The instance, if one was started and not taken out since.
    instance: Option<ServerInstance>,
    /// How many instances this slot has started.
    generation: u64,
}

impl<'a> Slot<'a> {
    /// A slot with no instance yet.
    pub fn new(spec: &'a TargetSpec, habits: &'a Habits) -> Slot<'a> {
        Slot {
            spec,
            habits,
            instance: None,
            generation: 0,
        }
    }

    /// The running instance, started (or started again, if it died) and
    /// warmed up on demand.
    pub fn server(&mut self) -> Result<&mut ServerInstance, StartError> {
        if !self.instance.as_mut().is_some_and(|s| s.is_alive()) {
            self.start(true)?;
        }
        Ok(self
            .instance
            .as_mut()
            .expect("an instance was just started"))
    }

    /// A new instance, whatever ran before, not warmed up: for a delivery
    /// that must be the first thing the server sees.
    pub fn fresh(&mut self) -> Result<&mut ServerInstance, StartError> {
        self.start(false)?;
        Ok(self
            .instance
            .as_mut()
            .expect("an instance was just started"))
    }

    fn start(&mut self, warm: bool) -> Result<(), StartError> {
        // Dropping the old instance tears it down (reaps it, stops its tree)
        // before the next one starts on the same port.
        self.instance = None;
        let server = ServerInstance::start(self.spec)?;
        if warm {
            self.habits.warm_up(&server);
        }
        self.instance = Some(server);
        self.generation += 1;
        Ok(())
    }

    /// How many instances this slot has started: a delivery that saw
    /// generation `g` knows a later one replaced its server.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The instance as it is, without starting one.
    pub fn current(&mut self) -> Option<&mut ServerInstance> {
        self.instance.as_mut()
    }

    /// Takes the instance out (to stop or restart it by hand).
    pub fn take(&mut self) -> Option<ServerInstance> {
        self.instance.take()
    }

    /// Puts an instance back as the slot's own.
    pub fn put(&mut self, instance: ServerInstance) {
        self.instance = Some(instance);
    }
}
