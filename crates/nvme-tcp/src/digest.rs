//! Header and data digests (CRC32C, transmitted little-endian).
//!
//! Owns only the arithmetic; where digests sit in a PDU is the business of
//! [`crate::pdu`] and [`crate::decoder`]. The `crc32c` crate picks the SSE4.2 /
//! ARMv8 CRC instructions at run time.

/// Length in bytes of a header or data digest on the wire.
pub const DIGEST_LEN: usize = 4;

/// CRC32C of a PDU header (common header + PDU specific header).
pub fn header_digest(header: &[u8]) -> u32 {
    crc32c::crc32c(header)
}

/// CRC32C over PDU data held in several buffers, in order.
pub fn data_digest<'a, I: IntoIterator<Item = &'a [u8]>>(bufs: I) -> u32 {
    let mut d = DataDigest::new();
    for b in bufs {
        d.update(b);
    }
    d.finish()
}

/// Running data digest, for data that arrives (or is sent) in pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataDigest {
    crc: u32,
}

impl DataDigest {
    /// A digest over no data yet.
    pub const fn new() -> Self {
        Self { crc: 0 }
    }

    /// Adds the next piece of data.
    pub fn update(&mut self, data: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, data);
    }

    /// The digest of everything added so far (the digest stays usable).
    pub const fn finish(&self) -> u32 {
        self.crc
    }
}

/// Digest in wire byte order.
pub const fn digest_bytes(digest: u32) -> [u8; DIGEST_LEN] {
    digest.to_le_bytes()
}

/// Reads a wire-order digest.
pub const fn digest_from_bytes(bytes: [u8; DIGEST_LEN]) -> u32 {
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard CRC-32C check value (RFC 3720 appendix B.4 family).
        assert_eq!(header_digest(b"123456789"), 0xE306_9283);
        // 32 bytes of zeros, from RFC 3720 B.4.
        assert_eq!(header_digest(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(digest_bytes(0x8A91_36AA), [0xAA, 0x36, 0x91, 0x8A]);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let whole = data_digest([data.as_slice()]);
        let (a, rest) = data.split_at(1);
        let (b, c) = rest.split_at(2047);
        assert_eq!(data_digest([a, b, c]), whole);
        let mut d = DataDigest::new();
        d.update(&[]);
        d.update(&data);
        assert_eq!(d.finish(), whole);
    }
}
