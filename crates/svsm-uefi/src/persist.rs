//! Persistence of non-volatile variables in a secure-store volume (layout in [`crate::record`]).
//!
//! [`StoreVariableStorage`] is what the service runs on: every [`VariableStorage::apply`] is one store
//! transaction (one device flush; on a strict-ledger volume one ledger compare-and-set), committed before
//! the guest's SetVariable is answered. Volatile variables never reach it.
//!
//! Operator tools (import/export) use the same type offline: [`StoreVariableStorage::open`] on an opened
//! [`svsm_store::Store`], then [`VariableStorage::load`] / [`StoreVariableStorage::replace_all`] /
//! [`VariableStorage::apply`]. [`MemoryVariableStorage`] keeps nothing (upstream COCONUT's behaviour) and is
//! what tests and benchmarks compare against.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use svsm_block::BlockDevice;
use svsm_store::{Ledger, Store};

use crate::api::{StoredVariable, VariableChange, VariableKey, VariableStorage};
use crate::error::UefiError;
use crate::record::{self, MARKER_OBJECT, VARIABLE_OBJECTS};

/// Non-volatile variables in a secure-store volume.
pub struct StoreVariableStorage<D: BlockDevice, L: Ledger> {
    store: Store<D, L>,
    /// Which object holds which variable (as last loaded or committed).
    slots: BTreeMap<VariableKey, u64>,
}

impl<D: BlockDevice, L: Ledger> core::fmt::Debug for StoreVariableStorage<D, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoreVariableStorage")
            .field("volume", &self.store.volume_id())
            .field("generation", &self.store.generation())
            .field("variables", &self.slots.len())
            .finish()
    }
}

impl<D: BlockDevice, L: Ledger> StoreVariableStorage<D, L> {
    /// Takes an opened volume. An empty volume gets the UEFI marker (one commit); a volume holding
    /// anything but UEFI objects, or UEFI objects without the marker, is refused as foreign.
    pub fn open(mut store: Store<D, L>) -> Result<Self, UefiError> {
        let ids: Vec<u64> = store.objects().map(|(id, _)| id).collect();
        if ids.is_empty() {
            let mut tx = store.begin();
            tx.put(MARKER_OBJECT, &record::encode_marker())?;
            tx.commit()?;
        } else {
            if let Some(id) = ids.iter().find(|id| !svsm_store::ids::UEFI.contains(id)) {
                tracing::error!(object = id, "UEFI volume holds an object outside the UEFI range");
                return Err(UefiError::Foreign("it holds objects of another service (e.g. a vTPM)"));
            }
            let marker =
                store.get(MARKER_OBJECT)?.ok_or(UefiError::Foreign("the UEFI volume marker is missing"))?;
            record::decode_marker(&marker)?;
        }
        let mut storage = StoreVariableStorage { store, slots: BTreeMap::new() };
        storage.load()?;
        Ok(storage)
    }

    /// The store underneath (generation, volume id, ledger record).
    pub fn store(&self) -> &Store<D, L> {
        &self.store
    }

    /// Window mode: advances the ledger if the window has run out over unprotected commits
    /// ([`Store::advance_if_due`]); a daemon calls it periodically. A no-op in other modes.
    pub fn advance_if_due(&mut self) -> Result<bool, svsm_store::StoreError> {
        self.store.advance_if_due()
    }

    /// Gives the store back (e.g. to close it cleanly).
    pub fn into_store(self) -> Store<D, L> {
        self.store
    }

    /// Replaces every persisted variable with `vars` in one transaction (an import).
    pub fn replace_all(&mut self, vars: &[StoredVariable]) -> Result<(), UefiError> {
        let mut changes: Vec<VariableChange> = self
            .slots
            .keys()
            .filter(|k| !vars.iter().any(|v| &v.key() == *k))
            .cloned()
            .map(VariableChange::Remove)
            .collect();
        changes.extend(vars.iter().cloned().map(VariableChange::Put));
        self.apply(&changes)
    }
}

impl<D: BlockDevice, L: Ledger> VariableStorage for StoreVariableStorage<D, L> {
    fn load(&mut self) -> Result<Vec<StoredVariable>, UefiError> {
        let ids: Vec<u64> =
            self.store.objects().map(|(id, _)| id).filter(|id| VARIABLE_OBJECTS.contains(id)).collect();
        let mut vars = Vec::with_capacity(ids.len());
        let mut slots = BTreeMap::new();
        for id in ids {
            let bytes =
                self.store.get(id)?.ok_or(UefiError::Corrupt { object: id, reason: "listed but absent" })?;
            let var = record::decode_variable(id, &bytes)?;
            if slots.insert(var.key(), id).is_some() {
                return Err(UefiError::Corrupt {
                    object: id,
                    reason: "a second object holds the same variable",
                });
            }
            vars.push(var);
        }
        self.slots = slots;
        Ok(vars)
    }

    fn apply(&mut self, changes: &[VariableChange]) -> Result<(), UefiError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut slots = self.slots.clone();
        let mut tx = self.store.begin();
        for change in changes {
            match change {
                VariableChange::Put(var) => {
                    let bytes = record::encode_variable(var)?;
                    let key = var.key();
                    let id = match slots.get(&key) {
                        Some(id) => *id,
                        None => {
                            let used: alloc::collections::BTreeSet<u64> = slots.values().copied().collect();
                            let id = VARIABLE_OBJECTS
                                .clone()
                                .find(|id| !used.contains(id))
                                .ok_or(UefiError::TooManyVariables(slots.len()))?;
                            slots.insert(key, id);
                            id
                        }
                    };
                    tx.put(id, &bytes)?;
                }
                VariableChange::Remove(key) => {
                    if let Some(id) = slots.remove(key) {
                        tx.delete(id)?;
                    }
                }
            }
        }
        tx.commit()?;
        self.slots = slots;
        Ok(())
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn free_slots(&self) -> usize {
        VARIABLE_OBJECTS.clone().count().saturating_sub(self.slots.len())
    }
}

/// Keeps nothing across restarts (upstream COCONUT-SVSM's behaviour; `persistent_nv_vars = false`).
#[derive(Debug, Default)]
pub struct MemoryVariableStorage {
    vars: BTreeMap<VariableKey, StoredVariable>,
}

impl MemoryVariableStorage {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }
}

impl VariableStorage for MemoryVariableStorage {
    fn load(&mut self) -> Result<Vec<StoredVariable>, UefiError> {
        Ok(self.vars.values().cloned().collect())
    }

    fn apply(&mut self, changes: &[VariableChange]) -> Result<(), UefiError> {
        for change in changes {
            match change {
                VariableChange::Put(v) => {
                    record::check_variable(v)?;
                    self.vars.insert(v.key(), v.clone());
                }
                VariableChange::Remove(k) => {
                    self.vars.remove(k);
                }
            }
        }
        Ok(())
    }

    fn is_persistent(&self) -> bool {
        false
    }

    fn free_slots(&self) -> usize {
        usize::MAX
    }
}
