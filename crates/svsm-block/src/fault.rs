//! `FaultDisk`: a device wrapper that fails the way real storage and a hostile host do, reproducibly.
//!
//! Every crash, tamper and rollback campaign in this project runs on it, so its model is deliberately at
//! least as adversarial as real hardware:
//!
//! * **Volatile write cache.** A `Cached` write is visible to reads at once but only reaches the medium at
//!   the next `flush`. Each block keeps every version written since the last flush. When power is cut, each
//!   block independently lands as its last durable version or as *any* of its pending versions, optionally torn
//!   at sector granularity against the version before it. That covers lost writes, reordering (a later write
//!   landing while an earlier one does not) and torn multi-sector writes. Flushed and `Durable` (FUA) writes
//!   never vanish.
//! * **Power cut at a chosen I/O index.** I/O calls (read, write, flush) are numbered from 0; with
//!   [`FaultDisk::cut_power_at`]`(k)` call `k` does not happen and every later call fails with
//!   [`IoCause::PowerLoss`] until [`FaultDisk::power_cycle`] resolves the cache and powers the device back on.
//!   Recording the trace of a clean run gives every cut point a campaign needs.
//! * **Injected errors** on chosen I/O indices; a failed write may have cached any subset of its blocks.
//! * **Hostile host.** With history recording on, every durable version of every block is kept, and
//!   [`FaultDisk::replay_block`] puts an older one back on the medium (what a host restoring old sectors does).
//!
//! All randomness comes from one seed ([`SeededRng`]), so any failing case replays exactly.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::api::{BlockDevice, DeviceInfo, WriteMode};
use crate::error::{BlockError, IoCause, IoOp};
pub use crate::rng::SeededRng;

/// What happens to unflushed writes when power is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPolicy {
    /// Every unflushed write is lost.
    LoseAll,
    /// Every unflushed write lands intact (the drive got lucky).
    KeepAll,
    /// Per block: the durable version or any pending version lands, torn against its predecessor at sector
    /// granularity with probability `tear_percent`%.
    Random {
        /// Chance (0..=100) that a landing pending version is torn.
        tear_percent: u8,
    },
}

/// Static configuration of a [`FaultDisk`].
#[derive(Debug, Clone, Copy)]
pub struct FaultConfig {
    /// Seed for every random decision.
    pub seed: u64,
    /// Atomic unit of the simulated medium: tears happen at this granularity. Must divide the block size.
    pub sector_size: u32,
    /// Fate of unflushed writes at a power cut.
    pub cut_policy: CutPolicy,
    /// Keep every durable version of every block so a hostile host can replay them (costs memory).
    pub record_history: bool,
}

impl FaultConfig {
    /// Adversarial defaults: 512-byte sectors, random landing with 30 % tears, no history.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            sector_size: 512,
            cut_policy: CutPolicy::Random { tear_percent: 30 },
            record_history: false,
        }
    }
}

/// One I/O call as the device saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Index of the call (0-based, counting every read, write and flush).
    pub index: u64,
    /// Which operation.
    pub op: IoOp,
    /// First block (0 for flush).
    pub lba: u64,
    /// Number of blocks (0 for flush).
    pub blocks: u64,
    /// The durability asked for, for writes.
    pub mode: Option<WriteMode>,
    /// Whether the call succeeded.
    pub ok: bool,
}

/// How a [`FaultDisk::power_cycle`] resolved the cache, for campaign statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutOutcome {
    /// Blocks that had unflushed versions.
    pub pending_blocks: u64,
    /// Blocks that kept their last durable version (all pending versions lost).
    pub lost: u64,
    /// Blocks where the newest pending version landed intact.
    pub newest_landed: u64,
    /// Blocks where an older pending version landed (the newer ones were lost: reordering).
    pub older_landed: u64,
    /// Blocks left torn between two versions.
    pub torn: u64,
}

/// A fault-injecting wrapper around any [`BlockDevice`]; see the [module docs](self).
#[derive(Debug)]
pub struct FaultDisk<D: BlockDevice> {
    inner: D,
    info: DeviceInfo,
    config: FaultConfig,
    rng: SeededRng,
    /// Versions written since the last flush, oldest first, per block.
    pending: BTreeMap<u64, Vec<Vec<u8>>>,
    /// Every durable version per block (oldest first), when `record_history` is on.
    history: BTreeMap<u64, Vec<Vec<u8>>>,
    next_index: u64,
    cut_at: Option<u64>,
    powered: bool,
    injected: BTreeMap<u64, IoCause>,
    trace: Vec<TraceEvent>,
}

impl<D: BlockDevice> FaultDisk<D> {
    /// Wraps `inner`, whose current contents count as durable.
    pub fn new(inner: D, config: FaultConfig) -> Result<Self, BlockError> {
        let info = inner.info();
        if config.sector_size == 0
            || !config.sector_size.is_power_of_two()
            || !info.block_size.is_multiple_of(config.sector_size)
        {
            return Err(BlockError::InvalidGeometry {
                block_size: info.block_size,
                num_blocks: info.num_blocks,
            });
        }
        Ok(Self {
            inner,
            info,
            rng: SeededRng::new(config.seed),
            config,
            pending: BTreeMap::new(),
            history: BTreeMap::new(),
            next_index: 0,
            cut_at: None,
            powered: true,
            injected: BTreeMap::new(),
            trace: Vec::new(),
        })
    }

    /// Cuts power just before I/O call `index` (0-based); that call and all later ones fail until
    /// [`FaultDisk::power_cycle`].
    pub fn cut_power_at(&mut self, index: u64) {
        self.cut_at = Some(index);
    }

    /// Cuts power now.
    pub fn cut_power_now(&mut self) {
        self.powered = false;
        self.cut_at = None;
    }

    /// Makes I/O call `index` fail with `cause` (a write may still have cached a random subset of its blocks).
    pub fn inject_error(&mut self, index: u64, cause: IoCause) {
        self.injected.insert(index, cause);
    }

    /// Whether the device is powered (false after a cut, until `power_cycle`).
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Resolves the volatile cache as the cut policy says, writes the survivors to the medium, and powers on.
    ///
    /// Without a preceding cut this models a clean power cycle of a drive that lost its cache anyway.
    pub fn power_cycle(&mut self) -> Result<CutOutcome, BlockError> {
        let pending = core::mem::take(&mut self.pending);
        let mut outcome = CutOutcome { pending_blocks: pending.len() as u64, ..CutOutcome::default() };
        let bs = self.info.block_size as usize;
        let mut durable = vec![0u8; bs];
        for (lba, versions) in pending {
            self.inner.read_blocks(lba, &mut durable)?;
            let landed = match self.config.cut_policy {
                CutPolicy::LoseAll => None,
                CutPolicy::KeepAll => {
                    outcome.newest_landed += 1;
                    versions.last().cloned()
                }
                CutPolicy::Random { tear_percent } => {
                    // 0 = nothing lands; i = pending version i-1 lands.
                    let pick = self.rng.below(versions.len() as u64 + 1) as usize;
                    if pick == 0 {
                        None
                    } else {
                        let mut data = versions[pick - 1].clone();
                        if self.rng.chance(u64::from(tear_percent), 100) {
                            let before = if pick >= 2 { &versions[pick - 2] } else { &durable };
                            if self.tear(&mut data, before) {
                                outcome.torn += 1;
                            }
                        }
                        if pick == versions.len() {
                            outcome.newest_landed += 1
                        } else {
                            outcome.older_landed += 1
                        }
                        Some(data)
                    }
                }
            };
            match landed {
                None => outcome.lost += 1,
                Some(data) => self.persist(lba, &data)?,
            }
        }
        self.inner.flush()?;
        self.powered = true;
        self.cut_at = None;
        Ok(outcome)
    }

    /// Replaces each sector of `data` by the one in `before` with probability 1/2; returns whether any was.
    fn tear(&mut self, data: &mut [u8], before: &[u8]) -> bool {
        let ss = self.config.sector_size as usize;
        let mut torn = false;
        for (new, old) in data.chunks_mut(ss).zip(before.chunks(ss)) {
            if self.rng.chance(1, 2) {
                new.copy_from_slice(old);
                torn = true;
            }
        }
        torn
    }

    /// Hostile host: puts durable version `version` (0 = oldest recorded) of block `lba` back on the medium.
    /// Needs `record_history`. Returns false if there is no such version.
    pub fn replay_block(&mut self, lba: u64, version: usize) -> Result<bool, BlockError> {
        let Some(old) = self.history.get(&lba).and_then(|v| v.get(version)).cloned() else {
            return Ok(false);
        };
        self.pending.remove(&lba);
        self.inner.write_blocks(lba, &old, WriteMode::Durable)?;
        Ok(true)
    }

    /// Number of durable versions recorded for `lba` (with `record_history`).
    pub fn history_len(&self, lba: u64) -> usize {
        self.history.get(&lba).map_or(0, Vec::len)
    }

    /// Blocks that have recorded history, in order.
    pub fn history_blocks(&self) -> impl Iterator<Item = u64> + '_ {
        self.history.keys().copied()
    }

    /// Every I/O call so far.
    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    /// Index the next I/O call will get (= number of calls so far).
    pub fn io_count(&self) -> u64 {
        self.next_index
    }

    /// Blocks with unflushed versions.
    pub fn pending_blocks(&self) -> usize {
        self.pending.len()
    }

    /// The wrapped device (the medium: durable state only).
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Mutable access to the medium, for tamper tests.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the medium; unflushed writes are discarded (as at a cut with `LoseAll`).
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn persist(&mut self, lba: u64, data: &[u8]) -> Result<(), BlockError> {
        self.inner.write_blocks(lba, data, WriteMode::Cached)?;
        if self.config.record_history {
            self.history.entry(lba).or_default().push(data.to_vec());
        }
        Ok(())
    }

    /// Numbers the call and decides whether it happens: `Err` if power is (now) off or an error is injected.
    fn begin(&mut self, op: IoOp, lba: u64, blocks: u64, mode: Option<WriteMode>) -> Result<u64, IoCause> {
        let index = self.next_index;
        self.next_index += 1;
        if self.cut_at == Some(index) {
            self.cut_power_now();
        }
        let refused = if !self.powered { Some(IoCause::PowerLoss) } else { self.injected.remove(&index) };
        self.trace.push(TraceEvent { index, op, lba, blocks, mode, ok: refused.is_none() });
        match refused {
            Some(cause) => Err(cause),
            None => Ok(index),
        }
    }

    fn mark_failed(&mut self) {
        if let Some(last) = self.trace.last_mut() {
            last.ok = false;
        }
    }
}

impl<D: BlockDevice> BlockDevice for FaultDisk<D> {
    fn info(&self) -> DeviceInfo {
        self.info
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let blocks = self.info.check_transfer(lba, buf.len())?;
        self.begin(IoOp::Read, lba, blocks, None).map_err(|cause| BlockError::Io {
            op: IoOp::Read,
            lba,
            cause,
        })?;
        if let Err(e) = self.inner.read_blocks(lba, buf) {
            self.mark_failed();
            return Err(e);
        }
        let bs = self.info.block_size as usize;
        for (i, chunk) in buf.chunks_mut(bs).enumerate() {
            if let Some(newest) = self.pending.get(&(lba + i as u64)).and_then(|v| v.last()) {
                chunk.copy_from_slice(newest);
            }
        }
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError> {
        let blocks = self.info.check_write(lba, buf.len())?;
        let bs = self.info.block_size as usize;
        if let Err(cause) = self.begin(IoOp::Write, lba, blocks, Some(mode)) {
            if cause == IoCause::Injected {
                // A failed write may have reached the cache for any subset of its blocks.
                for (i, chunk) in buf.chunks(bs).enumerate() {
                    if self.rng.chance(1, 2) {
                        self.pending.entry(lba + i as u64).or_default().push(chunk.to_vec());
                    }
                }
            }
            return Err(BlockError::Io { op: IoOp::Write, lba, cause });
        }
        for (i, chunk) in buf.chunks(bs).enumerate() {
            let block = lba + i as u64;
            match mode {
                WriteMode::Cached => self.pending.entry(block).or_default().push(chunk.to_vec()),
                WriteMode::Durable => {
                    // FUA: this version is on the medium now, superseding anything older still cached.
                    self.pending.remove(&block);
                    if let Err(e) = self.persist(block, chunk) {
                        self.mark_failed();
                        return Err(e);
                    }
                }
            }
        }
        if mode == WriteMode::Durable
            && let Err(e) = self.inner.flush()
        {
            self.mark_failed();
            return Err(e);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.begin(IoOp::Flush, 0, 0, None).map_err(|cause| BlockError::Io {
            op: IoOp::Flush,
            lba: 0,
            cause,
        })?;
        let pending = core::mem::take(&mut self.pending);
        for (lba, mut versions) in pending {
            if let Some(newest) = versions.pop()
                && let Err(e) = self.persist(lba, &newest)
            {
                self.mark_failed();
                return Err(e);
            }
        }
        self.inner.flush().inspect_err(|_| self.mark_failed())
    }
}
