//! The deterministic pieces of a run: the seeded generator behind offsets and the read/write mix, and
//! the verify data: every block written in verify mode carries its LBA, the slot's write generation and
//! a stream derived from both, so a read can tell a stale, misplaced or zeroed block from the right one.

/// SplitMix64: small, fast, good enough for offsets (no `rand` in the workspace).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0); the modulo bias is irrelevant at namespace sizes.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Marks a verify block (and tells it from zeroes or foreign data).
const MAGIC: u32 = 0xFF9E_7F00;

/// Fills `buf` (blocks of `block_size` starting at `lba`) with the verify data of generation `generation`.
pub fn fill(buf: &mut [u8], lba: u64, block_size: usize, generation: u32, seed: u64) {
    for (i, block) in buf.chunks_mut(block_size).enumerate() {
        fill_block(block, lba + i as u64, generation, seed);
    }
}

fn fill_block(block: &mut [u8], lba: u64, generation: u32, seed: u64) {
    let mut state = mix(lba ^ (u64::from(generation) << 40) ^ seed);
    for (w, chunk) in block.chunks_mut(8).enumerate() {
        let v = match w {
            0 => lba,
            1 => u64::from(generation) | (u64::from(MAGIC) << 32),
            _ => {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                mix(state)
            }
        };
        let bytes = v.to_le_bytes();
        chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or(&bytes));
    }
}

/// The first block of a read that does not hold what generation `generation` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Its LBA.
    pub lba: u64,
    /// Byte offset of the first differing byte within the block.
    pub offset: usize,
    /// What the block's header says it is.
    pub found: String,
}

/// Checks `buf` (read from `lba`) against generation `generation`'s data.
pub fn check(buf: &[u8], lba: u64, block_size: usize, generation: u32, seed: u64) -> Result<(), Mismatch> {
    let mut want = vec![0u8; block_size];
    for (i, block) in buf.chunks(block_size).enumerate() {
        let l = lba + i as u64;
        let want = want.get_mut(..block.len()).unwrap_or_default();
        fill_block(want, l, generation, seed);
        if block != want {
            let offset = block.iter().zip(want.iter()).position(|(a, b)| a != b).unwrap_or(0);
            return Err(Mismatch { lba: l, offset, found: describe(block) });
        }
    }
    Ok(())
}

/// What a block's header claims, for the error message.
fn describe(block: &[u8]) -> String {
    if block.iter().all(|&b| b == 0) {
        return "all zeroes".into();
    }
    let word =
        |i: usize| block.get(i * 8..i * 8 + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0);
    let (l, g) = (word(0), word(1));
    if (g >> 32) as u32 == MAGIC {
        format!("verify data of LBA {l} generation {}", g as u32)
    } else {
        format!("foreign data (first bytes {:02x?})", block.get(..16).unwrap_or(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_data_round_trips_and_catches_stale_and_moved_blocks() {
        let mut b = vec![0u8; 8192];
        fill(&mut b, 100, 512, 3, 7);
        assert_eq!(check(&b, 100, 512, 3, 7), Ok(()));
        let stale = check(&b, 100, 512, 2, 7).unwrap_err();
        assert_eq!(stale.lba, 100);
        assert!(stale.found.contains("generation 3"), "{stale:?}");
        assert_eq!(check(&b, 101, 512, 3, 7).unwrap_err().lba, 101);
        b[4096 + 100] ^= 1;
        let m = check(&b, 100, 512, 3, 7).unwrap_err();
        assert_eq!((m.lba, m.offset), (108, 100));
        assert_eq!(check(&[0u8; 512], 5, 512, 1, 7).unwrap_err().found, "all zeroes");
    }

    #[test]
    fn rng_is_seeded() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        assert_eq!(a.next_u64(), b.next_u64());
        assert!(a.below(10) < 10);
    }
}
