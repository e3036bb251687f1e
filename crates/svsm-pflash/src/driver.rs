//! The flash driver and its block-device face.

use alloc::vec::Vec;

use svsm_block::{BlockDevice, BlockError, DeviceInfo, IoCause, IoOp, WriteMode};

use crate::api::{BusWidth, FlashMmio};
use crate::cfi::{self, Geometry};
use crate::error::ProbeError;
use crate::status::{
    self, CMD_BLOCK_ERASE, CMD_BUFFERED_PROGRAM, CMD_CLEAR_STATUS, CMD_CONFIRM, CMD_PROGRAM, CMD_READ_ARRAY,
    CMD_READ_STATUS,
};

/// Status polls before an operation is declared stuck. QEMU completes every operation before the next
/// access; real parts need up to seconds for an erase, which the caller should cover by raising this.
pub const DEFAULT_POLL_LIMIT: u32 = 1 << 20;

/// How the driver talks to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PflashConfig {
    /// Data-bus width (QEMU x86: [`BusWidth::X8`]).
    pub width: BusWidth,
    /// Status reads per operation before it fails with [`IoCause::Timeout`].
    pub poll_limit: u32,
    /// Refuse writes (e.g. the platform says the host maps this flash read-only). A write-protected device
    /// that is not declared read-only fails each write with a "block is locked" error instead.
    pub read_only: bool,
    /// Program through the write buffer when the device has one (much fewer bus cycles per byte).
    pub buffered_program: bool,
    /// Skip the erase when the new contents only clear bits of the old ones (NOR programming can do that by
    /// itself). Saves erase cycles, e.g. when a log appends into an erased block. The block is still verified.
    pub skip_erase_when_possible: bool,
}

impl PflashConfig {
    /// Defaults for a bus width: buffered programming, erase skipping, [`DEFAULT_POLL_LIMIT`], writable.
    pub const fn new(width: BusWidth) -> Self {
        Self {
            width,
            poll_limit: DEFAULT_POLL_LIMIT,
            read_only: false,
            buffered_program: true,
            skip_erase_when_possible: true,
        }
    }
}

/// A CFI flash (Intel/Sharp command set) as a [`BlockDevice`] of erase-block-sized blocks.
///
/// See the crate documentation for why a block is an erase block and why flush is a no-op. Every write of a
/// block reads it, erases it only when needed, programs only the words that change, waits for the status
/// register to report completion and checks its error bits, then reads the block back and compares.
pub struct Pflash<M> {
    mmio: M,
    config: PflashConfig,
    geometry: Geometry,
    info: DeviceInfo,
    /// One erase block of scratch: the current contents during a write, the read-back during verification.
    scratch: Vec<u8>,
}

impl<M> core::fmt::Debug for Pflash<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pflash")
            .field("config", &self.config)
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

impl<M: FlashMmio> Pflash<M> {
    /// Discovers the geometry with a CFI query, then wraps the device.
    pub fn probe(mut mmio: M, config: PflashConfig) -> Result<Self, ProbeError> {
        let geometry = cfi::query(&mut mmio, config.width)?;
        Self::with_geometry(mmio, config, geometry)
    }

    /// Wraps a device whose geometry the caller already knows (it is still checked against the window).
    pub fn with_geometry(mut mmio: M, config: PflashConfig, geometry: Geometry) -> Result<Self, ProbeError> {
        let geometry = geometry.validate(config.width, mmio.window_len())?;
        let info = DeviceInfo::new(geometry.erase_block, geometry.num_blocks, config.read_only)?;
        let block = geometry.erase_block as usize;
        let mut scratch = Vec::new();
        scratch
            .try_reserve_exact(block)
            .map_err(|_| BlockError::NoMemory { op: IoOp::Setup, bytes: block })?;
        scratch.resize(block, 0);
        config.width.write(&mut mmio, 0, u32::from(CMD_READ_ARRAY));
        Ok(Self { mmio, config, geometry, info, scratch })
    }

    /// The geometry in use (after validation).
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The configuration in use.
    pub fn config(&self) -> PflashConfig {
        self.config
    }

    /// The device access, e.g. for a test to reach the model.
    pub fn mmio(&self) -> &M {
        &self.mmio
    }

    /// Mutable device access.
    pub fn mmio_mut(&mut self) -> &mut M {
        &mut self.mmio
    }

    /// Gives the device access back.
    pub fn into_inner(self) -> M {
        self.mmio
    }

    fn command(&mut self, offset: u64, cmd: u8) {
        self.config.width.write(&mut self.mmio, offset, u32::from(cmd));
    }

    /// Back to a known state after a failure: clear error bits, read-array mode.
    fn recover(&mut self, offset: u64) {
        self.command(offset, CMD_CLEAR_STATUS);
        self.command(offset, CMD_READ_ARRAY);
    }

    /// Polls the status register at `offset` until ready, then judges it.
    fn wait(&mut self, offset: u64, op: IoOp, lba: u64) -> Result<(), BlockError> {
        for _ in 0..self.config.poll_limit {
            let status = self.config.width.read(&mut self.mmio, offset) as u8;
            match status::check(status, op, lba) {
                Ok(None) => continue,
                Ok(Some(())) => return Ok(()),
                Err(e) => {
                    tracing::warn!(status, offset, error = %e, "flash operation failed");
                    self.recover(offset);
                    return Err(e);
                }
            }
        }
        tracing::warn!(offset, polls = self.config.poll_limit, "flash operation did not complete");
        self.recover(offset);
        Err(BlockError::Io { op, lba, cause: IoCause::Timeout })
    }

    /// Reads `buf.len()` bytes of array data at `offset` (both multiples of 4, inside the device).
    fn read_array(&mut self, offset: u64, buf: &mut [u8]) {
        self.command(offset, CMD_READ_ARRAY);
        let mut at = offset;
        for chunk in buf.chunks_mut(4) {
            let word = self.mmio.read32(at).to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(word) {
                *d = s;
            }
            at += 4;
        }
    }

    fn erase(&mut self, base: u64, lba: u64) -> Result<(), BlockError> {
        self.command(base, CMD_BLOCK_ERASE);
        self.command(base, CMD_CONFIRM);
        self.wait(base, IoOp::Write, lba)
    }

    fn program_word(&mut self, offset: u64, word: u32, lba: u64) -> Result<(), BlockError> {
        self.command(offset, CMD_PROGRAM);
        self.config.width.write(&mut self.mmio, offset, word);
        self.wait(offset, IoOp::Write, lba)
    }

    /// Programs `data` (whole bus words, `count >= 2` of them, inside one write-buffer window) at `offset`.
    fn program_buffer(&mut self, offset: u64, data: &[u8], lba: u64) -> Result<(), BlockError> {
        let width = self.config.width;
        let bus = width.bytes() as usize;
        let words = data.len() / bus;
        self.command(offset, CMD_BUFFERED_PROGRAM);
        // Ready after the setup means the write buffer is available.
        self.wait(offset, IoOp::Write, lba)?;
        // `words` <= write_buffer / bus, which validate() keeps within what the count field can express.
        width.write(&mut self.mmio, offset, (words - 1) as u32);
        let mut at = offset;
        for word in data.chunks_exact(bus) {
            width.write(&mut self.mmio, at, width.word(word));
            at += bus as u64;
        }
        self.command(offset, CMD_CONFIRM);
        self.wait(offset, IoOp::Write, lba)
    }

    /// Programs the words of `new` that differ from `current` (which the caller guarantees `new` only clears
    /// bits of) into the erase block at `base`.
    fn program_block(&mut self, base: u64, current: &[u8], new: &[u8], lba: u64) -> Result<(), BlockError> {
        let bus = self.config.width.bytes() as usize;
        let window = if self.config.buffered_program && self.geometry.write_buffer != 0 {
            self.geometry.write_buffer as usize
        } else {
            bus
        };
        for (w, (cur, want)) in current.chunks(window).zip(new.chunks(window)).enumerate() {
            let differs = |i: &usize| cur.get(i * bus..(i + 1) * bus) != want.get(i * bus..(i + 1) * bus);
            let words = want.len() / bus;
            let Some(first) = (0..words).find(differs) else { continue };
            let last = (0..words).rev().find(differs).unwrap_or(first);
            let offset = base + (w * window + first * bus) as u64;
            let span = want.get(first * bus..(last + 1) * bus).unwrap_or_default();
            if last == first {
                // Also the path for single words in buffered mode: a word program is fewer bus cycles than a buffer of one.
                self.program_word(offset, self.config.width.word(span), lba)?;
            } else {
                self.program_buffer(offset, span, lba)?;
            }
        }
        Ok(())
    }

    /// Writes one erase block. `new` is exactly one block.
    fn write_block(&mut self, block: u64, new: &[u8], request_lba: u64) -> Result<(), BlockError> {
        let base = block * u64::from(self.geometry.erase_block);
        let mut current = core::mem::take(&mut self.scratch);
        let result = (|| {
            self.read_array(base, &mut current);
            if current == new {
                return Ok(());
            }
            let only_clears = current.iter().zip(new).all(|(c, n)| c & n == *n);
            if !(self.config.skip_erase_when_possible && only_clears) {
                self.erase(base, request_lba)?;
                current.fill(0xFF);
            }
            self.program_block(base, &current, new, request_lba)?;
            self.read_array(base, &mut current);
            if current != new {
                tracing::warn!(block, "flash read-back differs from the data just programmed");
                return Err(BlockError::DeviceMisbehaved {
                    op: IoOp::Write,
                    detail: "flash reads back different data than was just programmed, although its status \
                             reported success",
                });
            }
            Ok(())
        })();
        self.scratch = current;
        if result.is_err() {
            self.command(base, CMD_READ_ARRAY);
        }
        result
    }

    /// Reads the manufacturer and device identifiers (read-ID, 0x90), for logs: `(manufacturer, device)`.
    /// Only the low byte of each bus word is meaningful on an x8 bus. Leaves the device in read-array mode.
    pub fn read_identifier(&mut self) -> (u32, u32) {
        let width = self.config.width;
        let word = u64::from(width.bytes());
        self.command(0, crate::status::CMD_READ_ID);
        let manufacturer = width.read(&mut self.mmio, 0);
        let device = width.read(&mut self.mmio, word);
        self.command(0, CMD_READ_ARRAY);
        (manufacturer, device)
    }

    /// Reads the status register (for diagnostics), leaving the device in read-array mode.
    pub fn read_status(&mut self) -> u8 {
        self.command(0, CMD_READ_STATUS);
        let status = self.config.width.read(&mut self.mmio, 0) as u8;
        self.command(0, CMD_READ_ARRAY);
        status
    }
}

impl<M: FlashMmio> BlockDevice for Pflash<M> {
    fn info(&self) -> DeviceInfo {
        self.info
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check_transfer(lba, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        // check_transfer proved the range lies inside the device, which validate() proved lies in the window.
        self.read_array(lba * u64::from(self.geometry.erase_block), buf);
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8], _mode: WriteMode) -> Result<(), BlockError> {
        self.info.check_write(lba, buf.len())?;
        for (i, chunk) in buf.chunks_exact(self.geometry.erase_block as usize).enumerate() {
            self.write_block(lba + i as u64, chunk, lba)?;
        }
        Ok(())
    }

    /// Nothing to do: every write was complete on the medium (status ready, data verified) before
    /// `write_blocks` returned; the device has no cache.
    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}
