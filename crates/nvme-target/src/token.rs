//! The two identifiers the target packs into a u64 for a lower layer, each defined once with its
//! layout: [`IoTag`], the tag of a block-device request (which connection and command it belongs to),
//! and [`RingToken`], the token of a device request on the socket group's ring (which namespace's
//! handle submitted it).

use ff_blockdev::URING_TOKEN_BITS;
use ff_sock::SockId;

/// Which connection and command a block-device request belongs to: the tag of its `IoReq`, handed
/// back in its `IoDone`. Packed as generation (bits 63:48), slot (47:16), command id (15:0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoTag {
    /// The connection's slot in the socket group ([`SockId::index`]).
    pub slot: u32,
    /// The low 16 bits of the connection's [`SockId::generation`]: a completion for a slot that was
    /// closed and reused finds no connection.
    pub generation: u16,
    /// The NVMe command id.
    pub cid: u16,
}

impl IoTag {
    /// A tag that names no connection: its completion is dropped (the final flush at shutdown).
    pub const NONE: IoTag = IoTag { slot: u32::MAX, generation: u16::MAX, cid: u16::MAX };

    /// The tag of connection `id`, command id 0 (see [`IoTag::with_cid`]).
    pub fn conn(id: SockId) -> IoTag {
        IoTag { slot: id.index() as u32, generation: id.generation() as u16, cid: 0 }
    }

    /// This connection's tag for command `cid`.
    pub const fn with_cid(self, cid: u16) -> IoTag {
        IoTag { cid, ..self }
    }

    /// Whether this tag names connection `id` (same slot, same generation).
    pub fn names(self, id: SockId) -> bool {
        self.slot as usize == id.index() && self.generation == id.generation() as u16
    }

    /// The packed tag.
    pub const fn to_u64(self) -> u64 {
        (self.generation as u64) << 48 | (self.slot as u64) << 16 | self.cid as u64
    }

    /// Unpacks a tag made by [`IoTag::to_u64`].
    pub const fn from_u64(tag: u64) -> IoTag {
        IoTag { slot: (tag >> 16) as u32, generation: (tag >> 48) as u16, cid: tag as u16 }
    }
}

/// A device request on the socket group's ring: the namespace whose handle prepared it (bits above
/// [`URING_TOKEN_BITS`]) and that handle's own token (below, as `BlockDev::take_sqes` promises).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingToken {
    /// Index of the namespace, into the reactor's table of device handles.
    pub ns: usize,
    /// The handle's token for the request.
    pub dev: u64,
}

impl RingToken {
    const DEV_MASK: u64 = (1 << URING_TOKEN_BITS) - 1;

    /// The packed token.
    pub const fn to_u64(self) -> u64 {
        (self.ns as u64) << URING_TOKEN_BITS | (self.dev & Self::DEV_MASK)
    }

    /// Unpacks a token made by [`RingToken::to_u64`].
    pub const fn from_u64(token: u64) -> RingToken {
        RingToken { ns: (token >> URING_TOKEN_BITS) as usize, dev: token & Self::DEV_MASK }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_tag_round_trip() {
        for t in [
            IoTag::default(),
            IoTag { slot: 1, generation: 2, cid: 3 },
            IoTag { slot: u32::MAX, generation: 0, cid: u16::MAX },
            IoTag { slot: 0x1234_5678, generation: 0xABCD, cid: 0xEF01 },
            IoTag::NONE,
        ] {
            assert_eq!(IoTag::from_u64(t.to_u64()), t);
        }
        assert_eq!(IoTag::NONE.to_u64(), u64::MAX);
        assert_eq!(IoTag::default().to_u64(), 0);
    }

    #[test]
    fn io_tag_layout() {
        let t = IoTag { slot: 0x1234_5678, generation: 0xABCD, cid: 0xEF01 };
        assert_eq!(t.to_u64(), 0xABCD_1234_5678_EF01);
        assert_eq!(t.with_cid(7), IoTag { cid: 7, ..t });
    }

    #[test]
    fn ring_token_round_trip() {
        let max_dev = (1u64 << URING_TOKEN_BITS) - 1;
        for t in [
            RingToken { ns: 0, dev: 0 },
            RingToken { ns: 3, dev: 42 },
            RingToken { ns: 0xFFFF, dev: max_dev },
            RingToken { ns: 1, dev: 1 << 32 | 5 },
        ] {
            assert_eq!(RingToken::from_u64(t.to_u64()), t);
        }
        assert_eq!(RingToken { ns: 2, dev: 9 }.to_u64(), 2 << URING_TOKEN_BITS | 9);
    }
}
