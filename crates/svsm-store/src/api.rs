//! The two things a store needs from its environment besides a block device: randomness for nonces and a
//! ledger that remembers, outside the host's reach, which generation of each volume is current.

use crate::error::{LedgerError, RandomError};

/// A source of cryptographically secure random bytes (RDRAND/RDSEED on SNP, `getrandom` on a host).
///
/// Injected rather than global so tests are deterministic and an SVSM kernel can supply its own.
pub trait RandomSource: core::fmt::Debug + Send {
    /// Fills `buf` with random bytes, or fails (never returns predictable bytes instead).
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError>;
}

impl<R: RandomSource + ?Sized> RandomSource for alloc::boxed::Box<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(buf)
    }
}

/// A volume's identity: random at format time, the key the ledger files its record under.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeId(pub [u8; 16]);

impl core::fmt::Debug for VolumeId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VolumeId({self})")
    }
}

impl core::fmt::Display for VolumeId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What the ledger remembers about a volume: the current generation and the SHA-256 of its superblock.
///
/// Together they name exactly one state: a host cannot present a different superblock with the same
/// generation (a fork) without the hash check failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Generation the ledger considers current.
    pub generation: u64,
    /// SHA-256 of that generation's superblock (`crate::superblock_hash`).
    pub superblock_hash: [u8; 32],
}

/// How the store uses the ledger; chosen at format time and recorded (authenticated) in the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerMode {
    /// Every commit is compare-and-set at the ledger before `commit` returns. Detects any rollback, even of a
    /// single commit, at the price of one ledger round trip per commit. Right for the vTPM, whose permanent
    /// state (DA counters, NV counters, seeds) changes rarely and must never go back.
    Strict,
    /// The ledger is advanced once per boot (at open) and at clean close. Detects replay of any image older
    /// than the last open or clean close; does *not* detect a rollback to a state committed during the current
    /// or last run. Needs no ledger write per commit.
    BootEpoch,
    /// Bounded window: the ledger is advanced at open, at clean close, and by the first commit made `seconds`
    /// or more after the ledger last moved (that commit waits for the ledger, like a strict one). The host can
    /// roll back at most the commits acknowledged within `seconds` of the last advance, and never past an
    /// open: boot-epoch's protection plus a bound on how much of the current run can be lost. The window is
    /// measured on the store's [`Clock`]. `seconds` is at least 1 (0 would be [`LedgerMode::Strict`]).
    Window {
        /// Length of the window T, in seconds (1..=[`crate::format::MAX_WINDOW_SECONDS`]).
        seconds: u32,
    },
}

impl LedgerMode {
    /// The superblock's `ledger_mode` byte and `window_seconds` field.
    pub(crate) fn to_fields(self) -> (u8, u32) {
        match self {
            LedgerMode::Strict => (crate::format::LEDGER_MODE_STRICT, 0),
            LedgerMode::BootEpoch => (crate::format::LEDGER_MODE_BOOT_EPOCH, 0),
            LedgerMode::Window { seconds } => (crate::format::LEDGER_MODE_WINDOW, seconds),
        }
    }

    /// The mode a superblock's two fields describe, or `None` if they are not a valid combination.
    pub(crate) fn from_fields(b: u8, window_seconds: u32) -> Option<Self> {
        match (b, window_seconds) {
            (crate::format::LEDGER_MODE_STRICT, 0) => Some(LedgerMode::Strict),
            (crate::format::LEDGER_MODE_BOOT_EPOCH, 0) => Some(LedgerMode::BootEpoch),
            (crate::format::LEDGER_MODE_WINDOW, s @ 1..=crate::format::MAX_WINDOW_SECONDS) => {
                Some(LedgerMode::Window { seconds: s })
            }
            _ => None,
        }
    }

    /// Whether open may adopt a generation newer than the ledger's (on a chain anchored at its record).
    pub(crate) fn adopts_descendants(self) -> bool {
        !matches!(self, LedgerMode::Strict)
    }
}

/// The local monotonic clock that measures [`LedgerMode::Window`]: milliseconds from an arbitrary origin,
/// never decreasing.
///
/// Where the ledger carries authenticated time ([`Ledger::trusted_time_ms`], the ledger service), the store
/// measures the window on that time and uses this clock only to carry it forward between replies; otherwise
/// on this clock alone. It must be one the host cannot run slow: in an SVSM a Secure-TSC-based counter; on
/// a host [`crate::clock::MonotonicClock`]. The store never consults the host's wall clock.
pub trait Clock: core::fmt::Debug + Send {
    /// The current time in milliseconds; never less than a value returned before.
    fn now_ms(&mut self) -> u64;
}

impl<C: Clock + ?Sized> Clock for alloc::boxed::Box<C> {
    fn now_ms(&mut self) -> u64 {
        (**self).now_ms()
    }
}

/// The rollback root of trust: a record per volume, kept by a party the host cannot rewind (the KBS, a
/// ledger service, a TPM NV counter over an authenticated channel; a file for development and tests).
///
/// The store never trusts what it read from the device about freshness; it trusts only this.
pub trait Ledger: core::fmt::Debug + Send {
    /// The current record for `volume`, or `None` if the volume was never enrolled.
    fn read(&mut self, volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError>;

    /// Atomically replaces the record if it still equals `expected` (`None`: no record yet).
    ///
    /// Returns [`LedgerError::Conflict`] with the current record if it does not. If the outcome is unknown
    /// (a timeout after sending), returns [`LedgerError::Unavailable`]; the store then reads the record back
    /// before deciding anything.
    fn compare_and_set(
        &mut self,
        volume: &VolumeId,
        expected: Option<&LedgerRecord>,
        new: &LedgerRecord,
    ) -> Result<(), LedgerError>;

    /// The latest authenticated time the ledger has told this client (ms since the Unix epoch), if it
    /// carries one (the ledger service does; a file ledger does not). Never goes back.
    fn trusted_time_ms(&self) -> Option<u64> {
        None
    }
}

impl<L: Ledger + ?Sized> Ledger for alloc::boxed::Box<L> {
    fn read(&mut self, volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError> {
        (**self).read(volume)
    }
    fn compare_and_set(
        &mut self,
        volume: &VolumeId,
        expected: Option<&LedgerRecord>,
        new: &LedgerRecord,
    ) -> Result<(), LedgerError> {
        (**self).compare_and_set(volume, expected, new)
    }
    fn trusted_time_ms(&self) -> Option<u64> {
        (**self).trusted_time_ms()
    }
}
