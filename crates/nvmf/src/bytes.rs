//! Fixed-layout writers for building Identify and log-page data: the codec's panic-free field helpers
//! (an out-of-range offset is a layout bug here, never peer input, so it writes nothing), plus padded
//! text fields.

pub(crate) use ff_nvme::wire::{put, put_u8, put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};

/// Writes `s` into a fixed-width field of `width` bytes padded with `pad`
/// (space for SN/MN/FR/TRADDR, NUL for NQNs); truncates if too long.
pub(crate) fn put_str(b: &mut [u8], off: usize, width: usize, s: &str, pad: u8) {
    let src = s.as_bytes();
    let n = src.len().min(width);
    put(b, off, src.get(..n).unwrap_or_default());
    for i in n..width {
        put_u8(b, off + i, pad);
    }
}
