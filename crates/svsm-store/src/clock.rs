//! Clocks for [`LedgerMode::Window`](crate::LedgerMode::Window): the host's monotonic clock and a manual one
//! for tests. The ledger service's authenticated time lives in `svsm-ledger` (`TrustedClock`).

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::api::Clock;

/// A clock that moves only when told to (tests and campaigns: deterministic windows). Clones share the
/// time, so the test keeps one and the store another. A test double: never a real volume's clock.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at `ms`.
    pub fn new(ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(ms)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// The current reading, without a `&mut` (for the test's own bookkeeping).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now_ms(&mut self) -> u64 {
        self.get()
    }
}

/// The host's monotonic clock (`std::time::Instant`), in milliseconds since the clock was made.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock(std::time::Instant);

#[cfg(feature = "std")]
impl MonotonicClock {
    /// A clock reading 0 now.
    pub fn new() -> Self {
        MonotonicClock(std::time::Instant::now())
    }
}

#[cfg(feature = "std")]
impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl Clock for MonotonicClock {
    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
