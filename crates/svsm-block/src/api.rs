//! The block-device contract every backend implements.
//!
//! The trait is deliberately small and synchronous: an SVSM kernel polls its devices, and the store above it
//! needs exactly four things from a device: its geometry, reads, writes with a chosen durability, and a flush
//! barrier. Everything is object-safe so several devices (one per volume) can be held as `Box<dyn BlockDevice>`.

use crate::error::BlockError;

/// Smallest block size any backend may report. Matches the virtio-blk sector.
pub const MIN_BLOCK_SIZE: u32 = 512;

/// How durable a write must be when `write_blocks` returns.
///
/// `Cached` writes may sit in a volatile cache until the next [`BlockDevice::flush`]; a power cut can lose,
/// reorder or tear them (at sector granularity). `Durable` is forced unit access: *this* write is on stable
/// media when the call returns. It says nothing about earlier cached writes; use `flush` for those. Backends
/// without native FUA implement it as write followed by flush, which is strictly stronger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// May be lost on power failure until the next flush.
    Cached,
    /// On stable media when the call returns (FUA).
    Durable,
}

/// Geometry and capabilities of a device, fixed for the lifetime of the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Bytes per block: a power of two, at least [`MIN_BLOCK_SIZE`].
    pub block_size: u32,
    /// Capacity in blocks.
    pub num_blocks: u64,
    /// Writes are refused with [`BlockError::ReadOnly`].
    pub read_only: bool,
}

impl DeviceInfo {
    /// Builds device info, rejecting block sizes the interface does not allow.
    pub fn new(block_size: u32, num_blocks: u64, read_only: bool) -> Result<Self, BlockError> {
        if block_size < MIN_BLOCK_SIZE || !block_size.is_power_of_two() {
            return Err(BlockError::InvalidGeometry { block_size, num_blocks });
        }
        if num_blocks.checked_mul(u64::from(block_size)).is_none() {
            return Err(BlockError::InvalidGeometry { block_size, num_blocks });
        }
        Ok(Self { block_size, num_blocks, read_only })
    }

    /// Capacity in bytes. Cannot overflow: [`DeviceInfo::new`] rejects geometries that would.
    pub fn capacity_bytes(&self) -> u64 {
        self.num_blocks * u64::from(self.block_size)
    }

    /// Validates a transfer of `len` bytes starting at block `lba` and returns its length in blocks.
    ///
    /// Every backend calls this first so that range and alignment errors are identical everywhere and no
    /// backend ever does arithmetic on an unchecked request.
    pub fn check_transfer(&self, lba: u64, len: usize) -> Result<u64, BlockError> {
        let block_size = self.block_size as usize;
        if !len.is_multiple_of(block_size) {
            return Err(BlockError::Misaligned { len, block_size: self.block_size });
        }
        let blocks = (len / block_size) as u64;
        match lba.checked_add(blocks) {
            Some(end) if end <= self.num_blocks => Ok(blocks),
            _ => Err(BlockError::OutOfRange { lba, blocks, num_blocks: self.num_blocks }),
        }
    }

    /// As [`DeviceInfo::check_transfer`], and also refuses writes to a read-only device.
    pub fn check_write(&self, lba: u64, len: usize) -> Result<u64, BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.check_transfer(lba, len)
    }
}

/// A block device the SVSM reads and writes: virtio-blk, PFlash, memory, a host file, or a wrapper of one.
///
/// Contract for implementations:
/// * `buf.len()` must be a whole number of blocks ([`BlockError::Misaligned`] otherwise); a zero-length
///   transfer is a range-checked no-op.
/// * A request that does not fit the device is refused whole with [`BlockError::OutOfRange`]; nothing is
///   transferred.
/// * A failed write may have changed any subset of the addressed blocks (like real hardware); a failed read
///   leaves `buf` unspecified. Neither touches blocks outside the request.
/// * Data a device returns is untrusted: it is whatever the host chose. Integrity is the store's job.
pub trait BlockDevice: core::fmt::Debug {
    /// Geometry and capabilities.
    fn info(&self) -> DeviceInfo;

    /// Reads `buf.len() / block_size` blocks starting at `lba`.
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;

    /// Writes `buf.len() / block_size` blocks starting at `lba`, durable per `mode`.
    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError>;

    /// Makes every write that completed before this call durable.
    fn flush(&mut self) -> Result<(), BlockError>;

    /// Bytes per block.
    fn block_size(&self) -> u32 {
        self.info().block_size
    }

    /// Capacity in blocks.
    fn num_blocks(&self) -> u64 {
        self.info().num_blocks
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for alloc::boxed::Box<D> {
    fn info(&self) -> DeviceInfo {
        (**self).info()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        (**self).read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError> {
        (**self).write_blocks(lba, buf, mode)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        (**self).flush()
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn info(&self) -> DeviceInfo {
        (**self).info()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        (**self).read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError> {
        (**self).write_blocks(lba, buf, mode)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        (**self).flush()
    }
}
