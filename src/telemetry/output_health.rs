//! Whether some output is failing to deliver: the back-pressure signal
//! between outputs and the sources that feed them. Outputs say whether
//! their last delivery failed; sources read it to decide how far ahead of
//! them they may fill the journal, and a fleet member reads it to stop
//! waiting for a handed-over source's events to drain.
//!
//! It is not storage (nothing of it survives a restart, and the state
//! need not know it), so it is a handle of its own: the pipeline creates
//! one per agent and gives a clone to every output and source through
//! their contexts, and to the cluster coordinator.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The outputs whose last delivery failed, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct OutputHealth {
    down: Arc<Mutex<HashSet<String>>>,
}

impl OutputHealth {
    /// Record whether an output's last delivery failed. While every output
    /// delivers, sources keep only a short lead over them in the journal;
    /// while one is down they may fill it to `max_journal_size`.
    pub fn set_down(&self, output: &str, down: bool) {
        let mut set = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down {
            set.insert(output.to_owned());
        } else {
            set.remove(output);
        }
    }

    /// Whether some output's last delivery failed.
    pub fn an_output_is_down(&self) -> bool {
        !self.down.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::OutputHealth;

    #[test]
    fn down_while_any_output_is_down_and_shared_by_clones() {
        let health = OutputHealth::default();
        let seen = health.clone();
        assert!(!seen.an_output_is_down());
        health.set_down("hec", true);
        health.set_down("syslog", true);
        health.set_down("hec", false);
        assert!(seen.an_output_is_down(), "syslog is still down");
        health.set_down("syslog", false);
        health.set_down("never-down", false);
        assert!(!seen.an_output_is_down());
    }
}
