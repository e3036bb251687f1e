//! Geometry discovery through the CFI query table (JEDEC JESD68, "Common Flash Interface").
//!
//! The table is host-controlled like everything else the device returns, so every field is range-checked
//! and every product uses checked arithmetic before the driver relies on it.

use crate::api::{BusWidth, FlashMmio};
use crate::error::ProbeError;
use crate::status::{CMD_CFI_QUERY, CMD_READ_ARRAY};

/// Query-table offsets (in device words) the driver reads.
const QRY: u64 = 0x10;
const COMMAND_SET: u64 = 0x13;
const WRITE_BUFFER_LOG2: u64 = 0x2A;
const REGIONS: u64 = 0x2C;
const REGION1_BLOCKS: u64 = 0x2D;
const REGION1_SIZE: u64 = 0x2F;
/// Address the query command is written to (any address works on pflash_cfi01; 0x55 is the CFI convention).
const QUERY_ADDRESS: u64 = 0x55;

/// Intel/Sharp extended command set (what pflash_cfi01 reports).
pub const COMMAND_SET_INTEL_EXTENDED: u16 = 0x0001;
/// Intel standard command set.
pub const COMMAND_SET_INTEL_STANDARD: u16 = 0x0003;

/// The shape of a flash device: uniform erase blocks and an optional write buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per erase block: the block device's block size.
    pub erase_block: u32,
    /// Number of erase blocks.
    pub num_blocks: u64,
    /// Bytes the write buffer holds for buffered programming (a power of two), or 0 to program word by word.
    pub write_buffer: u32,
}

impl Geometry {
    /// Checks the geometry against the bus and the mapped window, and normalises the write buffer: a buffer
    /// that cannot hold two words (or is not a power of two) means word programming, and a buffer larger than
    /// an erase block or than the word count the bus can express is clamped.
    pub fn validate(self, width: BusWidth, window_len: u64) -> Result<Self, ProbeError> {
        let erase_block = u64::from(self.erase_block);
        if erase_block < 512 || !erase_block.is_power_of_two() {
            return Err(ProbeError::EraseBlockSize { erase_block });
        }
        if self.num_blocks == 0 {
            return Err(ProbeError::Empty);
        }
        let exceeds = ProbeError::ExceedsWindow { erase_block, num_blocks: self.num_blocks, window_len };
        match self.num_blocks.checked_mul(erase_block) {
            Some(total) if total <= window_len => {}
            _ => return Err(exceeds),
        }
        let bus = width.bytes();
        // The count field is one bus word: at most 2^(8*bus) words.
        let max_words: u64 = 1u64 << (8 * bus).min(32);
        let max_buffer = (max_words * u64::from(bus)).min(erase_block) as u32;
        let write_buffer = if self.write_buffer >= 2 * bus && self.write_buffer.is_power_of_two() {
            self.write_buffer.min(max_buffer)
        } else {
            0
        };
        Ok(Self { write_buffer, ..self })
    }
}

fn query_byte<M: FlashMmio + ?Sized>(mmio: &mut M, width: BusWidth, index: u64) -> u8 {
    // Query data sits in the low byte of each bus word; index * width is at most 0x30 * 4, inside any
    // window the driver accepts (checked by the caller).
    width.read(mmio, index * u64::from(width.bytes())) as u8
}

/// Reads the geometry from the CFI table and leaves the device in read-array mode.
pub fn query<M: FlashMmio + ?Sized>(mmio: &mut M, width: BusWidth) -> Result<Geometry, ProbeError> {
    let bytes = u64::from(width.bytes());
    // The highest word touched is the query command's; a window too small for it cannot hold a flash.
    if mmio.window_len() < (QUERY_ADDRESS.max(REGION1_SIZE + 1) + 1) * bytes {
        return Err(ProbeError::ExceedsWindow {
            erase_block: 0,
            num_blocks: 0,
            window_len: mmio.window_len(),
        });
    }
    width.write(mmio, 0, u32::from(CMD_READ_ARRAY));
    width.write(mmio, QUERY_ADDRESS * bytes, u32::from(CMD_CFI_QUERY));
    let mut read = |i: u64| query_byte(mmio, width, i);
    let found = [read(QRY), read(QRY + 1), read(QRY + 2)];
    let result = (|| {
        if &found != b"QRY" {
            return Err(ProbeError::NoCfi { found });
        }
        let id = u16::from_le_bytes([read(COMMAND_SET), read(COMMAND_SET + 1)]);
        if id != COMMAND_SET_INTEL_EXTENDED && id != COMMAND_SET_INTEL_STANDARD {
            return Err(ProbeError::UnsupportedCommandSet { id });
        }
        let regions = read(REGIONS);
        if regions != 1 {
            return Err(ProbeError::NonUniform { regions });
        }
        let blocks = u64::from(u16::from_le_bytes([read(REGION1_BLOCKS), read(REGION1_BLOCKS + 1)])) + 1;
        // CFI: region block size is in units of 256 bytes; 0 means 128 bytes.
        let size_units = u64::from(u16::from_le_bytes([read(REGION1_SIZE), read(REGION1_SIZE + 1)]));
        let erase_block = if size_units == 0 { 128 } else { size_units * 256 };
        let buffer_log2 = u32::from(read(WRITE_BUFFER_LOG2));
        // 2^n bytes; n = 0 (one byte) means no useful buffer, absurd n are clamped by validate().
        let write_buffer =
            if buffer_log2 == 0 { 0 } else { 1u32.checked_shl(buffer_log2).unwrap_or(1 << 31) };
        let erase_block =
            u32::try_from(erase_block).map_err(|_| ProbeError::EraseBlockSize { erase_block })?;
        Ok(Geometry { erase_block, num_blocks: blocks, write_buffer })
    })();
    width.write(mmio, 0, u32::from(CMD_READ_ARRAY));
    result?.validate(width, mmio.window_len())
}
