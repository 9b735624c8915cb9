//! Placement: which group (reactor) an accepted connection joins. Round-robin and least-loaded ignore
//! the hardware; NAPI-ID and incoming-CPU modes put connections whose packets arrive on the same NIC rx
//! queue (or CPU) in the same group, so the thread that polls them is the one their packets reach.
//! This runs on the management path (the acceptor), never on a reactor's I/O path.

use crate::socket::TcpSock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// How accepted connections are spread over groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlacementMode {
    /// In arrival order.
    RoundRobin,
    /// To the group with the fewest connections.
    LeastLoaded,
    /// By SO_INCOMING_NAPI_ID: one rx queue, one group.
    NapiId,
    /// By SO_INCOMING_CPU: one receiving CPU, one group.
    IncomingCpu,
}

impl FromStr for PlacementMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "round-robin" | "rr" => Ok(PlacementMode::RoundRobin),
            "least-loaded" => Ok(PlacementMode::LeastLoaded),
            "napi" | "napi-id" => Ok(PlacementMode::NapiId),
            "cpu" | "incoming-cpu" => Ok(PlacementMode::IncomingCpu),
            o => Err(format!("unknown placement {o:?} (round-robin, least-loaded, napi-id, incoming-cpu)")),
        }
    }
}

impl fmt::Display for PlacementMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlacementMode::RoundRobin => "round-robin",
            PlacementMode::LeastLoaded => "least-loaded",
            PlacementMode::NapiId => "napi-id",
            PlacementMode::IncomingCpu => "incoming-cpu",
        })
    }
}

/// Where one connection went; hand it back to [`Placer::release`] when the connection closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The chosen group index.
    pub group: usize,
    /// The NAPI id or CPU that chose it (`None` when the mode ignores hardware or the kernel had none).
    pub key: Option<u32>,
}

/// Chooses groups and remembers which hardware key lives in which group.
#[derive(Debug)]
pub struct Placer {
    mode: PlacementMode,
    load: Vec<usize>,
    next: usize,
    /// key -> (group, connections holding it).
    by_key: HashMap<u32, (usize, usize)>,
}

impl Placer {
    /// A placer over `groups` groups (at least one).
    pub fn new(mode: PlacementMode, groups: usize) -> Placer {
        Placer { mode, load: vec![0; groups.max(1)], next: 0, by_key: HashMap::new() }
    }

    /// The mode.
    pub fn mode(&self) -> PlacementMode {
        self.mode
    }

    /// Connections per group.
    pub fn load(&self) -> &[usize] {
        &self.load
    }

    /// The group currently serving `key`, if any connection holds it.
    pub fn group_of_key(&self, key: u32) -> Option<usize> {
        self.by_key.get(&key).map(|&(g, _)| g)
    }

    /// Reads the socket's hardware hint for this mode (0 / none means unknown).
    pub fn key_of(&self, sock: &TcpSock) -> Option<u32> {
        match self.mode {
            PlacementMode::NapiId => sock.incoming_napi_id().ok().filter(|&id| id != 0),
            PlacementMode::IncomingCpu => sock.incoming_cpu().ok().flatten(),
            _ => None,
        }
    }

    /// Places `sock`.
    pub fn place(&mut self, sock: &TcpSock) -> Placement {
        let key = self.key_of(sock);
        self.place_key(key)
    }

    /// Places a connection whose hardware key is `key`.
    pub fn place_key(&mut self, key: Option<u32>) -> Placement {
        let group = match (self.mode, key) {
            (PlacementMode::RoundRobin, _) => {
                let g = self.next % self.load.len();
                self.next = self.next.wrapping_add(1);
                g
            }
            (PlacementMode::NapiId | PlacementMode::IncomingCpu, Some(k)) => match self.by_key.get_mut(&k) {
                Some((g, refs)) => {
                    *refs += 1;
                    *g
                }
                None => {
                    let g = self.least_loaded();
                    self.by_key.insert(k, (g, 1));
                    g
                }
            },
            // Least-loaded, and the hardware modes when the kernel gave no hint.
            _ => self.least_loaded(),
        };
        self.load[group] += 1;
        let key = if matches!(self.mode, PlacementMode::NapiId | PlacementMode::IncomingCpu) { key } else { None };
        Placement { group, key }
    }

    fn least_loaded(&self) -> usize {
        // Prefer groups that no hardware key claims yet, so distinct rx queues spread over reactors.
        let claimed: Vec<bool> = (0..self.load.len()).map(|g| self.by_key.values().any(|&(kg, _)| kg == g)).collect();
        (0..self.load.len()).min_by_key(|&g| (claimed[g], self.load[g], g)).unwrap_or(0)
    }

    /// Forgets one connection placed as `p`; a key with no connection left frees its group binding.
    pub fn release(&mut self, p: Placement) {
        if let Some(l) = self.load.get_mut(p.group) {
            *l = l.saturating_sub(1);
        }
        if let Some(k) = p.key
            && let Some((_, refs)) = self.by_key.get_mut(&k)
        {
            *refs -= 1;
            if *refs == 0 {
                self.by_key.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles() {
        let mut p = Placer::new(PlacementMode::RoundRobin, 3);
        let g: Vec<usize> = (0..6).map(|_| p.place_key(None).group).collect();
        assert_eq!(g, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_loaded_follows_releases() {
        let mut p = Placer::new(PlacementMode::LeastLoaded, 2);
        let a = p.place_key(None);
        let b = p.place_key(None);
        assert_ne!(a.group, b.group);
        p.release(a);
        assert_eq!(p.place_key(None).group, a.group);
    }

    #[test]
    fn same_key_same_group_and_map_follows_connections() {
        let mut p = Placer::new(PlacementMode::NapiId, 4);
        let a1 = p.place_key(Some(0x2001));
        let b1 = p.place_key(Some(0x2002));
        let a2 = p.place_key(Some(0x2001));
        assert_eq!(a1.group, a2.group);
        assert_ne!(a1.group, b1.group, "distinct rx queues spread over groups");
        p.release(a1);
        assert_eq!(p.group_of_key(0x2001), Some(a2.group), "still held by a2");
        p.release(a2);
        assert_eq!(p.group_of_key(0x2001), None, "binding freed with its last connection");
        assert_eq!(p.load().iter().sum::<usize>(), 1);
    }

    #[test]
    fn unknown_key_falls_back_to_least_loaded() {
        let mut p = Placer::new(PlacementMode::IncomingCpu, 2);
        let a = p.place_key(Some(1));
        let b = p.place_key(None);
        assert_ne!(a.group, b.group);
        assert_eq!(b.key, None);
    }
}
