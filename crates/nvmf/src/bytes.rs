//! Panic-free little-endian writers for building fixed-layout data
//! structures (Identify, log pages). An out-of-range offset is a layout bug
//! here, never peer input, so it writes nothing instead of panicking.

pub(crate) fn put(b: &mut [u8], off: usize, src: &[u8]) {
    if let Some(d) = off.checked_add(src.len()).and_then(|end| b.get_mut(off..end)) {
        d.copy_from_slice(src);
    }
}

pub(crate) fn put_u8(b: &mut [u8], off: usize, v: u8) {
    put(b, off, &[v]);
}

pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    put(b, off, &v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    put(b, off, &v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    put(b, off, &v.to_le_bytes());
}

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

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(arr(b, off))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(arr(b, off))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(arr(b, off))
}

fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    b.get(off..).and_then(|s| s.first_chunk::<N>()).copied().unwrap_or([0; N])
}
