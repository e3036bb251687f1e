//! Why a UEFI variable operation failed outside the EFI status a guest sees.
//!
//! A guest learns only an EFI status (in the MM buffer) or an SVSM result code (RAX); these errors are what
//! the service, its persistence and the host tools report, each naming what to do next.

use svsm_store::StoreError;

/// Why loading or persisting the UEFI variable volume failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UefiError {
    /// The secure store failed (I/O, authentication, rollback detected by the ledger, ...).
    #[error("UEFI variable volume: {0}")]
    Store(#[from] StoreError),
    /// The volume holds objects that are not UEFI variables (another service's volume?).
    #[error("not a UEFI variable volume: {0}")]
    Foreign(&'static str),
    /// A variable object on the volume is malformed; nothing was loaded.
    #[error("UEFI variable object {object:#x} is damaged: {reason}")]
    Corrupt {
        /// The store object id.
        object: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The volume's format version is newer than this build understands.
    #[error("UEFI variable volume format {0} is not supported by this build")]
    UnsupportedVersion(u32),
    /// No object slot is left for another non-volatile variable.
    #[error("no room for another non-volatile variable ({0} slots in use)")]
    TooManyVariables(usize),
    /// A variable cannot be represented (name empty or too long, data too large).
    #[error("variable cannot be stored: {0}")]
    InvalidVariable(&'static str),
    /// An earlier write failed, so the variables in memory are ahead of the volume; restart the service
    /// (it reloads the durable state).
    #[error("the UEFI variable service stopped after a failed write; restart it to reload the volume")]
    Poisoned,
}
