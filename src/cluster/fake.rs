//! An in-memory etcd for the coordinator's tests: keys with create and
//! mod revisions, leases that expire on tokio's clock (so a test on paused
//! time runs a fleet through minutes of leases in milliseconds), and the
//! one transaction the fleet uses. Each agent talks through its own
//! [`Client`], which a test can cut off (a partition, or a dead host whose
//! renewals stop) while the others go on.
//!
//! Semantics follow etcd v3 where the coordinator depends on them: a
//! transaction with writes moves the store's revision by one, and a key it
//! creates gets that revision as its create revision; a put to a lease
//! that does not exist fails; an expired or revoked lease takes its keys
//! with it; `keepalive` of an expired lease answers a TTL of 0.

use super::etcd::{CreatedAt, EtcdError, Kv, Op, Store};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Default)]
struct Inner {
    revision: i64,
    next_lease: i64,
    keys: BTreeMap<String, Kv>,
    /// Lease → (ttl, expires at).
    leases: HashMap<i64, (Duration, Instant)>,
}

impl Inner {
    /// Let every lease whose time is up go, with its keys.
    fn expire(&mut self) {
        let now = Instant::now();
        let gone: Vec<i64> = self.leases.iter().filter(|(_, (_, at))| *at <= now).map(|(l, _)| *l).collect();
        for lease in gone {
            self.drop_lease(lease);
        }
    }

    fn drop_lease(&mut self, lease: i64) {
        self.leases.remove(&lease);
        let before = self.keys.len();
        self.keys.retain(|_, kv| kv.lease != lease);
        if self.keys.len() != before {
            self.revision += 1;
        }
    }
}

/// The shared store.
#[derive(Clone, Default)]
pub struct FakeEtcd {
    inner: Arc<Mutex<Inner>>,
}

/// One agent's connection to the store.
pub struct Client {
    inner: Arc<Mutex<Inner>>,
    cut: AtomicBool,
}

impl FakeEtcd {
    /// A new connection to the store.
    pub fn client(&self) -> Arc<Client> {
        Arc::new(Client { inner: self.inner.clone(), cut: AtomicBool::new(false) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A key as the store holds it now (expired leases gone).
    pub fn key(&self, key: &str) -> Option<Kv> {
        let mut s = self.lock();
        s.expire();
        s.keys.get(key).cloned()
    }

    /// Every key under `prefix` (expired leases gone).
    pub fn keys(&self, prefix: &str) -> Vec<Kv> {
        let mut s = self.lock();
        s.expire();
        s.keys.range(prefix.to_owned()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(_, kv)| kv.clone()).collect()
    }

    /// Whether `lease` is alive now, reading the clock rather than waiting
    /// for the next call to let it go.
    pub fn lease_alive(&self, lease: i64) -> bool {
        self.lock().leases.get(&lease).is_some_and(|(_, at)| *at > Instant::now())
    }

    /// Delete a key behind the agents' backs (an operator, or a bug).
    pub fn delete(&self, key: &str) {
        let mut s = self.lock();
        if s.keys.remove(key).is_some() {
            s.revision += 1;
        }
    }

    /// Put a key behind the agents' backs.
    pub fn put(&self, key: &str, value: &[u8], lease: i64) {
        let mut s = self.lock();
        s.revision += 1;
        let revision = s.revision;
        let create_revision = s.keys.get(key).map_or(revision, |kv| kv.create_revision);
        s.keys.insert(
            key.to_owned(),
            Kv { key: key.to_owned(), value: value.to_vec(), create_revision, mod_revision: revision, lease },
        );
    }
}

impl Client {
    /// Cut this client off (`true`: every call fails as unreachable) or
    /// connect it again.
    pub fn cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    /// The store, or the error an unreachable etcd gives.
    fn store(&self) -> Result<std::sync::MutexGuard<'_, Inner>, EtcdError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(EtcdError::Unreachable { endpoints: self.endpoints(), detail: "cut off by the test".into() });
        }
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.expire();
        Ok(s)
    }
}

fn refused(call: &'static str, message: &str) -> EtcdError {
    EtcdError::Refused { endpoint: "fake".into(), call, message: message.into() }
}

impl Store for Client {
    fn endpoints(&self) -> String {
        "fake".into()
    }

    async fn range_prefix(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        let s = self.store()?;
        Ok(s.keys
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect())
    }

    async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        Ok(self.store()?.keys.get(key).cloned())
    }

    async fn txn_rev(&self, compare: Vec<CreatedAt>, success: Vec<Op>) -> Result<(bool, i64), EtcdError> {
        let mut s = self.store()?;
        let holds = compare.iter().all(|c| s.keys.get(&c.key).map_or(0, |kv| kv.create_revision) == c.revision);
        if !holds {
            return Ok((false, s.revision));
        }
        for op in &success {
            if let Op::Put { lease, .. } = op {
                if *lease != 0 && !s.leases.contains_key(lease) {
                    return Err(refused("kv/txn", "etcdserver: requested lease not found"));
                }
            }
        }
        if !success.is_empty() {
            s.revision += 1;
        }
        let revision = s.revision;
        for op in success {
            match op {
                Op::Put { key, value, lease } => {
                    let create_revision = s.keys.get(&key).map_or(revision, |kv| kv.create_revision);
                    s.keys.insert(key.clone(), Kv { key, value, create_revision, mod_revision: revision, lease });
                }
                Op::Delete(key) => {
                    s.keys.remove(&key);
                }
            }
        }
        Ok((true, revision))
    }

    async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let mut s = self.store()?;
        s.next_lease += 1;
        let lease = s.next_lease;
        s.leases.insert(lease, (ttl, Instant::now() + ttl));
        Ok(lease)
    }

    async fn keepalive(&self, lease: i64) -> Result<i64, EtcdError> {
        let mut s = self.store()?;
        match s.leases.get_mut(&lease) {
            Some((ttl, at)) => {
                *at = Instant::now() + *ttl;
                Ok(ttl.as_secs() as i64)
            }
            None => Ok(0),
        }
    }

    async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        let mut s = self.store()?;
        if !s.leases.contains_key(&lease) {
            return Err(refused("lease/revoke", "etcdserver: requested lease not found"));
        }
        s.drop_lease(lease);
        Ok(())
    }
}
