//! The two seams of the vTPM: the engine that executes TPM commands, and the durable storage its NV goes to.

use alloc::vec::Vec;

use crate::error::{EngineError, StorageError};

/// One durable NV object of a vTPM.
///
/// The first three are libtpms' own blobs (its callback names in brackets); `Manufacture` is ours: the record
/// that this TPM was manufactured, written in the same transaction as the first `Permanent` blob, so a store
/// holding one without the other is detectably damaged rather than silently re-manufactured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NvBlob {
    /// All permanent TPM state, including NV indices, seeds and (after Shutdown(STATE)) the saved state
    /// (`permall`). Rewritten whole on every NV-changing command.
    Permanent,
    /// The volatile state of a suspended TPM (`volatilestate`); only loaded at power-on.
    Volatile,
    /// TPM 1.2-style saved state (`savestate`); TPM 2.0 in libtpms folds it into `Permanent`.
    SaveState,
    /// The manufacture record ([`crate::manufacture::ManufactureRecord`]).
    Manufacture,
}

impl NvBlob {
    /// Every blob, in a fixed order.
    pub const ALL: [NvBlob; 4] =
        [NvBlob::Permanent, NvBlob::Volatile, NvBlob::SaveState, NvBlob::Manufacture];

    /// The libtpms callback name of this blob, if it is one of libtpms' own.
    pub fn libtpms_name(self) -> Option<&'static str> {
        match self {
            NvBlob::Permanent => Some("permall"),
            NvBlob::Volatile => Some("volatilestate"),
            NvBlob::SaveState => Some("savestate"),
            NvBlob::Manufacture => None,
        }
    }

    /// Maps a libtpms callback name to its blob (`None` for names we do not store).
    pub fn from_libtpms_name(name: &[u8]) -> Option<NvBlob> {
        match name {
            b"permall" => Some(NvBlob::Permanent),
            b"volatilestate" => Some(NvBlob::Volatile),
            b"savestate" => Some(NvBlob::SaveState),
            _ => None,
        }
    }
}

/// Durable storage for a vTPM's NV blobs.
///
/// Every mutating call is one transaction that is **durable when it returns `Ok`**: the engine releases a
/// TPM response only after the NV change behind it has been stored, so an acknowledged write survives a power
/// cut. Implementations must be atomic per call (old or new contents after a crash, never a mix).
/// The contents of an NV blob as loaded: zeroized when dropped (they hold the TPM's secrets).
pub type NvData = zeroize::Zeroizing<Vec<u8>>;

pub trait NvStorage {
    /// Reads a blob; `Ok(None)` if it was never written (or was deleted). The blob holds the TPM's seeds
    /// and keys, so it comes in a buffer that is zeroized when dropped.
    fn load(&mut self, blob: NvBlob) -> Result<Option<NvData>, StorageError>;

    /// Replaces a blob durably, as one transaction.
    fn store(&mut self, blob: NvBlob, data: &[u8]) -> Result<(), StorageError> {
        self.commit(&[(blob, Some(data))])
    }

    /// Deletes a blob durably (no error if it was absent).
    fn delete(&mut self, blob: NvBlob) -> Result<(), StorageError> {
        self.commit(&[(blob, None)])
    }

    /// Applies several puts (`Some`) and deletes (`None`) as one durable, atomic transaction.
    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError>;
}

impl<S: NvStorage + ?Sized> NvStorage for alloc::boxed::Box<S> {
    fn load(&mut self, blob: NvBlob) -> Result<Option<NvData>, StorageError> {
        (**self).load(blob)
    }
    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError> {
        (**self).commit(changes)
    }
}

/// A TPM 2.0 engine: executes command bytes and keeps its NV state in an [`NvStorage`].
///
/// The platform signals a real TPM receives on its pins (power, reset, cancel, locality) are methods here;
/// the protocol state on top of them (NV availability, which front end sent what) lives in [`crate::Vtpm`].
/// Every method takes `&mut self`: an engine is used by one caller at a time, and implementations backed by
/// global C state (libtpms) additionally guarantee only one engine exists per process.
pub trait TpmEngine {
    /// `_TPM_Init`: powers the TPM on, loading its NV state from storage. Manufactures a fresh TPM only if
    /// the engine was created to do so; otherwise missing state is [`EngineError::StateMissing`].
    fn power_on(&mut self) -> Result<(), EngineError>;

    /// Powers the TPM off. Volatile state (sessions, loaded objects, PCRs) is lost; NV state is already durable.
    fn power_off(&mut self);

    /// Whether the TPM is powered on.
    fn is_powered(&self) -> bool;

    /// Executes one TPM command from `locality` and returns the response bytes. Any NV change the command
    /// makes is durable in storage before this returns `Ok`.
    fn execute(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, EngineError>;

    /// Asks the engine to cancel a long-running command (TPM_RC_CANCELED) if it supports cancellation.
    fn cancel(&mut self);

    /// The TPM "established" flag (set by a dynamic root of trust sequence, cleared from locality 3/4).
    fn established(&mut self) -> Result<bool, EngineError>;

    /// Clears the established flag as if requested from `locality`.
    fn reset_established(&mut self, locality: u8) -> Result<(), EngineError>;

    /// Writes the volatile state to storage (for suspend/migration); loaded again at the next power-on.
    fn store_volatile(&mut self) -> Result<(), EngineError>;

    /// Negotiates the I/O buffer size: `wanted == 0` queries. Returns `(size, min, max)`.
    fn set_buffer_size(&mut self, wanted: u32) -> (u32, u32, u32);

    /// Number of durable NV stores performed since the engine was created (for flush-policy measurements).
    fn store_count(&self) -> u64;
}
