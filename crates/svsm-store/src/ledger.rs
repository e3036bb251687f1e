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
    use std::os::unix::fs::FileExt as _;
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

    /// A ledger kept in a directory of the host, one file per volume (`<volume-id>.ledger`).
    ///
    /// For development and tests only: the host controls this directory, so it is not a root of trust.
    ///
    /// Compare-and-set is atomic across handles and processes: read, compare and write happen under an
    /// exclusive `flock` on `<volume-id>.lock` beside the record (reads take it shared), so two processes
    /// that open the same directory can never both advance the same generation.
    ///
    /// The file is preallocated with two 512-byte slots. An update writes the slot that does *not* hold the
    /// current record, with one `pwrite` + `fdatasync`: no rename, no directory sync, no metadata change, so a
    /// strict-mode commit pays one extra sync instead of the three a write-temporary-and-rename scheme costs.
    /// A power cut during the update leaves that slot torn, which its checksum reveals, and the other slot
    /// still holds the previous record: exactly the "committed locally, never acknowledged" state the store
    /// already handles. Only the very first record of a volume is created by write-temporary, fsync, rename,
    /// fsync-directory, so the file never exists half-made.
    ///
    /// Slot layout (64 bytes used, rest zero): `"SVSMLDG2"`, sequence (u64 LE, +1 per update; the valid slot
    /// with the higher sequence is current), generation (u64 LE), superblock hash (32 B), and the first 8
    /// bytes of SHA-256 over the preceding 56 bytes. A 52-byte file of the earlier one-record layout
    /// (`"SVSMLDG1"`) is still read, and converted on its next update.
    #[derive(Debug, Clone)]
    pub struct FileLedger {
        dir: PathBuf,
    }

    const SLOT_MAGIC: &[u8; 8] = b"SVSMLDG2";
    const SLOT_LEN: usize = 512;
    const SLOT_USED: usize = 64;
    const FILE_LEN: usize = 2 * SLOT_LEN;
    const LEGACY_MAGIC: &[u8; 8] = b"SVSMLDG1";
    const LEGACY_LEN: usize = 52;

    /// A decoded slot: which update wrote it, and the record.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Slot {
        seq: u64,
        record: LedgerRecord,
    }

    /// What a ledger file holds.
    #[derive(Debug)]
    enum FileState {
        /// The newest valid slot and where it is (0 or 1); the other slot is the one the next update writes.
        Slots { current: Slot, index: usize },
        /// The earlier single-record layout.
        Legacy(LedgerRecord),
    }

    impl FileState {
        fn record(&self) -> LedgerRecord {
            match self {
                FileState::Slots { current, .. } => current.record,
                FileState::Legacy(r) => *r,
            }
        }
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(v)
    }

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

        fn encode_slot(slot: &Slot) -> [u8; SLOT_LEN] {
            let mut b = [0u8; SLOT_LEN];
            b[..8].copy_from_slice(SLOT_MAGIC);
            b[8..16].copy_from_slice(&slot.seq.to_le_bytes());
            b[16..24].copy_from_slice(&slot.record.generation.to_le_bytes());
            b[24..56].copy_from_slice(&slot.record.superblock_hash);
            let sum = Sha256::digest(&b[..56]);
            b[56..SLOT_USED].copy_from_slice(&sum[..8]);
            b
        }

        /// `None` for a slot that is blank or torn (bad magic, checksum or non-zero tail).
        fn decode_slot(b: &[u8]) -> Option<Slot> {
            if &b[..8] != SLOT_MAGIC
                || Sha256::digest(&b[..56])[..8] != b[56..SLOT_USED]
                || b[SLOT_USED..].iter().any(|&x| x != 0)
            {
                return None;
            }
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&b[24..56]);
            Some(Slot {
                seq: u64_at(b, 8),
                record: LedgerRecord { generation: u64_at(b, 16), superblock_hash: hash },
            })
        }

        fn decode(b: &[u8]) -> Result<FileState, LedgerError> {
            if b.len() == LEGACY_LEN && &b[..8] == LEGACY_MAGIC && Sha256::digest(&b[..48])[..4] == b[48..] {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&b[16..48]);
                return Ok(FileState::Legacy(LedgerRecord {
                    generation: u64_at(b, 8),
                    superblock_hash: hash,
                }));
            }
            if b.len() != FILE_LEN {
                return Err(LedgerError::Corrupt(format!(
                    "ledger file is {} bytes, expected {FILE_LEN}: damaged or not a ledger",
                    b.len()
                )));
            }
            let (current, index) =
                match [Self::decode_slot(&b[..SLOT_LEN]), Self::decode_slot(&b[SLOT_LEN..])] {
                    [Some(a), Some(b)] if a.seq == b.seq => {
                        return Err(LedgerError::Corrupt(
                            "both ledger slots claim the same update".to_string(),
                        ));
                    }
                    [Some(a), Some(b)] if b.seq > a.seq => (b, 1),
                    [Some(a), _] => (a, 0),
                    [None, Some(b)] => (b, 1),
                    [None, None] => {
                        return Err(LedgerError::Corrupt("no valid record in the ledger file".to_string()));
                    }
                };
            Ok(FileState::Slots { current, index })
        }

        fn unavailable(path: &Path, e: std::io::Error) -> LedgerError {
            LedgerError::Unavailable(format!("{}: {e}", path.display()))
        }

        fn load(&self, path: &Path) -> Result<Option<FileState>, LedgerError> {
            match fs::read(path) {
                Ok(b) => Self::decode(&b).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Self::unavailable(path, e)),
            }
        }

        /// Creates (or converts) the file whole: temporary, fsync, rename, fsync the directory.
        fn replace_whole(&self, path: &Path, slot: &Slot) -> std::io::Result<()> {
            let mut image = [0u8; FILE_LEN];
            image[..SLOT_LEN].copy_from_slice(&Self::encode_slot(slot));
            let tmp = path.with_extension("ledger.tmp");
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(&image)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(&self.dir)?.sync_all()
        }
    }

    /// A held `flock` on a volume's lock file; released when dropped (the file is closed).
    #[derive(Debug)]
    struct RecordLock(#[allow(dead_code)] File);

    impl FileLedger {
        /// Locks `volume`'s records against every other handle, in this process or another: shared for a
        /// read, exclusive for read-compare-write. The lock file (`<volume-id>.lock`) is separate from the
        /// record file because a volume's first record is created by rename, which replaces the inode.
        fn lock(&self, volume: &VolumeId, exclusive: bool) -> Result<RecordLock, LedgerError> {
            use std::os::fd::AsRawFd as _;
            let path = self.dir.join(format!("{volume}.lock"));
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Self::unavailable(&path, e))?;
            let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
            loop {
                // SAFETY: flock on a descriptor we own; no memory is involved.
                if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
                    return Ok(RecordLock(f));
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(Self::unavailable(&path, e));
                }
            }
        }
    }

    impl Ledger for FileLedger {
        fn read(&mut self, volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError> {
            let _lock = self.lock(volume, false)?;
            Ok(self.load(&self.path_of(volume))?.map(|state| state.record()))
        }

        fn compare_and_set(
            &mut self,
            volume: &VolumeId,
            expected: Option<&LedgerRecord>,
            new: &LedgerRecord,
        ) -> Result<(), LedgerError> {
            let path = self.path_of(volume);
            // Read, compare and write under one exclusive lock: two handles never both win a generation.
            let _lock = self.lock(volume, true)?;
            let state = self.load(&path)?;
            let current = state.as_ref().map(FileState::record);
            if current.as_ref() != expected {
                return Err(LedgerError::Conflict { current });
            }
            let written = match state {
                Some(FileState::Slots { current, index }) => {
                    let seq = current.seq.wrapping_add(1);
                    let target = 1 - index;
                    let bytes = Self::encode_slot(&Slot { seq, record: *new });
                    OpenOptions::new().write(true).open(&path).and_then(|f| {
                        f.write_all_at(&bytes, (target * SLOT_LEN) as u64)?;
                        f.sync_data()
                    })
                }
                None | Some(FileState::Legacy(_)) => {
                    self.replace_whole(&path, &Slot { seq: 1, record: *new })
                }
            };
            written.map_err(|e| Self::unavailable(&path, e))
        }
    }

    #[cfg(test)]
    mod file_ledger_tests {
        use super::*;

        fn record(generation: u64) -> LedgerRecord {
            LedgerRecord { generation, superblock_hash: [generation as u8; 32] }
        }

        fn volume() -> VolumeId {
            VolumeId([7; 16])
        }

        #[test]
        fn records_advance_by_compare_and_set_and_alternate_slots() {
            let dir = tempfile::tempdir().unwrap();
            let mut ledger = FileLedger::new(dir.path()).unwrap();
            let v = volume();
            assert_eq!(ledger.read(&v).unwrap(), None);
            ledger.compare_and_set(&v, None, &record(1)).unwrap();
            for g in 2..=5 {
                ledger.compare_and_set(&v, Some(&record(g - 1)), &record(g)).unwrap();
                assert_eq!(ledger.read(&v).unwrap(), Some(record(g)));
                let bytes = fs::read(ledger.path_of(&v)).unwrap();
                assert_eq!(bytes.len(), FILE_LEN);
                // The previous record stays intact in the other slot.
                let prev = g as usize % 2; // g = 1 went to slot 0, g = 2 to slot 1, ...
                let other = FileLedger::decode_slot(&bytes[prev * SLOT_LEN..(prev + 1) * SLOT_LEN]).unwrap();
                assert_eq!(other.record, record(g - 1), "generation {g}");
            }
            let err = ledger.compare_and_set(&v, Some(&record(3)), &record(9)).unwrap_err();
            assert!(matches!(err, LedgerError::Conflict { current: Some(r) } if r == record(5)), "{err:?}");
            assert_eq!(ledger.read(&v).unwrap(), Some(record(5)), "a refused update changed the ledger");
        }

        #[test]
        fn a_torn_update_leaves_the_previous_record() {
            let dir = tempfile::tempdir().unwrap();
            let mut ledger = FileLedger::new(dir.path()).unwrap();
            let v = volume();
            ledger.compare_and_set(&v, None, &record(1)).unwrap();
            ledger.compare_and_set(&v, Some(&record(1)), &record(2)).unwrap();
            let path = ledger.path_of(&v);
            let good = fs::read(&path).unwrap();
            // Tear the slot holding generation 2 (slot 1) at every byte of its used part.
            for at in 0..SLOT_USED {
                let mut torn = good.clone();
                torn[SLOT_LEN + at] ^= 0x40;
                fs::write(&path, &torn).unwrap();
                assert_eq!(ledger.read(&v).unwrap(), Some(record(1)), "tear at byte {at}");
            }
            // The next update after a tear overwrites the torn slot and moves forward from generation 1.
            ledger.compare_and_set(&v, Some(&record(1)), &record(3)).unwrap();
            assert_eq!(ledger.read(&v).unwrap(), Some(record(3)));
        }

        #[test]
        fn damaged_files_are_errors_not_absent_records() {
            let dir = tempfile::tempdir().unwrap();
            let mut ledger = FileLedger::new(dir.path()).unwrap();
            let v = volume();
            let path = ledger.path_of(&v);
            for bad in [vec![], vec![0u8; FILE_LEN], vec![0xFF; FILE_LEN], vec![0u8; 100]] {
                fs::write(&path, &bad).unwrap();
                assert!(matches!(ledger.read(&v), Err(LedgerError::Corrupt(_))), "{} bytes", bad.len());
                assert!(ledger.compare_and_set(&v, None, &record(1)).is_err());
            }
            // Two valid slots claiming the same update cannot be ordered.
            let slot = FileLedger::encode_slot(&Slot { seq: 4, record: record(4) });
            let mut twin = vec![0u8; FILE_LEN];
            twin[..SLOT_LEN].copy_from_slice(&slot);
            twin[SLOT_LEN..].copy_from_slice(&FileLedger::encode_slot(&Slot { seq: 4, record: record(5) }));
            fs::write(&path, &twin).unwrap();
            assert!(matches!(ledger.read(&v), Err(LedgerError::Corrupt(_))));
        }

        /// N handles (threads here, each with its own `FileLedger` and so its own open files, exactly what
        /// separate processes have) race compare-and-set(current -> current + 1). Atomic CAS means every
        /// success advanced the generation by one: successes == final - initial, and the file stays valid.
        #[test]
        fn compare_and_set_is_atomic_across_handles() {
            const HANDLES: usize = 4;
            const ROUNDS: usize = 150;
            let dir = tempfile::tempdir().unwrap();
            let v = volume();
            FileLedger::new(dir.path()).unwrap().compare_and_set(&v, None, &record(1)).unwrap();
            let wins: usize = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..HANDLES)
                    .map(|h| {
                        let path = dir.path().to_path_buf();
                        scope.spawn(move || {
                            let mut ledger = FileLedger::new(&path).unwrap();
                            let mut wins = 0;
                            for round in 0..ROUNDS {
                                let current = ledger.read(&v).unwrap().unwrap();
                                let mut hash = [0u8; 32];
                                hash[..8].copy_from_slice(&(h as u64).to_le_bytes());
                                hash[8..16].copy_from_slice(&(round as u64).to_le_bytes());
                                let next = LedgerRecord {
                                    generation: current.generation + 1,
                                    superblock_hash: hash,
                                };
                                match ledger.compare_and_set(&v, Some(&current), &next) {
                                    Ok(()) => wins += 1,
                                    Err(LedgerError::Conflict { .. }) => {}
                                    Err(e) => panic!("handle {h} round {round}: {e}"),
                                }
                            }
                            wins
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).sum()
            });
            let last = FileLedger::new(dir.path()).unwrap().read(&v).unwrap().unwrap();
            assert_eq!(
                wins as u64,
                last.generation - 1,
                "{wins} successes but the generation moved {}",
                last.generation - 1
            );
            assert!(wins >= ROUNDS, "suspiciously few successes: {wins}");
        }

        #[test]
        fn legacy_single_record_files_are_read_and_converted() {
            let dir = tempfile::tempdir().unwrap();
            let mut ledger = FileLedger::new(dir.path()).unwrap();
            let v = volume();
            let mut legacy = [0u8; LEGACY_LEN];
            legacy[..8].copy_from_slice(LEGACY_MAGIC);
            legacy[8..16].copy_from_slice(&6u64.to_le_bytes());
            legacy[16..48].copy_from_slice(&record(6).superblock_hash);
            let sum = Sha256::digest(&legacy[..48]);
            legacy[48..].copy_from_slice(&sum[..4]);
            fs::write(ledger.path_of(&v), legacy).unwrap();
            assert_eq!(ledger.read(&v).unwrap(), Some(record(6)));
            ledger.compare_and_set(&v, Some(&record(6)), &record(7)).unwrap();
            assert_eq!(fs::read(ledger.path_of(&v)).unwrap().len(), FILE_LEN);
            assert_eq!(ledger.read(&v).unwrap(), Some(record(7)));
        }
    }
}

#[cfg(feature = "std")]
pub use self::host::MemLedgerFault;
