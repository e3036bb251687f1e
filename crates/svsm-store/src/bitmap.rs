//! A fixed-size bit set over block addresses: the in-RAM free map rebuilt at open (2 KiB for 64 MiB).

use alloc::vec;
use alloc::vec::Vec;

/// One bit per block; set = in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
    len: u64,
}

impl Bitmap {
    pub(crate) fn new(len: u64) -> Self {
        Bitmap { words: vec![0; len.div_ceil(64) as usize], len }
    }

    pub(crate) fn get(&self, i: u64) -> bool {
        i < self.len && self.words.get((i / 64) as usize).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Sets bit `i`; returns whether it was already set. Out-of-range indexes are ignored (callers check).
    pub(crate) fn set(&mut self, i: u64) -> bool {
        if i >= self.len {
            return false;
        }
        match self.words.get_mut((i / 64) as usize) {
            Some(w) => {
                let was = *w & (1 << (i % 64)) != 0;
                *w |= 1 << (i % 64);
                was
            }
            None => false,
        }
    }

    pub(crate) fn clear(&mut self, i: u64) {
        if let Some(w) = self.words.get_mut((i / 64) as usize) {
            *w &= !(1 << (i % 64));
        }
    }

    pub(crate) fn count_ones(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// First clear bit at or after `from`, wrapping around once.
    pub(crate) fn find_clear(&self, from: u64) -> Option<u64> {
        let n = self.len;
        if n == 0 {
            return None;
        }
        let start = from % n;
        let scan = |lo: u64, hi: u64| -> Option<u64> {
            let mut i = lo;
            while i < hi {
                let w = self.words[(i / 64) as usize] | ((1u64 << (i % 64)) - 1);
                if w != u64::MAX {
                    let bit = (i / 64) * 64 + u64::from((!w).trailing_zeros());
                    return (bit < hi).then_some(bit);
                }
                i = (i / 64 + 1) * 64;
            }
            None
        };
        scan(start, n).or_else(|| scan(0, start))
    }
}
