//! Ledgers for development and tests. Production ledgers (the KBS, a ledger service) live elsewhere and
//! implement the same [`Ledger`] trait.

#[cfg(feature = "std")]
pub use self::host::{FileLedger, MemLedger};

use crate::api::{Ledger, LedgerRecord, VolumeId};
use crate::error::LedgerError;

/// The "ledger" of a store opened with `Store::open_detached`: there is none, so nothing can be committed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detached;

impl Ledger for Detached {
    fn read(&mut self, _volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError> {
        Err(LedgerError::Unavailable("volume opened detached: no ledger".into()))
    }
    fn compare_and_set(
        &mut self,
        _volume: &VolumeId,
        _expected: Option<&LedgerRecord>,
        _new: &LedgerRecord,
    ) -> Result<(), LedgerError> {
        Err(LedgerError::Unavailable("volume opened detached: no ledger".into()))
    }
}

#[cfg(feature = "std")]
mod host {
    use std::collections::BTreeMap;
    use std::fs::{self, File, OpenOptions};
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::string::ToString as _;
    use std::sync::{Arc, Mutex};

    use sha2::{Digest, Sha256};

    use crate::api::{Ledger, LedgerRecord, VolumeId};
    use crate::error::LedgerError;

    /// Failures a [`MemLedger`] can be told to inject.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum MemLedgerFault {
        /// Behave normally.
        #[default]
        None,
        /// The next compare-and-set is refused as unavailable without taking effect.
        LoseRequest,
        /// The next compare-and-set takes effect but the answer is lost (reported unavailable).
        LoseAck,
        /// Every call fails as unavailable.
        Down,
    }

    #[derive(Debug, Default)]
    struct Inner {
        records: BTreeMap<VolumeId, LedgerRecord>,
        fault: MemLedgerFault,
        cas_count: u64,
    }

    /// An in-memory ledger shared by clones (several volumes, or a store and the test that checks on it).
    /// A test double for a remote ledger; its [`MemLedgerFault`]s model lost requests and lost answers.
    #[derive(Debug, Clone, Default)]
    pub struct MemLedger(Arc<Mutex<Inner>>);

    impl MemLedger {
        /// An empty ledger.
        pub fn new() -> Self {
            Self::default()
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Injects a fault.
        pub fn set_fault(&self, fault: MemLedgerFault) {
            self.lock().fault = fault;
        }

        /// The record held for `volume` (bypassing faults).
        pub fn record(&self, volume: &VolumeId) -> Option<LedgerRecord> {
            self.lock().records.get(volume).copied()
        }

        /// Overwrites a record (tests: a ledger restored from an old backup, a reset).
        pub fn force(&self, volume: &VolumeId, record: Option<LedgerRecord>) {
            let mut inner = self.lock();
            match record {
                Some(r) => inner.records.insert(*volume, r),
                None => inner.records.remove(volume),
            };
        }

        /// Successful compare-and-sets so far.
        pub fn cas_count(&self) -> u64 {
            self.lock().cas_count
        }
    }

    impl Ledger for MemLedger {
        fn read(&mut self, volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError> {
            let inner = self.lock();
            if inner.fault == MemLedgerFault::Down {
                return Err(LedgerError::Unavailable("ledger is down (injected)".into()));
            }
            Ok(inner.records.get(volume).copied())
        }

        fn compare_and_set(
            &mut self,
            volume: &VolumeId,
            expected: Option<&LedgerRecord>,
            new: &LedgerRecord,
        ) -> Result<(), LedgerError> {
            let mut inner = self.lock();
            match inner.fault {
                MemLedgerFault::Down => {
                    return Err(LedgerError::Unavailable("ledger is down (injected)".into()));
                }
                MemLedgerFault::LoseRequest => {
                    inner.fault = MemLedgerFault::None;
                    return Err(LedgerError::Unavailable("request lost (injected)".into()));
                }
                _ => {}
            }
            let current = inner.records.get(volume).copied();
            if current.as_ref() != expected {
                return Err(LedgerError::Conflict { current });
            }
            inner.records.insert(*volume, *new);
            inner.cas_count += 1;
            if inner.fault == MemLedgerFault::LoseAck {
                inner.fault = MemLedgerFault::None;
                return Err(LedgerError::Unavailable("answer lost (injected)".into()));
            }
            Ok(())
        }
    }

    /// A ledger kept in a directory of the host, one file per volume (`<volume-id>.ledger`), replaced by
    /// write-to-temporary, fsync, rename, fsync-directory so a power cut leaves the old or the new record.
    ///
    /// For development and tests only: the host controls this directory, so it is not a root of trust.
    /// File layout (52 bytes): `"SVSMLDG1"`, generation (u64 LE), superblock hash (32 B), and the first
    /// 4 bytes of SHA-256 over the preceding 48 bytes.
    #[derive(Debug, Clone)]
    pub struct FileLedger {
        dir: PathBuf,
    }

    const FILE_MAGIC: &[u8; 8] = b"SVSMLDG1";
    const FILE_LEN: usize = 52;

    impl FileLedger {
        /// A ledger in `dir` (created if missing).
        pub fn new(dir: impl AsRef<Path>) -> Result<Self, LedgerError> {
            let dir = dir.as_ref().to_path_buf();
            fs::create_dir_all(&dir)
                .map_err(|e| LedgerError::Unavailable(format!("{}: {e}", dir.display())))?;
            Ok(FileLedger { dir })
        }

        /// The file holding `volume`'s record.
        pub fn path_of(&self, volume: &VolumeId) -> PathBuf {
            self.dir.join(format!("{volume}.ledger"))
        }

        fn encode(r: &LedgerRecord) -> [u8; FILE_LEN] {
            let mut b = [0u8; FILE_LEN];
            b[..8].copy_from_slice(FILE_MAGIC);
            b[8..16].copy_from_slice(&r.generation.to_le_bytes());
            b[16..48].copy_from_slice(&r.superblock_hash);
            let sum = Sha256::digest(&b[..48]);
            b[48..].copy_from_slice(&sum[..4]);
            b
        }

        fn decode(b: &[u8]) -> Result<LedgerRecord, LedgerError> {
            if b.len() != FILE_LEN || &b[..8] != FILE_MAGIC || Sha256::digest(&b[..48])[..4] != b[48..] {
                return Err(LedgerError::Corrupt("ledger file is damaged".to_string()));
            }
            let mut g = [0u8; 8];
            g.copy_from_slice(&b[8..16]);
            let mut h = [0u8; 32];
            h.copy_from_slice(&b[16..48]);
            Ok(LedgerRecord { generation: u64::from_le_bytes(g), superblock_hash: h })
        }

        fn unavailable(path: &Path, e: std::io::Error) -> LedgerError {
            LedgerError::Unavailable(format!("{}: {e}", path.display()))
        }
    }

    impl Ledger for FileLedger {
        fn read(&mut self, volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError> {
            let path = self.path_of(volume);
            match fs::read(&path) {
                Ok(b) => Self::decode(&b).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Self::unavailable(&path, e)),
            }
        }

        fn compare_and_set(
            &mut self,
            volume: &VolumeId,
            expected: Option<&LedgerRecord>,
            new: &LedgerRecord,
        ) -> Result<(), LedgerError> {
            let current = self.read(volume)?;
            if current.as_ref() != expected {
                return Err(LedgerError::Conflict { current });
            }
            let path = self.path_of(volume);
            let tmp = path.with_extension("ledger.tmp");
            let write = || -> std::io::Result<()> {
                let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
                f.write_all(&Self::encode(new))?;
                f.sync_all()?;
                fs::rename(&tmp, &path)?;
                File::open(&self.dir)?.sync_all()
            };
            write().map_err(|e| Self::unavailable(&path, e))
        }
    }
}

#[cfg(feature = "std")]
pub use self::host::MemLedgerFault;
