//! Several agents, one fleet: with `[cluster]`, every agent loads the same
//! config and the sources are shared through etcd (`etcd.rs`, the JSON
//! gateway). Without it none of this runs. Each agent's coordinator
//! (`coordinator.rs`) holds the lease, reads the fleet every balancing
//! tick, asks `plan.rs` (a pure function of the members, the owner keys,
//! what this agent runs and the configured sources) what to stop, release
//! and take, and does it.
//!
//! # Keys (under `cluster.prefix`, default `/auditrelay/`)
//!
//! | key | value | bound to |
//! | --- | --- | --- |
//! | `members/<name>` | JSON `{"v":1,"name","version"}` | the agent's lease |
//! | `owners/<source>` | the owner's name | the owner's lease |
//! | `cursors/<source>` | JSON `{"v":1,"by","at","cursor"}`: the source's *delivered* cursor | nothing (stays) |
//!
//! # Rules
//!
//! - **One owner.** An owner key is created only where none is (a
//!   transaction comparing its create revision with 0) and bound to the
//!   owner's lease: it goes when the owner releases it or its lease
//!   expires. The agent renews its lease every fifth of `lease_ttl`; when
//!   no renewal succeeded for two thirds of `lease_ttl` (counted
//!   from when the renewal was *sent*, so etcd's expiry is later still),
//!   the agent stops every poller before etcd can hand a source to anyone
//!   else, and starts again with a new lease once etcd answers.
//! - **Fair share.** Each agent owns at most ⌈sources ÷ live members⌉; a
//!   member over its share releases the extra sources gracefully (the last
//!   in name order first), an agent under it takes sources that have no
//!   owner key, walking the configured order from a place a hash of its
//!   name picks (agents starting together ask for different sources). A
//!   dead agent's owner keys go with its lease, so its sources are taken
//!   within `lease_ttl` plus a balancing tick.
//! - **Handover.** The owner writes the source's delivered cursor
//!   ([`crate::state::State::delivered_cursor`]: every output confirmed the events before
//!   it) every [`CHECKPOINT_INTERVAL`] and when it releases the source, in
//!   a transaction that holds only while its owner key is the one it
//!   created (fencing on the key's create revision). A new owner moves its
//!   local cursor to that checkpoint before polling: what the last owner
//!   journaled but had not delivered is fetched again (duplicates at
//!   worst), and whatever this agent journaled earlier is still delivered
//!   by its outputs, which run whatever sources it owns.
//! - **Release.** Stop the poller (the pipeline waits for it), let the
//!   outputs deliver what it journaled (bounded), checkpoint and delete the
//!   owner key in one fenced transaction. A SIGTERM does this for every
//!   source, then revokes the lease: a rolling restart duplicates nothing.
//!
//! The pipeline runs the pollers: this task tells it which to start and
//! stop ([`Command`]) and waits until it did.

mod coordinator;
pub mod etcd;
#[cfg(test)]
mod fake;
mod plan;

pub use coordinator::start;

use crate::config::cluster::ClusterConfig;
use crate::config::Config;
use crate::settings::secret::Env;
use crate::state::Cursor;
use etcd::{Etcd, EtcdError, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How often the owner writes a source's delivered cursor (when it moved).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3);

/// What the coordinator asks the pipeline.
#[derive(Debug)]
pub enum Command {
    /// Start polling a source (its cursor is set already).
    Start(String, oneshot::Sender<()>),
    /// Stop polling a source and wait until its poller ended.
    Stop(String, oneshot::Sender<()>),
    /// Stop every poller now (the lease may be lost).
    StopAll(oneshot::Sender<()>),
}

/// The pipeline's side of a running coordinator.
pub struct Link {
    /// Commands to carry out.
    pub commands: mpsc::Receiver<Command>,
    /// The running config, for the coordinator (sources, outputs).
    pub config: watch::Sender<Arc<Config>>,
    /// Cancelled to release every source and leave the fleet.
    pub leave: CancellationToken,
    /// The coordinator's task.
    pub task: tokio::task::JoinHandle<()>,
}

/// The agent's name in the fleet: `cluster.name`, else the host name.
pub fn agent_name(cluster: &ClusterConfig, cfg: &Config) -> String {
    cluster.name.clone().unwrap_or_else(|| cfg.hostname())
}

/// A delivered cursor as stored under `cursors/<source>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "v")]
enum StoredCheckpoint {
    #[serde(rename = "1")]
    V1 {
        /// The agent that wrote it.
        by: String,
        /// When (RFC 3339).
        at: String,
        /// The cursor.
        cursor: Cursor,
    },
}

/// One source's checkpoint, read back.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Who wrote it.
    pub by: String,
    /// When.
    pub at: String,
    /// The delivered cursor.
    pub cursor: Cursor,
}

fn decode_checkpoint(v: &[u8]) -> Option<Checkpoint> {
    match serde_json::from_slice::<StoredCheckpoint>(v).ok()? {
        StoredCheckpoint::V1 { by, at, cursor } => Some(Checkpoint { by, at, cursor }),
    }
}

/// The fleet as etcd sees it (`auditrelay status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fleet {
    /// Live members.
    pub members: Vec<String>,
    /// Source → owner.
    pub owners: BTreeMap<String, String>,
    /// Source → (delivered cursor time, written by, written at).
    pub cursors: BTreeMap<String, (Option<String>, String, String)>,
}

/// Read the fleet's keys.
pub async fn read_fleet(etcd: &Etcd, prefix: &str) -> Result<Fleet, EtcdError> {
    let mut fleet = Fleet::default();
    for kv in etcd.range_prefix(prefix).await? {
        let Some(rest) = kv.key.strip_prefix(prefix) else { continue };
        if let Some(m) = rest.strip_prefix("members/") {
            fleet.members.push(m.to_owned());
        } else if let Some(s) = rest.strip_prefix("owners/") {
            fleet.owners.insert(s.to_owned(), String::from_utf8_lossy(&kv.value).into_owned());
        } else if let Some(s) = rest.strip_prefix("cursors/") {
            if let Some(c) = decode_checkpoint(&kv.value) {
                fleet.cursors.insert(s.to_owned(), (c.cursor.time.map(crate::event::rfc3339), c.by, c.at));
            }
        }
    }
    Ok(fleet)
}

/// How long `auditrelay status` waits for each etcd request.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `check --connect` waits for each etcd request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Read the fleet for `auditrelay status` (a few seconds at most).
pub async fn fleet_status(cluster: &ClusterConfig, env: &dyn Env) -> Result<Fleet, EtcdError> {
    let etcd = Etcd::new(cluster, env, STATUS_TIMEOUT)?;
    read_fleet(&etcd, &cluster.prefix()).await
}

/// `check --connect`: reach etcd, authenticate, read the fleet's keys.
/// The line to print on success.
pub async fn probe(cluster: &ClusterConfig, env: &dyn Env) -> Result<String, EtcdError> {
    let etcd = Etcd::new(cluster, env, PROBE_TIMEOUT)?;
    let version = etcd.version().await?;
    let fleet = read_fleet(&etcd, &cluster.prefix()).await?;
    Ok(format!(
        "etcd {version} at {}: {} member(s) under {}, {} source(s) owned",
        etcd.endpoints(),
        fleet.members.len(),
        cluster.prefix(),
        fleet.owners.len()
    ))
}

/// The fleet as text, for `auditrelay status`.
pub fn render(fleet: &Fleet, sources: &[String]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "
fleet: {} live member(s): {}",
        fleet.members.len(),
        fleet.members.join(", ")
    );
    let _ = writeln!(out, "{:<20} {:<20} {:<32} CHECKPOINT BY / AT", "SOURCE", "OWNER", "DELIVERED CURSOR");
    for s in sources {
        let owner = fleet.owners.get(s).map_or("(none)", String::as_str);
        let (cursor, by) = match fleet.cursors.get(s) {
            Some((c, by, at)) => (c.clone().unwrap_or_else(|| "-".into()), format!("{by} {at}")),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(out, "{s:<20} {owner:<20} {cursor:<32} {by}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_garbage_is_ignored() {
        let cursor = Cursor { time: chrono::DateTime::from_timestamp(1_700_000_000, 0), ..Default::default() };
        let v = serde_json::to_vec(&StoredCheckpoint::V1 { by: "a".into(), at: "t".into(), cursor: cursor.clone() })
            .unwrap();
        let c = decode_checkpoint(&v).unwrap();
        assert_eq!((c.by.as_str(), c.cursor), ("a", cursor));
        for bad in [&b""[..], b"null", b"{\"v\":\"9\"}", b"\xff\xfe", b"{\"v\":\"1\",\"by\":1}"] {
            assert!(decode_checkpoint(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn render_lists_every_source() {
        let mut f = Fleet { members: vec!["a".into(), "b".into()], ..Default::default() };
        f.owners.insert("s1".into(), "a".into());
        f.cursors.insert("s1".into(), (Some("2026-01-01T00:00:00Z".into()), "a".into(), "t".into()));
        let text = render(&f, &["s1".into(), "s2".into()]);
        assert!(text.contains("2 live member(s): a, b"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("s1") && l.contains("2026-01-01")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("s2") && l.contains("(none)")), "{text}");
    }
}
