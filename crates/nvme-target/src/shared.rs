//! What all reactors of one target share (read-mostly, management path): the NVMe-oF controller core's
//! [`Target`], the block-device factories behind each namespace, and the transport settings.
//!
//! The namespace table changes while the target serves (management adds, removes and resizes
//! namespaces): it sits behind a lock that only management writes, with a generation number that I/O
//! queues compare against on each command (one atomic load) to refresh their copy when it moved.
//! A namespace's index into the reactors' handle tables is never reused; a removed one is retired, and
//! each reactor closes its handle once no request of it is in flight.

use ff_blockdev::{BlockDevFactory, DevInfo};
use ff_nvme_tcp::target::TargetConnConfig;
use ff_nvmf::Target;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// One namespace's backend.
pub struct NsBackend {
    /// Index into every reactor's table of device handles (never reused).
    pub index: usize,
    /// Opens a per-reactor handle.
    pub factory: Arc<dyn BlockDevFactory>,
    /// Geometry and features.
    pub info: DevInfo,
}

/// The namespaces of one subsystem by nsid.
#[derive(Clone, Default)]
pub struct SubsysBackends {
    /// nsid -> backend (a B-tree: a lookup per I/O among a handful of namespaces, no hashing).
    pub by_nsid: BTreeMap<u32, Arc<NsBackend>>,
}

/// Target-wide state shared by reactors.
pub struct Shared {
    /// The controller core (Connect, admin commands, discovery).
    pub target: Arc<Target>,
    /// Backends of each subsystem, by NQN.
    backends: RwLock<HashMap<String, Arc<SubsysBackends>>>,
    /// Bumped on every change of `backends`.
    generation: AtomicU64,
    /// The next namespace index.
    next_index: AtomicUsize,
    /// Indexes of removed namespaces, in the order they were removed (reactors keep a cursor).
    retired: Mutex<Vec<usize>>,
    /// Per-connection transport settings.
    pub conn: TargetConnConfig,
    /// iSCSI targets and sessions, when iSCSI portals are open.
    pub iscsi: Option<Arc<crate::iscsi::IscsiShared>>,
    /// Hosts' TLS pre-shared keys (TLS listeners' handshakes look identities up here).
    pub psks: Arc<crate::tls::PskTable>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The shared state of a target serving `backends` (their indexes below `ns_count`).
    pub fn new(
        target: Arc<Target>,
        backends: HashMap<String, Arc<SubsysBackends>>,
        ns_count: usize,
        conn: TargetConnConfig,
    ) -> Shared {
        Shared {
            target,
            backends: RwLock::new(backends),
            generation: AtomicU64::new(0),
            next_index: AtomicUsize::new(ns_count),
            retired: Mutex::new(Vec::new()),
            conn,
            iscsi: None,
            psks: Arc::default(),
        }
    }

    /// The backends of subsystem `nqn` (none for discovery or unknown subsystems).
    pub fn backends(&self, nqn: &str) -> Option<Arc<SubsysBackends>> {
        read(&self.backends).get(nqn).cloned()
    }

    /// Every namespace backend of every subsystem.
    pub fn all_namespaces(&self) -> Vec<Arc<NsBackend>> {
        read(&self.backends).values().flat_map(|s| s.by_nsid.values().cloned()).collect()
    }

    /// Every namespace as (subsystem NQN, nsid, index).
    pub fn indexes(&self) -> Vec<(String, u32, usize)> {
        let map = read(&self.backends);
        let mut v: Vec<_> = map
            .iter()
            .flat_map(|(nqn, s)| s.by_nsid.iter().map(move |(nsid, b)| (nqn.clone(), *nsid, b.index)))
            .collect();
        v.sort();
        v
    }

    /// Where the table stands: a session whose copy is of another generation refreshes it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// An index for a new namespace.
    pub fn alloc_index(&self) -> usize {
        self.next_index.fetch_add(1, Ordering::Relaxed)
    }

    /// Namespace indexes allocated so far (the size a reactor's handle table may reach).
    pub fn index_bound(&self) -> usize {
        self.next_index.load(Ordering::Relaxed)
    }

    /// Applies `f` to subsystem `nqn`'s backends (created empty when missing) and publishes the result;
    /// namespaces `f` drops are retired.
    pub fn update(&self, nqn: &str, f: impl FnOnce(&mut SubsysBackends)) {
        let mut map = write(&self.backends);
        let mut sb = map.get(nqn).map(|s| (**s).clone()).unwrap_or_default();
        let before: Vec<usize> = sb.by_nsid.values().map(|n| n.index).collect();
        f(&mut sb);
        let gone = before.into_iter().filter(|i| !sb.by_nsid.values().any(|n| n.index == *i));
        self.retire(gone);
        map.insert(nqn.to_string(), Arc::new(sb));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets subsystem `nqn`'s backends, retiring its namespaces.
    pub fn remove(&self, nqn: &str) {
        let mut map = write(&self.backends);
        if let Some(sb) = map.remove(nqn) {
            self.retire(sb.by_nsid.values().map(|n| n.index));
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn retire(&self, idx: impl Iterator<Item = usize>) {
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).extend(idx);
    }

    /// Namespace indexes retired after the first `seen` (a reactor's cursor), and the new cursor.
    pub fn retired_since(&self, seen: usize) -> (Vec<usize>, usize) {
        let r = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        (r.get(seen..).unwrap_or_default().to_vec(), r.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_bump_the_generation_and_retire_dropped_namespaces() {
        let target = Target::new(ff_nvmf::Limits::default()).expect("target");
        let s = Shared::new(target, HashMap::new(), 3, TargetConnConfig::default());
        assert_eq!(s.alloc_index(), 3);
        let factory: Arc<dyn BlockDevFactory> =
            Arc::new(ff_blockdev::open(&"null".parse().expect("spec")).expect("null"));
        let info = factory.info();
        let ns = |index| Arc::new(NsBackend { index, factory: Arc::clone(&factory), info });
        let g0 = s.generation();
        s.update("n", |b| {
            b.by_nsid.insert(1, ns(3));
            b.by_nsid.insert(2, ns(4));
        });
        assert!(s.generation() > g0);
        assert_eq!(s.backends("n").map(|b| b.by_nsid.len()), Some(2));
        s.update("n", |b| {
            b.by_nsid.remove(&1);
        });
        assert_eq!(s.retired_since(0), (vec![3], 1));
        s.remove("n");
        assert_eq!(s.retired_since(1), (vec![4], 2));
        assert!(s.backends("n").is_none());
    }
}
