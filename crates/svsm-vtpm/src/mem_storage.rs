//! NV storage in RAM.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::api::{NvBlob, NvStorage};
use crate::error::StorageError;

/// NV storage that keeps blobs in memory: nothing survives the process.
///
/// Used to stage a manufacture (the whole result is then committed to the durable store in one transaction)
/// and in tests. It is a real [`NvStorage`], just not a durable one.
#[derive(Debug, Default, Clone)]
pub struct MemNvStorage {
    blobs: BTreeMap<NvBlob, Vec<u8>>,
    commits: u64,
}

impl MemNvStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of committed transactions.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The stored blobs, e.g. to copy them into a durable store.
    pub fn blobs(&self) -> &BTreeMap<NvBlob, Vec<u8>> {
        &self.blobs
    }
}

impl NvStorage for MemNvStorage {
    fn load(&mut self, blob: NvBlob) -> Result<Option<crate::api::NvData>, StorageError> {
        Ok(self.blobs.get(&blob).cloned().map(zeroize::Zeroizing::new))
    }

    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError> {
        for (blob, data) in changes {
            match data {
                Some(d) => {
                    self.blobs.insert(*blob, d.to_vec());
                }
                None => {
                    self.blobs.remove(blob);
                }
            }
        }
        self.commits = self.commits.saturating_add(1);
        Ok(())
    }
}
