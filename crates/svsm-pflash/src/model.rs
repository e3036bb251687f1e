//! A test double of a CFI flash: QEMU's `pflash_cfi01` command set with real NOR semantics and fault
//! injection.
//!
//! **This is a model, not the device.** It exists because the real device (QEMU's flash behind guest MMIO)
//! cannot run in these tests. It implements the same command protocol byte for byte as the driver sees it
//! through [`FlashMmio`], and is stricter than QEMU where real hardware is:
//!
//! * programming can only clear bits: the cell becomes `old & data` (QEMU simply stores `data`);
//! * an erase sets the whole erase block to 0xFF, on the confirm cycle (QEMU erases on the setup cycle);
//! * after a program or erase the status register reads busy for a configurable number of polls;
//! * out-of-window or misaligned accesses are recorded as [`PflashModel::violations`], not performed.
//!
//! Like QEMU it accepts a buffered program of a single word (count 0), keeps reads in status mode after a
//! program or erase until read-array (0xFF), and returns to read-array on clear-status (0x50).
//!
//! Checked against QEMU 7.2's `pflash_cfi01` on q35 through qtest (crates/svsm-qtest/tests/pflash.rs runs
//! the same command sequences on both). Where they differ, QEMU deviates from the Intel command set and
//! the model keeps the real-part behaviour:
//!
//! * programming stores `data` instead of `old & data` (NOR cells can only be cleared);
//! * an erase happens on the setup cycle (0x20): an erase setup followed by anything but confirm has
//!   already erased the block (a real part erases on confirm and aborts otherwise);
//! * clear-status (0x50) clears the ready bit too: a status read right after it shows 0x00, "busy", until
//!   the next operation (a real part clears only the error bits);
//! * a buffered program or erase aborted by a wrong confirm, or an unknown command, returns to read-array
//!   without error bits (a real part sets the improper-sequence bits 0x30 and stays in status mode);
//! * a command written while in CFI-query mode (0x98) is not executed (status reads 0x00) until read-array;
//!   a real part accepts any command from query mode;
//! * read-ID answers 0x00/0x00 on q35 (the board sets no ids; the model answers Intel's 0x89 and 0x18);
//! * the CFI interface code (0x28) is 0x0002 (x8/x16) for every width (the model reports the width's own
//!   code, 0x0000 for x8).
//!
//! The driver depends on none of these: it always confirms, never programs over unerased data without an
//! erase unless only clearing bits, reads status only after an operation, and ignores read-ID and 0x28.
//!
//! Faults: a power cut at the N-th program/erase step leaves that word/buffer partially programmed or that
//! block partially erased and the device dead until [`PflashModel::power_on`]; write protection (the
//! operation is refused with the block-locked and error bits); error bits injected into a chosen step; a
//! stuck device that never reports ready; and a hostile device whose status, query and (optionally) array
//! reads are garbage from a seeded generator or a byte script (the fuzz input).

use alloc::vec;
use alloc::vec::Vec;

use crate::api::{BusWidth, FlashMmio};
use crate::status::{
    CMD_BLOCK_ERASE, CMD_BUFFERED_PROGRAM, CMD_CFI_QUERY, CMD_CLEAR_STATUS, CMD_CONFIRM, CMD_PROGRAM,
    CMD_PROGRAM_ALT, CMD_READ_ARRAY, CMD_READ_ID, CMD_READ_STATUS, SR_BLOCK_LOCKED, SR_ERASE_ERROR,
    SR_PROGRAM_ERROR, SR_READY,
};

/// Intel's JEDEC manufacturer id, what the model answers to read-ID.
pub const MANUFACTURER_ID: u8 = 0x89;
/// Device id the model answers to read-ID (arbitrary, like QEMU's default of 0).
pub const DEVICE_ID: u8 = 0x18;

/// A small deterministic generator (xorshift64*), so fault campaigns replay from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced, xorshift cannot leave 0).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Shape of the modelled device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    /// Data-bus width.
    pub width: BusWidth,
    /// Bytes per erase block (a multiple of 256, at most 0xFFFF * 256).
    pub erase_block: u32,
    /// Number of erase blocks (1..=65536).
    pub num_blocks: u32,
    /// Write-buffer bytes (a power of two, at most `erase_block`), or 0 for no buffered programming.
    pub write_buffer: u32,
    /// Status reads that return busy after each program or erase.
    pub busy_polls: u32,
}

impl ModelConfig {
    /// QEMU's x86 pflash: 8-bit bus, 4 KiB sectors, 256-byte write buffer.
    pub const fn qemu_x86(num_blocks: u32) -> Self {
        Self { width: BusWidth::X8, erase_block: 4096, num_blocks, write_buffer: 256, busy_polls: 2 }
    }
}

/// How a power cut during an erase leaves the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseCut {
    /// A random-length prefix of the block is erased, the rest keeps its old contents.
    Prefix,
    /// Every byte of the block is random (erase interrupted mid-pulse).
    Random,
}

/// Where hostile reads come from.
#[derive(Debug, Clone)]
pub enum Garbage {
    /// A seeded generator.
    Random(Rng),
    /// A byte script, consumed in order; 0xFF once exhausted.
    Script {
        /// The bytes.
        bytes: Vec<u8>,
        /// Next byte to use.
        pos: usize,
    },
}

impl Garbage {
    fn byte(&mut self) -> u8 {
        match self {
            Garbage::Random(rng) => rng.next_u64() as u8,
            Garbage::Script { bytes, pos } => {
                let b = bytes.get(*pos).copied().unwrap_or(0xFF);
                *pos = pos.saturating_add(1);
                b
            }
        }
    }
}

/// A hostile device.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// Source of the garbage.
    pub garbage: Garbage,
    /// Array (data) reads are garbage too, not only status, ID and query reads.
    pub array_reads: bool,
}

/// The write state machine's state: what the next write means and what reads return.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    ReadArray,
    ReadStatus,
    ReadId,
    Query,
    ProgramSetup,
    EraseSetup { block: u64 },
    BufferCount { window: u64 },
    BufferData { window: u64, remaining: u32, writes: Vec<(u64, u32, u8)>, bad: bool },
    BufferConfirm { window: u64, writes: Vec<(u64, u32, u8)>, bad: bool },
}

/// The flash device model. See the module documentation.
pub struct PflashModel {
    config: ModelConfig,
    storage: Vec<u8>,
    cfi: [u8; 0x40],
    mode: Mode,
    /// Error bits (the ready bit is computed from `busy`).
    errors: u8,
    busy: u32,
    powered: bool,
    /// Program/erase steps applied since creation (a word program, a buffer confirm, an erase confirm).
    steps: u64,
    cut_at: Option<u64>,
    erase_cut: EraseCut,
    inject: Option<(u64, u8)>,
    write_protected: bool,
    stuck: bool,
    hostile: Option<Hostile>,
    rng: Rng,
    violations: u64,
    erases: Vec<u32>,
    programs: u64,
}

impl core::fmt::Debug for PflashModel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PflashModel")
            .field("config", &self.config)
            .field("mode", &self.mode)
            .field("errors", &self.errors)
            .field("powered", &self.powered)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl PflashModel {
    /// A fully erased device.
    pub fn new(config: ModelConfig) -> Self {
        let len = config.erase_block as usize * config.num_blocks as usize;
        Self::with_image(config, vec![0xFF; len])
    }

    /// A device holding `image` (its length must be `erase_block * num_blocks`; it is resized otherwise).
    pub fn with_image(config: ModelConfig, mut image: Vec<u8>) -> Self {
        assert!(
            config.erase_block >= 256 && config.erase_block.is_multiple_of(256),
            "erase block must be n * 256"
        );
        assert!((1..=65536).contains(&config.num_blocks), "1..=65536 blocks");
        assert!(
            config.write_buffer == 0
                || (config.write_buffer.is_power_of_two() && config.write_buffer <= config.erase_block),
            "write buffer must be 0 or a power of two <= erase block"
        );
        image.resize(config.erase_block as usize * config.num_blocks as usize, 0xFF);
        let mut cfi = [0u8; 0x40];
        cfi[0x10..0x13].copy_from_slice(b"QRY");
        cfi[0x13] = 0x01; // Intel/Sharp extended command set
        cfi[0x15] = 0x31; // primary extended table address
        cfi[0x1B] = 0x45; // Vcc min 4.5 V
        cfi[0x1C] = 0x55; // Vcc max 5.5 V
        let size = image.len() as u64;
        cfi[0x27] = (63 - size.leading_zeros()) as u8;
        cfi[0x28] = match config.width {
            BusWidth::X8 => 0x00,
            BusWidth::X16 => 0x01,
            BusWidth::X32 => 0x03,
        };
        cfi[0x2A] = if config.write_buffer == 0 { 0 } else { config.write_buffer.trailing_zeros() as u8 };
        cfi[0x2C] = 1;
        let blocks = (config.num_blocks - 1) as u16;
        cfi[0x2D..0x2F].copy_from_slice(&blocks.to_le_bytes());
        let units = (config.erase_block / 256) as u16;
        cfi[0x2F..0x31].copy_from_slice(&units.to_le_bytes());
        cfi[0x31..0x34].copy_from_slice(b"PRI");
        Self {
            erases: vec![0; config.num_blocks as usize],
            config,
            storage: image,
            cfi,
            mode: Mode::ReadArray,
            errors: 0,
            busy: 0,
            powered: true,
            steps: 0,
            cut_at: None,
            erase_cut: EraseCut::Prefix,
            inject: None,
            write_protected: false,
            stuck: false,
            hostile: None,
            rng: Rng::new(1),
            violations: 0,
            programs: 0,
        }
    }

    /// The device's shape.
    pub fn config(&self) -> ModelConfig {
        self.config
    }

    /// The medium's contents.
    pub fn image(&self) -> &[u8] {
        &self.storage
    }

    /// The medium as the host would tamper with it.
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.storage
    }

    /// The CFI table the model answers with, for tests that corrupt it.
    pub fn cfi_table_mut(&mut self) -> &mut [u8; 0x40] {
        &mut self.cfi
    }

    /// Program/erase steps applied so far (the numbering [`PflashModel::cut_power_at_step`] uses).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Completed erases per block.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erases
    }

    /// Completed program operations (word or buffer).
    pub fn program_count(&self) -> u64 {
        self.programs
    }

    /// Accesses outside the window or misaligned for their size: a driver bug if non-zero.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Whether the (simulated) power is on.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Cuts the power during program/erase step `step` (counted from 1 by [`PflashModel::steps`]); the
    /// operation is left partial (with `erase_cut` for erases, seeded by `seed`).
    pub fn cut_power_at_step(&mut self, step: u64, erase_cut: EraseCut, seed: u64) {
        self.cut_at = Some(step);
        self.erase_cut = erase_cut;
        self.rng = Rng::new(seed);
    }

    /// Power comes back: the medium keeps what it has, the state machine resets to read-array, status clear.
    pub fn power_on(&mut self) {
        self.powered = true;
        self.cut_at = None;
        self.mode = Mode::ReadArray;
        self.errors = 0;
        self.busy = 0;
    }

    /// Removes every injected fault (pending cut, injected status, protection, stuck, hostile).
    pub fn clear_faults(&mut self) {
        self.cut_at = None;
        self.inject = None;
        self.write_protected = false;
        self.stuck = false;
        self.hostile = None;
    }

    /// Write-protects every block: programs and erases fail with the locked and error bits set.
    pub fn set_write_protected(&mut self, on: bool) {
        self.write_protected = on;
    }

    /// Step `step` is not performed and reports `bits` (e.g. [`crate::status::SR_VPP_LOW`]) instead.
    pub fn inject_status_at_step(&mut self, step: u64, bits: u8) {
        self.inject = Some((step, bits));
    }

    /// A stuck device: the next program or erase never finishes, status never reports ready again, and the
    /// bus is ignored until [`PflashModel::power_on`].
    pub fn set_stuck(&mut self, on: bool) {
        self.stuck = on;
    }

    /// A hostile device (or `None` for an honest one).
    pub fn set_hostile(&mut self, hostile: Option<Hostile>) {
        self.hostile = hostile;
    }

    fn width(&self) -> u64 {
        u64::from(self.config.width.bytes())
    }

    fn block_of(&self, offset: u64) -> u64 {
        offset / u64::from(self.config.erase_block)
    }

    fn status(&mut self) -> u8 {
        if self.stuck {
            return 0;
        }
        if self.busy > 0 {
            self.busy -= 1;
            return 0;
        }
        SR_READY | self.errors
    }

    /// Starts a program/erase step; returns false if it must not be applied (injected error, protection,
    /// stuck), and handles a power cut by returning true with `powered` about to drop.
    fn begin_step(&mut self, error_bit: u8) -> bool {
        self.steps += 1;
        self.mode = Mode::ReadStatus;
        self.busy = self.config.busy_polls;
        if self.stuck {
            // Never finishes: busy until power-on.
            self.busy = u32::MAX;
            return false;
        }
        if let Some((step, bits)) = self.inject
            && step == self.steps
        {
            self.errors |= bits;
            return false;
        }
        if self.write_protected {
            self.errors |= error_bit | SR_BLOCK_LOCKED;
            return false;
        }
        true
    }

    fn cut_now(&self) -> bool {
        self.cut_at == Some(self.steps)
    }

    fn program_byte(&mut self, at: usize, data: u8, partial_mask: u8) {
        if let Some(cell) = self.storage.get_mut(at) {
            *cell &= data | partial_mask;
        }
    }

    fn program(&mut self, writes: &[(u64, u32, u8)]) {
        if !self.begin_step(SR_PROGRAM_ERROR) {
            return;
        }
        let cut = self.cut_now();
        // With a cut, a random prefix of the bytes is fully programmed, one is partial, the rest untouched.
        let total: u64 = writes.iter().map(|w| u64::from(w.2)).sum();
        let done = if cut { self.rng.below(total + 1) } else { total };
        let mut n = 0u64;
        for &(offset, value, size) in writes {
            for i in 0..u64::from(size) {
                let byte = (value >> (8 * i)) as u8;
                let mask = match n.cmp(&done) {
                    core::cmp::Ordering::Less => 0,
                    core::cmp::Ordering::Equal => self.rng.next_u64() as u8,
                    core::cmp::Ordering::Greater => 0xFF,
                };
                self.program_byte((offset + i) as usize, byte, mask);
                n += 1;
            }
        }
        if cut {
            self.powered = false;
        } else {
            self.programs += 1;
        }
    }

    fn erase(&mut self, block: u64) {
        if !self.begin_step(SR_ERASE_ERROR) {
            return;
        }
        let size = self.config.erase_block as usize;
        let start = block as usize * size;
        let Some(cells) = self.storage.get_mut(start..start + size) else { return };
        if self.cut_at == Some(self.steps) {
            match self.erase_cut {
                EraseCut::Prefix => {
                    let k = self.rng.below(size as u64) as usize;
                    cells[..k].fill(0xFF);
                }
                EraseCut::Random => cells.iter_mut().for_each(|c| *c = self.rng.next_u64() as u8),
            }
            self.powered = false;
        } else {
            cells.fill(0xFF);
            if let Some(count) = self.erases.get_mut(block as usize) {
                *count += 1;
            }
        }
    }

    /// Checks an access; records and refuses one outside the window or misaligned.
    fn access_ok(&mut self, offset: u64, size: u64) -> bool {
        let ok =
            offset.is_multiple_of(size) && offset.checked_add(size).is_some_and(|e| e <= self.window_len());
        if !ok {
            self.violations += 1;
        }
        ok
    }

    fn read(&mut self, offset: u64, size: u64) -> u32 {
        if !self.access_ok(offset, size) {
            return u32::MAX;
        }
        if !self.powered {
            return 0;
        }
        let array = self.mode == Mode::ReadArray;
        if let Some(h) = self.hostile.as_mut()
            && (!array || h.array_reads)
        {
            let mut v = 0u32;
            for i in 0..size {
                v |= u32::from(h.garbage.byte()) << (8 * i);
            }
            return v;
        }
        match &self.mode {
            Mode::ReadArray => {
                let mut v = 0u32;
                for i in 0..size {
                    v |= u32::from(self.storage.get((offset + i) as usize).copied().unwrap_or(0xFF))
                        << (8 * i);
                }
                v
            }
            Mode::ReadId => {
                match offset / self.width() {
                    0 => u32::from(MANUFACTURER_ID),
                    1 => u32::from(DEVICE_ID),
                    _ => 0, // block lock status: unlocked
                }
            }
            Mode::Query => u32::from(self.cfi.get((offset / self.width()) as usize).copied().unwrap_or(0)),
            _ => u32::from(self.status()),
        }
    }

    fn write(&mut self, offset: u64, size: u64, value: u32) {
        if !self.access_ok(offset, size) || !self.powered {
            return;
        }
        if self.busy > 0 {
            // A busy write state machine ignores the bus.
            return;
        }
        let cmd = value as u8;
        let mode = core::mem::replace(&mut self.mode, Mode::ReadArray);
        self.mode = match mode {
            Mode::ReadArray | Mode::ReadStatus | Mode::ReadId | Mode::Query => match cmd {
                CMD_READ_ARRAY | 0x00 => Mode::ReadArray,
                CMD_READ_STATUS => Mode::ReadStatus,
                CMD_CLEAR_STATUS => {
                    self.errors = 0;
                    Mode::ReadArray
                }
                CMD_READ_ID => Mode::ReadId,
                CMD_CFI_QUERY => Mode::Query,
                CMD_PROGRAM | CMD_PROGRAM_ALT => Mode::ProgramSetup,
                CMD_BLOCK_ERASE => Mode::EraseSetup { block: self.block_of(offset) },
                CMD_BUFFERED_PROGRAM if self.config.write_buffer != 0 => {
                    Mode::BufferCount { window: offset & !u64::from(self.config.write_buffer - 1) }
                }
                _ => self.sequence_error(),
            },
            Mode::ProgramSetup => {
                self.program(&[(offset, value, size as u8)]);
                self.mode.clone()
            }
            Mode::EraseSetup { block } => match cmd {
                CMD_CONFIRM => {
                    self.erase(block);
                    self.mode.clone()
                }
                CMD_READ_ARRAY => Mode::ReadArray,
                _ => self.sequence_error(),
            },
            Mode::BufferCount { window } => {
                let mask = if self.width() >= 4 { u32::MAX } else { (1u32 << (8 * self.width())) - 1 };
                let words = u64::from(value & mask) + 1;
                // Real parts (and QEMU) refuse more words than the buffer holds; one word (count 0) is valid.
                if words * self.width() > u64::from(self.config.write_buffer) {
                    self.errors |= SR_PROGRAM_ERROR | SR_ERASE_ERROR;
                    Mode::ReadStatus
                } else {
                    Mode::BufferData { window, remaining: words as u32, writes: Vec::new(), bad: false }
                }
            }
            Mode::BufferData { window, remaining, mut writes, mut bad } => {
                let end = window + u64::from(self.config.write_buffer);
                if offset < window || offset + size > end || size != self.width() {
                    bad = true;
                }
                writes.push((offset, value, size as u8));
                match remaining - 1 {
                    0 => Mode::BufferConfirm { window, writes, bad },
                    remaining => Mode::BufferData { window, remaining, writes, bad },
                }
            }
            Mode::BufferConfirm { writes, bad, .. } => {
                if cmd == CMD_CONFIRM && !bad {
                    self.program(&writes);
                    self.mode.clone()
                } else {
                    self.errors |= SR_PROGRAM_ERROR;
                    Mode::ReadStatus
                }
            }
        };
    }

    fn sequence_error(&mut self) -> Mode {
        self.errors |= SR_PROGRAM_ERROR | SR_ERASE_ERROR;
        Mode::ReadStatus
    }
}

impl FlashMmio for PflashModel {
    fn window_len(&self) -> u64 {
        self.storage.len() as u64
    }
    fn read8(&mut self, offset: u64) -> u8 {
        self.read(offset, 1) as u8
    }
    fn read16(&mut self, offset: u64) -> u16 {
        self.read(offset, 2) as u16
    }
    fn read32(&mut self, offset: u64) -> u32 {
        self.read(offset, 4)
    }
    fn write8(&mut self, offset: u64, value: u8) {
        self.write(offset, 1, u32::from(value))
    }
    fn write16(&mut self, offset: u64, value: u16) {
        self.write(offset, 2, u32::from(value))
    }
    fn write32(&mut self, offset: u64, value: u32) {
        self.write(offset, 4, value)
    }
}
