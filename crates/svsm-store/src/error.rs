//! Errors of the secure store, one variant per thing a caller (or an operator) does something different about.

use alloc::string::String;

use svsm_block::BlockError;

use crate::api::{LedgerRecord, VolumeId};

/// The random source failed. The store never falls back to weaker randomness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("random source failed: {detail}")]
pub struct RandomError {
    /// What failed.
    pub detail: &'static str,
}

/// Which on-disk structure a corruption was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// A superblock slot (0 or 1).
    Superblock {
        /// Slot index.
        slot: u8,
    },
    /// A node of the object table.
    TableNode {
        /// Level above the leaves.
        level: u8,
    },
    /// An index node of an object.
    IndexNode {
        /// Object id.
        object: u64,
        /// Level above the data blocks.
        level: u8,
    },
    /// A data block of an object.
    DataBlock {
        /// Object id.
        object: u64,
        /// Block index within the object.
        index: u64,
    },
}

impl core::fmt::Display for Structure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Structure::Superblock { slot } => write!(f, "superblock slot {slot}"),
            Structure::TableNode { level } => write!(f, "object-table node (level {level})"),
            Structure::IndexNode { object, level } => {
                write!(f, "index node (level {level}) of object {object:#x}")
            }
            Structure::DataBlock { object, index } => write!(f, "data block {index} of object {object:#x}"),
        }
    }
}

/// Kinds of feature bits (ext4 style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// Must be understood to read at all.
    Incompat,
    /// Must be understood to write; the volume can still be opened read-only.
    RoCompat,
}

/// A ledger failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The ledger could not be reached or did not answer; the outcome of a compare-and-set is unknown.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// The record was not what the caller expected.
    #[error("ledger record changed concurrently (current: {current:?})")]
    Conflict {
        /// The record the ledger holds now.
        current: Option<LedgerRecord>,
    },
    /// The ledger's own storage is damaged.
    #[error("ledger storage is corrupt: {0}")]
    Corrupt(String),
}

/// A secure-store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The device failed an I/O. Nothing was accepted or reverted because of it; retry or check the device.
    #[error("device I/O failed: {0}")]
    Device(#[from] BlockError),
    /// Neither superblock slot holds a store: the device was never formatted (or was wiped).
    #[error("the device holds no secure store ({detail}); format it explicitly if that is intended")]
    Unformatted {
        /// What was found instead.
        detail: &'static str,
    },
    /// The superblocks are intact but were written under a different key.
    #[error("wrong key: the volume's key check does not match this key (is this the right key file?)")]
    WrongKey,
    /// An authenticated structure failed verification or is inconsistent: tampering or media corruption.
    #[error("volume corrupt at block {block} ({structure}): {detail}")]
    Corrupt {
        /// Block address where the problem was found.
        block: u64,
        /// The structure that block was supposed to be.
        structure: Structure,
        /// What is wrong.
        detail: &'static str,
    },
    /// The device holds an older state than the ledger says is current: a rollback (or a lost write).
    #[error(
        "rollback detected: the device's newest valid generation is {found}, the ledger expects {expected}; \
         restore the current image or reprovision"
    )]
    Rollback {
        /// Newest generation the device offered (0 if none verified).
        found: u64,
        /// Generation the ledger holds.
        expected: u64,
    },
    /// The device's state does not descend from the ledger's record: a superblock of the ledger's generation
    /// with another hash, or (boot-epoch) newer generations written by a session opened from a different record,
    /// such as an image from an earlier run that a later, cleanly closed run superseded.
    #[error(
        "forked state: generation {generation} on the device does not descend from the ledger's record; \
         restore the current image or reprovision"
    )]
    Forked {
        /// The offending generation on the device.
        generation: u64,
    },
    /// The format version is not one this implementation reads.
    #[error("unsupported format version {major}.{minor} (this build reads {supported}.x)")]
    UnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
        /// Major version supported.
        supported: u16,
    },
    /// The volume uses features this implementation does not know.
    #[error("unsupported {kind:?} features {bits:#x}{}", if matches!(kind, FeatureKind::RoCompat) { " (open read-only to read it)" } else { "" })]
    UnsupportedFeature {
        /// Incompat or ro_compat.
        kind: FeatureKind,
        /// The unknown bits.
        bits: u64,
    },
    /// The volume uses an algorithm or geometry this implementation does not support.
    #[error("unsupported algorithm or geometry: {detail}")]
    UnsupportedAlgorithm {
        /// Which.
        detail: &'static str,
    },
    /// The ledger has no record of this volume and enrolment was not requested.
    #[error("volume {volume} is not enrolled in the ledger; enrol it once, right after format")]
    NotEnrolled {
        /// The volume.
        volume: VolumeId,
    },
    /// The ledger failed; see the inner error. A strict commit that gets this is not acknowledged: it is
    /// not visible, and the next commit first settles it with the ledger.
    #[error("ledger: {0}")]
    Ledger(LedgerError),
    /// The ledger holds a record this store did not write: another instance is using the volume, or the
    /// ledger was reset. The store refuses further commits.
    #[error("ledger holds {found:?} but this store expected {expected:?}; refusing to continue")]
    LedgerConflict {
        /// What the store expected.
        expected: Option<LedgerRecord>,
        /// What the ledger holds.
        found: Option<LedgerRecord>,
    },
    /// An earlier fatal error left this handle unable to commit; reopen the volume.
    #[error("store handle is poisoned by an earlier fatal error; reopen the volume")]
    Poisoned,
    /// A write was attempted on a store opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// The device is smaller than the volume recorded in its superblock (truncated image).
    #[error("device has {device_blocks} blocks but the volume needs {volume_blocks}: truncated image?")]
    DeviceTooSmall {
        /// Blocks on the device (4 KiB units).
        device_blocks: u64,
        /// Blocks the volume spans.
        volume_blocks: u64,
    },
    /// Format refused: the device already holds a store. Wipe it explicitly first if you mean it.
    #[error("the device already holds a secure store; refusing to overwrite it (wipe it explicitly first)")]
    AlreadyFormatted,
    /// Not enough free blocks for the transaction.
    #[error("volume full: the transaction needs more than the {free} free blocks")]
    VolumeFull {
        /// Free blocks before the transaction.
        free: u64,
    },
    /// Object id 0 or a reserved range.
    #[error("object id {id:#x} is reserved (see svsm_store::ids)")]
    InvalidObjectId {
        /// The id.
        id: u64,
    },
    /// A ranged read starting past the end of the object.
    #[error("offset {offset} is past the end of object {id:#x} ({size} bytes)")]
    OutOfRange {
        /// Object.
        id: u64,
        /// Requested offset.
        offset: u64,
        /// Object size.
        size: u64,
    },
    /// Root keys are 32 bytes.
    #[error("a store key is 32 bytes, got {len}")]
    InvalidKeyLength {
        /// Bytes given.
        len: usize,
    },
    /// Bad format parameters.
    #[error("invalid parameters: {0}")]
    InvalidParams(&'static str),
    /// The key has sealed as many blocks as random 96-bit nonces safely allow; the volume needs rekeying.
    #[error("nonce budget of the volume key is exhausted; export and re-import under a fresh volume")]
    NonceBudgetExhausted,
    /// See [`RandomError`].
    #[error(transparent)]
    Random(RandomError),
    /// A bug in this crate (an invariant did not hold). Never caused by device contents.
    #[error("internal error: {0}")]
    Internal(&'static str),
}
