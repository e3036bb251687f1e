//! The two traits at the centre of the crate: where non-volatile variables are kept ([`VariableStorage`])
//! and what a guest talks to ([`MmService`]).
//!
//! [`crate::UefiVariables`] implements [`MmService`] on top of `virtfw-varstore`'s `EfiVarStore` and any
//! [`VariableStorage`]: [`crate::persist::StoreVariableStorage`] (a secure-store volume; durable) or
//! [`crate::persist::MemoryVariableStorage`] (nothing persists, like upstream COCONUT-SVSM).

use alloc::string::String;
use alloc::vec::Vec;

use svsm_protocol::Guid;

use crate::error::UefiError;

/// One non-volatile variable as it is persisted (and as import/export tools exchange it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVariable {
    /// Name (UTF-8, no NUL; the guest sees it as UCS-2).
    pub name: String,
    /// Vendor GUID (EFI byte order).
    pub vendor: Guid,
    /// EFI_VARIABLE_* attributes; NON_VOLATILE is always set.
    pub attributes: u32,
    /// The EFI_TIME (16 raw bytes) of the last time-based authenticated write, if any. `virtfw-varstore`
    /// 0.6.6 does not keep it, so the service does; a verifier compares new writes against it.
    pub timestamp: Option<[u8; 16]>,
    /// The value (for authenticated variables: the payload without the AUTHENTICATION_2 header).
    pub data: Vec<u8>,
}

impl StoredVariable {
    /// The key that identifies the variable.
    pub fn key(&self) -> VariableKey {
        VariableKey { vendor: self.vendor, name: self.name.clone() }
    }
}

/// A variable's identity: vendor GUID and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VariableKey {
    /// Vendor GUID.
    pub vendor: Guid,
    /// Name.
    pub name: String,
}

/// One change to the persisted set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableChange {
    /// Create or replace the variable.
    Put(StoredVariable),
    /// Remove the variable (no error if absent).
    Remove(VariableKey),
}

/// Where non-volatile variables live between boots.
pub trait VariableStorage: core::fmt::Debug {
    /// Every persisted variable (no duplicates, any order). A damaged or foreign volume is an error, never
    /// an empty result.
    fn load(&mut self) -> Result<Vec<StoredVariable>, UefiError>;
    /// Applies `changes` as one atomic, durable step: when this returns `Ok` they survive a power cut and,
    /// on a strict-ledger volume, cannot be rolled back; on `Err` none of them is visible after a restart.
    fn apply(&mut self, changes: &[VariableChange]) -> Result<(), UefiError>;
    /// Whether [`VariableStorage::apply`] makes anything durable (the manifest's `persistent_nv_vars`).
    fn is_persistent(&self) -> bool;
    /// How many more new variables fit (existing ones can always be replaced).
    fn free_slots(&self) -> usize;
}

/// The MM communication endpoint a guest reaches (through SVSM protocol 4 or in-process).
pub trait MmService: core::fmt::Debug {
    /// Handles one `EFI_MM_COMMUNICATE` message: `guid` is its HeaderGuid, `message` its `MessageLength`
    /// bytes. Returns the reply to copy over the message (never longer than `message`; empty = leave the
    /// buffer as it is). A guest-visible failure is an EFI status inside the reply; `Err` means the service
    /// can no longer answer at all (see [`UefiError::Poisoned`]).
    fn communicate(&mut self, guid: &Guid, message: &[u8]) -> Result<Vec<u8>, UefiError>;
    /// Whether non-volatile variables persist across restarts.
    fn persistent(&self) -> bool;
    /// Whether Secure Boot keys are enrolled (a PK exists; user mode).
    fn secure_boot_enabled(&self) -> bool;
}
