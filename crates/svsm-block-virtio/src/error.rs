//! How driver outcomes become precise [`BlockError`]s, and the errors of the HAL plumbing.

use svsm_block::{BlockError, IoCause, IoOp};
use virtio_drivers::Error as VirtioError;
use virtio_drivers::device::blk::RespStatus;

/// A page-state change failed (on SNP: the hypervisor refused the request or `PVALIDATE` failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("page-state change of {pages} pages at {paddr:#x} failed with code {code:#x}")]
pub struct PageStateError {
    /// First guest-physical address.
    pub paddr: u64,
    /// Pages in the request.
    pub pages: usize,
    /// Platform-specific failure code (GHCB or PVALIDATE return value).
    pub code: u64,
}

/// Why a bounce pool could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool already has a region.
    #[error("the bounce pool is already installed")]
    AlreadyInstalled,
    /// The region is empty, not page aligned, or its addresses overflow.
    #[error("the bounce region is empty, unaligned or overflows")]
    BadRegion,
    /// Converting the region to shared failed.
    #[error(transparent)]
    PageState(#[from] PageStateError),
    /// Host memory for the region could not be allocated.
    #[error("no memory for a bounce region of {0} bytes")]
    NoMemory(usize),
}

/// The meaning we attach to `VIRTIO_BLK_S_IOERR`.
pub(crate) const IOERR_MEANING: &str = "VIRTIO_BLK_S_IOERR";
/// virtio-drivers folds IOERR and undefined status bytes into one error for the requests whose status we
/// cannot see (flush).
pub(crate) const IOERR_OR_UNDEFINED: &str = "VIRTIO_BLK_S_IOERR or an undefined status byte";

/// Maps the status byte of a completed read or write.
///
/// We see the raw byte (our own `BlkResp`), so undefined values are distinguished from IOERR: a status the
/// protocol does not define is the device breaking the protocol. The bounce buffer of the status byte is
/// pre-filled with 0xFF, so a device that never wrote the status lands here too.
pub(crate) fn check_status(op: IoOp, lba: u64, status: RespStatus) -> Result<(), BlockError> {
    match status {
        RespStatus::OK => Ok(()),
        RespStatus::IO_ERR => Err(BlockError::Io {
            op,
            lba,
            cause: IoCause::DeviceStatus { status: 1, meaning: IOERR_MEANING },
        }),
        RespStatus::UNSUPPORTED => Err(BlockError::Io { op, lba, cause: IoCause::NotSupported }),
        _ => Err(BlockError::DeviceMisbehaved {
            op,
            detail: "status byte is not one virtio-blk defines (or was never written)",
        }),
    }
}

/// Maps an error the driver returned.
pub(crate) fn driver_error(op: IoOp, lba: u64, e: VirtioError) -> BlockError {
    let misbehaved = |detail| BlockError::DeviceMisbehaved { op, detail };
    match e {
        VirtioError::IoError => BlockError::Io {
            op,
            lba,
            cause: IoCause::DeviceStatus { status: 1, meaning: IOERR_OR_UNDEFINED },
        },
        VirtioError::Unsupported => BlockError::Io { op, lba, cause: IoCause::NotSupported },
        VirtioError::DmaError => BlockError::NoMemory { op, bytes: 2 * virtio_drivers::PAGE_SIZE },
        VirtioError::WrongToken => misbehaved("used ring names a request that was not submitted"),
        VirtioError::NotReady => misbehaved("status byte NOT_READY (3) is not one virtio-blk defines"),
        VirtioError::QueueFull => misbehaved("queue full: an earlier request was never completed"),
        VirtioError::AlreadyUsed => misbehaved("queue 0 claimed to be in use before the driver set it up"),
        VirtioError::InvalidParam => {
            // The only InvalidParam VirtIOBlk::new returns: the device's queue is smaller than the driver's 16.
            BlockError::Io { op, lba, cause: IoCause::NotSupported }
        }
        VirtioError::ConfigSpaceTooSmall | VirtioError::ConfigSpaceMissing => {
            misbehaved("config space smaller than virtio-blk's")
        }
        VirtioError::SocketDeviceError(_) => misbehaved("unexpected socket-device error from a block device"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_precise_error() {
        assert_eq!(check_status(IoOp::Read, 3, RespStatus::OK), Ok(()));
        assert!(matches!(
            check_status(IoOp::Read, 3, RespStatus::IO_ERR),
            Err(BlockError::Io { lba: 3, cause: IoCause::DeviceStatus { status: 1, .. }, .. })
        ));
        assert!(matches!(
            check_status(IoOp::Write, 0, RespStatus::UNSUPPORTED),
            Err(BlockError::Io { cause: IoCause::NotSupported, .. })
        ));
        assert!(matches!(
            check_status(IoOp::Write, 0, RespStatus::NOT_READY),
            Err(BlockError::DeviceMisbehaved { op: IoOp::Write, .. })
        ));
    }

    #[test]
    fn driver_errors_map_by_kind() {
        assert!(matches!(driver_error(IoOp::Setup, 0, VirtioError::DmaError), BlockError::NoMemory { .. }));
        assert!(matches!(
            driver_error(IoOp::Flush, 0, VirtioError::WrongToken),
            BlockError::DeviceMisbehaved { op: IoOp::Flush, .. }
        ));
        assert!(matches!(
            driver_error(IoOp::Flush, 0, VirtioError::Unsupported),
            BlockError::Io { cause: IoCause::NotSupported, .. }
        ));
        assert!(matches!(
            driver_error(IoOp::Flush, 0, VirtioError::IoError),
            BlockError::Io { cause: IoCause::DeviceStatus { status: 1, .. }, .. }
        ));
    }
}
