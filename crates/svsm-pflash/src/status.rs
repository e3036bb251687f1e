//! The Intel/Sharp command set and status register, and what each status means for a caller.

use svsm_block::{BlockError, IoCause, IoOp};

/// Return to read-array mode: reads return flash contents.
pub const CMD_READ_ARRAY: u8 = 0xFF;
/// Reads return the status register.
pub const CMD_READ_STATUS: u8 = 0x70;
/// Clears the error bits of the status register.
pub const CMD_CLEAR_STATUS: u8 = 0x50;
/// Word program setup; the next write is the data.
pub const CMD_PROGRAM: u8 = 0x40;
/// Alternative word program setup code.
pub const CMD_PROGRAM_ALT: u8 = 0x10;
/// Buffered program setup: then a word count minus one, the data words, and [`CMD_CONFIRM`].
pub const CMD_BUFFERED_PROGRAM: u8 = 0xE8;
/// Block erase setup; erases the block addressed on [`CMD_CONFIRM`].
pub const CMD_BLOCK_ERASE: u8 = 0x20;
/// Confirms an erase or a buffered program.
pub const CMD_CONFIRM: u8 = 0xD0;
/// Reads return manufacturer and device identifiers.
pub const CMD_READ_ID: u8 = 0x90;
/// Reads return the CFI query table.
pub const CMD_CFI_QUERY: u8 = 0x98;

/// Write state machine ready: the last program or erase has finished (or, after [`CMD_BUFFERED_PROGRAM`],
/// the write buffer is available).
pub const SR_READY: u8 = 0x80;
/// An erase is suspended. The driver never suspends, so a device reporting this is misbehaving.
pub const SR_ERASE_SUSPENDED: u8 = 0x40;
/// The erase (or a clear-lock) failed.
pub const SR_ERASE_ERROR: u8 = 0x20;
/// The program (or a set-lock) failed.
pub const SR_PROGRAM_ERROR: u8 = 0x10;
/// The programming voltage was too low: the operation was aborted.
pub const SR_VPP_LOW: u8 = 0x08;
/// A program is suspended. The driver never suspends, so a device reporting this is misbehaving.
pub const SR_PROGRAM_SUSPENDED: u8 = 0x04;
/// The addressed block is locked (write-protected): the operation was refused.
pub const SR_BLOCK_LOCKED: u8 = 0x02;
/// Every bit that reports a failed operation.
pub const SR_ERRORS: u8 = SR_ERASE_ERROR | SR_PROGRAM_ERROR | SR_VPP_LOW | SR_BLOCK_LOCKED;

/// What went wrong, from a ready status with error bits, most specific cause first.
pub fn error_meaning(status: u8) -> &'static str {
    if status & SR_BLOCK_LOCKED != 0 {
        "block is locked (write-protected); the host exposes this flash read-only"
    } else if status & SR_VPP_LOW != 0 {
        "programming voltage low; the operation was aborted"
    } else if status & (SR_ERASE_ERROR | SR_PROGRAM_ERROR) == SR_ERASE_ERROR | SR_PROGRAM_ERROR {
        "improper command sequence"
    } else if status & SR_ERASE_ERROR != 0 {
        "erase failed (QEMU also reports a read-only pflash this way)"
    } else {
        "program failed (QEMU also reports a read-only pflash this way)"
    }
}

/// Judges a status byte read while waiting for an operation: `Ok(None)` still busy, `Ok(Some(()))` finished
/// cleanly, or the precise error.
pub fn check(status: u8, op: IoOp, lba: u64) -> Result<Option<()>, BlockError> {
    if status & SR_READY == 0 {
        return Ok(None);
    }
    if status & (SR_ERASE_SUSPENDED | SR_PROGRAM_SUSPENDED) != 0 {
        return Err(BlockError::DeviceMisbehaved {
            op,
            detail: "flash status reports a suspended operation although none was suspended",
        });
    }
    if status & SR_ERRORS != 0 {
        return Err(BlockError::Io {
            op,
            lba,
            cause: IoCause::DeviceStatus { status: u32::from(status), meaning: error_meaning(status) },
        });
    }
    Ok(Some(()))
}
