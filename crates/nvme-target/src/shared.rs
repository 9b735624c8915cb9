//! What all reactors of one target share (read-mostly, management path): the NVMe-oF controller core's
//! [`Target`], the block-device factories behind each namespace, and the transport settings.

use ff_blockdev::{BlockDevFactory, DevInfo};
use ff_nvme_tcp::target::TargetConnConfig;
use ff_nvmf::Target;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One namespace's backend.
pub struct NsBackend {
    /// Index into every reactor's table of device handles.
    pub index: usize,
    /// Opens a per-reactor handle.
    pub factory: Arc<dyn BlockDevFactory>,
    /// Geometry and features.
    pub info: DevInfo,
}

/// The namespaces of one subsystem by nsid.
#[derive(Default)]
pub struct SubsysBackends {
    /// nsid -> backend (a B-tree: a lookup per I/O among a handful of namespaces, no hashing).
    pub by_nsid: BTreeMap<u32, Arc<NsBackend>>,
}

/// Target-wide state shared by reactors.
pub struct Shared {
    /// The controller core (Connect, admin commands, discovery).
    pub target: Arc<Target>,
    /// Backends of each subsystem, by NQN.
    pub subsystems: HashMap<String, Arc<SubsysBackends>>,
    /// Number of namespaces in all (size of each reactor's handle table).
    pub ns_count: usize,
    /// Per-connection transport settings.
    pub conn: TargetConnConfig,
}

impl Shared {
    /// The backends of subsystem `nqn` (none for discovery or unknown subsystems).
    pub fn backends(&self, nqn: &str) -> Option<Arc<SubsysBackends>> {
        self.subsystems.get(nqn).cloned()
    }
}
