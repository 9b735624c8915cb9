//! Tables keyed by command id, for the per-command state both ends keep on the I/O path.
//!
//! A command id is the host's choice, but real hosts pick it from a small range: Linux puts the
//! request's tag (below the queue depth) in the low 12 bits, SPDK and our initiator use the index of
//! a request slot. [`CidTable`] therefore keeps one direct slot per low-bit pattern, sized to the
//! queue depth, and falls back to a hash map only when two outstanding ids share the low bits. On the
//! hot path a lookup is an index and one compare instead of a hash probe.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes command ids with one multiply: they are small integers chosen by a host that cannot gain
/// anything from collisions beyond its own queue depth, so SipHash's DoS resistance buys nothing here
/// and costs a few percent of a core at high IOPS.
#[derive(Default, Clone, Copy)]
pub struct CidHasher(u64);

impl Hasher for CidHasher {
    fn finish(&self) -> u64 {
        // A product's low bits depend only on the factors' low bits, and the map picks buckets by the
        // low bits: hand it the well-mixed high half, so ids that share their low bits (exactly the ones
        // a CidTable spills) do not all start probing at the same bucket.
        self.0.rotate_left(32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A hash map keyed by command id.
pub type CidMap<V> = HashMap<u16, V, BuildHasherDefault<CidHasher>>;

/// Most direct slots a table keeps (the rest of a deeper queue spills into the map).
pub const MAX_DIRECT: usize = 4096;

/// Map from command id to `V`: direct slots indexed by the id's low bits, a hash map for collisions.
#[derive(Debug)]
pub struct CidTable<V> {
    direct: Vec<Option<(u16, V)>>,
    /// `direct.len() - 1` (the length is a power of two).
    mask: usize,
    spill: CidMap<V>,
    len: usize,
}

impl<V> Default for CidTable<V> {
    fn default() -> Self {
        CidTable::with_depth(1)
    }
}

impl<V> CidTable<V> {
    /// A table with direct slots for a queue of `depth` commands (rounded up to a power of two, at
    /// most [`MAX_DIRECT`]).
    pub fn with_depth(depth: usize) -> Self {
        let n = depth.clamp(1, MAX_DIRECT).next_power_of_two();
        CidTable { direct: (0..n).map(|_| None).collect(), mask: n - 1, spill: CidMap::default(), len: 0 }
    }

    /// Resizes the direct part for a queue of `depth` commands, keeping every entry.
    pub fn set_depth(&mut self, depth: usize) {
        let old = std::mem::replace(self, CidTable::with_depth(depth));
        for (cid, v) in old.direct.into_iter().flatten().chain(old.spill) {
            self.insert(cid, v);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `cid`.
    pub fn get(&self, cid: u16) -> Option<&V> {
        match self.direct.get(usize::from(cid) & self.mask) {
            Some(Some((c, v))) if *c == cid => Some(v),
            _ if self.spill.is_empty() => None,
            _ => self.spill.get(&cid),
        }
    }

    /// The value of `cid`, mutably.
    pub fn get_mut(&mut self, cid: u16) -> Option<&mut V> {
        match self.direct.get_mut(usize::from(cid) & self.mask) {
            Some(Some((c, v))) if *c == cid => Some(v),
            _ if self.spill.is_empty() => None,
            _ => self.spill.get_mut(&cid),
        }
    }

    /// Whether `cid` is present.
    pub fn contains(&self, cid: u16) -> bool {
        self.get(cid).is_some()
    }

    /// Sets the value of `cid`; returns the one it replaces.
    pub fn insert(&mut self, cid: u16, v: V) -> Option<V> {
        if let Some(old) = self.spill.get_mut(&cid) {
            return Some(std::mem::replace(old, v));
        }
        let slot = self.direct.get_mut(usize::from(cid) & self.mask);
        let old = match slot {
            Some(Some((c, old))) if *c == cid => return Some(std::mem::replace(old, v)),
            Some(s @ None) => {
                *s = Some((cid, v));
                None
            }
            // Another outstanding id with the same low bits (or no direct slots at all).
            _ => self.spill.insert(cid, v),
        };
        self.len += 1;
        old
    }

    /// Removes `cid`; returns its value.
    pub fn remove(&mut self, cid: u16) -> Option<V> {
        let slot = self.direct.get_mut(usize::from(cid) & self.mask);
        let v = match slot {
            Some(s) if s.as_ref().is_some_and(|(c, _)| *c == cid) => s.take().map(|(_, v)| v),
            _ if self.spill.is_empty() => None,
            _ => self.spill.remove(&cid),
        };
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.direct.iter_mut().for_each(|s| *s = None);
        self.spill.clear();
        self.len = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn colliding_ids_spill_and_come_back() {
        let mut t = CidTable::with_depth(4);
        // 1, 5 and 9 share the low two bits.
        assert_eq!(t.insert(1, "a"), None);
        assert_eq!(t.insert(5, "b"), None);
        assert_eq!(t.insert(9, "c"), None);
        assert_eq!((t.len(), t.get(1), t.get(5), t.get(9)), (3, Some(&"a"), Some(&"b"), Some(&"c")));
        assert_eq!(t.remove(1), Some("a"));
        // 9 is still found in the spill map although its direct slot is free now.
        assert_eq!(t.insert(9, "d"), Some("c"));
        assert_eq!((t.get(9), t.len()), (Some(&"d"), 2));
        t.set_depth(16);
        assert_eq!((t.get(5), t.get(9), t.len()), (Some(&"b"), Some(&"d"), 2));
        t.clear();
        assert!(t.is_empty() && t.get(5).is_none());
    }

    #[test]
    fn ids_sharing_their_low_bits_hash_apart() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<CidHasher>::default();
        // The ids a 128-deep table spills: same low 7 bits. Their hashes' low 7 bits (the bucket in a
        // small map) must not all be equal.
        let low: std::collections::HashSet<u64> = (0..64u16).map(|k| b.hash_one(5 + (k << 7)) & 0x7F).collect();
        assert!(low.len() > 32, "{} distinct buckets for 64 ids", low.len());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Depth(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Ids from a narrow range collide often in a small table.
        let cid = prop_oneof![0u16..40, any::<u16>()];
        prop_oneof![
            6 => (cid.clone(), any::<u32>()).prop_map(|(c, v)| Op::Insert(c, v)),
            4 => cid.prop_map(Op::Remove),
            1 => (0usize..70).prop_map(Op::Depth),
        ]
    }

    proptest! {
        /// Behaves exactly like a hash map, whatever the depth and the collisions.
        #[test]
        fn behaves_like_a_map(depth in 0usize..70, ops in prop::collection::vec(op(), 0..200)) {
            let mut t = CidTable::with_depth(depth);
            let mut m = std::collections::HashMap::new();
            for o in ops {
                match o {
                    Op::Insert(c, v) => prop_assert_eq!(t.insert(c, v), m.insert(c, v)),
                    Op::Remove(c) => prop_assert_eq!(t.remove(c), m.remove(&c)),
                    Op::Depth(d) => t.set_depth(d),
                }
                prop_assert_eq!(t.len(), m.len());
                for c in 0u16..40 {
                    prop_assert_eq!(t.get(c), m.get(&c));
                }
                for c in m.keys() {
                    prop_assert_eq!(t.get(*c), m.get(c));
                }
            }
        }
    }
}
