//! What the model reports when a driver breaks the virtio protocol.
//!
//! These are *driver* bugs as the device sees them. A real device would typically set
//! `DEVICE_NEEDS_RESET` and stop; the model does the same and keeps the error for the test to assert on.

/// A protocol violation by the driver, seen from the device side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The driver handed the device an address range outside registered guest RAM.
    #[error("address {gpa:#x}+{len} is outside guest RAM")]
    OutsideGuestRam {
        /// Guest-physical start.
        gpa: u64,
        /// Length in bytes.
        len: usize,
    },
    /// A ring field is not naturally aligned.
    #[error("address {gpa:#x} is not {align}-byte aligned")]
    Misaligned {
        /// Guest-physical address.
        gpa: u64,
        /// Required alignment.
        align: u64,
    },
    /// A registered region's end overflows u64.
    #[error("region {gpa:#x}+{len} overflows")]
    RegionOverflow {
        /// Start.
        gpa: u64,
        /// Length.
        len: usize,
    },
    /// Two registered regions overlap.
    #[error("region {gpa:#x}+{len} overlaps an existing region")]
    RegionOverlap {
        /// Start.
        gpa: u64,
        /// Length.
        len: usize,
    },
    /// The driver notified a queue it never set up, or a queue other than 0.
    #[error("notify of queue {0}, which is not set up")]
    QueueNotReady(u16),
    /// The queue size the driver set is not a power of two within the device maximum.
    #[error("queue size {0} is invalid")]
    BadQueueSize(u32),
    /// The driver published more new available entries than the queue holds.
    #[error("available index moved by {0}, more than the queue size")]
    AvailOverrun(u16),
    /// A descriptor index is out of range.
    #[error("descriptor index {0} is out of range")]
    BadDescriptorIndex(u32),
    /// A descriptor chain loops or is longer than its table.
    #[error("descriptor chain longer than its table (loop?)")]
    ChainTooLong,
    /// An indirect descriptor is malformed (nested, chained, or a bad table length).
    #[error("malformed indirect descriptor: {0}")]
    BadIndirect(&'static str),
    /// A device-readable descriptor follows a device-writable one.
    #[error("device-readable descriptor after a writable one")]
    ReadableAfterWritable,
    /// The request does not have the shape virtio-blk requires.
    #[error("malformed virtio-blk request: {0}")]
    BadRequest(&'static str),
    /// The backing store failed in a way the model cannot express as a status (a test setup problem).
    #[error("backing store failed: {0}")]
    Backing(String),
}
