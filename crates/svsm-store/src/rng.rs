//! Random sources: the operating system's (host builds) and a seeded deterministic one for tests.

use sha2::{Digest, Sha256};

use crate::api::RandomSource;
use crate::error::RandomError;

/// A **deterministic** byte stream (SHA-256 of seed and counter) so that campaigns and property tests replay
/// exactly from a seed. It is a test double for the platform RNG: never use it for a real volume, its
/// output is predictable from the seed.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    seed: [u8; 32],
    counter: u64,
    pool: [u8; 32],
    used: usize,
}

impl SeededRandom {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        SeededRandom { seed: s, counter: 0, pool: [0; 32], used: 32 }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        for b in buf {
            if self.used == self.pool.len() {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_le_bytes());
                self.pool = h.finalize().into();
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            *b = self.pool[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

/// The host operating system's CSPRNG (`getrandom(2)`), one system call per request.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

#[cfg(feature = "std")]
impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|_| RandomError { detail: "getrandom(2) failed" })
    }
}

/// [`OsRandom`] drawn 4 KiB at a time, so that sealing a block does not cost a system call for its 12-byte
/// nonce. Served bytes are wiped from the pool. What the store uses by default on a host.
///
/// Deliberately not `Clone`: a clone would hold the same unserved pool and hand out the same bytes (the
/// same AES-GCM nonces) as the original. Each instance fills its own pool from the OS.
///
/// ```compile_fail
/// let a = svsm_store::PooledOsRandom::new();
/// let b = a.clone(); // refused: two pools must never serve the same bytes
/// ```
#[cfg(feature = "std")]
pub struct PooledOsRandom {
    pool: [u8; 4096],
    used: usize,
}

#[cfg(feature = "std")]
impl PooledOsRandom {
    /// A source with an empty pool (filled on first use).
    pub fn new() -> Self {
        PooledOsRandom { pool: [0; 4096], used: 4096 }
    }
}

#[cfg(feature = "std")]
impl Default for PooledOsRandom {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl core::fmt::Debug for PooledOsRandom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PooledOsRandom")
    }
}

#[cfg(feature = "std")]
impl RandomSource for PooledOsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        if buf.len() > self.pool.len() {
            return getrandom::fill(buf).map_err(|_| RandomError { detail: "getrandom(2) failed" });
        }
        if self.pool.len() - self.used < buf.len() {
            getrandom::fill(&mut self.pool).map_err(|_| RandomError { detail: "getrandom(2) failed" })?;
            self.used = 0;
        }
        let chunk = &mut self.pool[self.used..self.used + buf.len()];
        buf.copy_from_slice(chunk);
        chunk.fill(0);
        self.used += buf.len();
        Ok(())
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn two_pools_never_return_equal_nonces() {
        let (mut a, mut b) = (PooledOsRandom::new(), PooledOsRandom::new());
        let mut seen = BTreeSet::new();
        // Several pool refills each (4096 / 12 nonces per pool).
        for _ in 0..2000 {
            for src in [&mut a, &mut b] {
                let mut n = [0u8; 12];
                src.fill(&mut n).unwrap();
                assert!(seen.insert(n), "a 12-byte nonce repeated across or within pools");
            }
        }
    }
}
