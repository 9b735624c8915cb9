//! Randomness and sequence numbers: the one injectable source every challenge, DH private key,
//! generated secret and starting sequence number is drawn from.
//!
//! Production code uses [`OsRandom`]; tests and the fuzz body use [`SeededRandom`] so that runs
//! are reproducible.

use std::sync::atomic::{AtomicU32, Ordering};

use sha2::{Digest, Sha256};

/// The operating system could not supply random bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("random source failed: {0}")]
pub struct RandomError(pub String);

/// A source of random bytes.
pub trait RandomSource {
    /// Fills `buf` entirely.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError>;
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(buf)
    }
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
    }
}

/// A deterministic stream (SHA-256 of seed and block counter) for tests and fuzzing only:
/// anyone who knows the seed knows every challenge and private key it yields.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRandom {
    /// A stream fully determined by `seed`.
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom { seed, counter: 0, block: [0; 32], used: 32 }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        for b in buf {
            if self.used == self.block.len() {
                let mut h = Sha256::new();
                h.update(self.seed.to_le_bytes());
                h.update(self.counter.to_le_bytes());
                self.block.copy_from_slice(&h.finalize());
                self.counter += 1;
                self.used = 0;
            }
            *b = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

/// The 32-bit sequence-number counter (S1 on the controller, S2 on the host).
///
/// One counter is meant to be shared (in an `Arc`) by every queue of a controller so that
/// numbers are not reused across transactions; zero is reserved ("no challenge") and skipped.
#[derive(Debug)]
pub struct SeqnumCounter(AtomicU32);

impl SeqnumCounter {
    /// A counter whose first `next()` returns `start + 1` (skipping zero).
    pub fn new(start: u32) -> SeqnumCounter {
        SeqnumCounter(AtomicU32::new(start))
    }

    /// A counter starting at a random point, as the kernel and SPDK do.
    pub fn random(rng: &mut impl RandomSource) -> Result<SeqnumCounter, RandomError> {
        let mut b = [0u8; 4];
        rng.fill(&mut b)?;
        Ok(SeqnumCounter::new(u32::from_le_bytes(b)))
    }

    /// The next non-zero sequence number.
    pub fn next(&self) -> u32 {
        loop {
            let n = self.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if n != 0 {
                return n;
            }
        }
    }
}
