//! CRC32C header and data digests (RFC 7143 section 12.1 and appendix B.4).
//!
//! Owns only the arithmetic and the wire byte order (the CRC register as a little-endian word, as the
//! RFC's examples and every implementation send it). Where a digest sits is the business of
//! [`crate::decoder`] and [`crate::tx`].

/// Length in bytes of a header or data digest on the wire.
pub const DIGEST_LEN: usize = 4;

/// CRC32C over several pieces, in order.
pub fn crc32c_of<'a, I: IntoIterator<Item = &'a [u8]>>(parts: I) -> u32 {
    parts.into_iter().fold(0, crc32c::crc32c_append)
}

/// Running digest, for data that arrives (or leaves) in pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    crc: u32,
}

impl Digest {
    /// A digest over nothing yet.
    pub const fn new() -> Self {
        Self { crc: 0 }
    }

    /// Adds the next piece.
    pub fn update(&mut self, data: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, data);
    }

    /// The digest of everything added so far.
    pub const fn value(&self) -> u32 {
        self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_appendix_b4_vectors() {
        // 32 bytes of zeros and 32 bytes of 0xff, from the RFC's CRC32C examples.
        assert_eq!(crc32c_of([&[0u8; 32][..]]), 0x8A91_36AA);
        assert_eq!(crc32c_of([&[0xffu8; 32][..]]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c_of([&inc[..]]), 0x46DD_794E);
        assert_eq!(0x8A91_36AAu32.to_le_bytes(), [0xAA, 0x36, 0x91, 0x8A]);
    }

    #[test]
    fn pieces_equal_whole() {
        let d: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mut g = Digest::new();
        g.update(&d[..7]);
        g.update(&d[7..]);
        assert_eq!(g.value(), crc32c_of([&d[..]]));
    }
}
