//! Panic-free little-endian field access for fixed-offset layouts.
//!
//! Callers check buffer lengths up front and return a typed error; these
//! helpers then never fail, and an out-of-range offset (a codec bug) reads as
//! zero / writes nothing instead of panicking on hostile input. Every helper is `#[inline]`: they sit
//! on each header encode and decode in other crates, and a small function is not inlined across
//! crates without it.

/// The byte at `off`, or 0 past the end.
#[inline]
pub fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// The little-endian u16 at `off`, or 0 past the end.
#[inline]
pub fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(arr(b, off))
}

/// The little-endian u32 at `off`, or 0 past the end.
#[inline]
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(arr(b, off))
}

/// The little-endian u64 at `off`, or 0 past the end.
#[inline]
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(arr(b, off))
}

fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    b.get(off..).and_then(|s| s.first_chunk::<N>()).copied().unwrap_or([0; N])
}

/// Copies `src` to `b[off..]`; writes nothing if it does not fit.
#[inline]
pub fn put(b: &mut [u8], off: usize, src: &[u8]) {
    if let Some(d) = off.checked_add(src.len()).and_then(|end| b.get_mut(off..end)) {
        d.copy_from_slice(src);
    }
}

/// Writes a byte at `off` (nothing past the end).
#[inline]
pub fn put_u8(b: &mut [u8], off: usize, v: u8) {
    if let Some(d) = b.get_mut(off) {
        *d = v;
    }
}

/// Writes a little-endian u16 at `off` (nothing if it does not fit).
#[inline]
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    put(b, off, &v.to_le_bytes());
}

/// Writes a little-endian u32 at `off` (nothing if it does not fit).
#[inline]
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    put(b, off, &v.to_le_bytes());
}

/// Writes a little-endian u64 at `off` (nothing if it does not fit).
#[inline]
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    put(b, off, &v.to_le_bytes());
}

/// Zeroes `b[from..to]` (clamped).
#[inline]
pub fn zero(b: &mut [u8], from: usize, to: usize) {
    if let Some(d) = b.get_mut(from..to.min(b.len())) {
        d.fill(0);
    }
}
