//! Errors a block device reports.
//!
//! Each variant names one failure a caller reacts to differently: a caller bug (range, alignment, read-only),
//! a transient or media failure of the device, or a device that broke its protocol (which, for a host-provided
//! device, is hostile behaviour and must never be retried blindly).

/// The operation that failed, for error reports and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoOp {
    /// A read of blocks.
    Read,
    /// A write of blocks.
    Write,
    /// A flush (cache barrier).
    Flush,
    /// Device setup or probing.
    Setup,
}

impl core::fmt::Display for IoOp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Flush => "flush",
            IoOp::Setup => "setup",
        })
    }
}

/// Why a device I/O failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoCause {
    /// The host OS returned this errno (FileDisk).
    Os {
        /// Raw `errno` value.
        errno: i32,
    },
    /// The device completed the request with an error status (virtio `VIRTIO_BLK_S_IOERR`, a flash status
    /// register error bit, ...).
    DeviceStatus {
        /// The raw status the device reported.
        status: u32,
        /// What the status means.
        meaning: &'static str,
    },
    /// The device does not implement the operation (e.g. virtio-blk without `VIRTIO_BLK_F_FLUSH`).
    NotSupported,
    /// A fault injected by a test wrapper.
    Injected,
    /// The (simulated) power was cut; the device is gone until power-cycled.
    PowerLoss,
    /// The device timed out.
    Timeout,
}

impl core::fmt::Display for IoCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IoCause::Os { errno } => write!(f, "OS error {errno}"),
            IoCause::DeviceStatus { status, meaning } => write!(f, "device status {status:#x} ({meaning})"),
            IoCause::NotSupported => f.write_str("operation not supported by the device"),
            IoCause::Injected => f.write_str("injected fault"),
            IoCause::PowerLoss => f.write_str("power lost"),
            IoCause::Timeout => f.write_str("device timed out"),
        }
    }
}

/// A block-device failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The request extends past the end of the device.
    #[error("blocks {lba}..{lba}+{blocks} are outside the device ({num_blocks} blocks)")]
    OutOfRange {
        /// First block requested.
        lba: u64,
        /// Blocks requested.
        blocks: u64,
        /// Device capacity in blocks.
        num_blocks: u64,
    },
    /// The buffer is not a whole number of blocks.
    #[error("buffer of {len} bytes is not a whole number of {block_size}-byte blocks")]
    Misaligned {
        /// Buffer length in bytes.
        len: usize,
        /// Device block size.
        block_size: u32,
    },
    /// A write was sent to a read-only device.
    #[error("the device is read-only")]
    ReadOnly,
    /// The geometry is not one this interface allows (block size not a power of two >= 512, or too large).
    #[error("invalid device geometry: block size {block_size}, {num_blocks} blocks")]
    InvalidGeometry {
        /// Reported block size.
        block_size: u32,
        /// Reported block count.
        num_blocks: u64,
    },
    /// The device failed the operation.
    #[error("device {op} failed at block {lba}: {cause}")]
    Io {
        /// What was attempted.
        op: IoOp,
        /// First block of the failed request (0 for flush and setup).
        lba: u64,
        /// Why it failed.
        cause: IoCause,
    },
    /// The device broke its own protocol (a used-ring id it never got, a length out of range, a config value
    /// that changed under us, a flash status that cannot happen). Treat as hostile; do not retry blindly.
    #[error("device misbehaved during {op}: {detail}")]
    DeviceMisbehaved {
        /// What was attempted.
        op: IoOp,
        /// What the device did wrong.
        detail: &'static str,
    },
    /// Memory for a transfer (e.g. a shared bounce buffer) could not be obtained.
    #[error("out of memory for a {op} of {bytes} bytes")]
    NoMemory {
        /// What was attempted.
        op: IoOp,
        /// Bytes that were needed.
        bytes: usize,
    },
}

impl BlockError {
    /// An I/O error with an OS errno, as FileDisk reports them.
    pub fn os(op: IoOp, lba: u64, errno: i32) -> Self {
        BlockError::Io { op, lba, cause: IoCause::Os { errno } }
    }
}
