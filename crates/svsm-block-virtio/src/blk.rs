//! `VirtioBlk`: virtio-drivers' `VirtIOBlk` as an [`svsm_block::BlockDevice`] that survives a hostile host.
//!
//! What this adds to the upstream driver:
//! * **Many-page requests.** One request moves up to [`VirtioBlkConfig::max_transfer_bytes`] (1 MiB by
//!   default) in one descriptor; longer transfers are split. Upstream COCONUT-SVSM moves one page per request.
//! * **Bounded waits.** Reads and writes use the driver's non-blocking API and poll the used ring at most
//!   [`VirtioBlkConfig::poll_limit`] times; a device that never answers yields `IoCause::Timeout` instead of
//!   a guest spinning forever. (Flush and GET_ID have no non-blocking form upstream; see the crate docs.)
//! * **Protocol checks.** A used-ring id we did not submit, a completion without a request (duplicates,
//!   `used.idx` jumps), a status byte virtio-blk does not define, a capacity that changes during probe, a
//!   config generation that never settles, or an invalid `blk_size` each give a precise [`BlockError`].
//! * **Poisoning.** After a ring-level violation or a timeout the request may still be in the device's hands,
//!   so the handle refuses all further I/O and never completes that request (completing it would copy bounce
//!   data into buffers that no longer exist). Dropping the handle returns the rings to the pool: they are
//!   host-shared memory the host could write at any time anyway, and the driver never trusts their contents.
//!   The abandoned request's bounce pages stay allocated (their addresses are internal to the driver), a leak
//!   of at most one request per poisoned device.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use svsm_block::{BlockDevice, BlockError, DeviceInfo, IoCause, IoOp, WriteMode};
use virtio_drivers::Error as VirtioError;
use virtio_drivers::device::blk::{BlkReq, BlkResp, RespStatus, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

use crate::api::BounceHal;
use crate::error::{check_status, driver_error};
use crate::transport::{BoundedTransport, read_consistent_bounded};

/// `VIRTIO_BLK_F_BLK_SIZE`: `blk_size` in config space is valid.
const F_BLK_SIZE: u64 = 1 << 6;
/// Config-space offsets of `struct virtio_blk_config` (virtio 1.2, 5.2.4).
const CFG_CAPACITY_LOW: usize = 0;
const CFG_CAPACITY_HIGH: usize = 4;
const CFG_BLK_SIZE: usize = 20;
/// Largest logical block size we accept from a device (the Linux driver's limit is one page; 64 KiB leaves
/// room for large-sector media while keeping bounce buffers bounded).
pub const MAX_BLOCK_SIZE: u32 = 64 * 1024;

/// Tunables of a [`VirtioBlk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioBlkConfig {
    /// Largest data transfer in one virtio request (rounded down to whole blocks, at least one block).
    pub max_transfer_bytes: usize,
    /// Used-ring polls before a read or write is declared timed out.
    pub poll_limit: u64,
}

impl Default for VirtioBlkConfig {
    fn default() -> Self {
        VirtioBlkConfig { max_transfer_bytes: 1 << 20, poll_limit: 1 << 32 }
    }
}

/// A virtio-blk device as a [`BlockDevice`], driven by the real `virtio_drivers::device::blk::VirtIOBlk`.
pub struct VirtioBlk<H: BounceHal, T: Transport> {
    driver: VirtIOBlk<H, BoundedTransport<T>>,
    info: DeviceInfo,
    sectors_per_block: u64,
    chunk_blocks: u64,
    config: VirtioBlkConfig,
    broken: Option<&'static str>,
}

impl<H: BounceHal, T: Transport> core::fmt::Debug for VirtioBlk<H, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioBlk")
            .field("info", &self.info)
            .field("config", &self.config)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

const POISONED: &str = "the device broke the protocol earlier; this handle is unusable (re-probe the device)";

impl<H: BounceHal, T: Transport> VirtioBlk<H, T> {
    /// Probes the device behind `transport` with default tunables.
    pub fn new(transport: T) -> Result<Self, BlockError> {
        Self::with_config(transport, VirtioBlkConfig::default())
    }

    /// Probes the device behind `transport`.
    pub fn with_config(transport: T, config: VirtioBlkConfig) -> Result<Self, BlockError> {
        let op = IoOp::Setup;
        let misbehaved = |detail| BlockError::DeviceMisbehaved { op, detail };
        let unstable = Arc::new(AtomicBool::new(false));
        let mut t = BoundedTransport::new(transport, unstable.clone());
        if t.device_type() != DeviceType::Block {
            return Err(BlockError::Io { op, lba: 0, cause: IoCause::NotSupported });
        }
        // VirtIOBlk reads neither the offered features nor blk_size, so look first; it resets the device
        // and negotiates again itself.
        t.set_status(DeviceStatus::empty());
        t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let features = t.read_device_features();
        let has_blk_size = features & F_BLK_SIZE != 0;
        let (capacity, blk_size) = read_consistent_bounded(&t, || {
            let low: u32 = t.read_config_space(CFG_CAPACITY_LOW)?;
            let high: u32 = t.read_config_space(CFG_CAPACITY_HIGH)?;
            let blk_size: u32 = if has_blk_size { t.read_config_space(CFG_BLK_SIZE)? } else { 512 };
            Ok((u64::from(low) | (u64::from(high) << 32), blk_size))
        })
        .ok_or(misbehaved("config generation never settled"))?
        .map_err(|e| driver_error(op, 0, e))?;
        if !(SECTOR_SIZE as u32..=MAX_BLOCK_SIZE).contains(&blk_size) || !blk_size.is_power_of_two() {
            return Err(BlockError::InvalidGeometry { block_size: blk_size, num_blocks: capacity });
        }
        let driver = VirtIOBlk::<H, _>::new(t).map_err(|e| {
            if unstable.load(Ordering::SeqCst) {
                misbehaved("config generation never settled")
            } else {
                driver_error(op, 0, e)
            }
        })?;
        if driver.capacity() != capacity {
            return Err(misbehaved("capacity changed while the device was probed"));
        }
        let sectors_per_block = u64::from(blk_size) / SECTOR_SIZE as u64;
        let info = DeviceInfo::new(blk_size, capacity / sectors_per_block, driver.readonly())?;
        let chunk_blocks = (config.max_transfer_bytes / blk_size as usize).max(1) as u64;
        Ok(VirtioBlk { driver, info, sectors_per_block, chunk_blocks, config, broken: None })
    }

    /// Why the handle refuses I/O, if it does.
    pub fn broken(&self) -> Option<&'static str> {
        self.broken
    }

    /// The device's 20-byte id string (GET_ID) and its length up to the first NUL.
    ///
    /// Like flush, this uses the driver's blocking call, which waits without a bound.
    pub fn device_id(&mut self) -> Result<([u8; 20], usize), BlockError> {
        let op = IoOp::Setup;
        self.usable(op)?;
        let shares_before = H::failed_shares();
        let mut id = [0u8; 20];
        let r = self.driver.device_id(&mut id);
        self.after_blocking(op, shares_before)?;
        match r {
            Ok(len) => Ok((id, len)),
            Err(e) => Err(self.classify(op, 0, e)),
        }
    }

    fn usable(&self, op: IoOp) -> Result<(), BlockError> {
        match self.broken {
            Some(_) => Err(BlockError::DeviceMisbehaved { op, detail: POISONED }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: BlockError) -> BlockError {
        self.broken = Some(match &error {
            BlockError::DeviceMisbehaved { detail, .. } => detail,
            BlockError::Io { cause: IoCause::Timeout, .. } => "the device never completed a request",
            _ => "a request was abandoned in flight",
        });
        error
    }

    /// Errors that leave the queue consistent are returned as they are; ring-level ones poison the handle.
    fn classify(&mut self, op: IoOp, lba: u64, e: VirtioError) -> BlockError {
        let mapped = driver_error(op, lba, e);
        match e {
            VirtioError::IoError | VirtioError::Unsupported | VirtioError::NotReady => mapped,
            _ => self.poison(mapped),
        }
    }

    /// After a request was popped: a further used entry means the device completed something twice.
    fn after_blocking(&mut self, op: IoOp, shares_before: u64) -> Result<(), BlockError> {
        if H::failed_shares() != shares_before {
            return Err(self.poison(BlockError::NoMemory { op, bytes: self.config.max_transfer_bytes }));
        }
        if self.driver.peek_used().is_some() {
            return Err(self.poison(BlockError::DeviceMisbehaved {
                op,
                detail: "used ring holds completions for requests never made (duplicate or used.idx jump)",
            }));
        }
        Ok(())
    }

    /// Polls until `token` is at the head of the used ring.
    fn await_used(
        &mut self,
        op: IoOp,
        lba: u64,
        token: u16,
        shares_before: u64,
        bytes: usize,
    ) -> Result<(), BlockError> {
        if H::failed_shares() != shares_before {
            // The device was handed an unusable address; the request cannot be trusted or reclaimed.
            return Err(self.poison(BlockError::NoMemory { op, bytes }));
        }
        for _ in 0..self.config.poll_limit {
            match self.driver.peek_used() {
                Some(t) if t == token => return Ok(()),
                Some(_) => {
                    return Err(self.poison(BlockError::DeviceMisbehaved {
                        op,
                        detail: "used ring names a request that was not submitted",
                    }));
                }
                None => core::hint::spin_loop(),
            }
        }
        Err(self.poison(BlockError::Io { op, lba, cause: IoCause::Timeout }))
    }

    fn finish(
        &mut self,
        op: IoOp,
        lba: u64,
        completed: Result<(), VirtioError>,
        status: RespStatus,
        shares_before: u64,
    ) -> Result<(), BlockError> {
        self.after_blocking(op, shares_before)?;
        match completed {
            // The driver's own mapping folds undefined status bytes into IoError; we read the byte ourselves.
            Ok(()) | Err(VirtioError::IoError | VirtioError::Unsupported | VirtioError::NotReady) => {
                check_status(op, lba, status)
            }
            Err(e) => Err(self.classify(op, lba, e)),
        }
    }

    fn sector_of(&self, lba: u64) -> Result<usize, BlockError> {
        // lba + blocks <= num_blocks was checked, and num_blocks * sectors_per_block <= capacity fits u64.
        let sector = lba * self.sectors_per_block;
        usize::try_from(sector).map_err(|_| BlockError::OutOfRange {
            lba,
            blocks: 1,
            num_blocks: self.info.num_blocks,
        })
    }

    fn read_chunk(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let op = IoOp::Read;
        let block_id = self.sector_of(lba)?;
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        let shares_before = H::failed_shares();
        // SAFETY: `H: BounceHal`, so the device only ever sees bounce copies of `req`, `buf` and `resp`; the
        // driver itself touches them again only in `complete_read_blocks`, which we call with these same
        // buffers while they are still alive. If we give up instead (poisoned handle), we never complete the
        // request, so nothing accesses the buffers after they go out of scope.
        let token = unsafe { self.driver.read_blocks_nb(block_id, &mut req, buf, &mut resp) }
            .map_err(|e| self.classify(op, lba, e))?;
        self.await_used(op, lba, token, shares_before, buf.len())?;
        // SAFETY: the same buffers `read_blocks_nb` was given for `token`, which is at the head of the used ring.
        let completed = unsafe { self.driver.complete_read_blocks(token, &req, buf, &mut resp) };
        self.finish(op, lba, completed, resp.status(), shares_before)
    }

    fn write_chunk(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let op = IoOp::Write;
        let block_id = self.sector_of(lba)?;
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        let shares_before = H::failed_shares();
        // SAFETY: as in `read_chunk`: bounce copies only, and the buffers are either passed again to
        // `complete_write_blocks` while alive or never touched again.
        let token = unsafe { self.driver.write_blocks_nb(block_id, &mut req, buf, &mut resp) }
            .map_err(|e| self.classify(op, lba, e))?;
        self.await_used(op, lba, token, shares_before, buf.len())?;
        // SAFETY: the same buffers `write_blocks_nb` was given for `token`, which is at the head of the used ring.
        let completed = unsafe { self.driver.complete_write_blocks(token, &req, buf, &mut resp) };
        self.finish(op, lba, completed, resp.status(), shares_before)
    }
}

impl<H: BounceHal, T: Transport> BlockDevice for VirtioBlk<H, T> {
    fn info(&self) -> DeviceInfo {
        self.info
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let blocks = self.info.check_transfer(lba, buf.len())?;
        if blocks == 0 {
            return Ok(());
        }
        self.usable(IoOp::Read)?;
        let chunk_bytes = self.chunk_blocks as usize * self.info.block_size as usize;
        for (i, chunk) in buf.chunks_mut(chunk_bytes).enumerate() {
            self.read_chunk(lba + i as u64 * self.chunk_blocks, chunk)?;
        }
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError> {
        let blocks = self.info.check_write(lba, buf.len())?;
        if blocks == 0 {
            return Ok(());
        }
        self.usable(IoOp::Write)?;
        let chunk_bytes = self.chunk_blocks as usize * self.info.block_size as usize;
        for (i, chunk) in buf.chunks(chunk_bytes).enumerate() {
            self.write_chunk(lba + i as u64 * self.chunk_blocks, chunk)?;
        }
        match mode {
            WriteMode::Cached => Ok(()),
            // virtio-blk has no FUA: a write followed by a flush is the durable form.
            WriteMode::Durable => self.flush(),
        }
    }

    /// Flushes the device's write cache.
    ///
    /// Without `VIRTIO_BLK_F_FLUSH` the driver sends nothing and succeeds: per virtio 1.2 section 5.2.6.3 such a
    /// device is in write-through mode, so completed writes are already durable.
    fn flush(&mut self) -> Result<(), BlockError> {
        let op = IoOp::Flush;
        if self.info.read_only {
            return Ok(());
        }
        self.usable(op)?;
        let shares_before = H::failed_shares();
        let r = self.driver.flush();
        self.after_blocking(op, shares_before)?;
        r.map_err(|e| self.classify(op, 0, e))
    }
}
