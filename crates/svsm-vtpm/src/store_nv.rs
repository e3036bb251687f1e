//! The vTPM's NV blobs as objects of the secure store: encrypted, authenticated, rollback-protected.
//!
//! Each [`NvStorage::commit`] is exactly one store transaction, and `Transaction::commit` returns only when
//! the new generation is durable (and, in strict ledger mode, acknowledged by the ledger), so a TPM response
//! released after it can never be lost or rolled back by the host.

use alloc::format;

use svsm_block::BlockDevice;
use svsm_store::ids::{self, ObjectId};
use svsm_store::{Ledger, Store, StoreError};

use crate::api::{NvBlob, NvData, NvStorage};
use crate::error::StorageError;

/// Object id of libtpms' `savestate` blob (TPM 1.2 style; TPM 2.0 folds it into `permall`), in the vTPM range.
pub const VTPM_SAVESTATE: ObjectId = 0x04;
const _: () = assert!(*ids::VTPM.start() <= VTPM_SAVESTATE && VTPM_SAVESTATE <= *ids::VTPM.end());

/// The store object that holds `blob`.
pub fn object_id(blob: NvBlob) -> ObjectId {
    match blob {
        NvBlob::Permanent => ids::VTPM_PERMANENT,
        NvBlob::Volatile => ids::VTPM_VOLATILE,
        NvBlob::Manufacture => ids::VTPM_MANUFACTURE_INFO,
        NvBlob::SaveState => VTPM_SAVESTATE,
    }
}

fn map_err(e: StoreError) -> StorageError {
    StorageError::Backend(format!("{e}"))
}

/// NV storage on an open secure store.
#[derive(Debug)]
pub struct StoreNvStorage<D: BlockDevice, L: Ledger> {
    store: Store<D, L>,
}

impl<D: BlockDevice, L: Ledger> StoreNvStorage<D, L> {
    /// Uses `store` for the vTPM's objects.
    pub fn new(store: Store<D, L>) -> Self {
        StoreNvStorage { store }
    }

    /// The store (for statistics).
    pub fn inner(&self) -> &Store<D, L> {
        &self.store
    }

    /// Window mode: advances the ledger if the window has run out over unprotected commits
    /// ([`Store::advance_if_due`]); a daemon calls it periodically so an idle vTPM's last NV writes are
    /// protected within about T. A no-op in other modes.
    pub fn advance_if_due(&mut self) -> Result<bool, StoreError> {
        self.store.advance_if_due()
    }

    /// Gives the store back.
    pub fn into_store(self) -> Store<D, L> {
        self.store
    }
}

impl<D: BlockDevice, L: Ledger> NvStorage for StoreNvStorage<D, L> {
    fn load(&mut self, blob: NvBlob) -> Result<Option<NvData>, StorageError> {
        // The store already returns a zeroizing buffer: hand it on, never copy the seeds into a plain Vec.
        self.store.get(object_id(blob)).map_err(map_err)
    }

    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError> {
        let mut tx = self.store.begin();
        for (blob, data) in changes {
            match data {
                Some(d) => tx.put(object_id(*blob), d).map_err(map_err)?,
                None => tx.delete(object_id(*blob)).map_err(map_err)?,
            }
        }
        tx.commit().map_err(map_err)?;
        Ok(())
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use svsm_block::MemDisk;
    use svsm_store::{FormatParams, MemLedger, OpenOptions, StoreKey};

    use super::*;

    #[test]
    fn blobs_round_trip_through_store_transactions() {
        let key = StoreKey::from_bytes([7; 32]);
        let disk = MemDisk::new(4096, 64).unwrap();
        let ledger = MemLedger::new();
        let disk = {
            let mut d = disk;
            Store::<&mut MemDisk, MemLedger>::format(&mut d, &key, FormatParams::default()).unwrap();
            d
        };
        let options = OpenOptions { enroll: true, ..OpenOptions::default() };
        let store = Store::open(disk, &key, ledger.clone(), options).unwrap();
        let mut nv = StoreNvStorage::new(store);
        assert_eq!(nv.load(NvBlob::Permanent).unwrap(), None);
        nv.commit(&[(NvBlob::Permanent, Some(b"perm")), (NvBlob::Manufacture, Some(b"rec"))]).unwrap();
        nv.store(NvBlob::Volatile, b"vol").unwrap();
        nv.delete(NvBlob::Volatile).unwrap();
        let disk = nv.into_store().close().unwrap();
        let mut nv = StoreNvStorage::new(Store::open(disk, &key, ledger, OpenOptions::default()).unwrap());
        assert_eq!(nv.load(NvBlob::Permanent).unwrap().unwrap().as_slice(), b"perm");
        assert_eq!(nv.load(NvBlob::Manufacture).unwrap().unwrap().as_slice(), b"rec");
        assert_eq!(nv.load(NvBlob::Volatile).unwrap(), None);
    }
}
