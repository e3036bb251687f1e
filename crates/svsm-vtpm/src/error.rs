//! Errors of the vTPM core, one enum per layer so callers can tell a bad client from a broken store.

use alloc::string::String;

/// Failures of the durable NV storage behind the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The backend could not read or write (I/O, device, transaction failure). Nothing was committed.
    #[error("NV storage backend failed: {0}")]
    Backend(String),
    /// Stored data failed an integrity or format check (tampered, truncated or from another version).
    #[error("NV storage is damaged: {0}")]
    Corrupt(String),
}

/// Failures of a TPM engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Another engine already exists in this process (libtpms keeps global state: one TPM per process).
    #[error(
        "a TPM engine already exists in this process; libtpms supports only one (run one process per vTPM)"
    )]
    AlreadyInUse,
    /// The engine refused to initialise (the library's return code).
    #[error("TPM engine initialisation failed with code {0:#x}")]
    Init(u32),
    /// The engine found no TPM state where state must exist; it refuses to manufacture silently.
    #[error(
        "TPM state is missing from the store; refusing to manufacture a new TPM silently \
         (a new TPM means new endorsement keys). Restore the state or re-provision explicitly"
    )]
    StateMissing,
    /// Persisting NV state failed; the response was withheld and the engine is stopped until power-cycled.
    #[error("persisting TPM NV state failed, response withheld: {0}")]
    Persist(StorageError),
    /// An earlier persistence failure stopped the engine; it must be restarted from durable state.
    #[error("the TPM engine stopped after an NV persistence failure; restart it from the durable state")]
    Stopped,
    /// The engine is powered off.
    #[error("the TPM is powered off")]
    NotPowered,
    /// The engine failed to process a command (the library's return code, not a TPM response code).
    #[error("the TPM engine failed to process the command (code {0:#x})")]
    Process(u32),
    /// A command was larger than the engine accepts.
    #[error("TPM command of {0} bytes is larger than the engine's buffer")]
    CommandTooLarge(usize),
    /// An operation the engine does not support.
    #[error("the TPM engine does not support {0}")]
    Unsupported(&'static str),
}

/// Malformed TPM command or response bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarshalError {
    /// Fewer bytes than the structure needs.
    #[error("truncated TPM structure: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated {
        /// Offset where the read started.
        offset: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The header's size field disagrees with the buffer.
    #[error("TPM header says {header} bytes but the buffer holds {actual}")]
    SizeMismatch {
        /// Size in the header.
        header: u32,
        /// Bytes actually present.
        actual: usize,
    },
    /// A tag that is neither TPM_ST_NO_SESSIONS nor TPM_ST_SESSIONS.
    #[error("bad TPM tag {0:#06x}")]
    BadTag(u16),
    /// The TPM answered with an error response code.
    #[error("TPM returned response code {0:#x}")]
    ResponseCode(u32),
    /// A value that this code does not understand (algorithm, structure version, ...).
    #[error("unsupported value: {0}")]
    Unsupported(&'static str),
    /// A TPMT_PUBLIC whose type is none of RSA, ECC, KEYEDHASH, SYMCIPHER.
    #[error("unknown TPM object type {0:#06x}")]
    UnknownObjectType(u16),
    /// Bytes follow a structure that must span its buffer exactly.
    #[error("{0} bytes follow the TPM structure")]
    TrailingBytes(usize),
    /// A structure exceeds the limits of its size field.
    #[error("structure too large for its size field")]
    TooLarge,
}

/// A malformed frame on one of the socket protocols or the SVSM page. The connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A command code the protocol does not define (or we do not serve).
    #[error("unknown command code {0:#x}")]
    UnknownCommand(u32),
    /// A command this server understands but does not implement.
    #[error("unsupported command {0}")]
    Unsupported(&'static str),
    /// A length field larger than the protocol allows.
    #[error("length {len} exceeds the maximum of {max}")]
    Oversize {
        /// Length announced by the peer.
        len: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A length field smaller than a valid message (e.g. a TPM command shorter than its header).
    #[error("length {len} is below the minimum of {min}")]
    Undersize {
        /// Length announced by the peer.
        len: u64,
        /// Smallest allowed.
        min: u64,
    },
    /// The TPM command's own size field disagrees with the frame's length.
    #[error("TPM command header says {header} bytes, frame carries {frame}")]
    InnerSizeMismatch {
        /// Size in the TPM header.
        header: u32,
        /// Size in the frame.
        frame: u32,
    },
    /// A field holds a value the protocol forbids (e.g. locality out of range).
    #[error("invalid {field}: {value:#x}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// The value received.
        value: u64,
    },
    /// A fixed-size message arrived with the wrong number of bytes.
    #[error("message body of {got} bytes, expected {expected}")]
    BadBodyLength {
        /// Bytes received.
        got: usize,
        /// Bytes the command defines.
        expected: usize,
    },
    /// The buffer ended before the frame did (only for complete, non-streaming inputs such as the SVSM page).
    #[error("truncated frame: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
}

/// Failures of the vTPM service as a whole (platform state machine + engine).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VtpmError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Storage failed outside an engine call (e.g. reading the manufacture record).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A TPM command during manufacturing failed or returned unexpected bytes.
    #[error("manufacturing step '{step}' failed: {error}")]
    Manufacture {
        /// The step that failed.
        step: &'static str,
        /// What went wrong.
        error: MarshalError,
    },
    /// The store holds TPM state but no record that manufacturing finished, or the reverse.
    #[error("{0}")]
    Inconsistent(&'static str),
    /// A locality outside 0..=4.
    #[error("locality {0} is out of range (0..=4)")]
    BadLocality(u8),
}
