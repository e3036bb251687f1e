//! A device held in memory: the reference backend the conformance suite and the store's tests start from.

use alloc::vec;
use alloc::vec::Vec;

use crate::api::{BlockDevice, DeviceInfo, WriteMode};
use crate::error::BlockError;

/// A RAM-backed block device. Writes are immediately "durable" (there is no power to lose).
#[derive(Clone)]
pub struct MemDisk {
    info: DeviceInfo,
    data: Vec<u8>,
}

impl core::fmt::Debug for MemDisk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemDisk").field("info", &self.info).finish_non_exhaustive()
    }
}

impl MemDisk {
    /// A zero-filled device of `num_blocks` blocks of `block_size` bytes.
    pub fn new(block_size: u32, num_blocks: u64) -> Result<Self, BlockError> {
        let info = DeviceInfo::new(block_size, num_blocks, false)?;
        let len = usize::try_from(info.capacity_bytes())
            .map_err(|_| BlockError::NoMemory { op: crate::IoOp::Setup, bytes: usize::MAX })?;
        Ok(Self { info, data: vec![0; len] })
    }

    /// A device whose contents are `image` (its length must be a whole number of blocks).
    pub fn from_image(block_size: u32, image: Vec<u8>) -> Result<Self, BlockError> {
        let probe = DeviceInfo::new(block_size, 0, false)?;
        if !image.len().is_multiple_of(block_size as usize) {
            return Err(BlockError::Misaligned { len: image.len(), block_size: probe.block_size });
        }
        let info = DeviceInfo::new(block_size, (image.len() / block_size as usize) as u64, false)?;
        Ok(Self { info, data: image })
    }

    /// Makes the device refuse writes from now on.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.info.read_only = read_only;
    }

    /// The whole device contents.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// Mutable access to the contents, for tests that play the host tampering with the medium.
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Consumes the device, returning its contents.
    pub fn into_image(self) -> Vec<u8> {
        self.data
    }

    fn byte_range(&self, lba: u64, blocks: u64) -> core::ops::Range<usize> {
        // check_transfer proved lba + blocks <= num_blocks, and the whole image fits in memory.
        let start = (lba * u64::from(self.info.block_size)) as usize;
        let len = (blocks * u64::from(self.info.block_size)) as usize;
        start..start + len
    }
}

impl BlockDevice for MemDisk {
    fn info(&self) -> DeviceInfo {
        self.info
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let blocks = self.info.check_transfer(lba, buf.len())?;
        buf.copy_from_slice(&self.data[self.byte_range(lba, blocks)]);
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8], _mode: WriteMode) -> Result<(), BlockError> {
        let blocks = self.info.check_write(lba, buf.len())?;
        let range = self.byte_range(lba, blocks);
        self.data[range].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}
