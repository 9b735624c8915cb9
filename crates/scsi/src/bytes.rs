//! Big-endian field access that never panics: reads past the end yield
//! zero bits, writes past the end are dropped. Callers size buffers first;
//! this only keeps malformed input from turning into a panic.

/// `n` (at most 8) big-endian bytes at `off`; missing bytes read as zero.
pub(crate) fn be(b: &[u8], off: usize, n: usize) -> u64 {
    (0..n).fold(0u64, |acc, i| (acc << 8) | u64::from(b.get(off + i).copied().unwrap_or(0)))
}

/// One byte at `off` (zero when absent).
pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Big-endian u16 at `off`.
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    be(b, off, 2) as u16
}

/// Big-endian u32 at `off`.
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    be(b, off, 4) as u32
}

/// Big-endian u64 at `off`.
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    be(b, off, 8)
}

/// Writes the low `n` bytes of `v` big-endian at `off`.
pub(crate) fn put_be(b: &mut [u8], off: usize, n: usize, v: u64) {
    for i in 0..n {
        if let Some(slot) = b.get_mut(off + i) {
            *slot = (v >> (8 * (n - 1 - i))) as u8;
        }
    }
}

/// Writes one byte at `off`.
pub(crate) fn put_u8(b: &mut [u8], off: usize, v: u8) {
    if let Some(slot) = b.get_mut(off) {
        *slot = v;
    }
}

/// Copies `src` to `off`, as much as fits.
pub(crate) fn put(b: &mut [u8], off: usize, src: &[u8]) {
    for (i, &v) in src.iter().enumerate() {
        put_u8(b, off + i, v);
    }
}

/// Writes `s` into a `len`-byte ASCII field at `off`, space padded (SPC
/// left-aligned ASCII fields).
pub(crate) fn put_ascii(b: &mut [u8], off: usize, len: usize, s: &str) {
    for i in 0..len {
        put_u8(b, off + i, s.as_bytes().get(i).copied().unwrap_or(b' '));
    }
}

/// Truncates response data to the CDB's allocation length.
pub(crate) fn truncate(mut data: Vec<u8>, alloc_len: u32) -> Vec<u8> {
    data.truncate(usize::try_from(alloc_len).unwrap_or(usize::MAX));
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_round_trip_and_tolerate_short_buffers() {
        let mut b = [0u8; 4];
        put_be(&mut b, 0, 4, 0x0102_0304);
        assert_eq!(b, [1, 2, 3, 4]);
        assert_eq!(be32(&b, 0), 0x0102_0304);
        assert_eq!(be16(&b, 3), 0x0400);
        assert_eq!(be64(&b, 2), 0x0304_0000_0000_0000);
        put_be(&mut b, 3, 2, 0xAABB);
        assert_eq!(b, [1, 2, 3, 0xAA]);
        let mut f = [0u8; 6];
        put_ascii(&mut f, 1, 4, "ab");
        assert_eq!(&f, b"\0ab  \0");
        assert_eq!(truncate(vec![1, 2, 3], 2), vec![1, 2]);
    }
}
