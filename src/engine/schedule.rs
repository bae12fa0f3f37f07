//! Scheduled commands: commands sent with `apply_at_tick`, held until Phase 0
//! of that tick (issue 10).
//!
//! Phase 0 takes the due ones first, before the queue, in the order they were
//! scheduled. The schedule is bounded (`--max-scheduled`) and saved in every
//! checkpoint without its callers' reply channels: after a restart the
//! commands still apply, but nobody waits for them. Engine thread only.

use std::collections::BTreeMap;

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::{bridge::Reply, pb};

/// The default of `--max-scheduled`.
pub const DEFAULT_MAX_SCHEDULED: usize = 10_000;

/// One command waiting for its tick.
#[derive(Debug)]
pub struct Scheduled {
    /// The command as sent.
    pub command: pb::GodCommand,
    /// Who scheduled it.
    pub principal: String,
    /// Its caller, if it still waits (none after a restart).
    pub reply: Option<Reply>,
}

/// The commands waiting for later ticks, by tick and then arrival.
#[derive(Debug)]
pub struct Schedule {
    entries: BTreeMap<(u64, u64), Scheduled>,
    next_seq: u64,
    capacity: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MAX_SCHEDULED)
    }
}

/// The schedule as a checkpoint stores it: each command as protobuf bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedSchedule {
    entries: Vec<(Vec<u8>, String)>,
}

impl Schedule {
    /// An empty schedule holding at most `capacity` commands.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            next_seq: 0,
            capacity,
        }
    }

    /// Changes the bound; commands already held stay.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Holds `scheduled` for its command's `apply_at_tick`; hands it back
    /// (boxed, it is large) if the schedule is full.
    pub fn insert(&mut self, scheduled: Scheduled) -> Result<(), Box<Scheduled>> {
        if self.entries.len() >= self.capacity {
            return Err(Box::new(scheduled));
        }
        let key = (scheduled.command.apply_at_tick, self.next_seq);
        self.next_seq += 1;
        self.entries.insert(key, scheduled);
        Ok(())
    }

    /// Takes out every command due at or before `tick`, in order.
    pub fn take_due(&mut self, tick: u64) -> Vec<Scheduled> {
        let later = self.entries.split_off(&(tick + 1, 0));
        std::mem::replace(&mut self.entries, later)
            .into_values()
            .collect()
    }

    /// Takes out the command with id `id`, if it is held.
    pub fn cancel(&mut self, id: &str) -> Option<Scheduled> {
        let key = *self
            .entries
            .iter()
            .find(|(_, s)| s.command.id == id)
            .map(|(key, _)| key)?;
        self.entries.remove(&key)
    }

    /// Every held command, soonest first.
    pub fn list(&self) -> Vec<pb::ScheduledCommand> {
        self.entries
            .values()
            .map(|s| pb::ScheduledCommand {
                command: Some(s.command.clone()),
                principal: s.principal.clone(),
            })
            .collect()
    }

    /// What a checkpoint keeps.
    pub fn saved(&self) -> SavedSchedule {
        SavedSchedule {
            entries: self
                .entries
                .values()
                .map(|s| (s.command.encode_to_vec(), s.principal.clone()))
                .collect(),
        }
    }

    /// The schedule a checkpoint kept, nobody waiting on it.
    pub fn restore(&mut self, saved: SavedSchedule) {
        for (bytes, principal) in saved.entries {
            // The checksum over the checkpoint has already vouched for these bytes.
            let command = pb::GodCommand::decode(bytes.as_slice()).unwrap_or_default();
            let key = (command.apply_at_tick, self.next_seq);
            self.next_seq += 1;
            self.entries.insert(
                key,
                Scheduled {
                    command,
                    principal,
                    reply: None,
                },
            );
        }
    }
}
