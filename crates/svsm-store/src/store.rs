//! The store: format, open (superblock selection against the ledger, tree walk), reads, and transactions.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use svsm_block::{BlockDevice, WriteMode};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, IntoBytes};
use zeroize::Zeroizing;

use crate::api::{Clock, Ledger, LedgerMode, LedgerRecord, RandomSource, VolumeId};
use crate::bitmap::Bitmap;
use crate::crypto::{KeyContext, StoreKey, VolumeKeys, superblock_hash};
use crate::error::{FeatureKind, LedgerError, StoreError, Structure};
use crate::format::{
    AEAD_AES256_GCM, BLOCK_SIZE, BLOCK_SIZE_LOG2, FIRST_DATA_BLOCK, FORMAT_MAJOR, FORMAT_MINOR,
    INCOMPAT_SUPPORTED, KDF_HKDF_SHA256, MAGIC, MAX_VOLUME_BLOCKS, MAX_WINDOW_SECONDS, MIN_VOLUME_BLOCKS,
    NONCE_BUDGET, ObjectEntry, RO_COMPAT_SUPPORTED, SUPERBLOCK_LEN, Superblock,
};
use crate::ids::{self, ObjectId};
use crate::tree::{self, Allocator, DataCheck, Visit, Vol, Walked};

/// Parameters of a new volume.
#[derive(Debug)]
pub struct FormatParams {
    /// How the volume uses its ledger (fixed for the volume's life).
    pub ledger_mode: LedgerMode,
    /// Volume size in 4 KiB blocks; `None` uses the whole device.
    pub num_blocks: Option<u64>,
    /// Randomness for the volume id, salt and nonces.
    pub rng: Box<dyn RandomSource>,
}

impl FormatParams {
    /// Parameters for a volume in `ledger_mode` spanning the whole device.
    pub fn new(ledger_mode: LedgerMode, rng: Box<dyn RandomSource>) -> Self {
        FormatParams { ledger_mode, num_blocks: None, rng }
    }
}

#[cfg(feature = "std")]
impl Default for FormatParams {
    fn default() -> Self {
        FormatParams::new(LedgerMode::Strict, Box::new(crate::rng::PooledOsRandom::new()))
    }
}

/// How [`Store::open`] treats the volume.
#[derive(Debug)]
pub struct OpenOptions {
    /// Refuse all writes (also required to read a volume with unknown ro_compat features).
    pub read_only: bool,
    /// If the ledger has no record of this volume, enrol it, but only if it is exactly as `format` left it
    /// (generation 1, no other slot). Use once, right after format.
    pub enroll: bool,
    /// Authenticate every data block at open (what `fsck` does), not only those of the newest commit.
    pub verify_all_data: bool,
    /// Randomness for nonces.
    pub rng: Box<dyn RandomSource>,
    /// The clock that measures a [`LedgerMode::Window`] volume's window (ignored in other modes). `None`:
    /// [`crate::clock::MonotonicClock`] on a host build; a `no_std` build must supply one to open such a
    /// volume read-write.
    pub clock: Option<Box<dyn Clock>>,
}

impl OpenOptions {
    /// Read-write, no enrolment, standard verification, default clock.
    pub fn new(rng: Box<dyn RandomSource>) -> Self {
        OpenOptions { read_only: false, enroll: false, verify_all_data: false, rng, clock: None }
    }
}

#[cfg(feature = "std")]
impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new(Box::new(crate::rng::PooledOsRandom::new()))
    }
}

/// What `format` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formatted {
    /// The new volume's id.
    pub volume_id: VolumeId,
    /// The record to enrol in the ledger (generation 1).
    pub record: LedgerRecord,
}

/// What open found and decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// Generation opened.
    pub generation: u64,
    /// A newer generation found on the device and not adopted: a strict commit the ledger never acknowledged,
    /// or (boot-epoch) a commit that was cut before it was complete.
    pub discarded: Option<u64>,
    /// Generation the ledger held before open advanced it (boot-epoch and window modes, or enrolment).
    pub ledger_was: Option<u64>,
    /// Data blocks authenticated during open.
    pub data_blocks_verified: u64,
}

/// Figures about an open volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Volume id.
    pub volume_id: VolumeId,
    /// Current generation.
    pub generation: u64,
    /// Objects stored.
    pub objects: u64,
    /// Bytes of object content.
    pub object_bytes: u64,
    /// Blocks in the volume.
    pub total_blocks: u64,
    /// Blocks in use by the current generation (superblocks included).
    pub used_blocks: u64,
    /// Blocks sealed under the volume key so far (nonce budget: [`NONCE_BUDGET`]), including seals of
    /// transactions that did not commit; durable with the next commit.
    pub seal_count: u64,
    /// Ledger mode.
    pub ledger_mode: LedgerMode,
}

/// The plaintext superblock header, readable without a key (for `store inspect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Slot it was read from.
    pub slot: u8,
    /// Format version.
    pub format: (u16, u16),
    /// Feature bits (incompat, ro_compat, compat).
    pub features: (u64, u64, u64),
    /// Volume id.
    pub volume_id: VolumeId,
    /// Volume size in 4 KiB blocks.
    pub num_blocks: u64,
    /// Generation claimed (not authenticated without the key).
    pub generation: u64,
    /// Ledger mode byte.
    pub ledger_mode: u8,
}

/// One committed state: everything needed to read it and to build the next one.
#[derive(Debug, Clone)]
struct State {
    sb: Superblock,
    hash: [u8; 32],
    objects: BTreeMap<u64, ObjectEntry>,
    extents: BTreeMap<u64, Vec<u32>>,
    used: Bitmap,
}

impl State {
    fn record(&self) -> LedgerRecord {
        LedgerRecord { generation: self.sb.generation.get(), superblock_hash: self.hash }
    }

    fn from_walk(sb: Superblock, w: Walked) -> Self {
        let mut used = w.used;
        for &b in &w.table_blocks {
            used.set(u64::from(b));
        }
        State { hash: superblock_hash(&sb), sb, objects: w.objects, extents: w.extents, used }
    }
}

/// The time window mode measures: the ledger's authenticated time where it has one, carried forward by the
/// local monotonic [`Clock`] between replies; the local clock alone otherwise. Never decreases.
#[derive(Debug)]
struct WindowClock {
    local: Box<dyn Clock>,
    /// The latest trusted time seen and the local reading when it was first seen.
    base: Option<(u64, u64)>,
    last: u64,
}

impl WindowClock {
    fn new(local: Box<dyn Clock>) -> Self {
        WindowClock { local, base: None, last: 0 }
    }

    /// Now, given the ledger's latest trusted time. A reply delayed by the host makes this lag real time
    /// by the delay, but the lag can only shrink afterwards (the reading never goes back), so a delay never
    /// lengthens a window; switching from local-only to trusted time jumps forward (an early advance).
    fn now_ms(&mut self, trusted: Option<u64>) -> u64 {
        let local = self.local.now_ms();
        if let Some(t) = trusted
            && self.base.is_none_or(|(bt, _)| bt != t)
        {
            self.base = Some((t, local));
        }
        let now = match self.base {
            Some((t, at)) => t.saturating_add(local.saturating_sub(at)),
            None => local,
        };
        self.last = self.last.max(now);
        self.last
    }
}

/// An open secure-store volume on device `D`, anchored in ledger `L`.
pub struct Store<D: BlockDevice, L: Ledger> {
    dev: D,
    ledger: L,
    keys: VolumeKeys,
    rng: Box<dyn RandomSource>,
    mode: LedgerMode,
    sectors_per_block: u64,
    read_only: bool,
    poisoned: bool,
    state: State,
    /// Strict mode, or a window advance: a commit written and flushed whose ledger acknowledgement is
    /// unknown, and the clock reading taken before it was sent.
    pending: Option<(State, u64)>,
    /// The ledger record this session last set: at open (what the ledger held once open finished), or at a
    /// window advance. Every superblock this session writes carries it, so boot-epoch and window open can
    /// tell descendants from forks. (Strict mode advances the ledger on every commit and never moves it.)
    anchor: LedgerRecord,
    /// Window mode: the clock, and its reading when the ledger last moved (the window's start).
    clock: Option<WindowClock>,
    advanced_at_ms: u64,
    /// Blocks sealed under the volume key: the superblock's count at open plus every seal since, committed
    /// or not (a nonce drawn is spent whether or not its transaction commits).
    seal_count: u64,
    cursor: u64,
    report: OpenReport,
}

impl<D: BlockDevice, L: Ledger> core::fmt::Debug for Store<D, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("volume", &VolumeId(self.state.sb.volume_id))
            .field("generation", &self.state.sb.generation.get())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn sectors_per_block<D: BlockDevice>(dev: &D) -> Result<u64, StoreError> {
    let bs = dev.block_size() as usize;
    if bs == 0 || bs > BLOCK_SIZE || !BLOCK_SIZE.is_multiple_of(bs) {
        return Err(StoreError::UnsupportedAlgorithm { detail: "device sector size must divide 4096" });
    }
    Ok((BLOCK_SIZE / bs) as u64)
}

fn device_blocks<D: BlockDevice>(dev: &D, spb: u64) -> u64 {
    dev.num_blocks() / spb
}

fn key_context(sb: &Superblock) -> KeyContext<'_> {
    KeyContext {
        volume_id: &sb.volume_id,
        kdf_salt: &sb.kdf_salt,
        format_major: sb.format_major.get(),
        aead_alg: sb.aead_alg.get(),
        kdf_alg: sb.kdf_alg.get(),
        block_size_log2: sb.block_size_log2,
        incompat: sb.incompat.get(),
        key_epoch: sb.key_epoch.get(),
    }
}

/// What a superblock slot holds, before the key is involved.
#[derive(Debug)]
enum Slot {
    /// All zero.
    Blank,
    /// Not a store superblock.
    Foreign,
    /// A store header (not yet authenticated).
    Header(Box<Superblock>, bool),
}

fn read_slot<D: BlockDevice>(dev: &mut D, spb: u64, slot: u64) -> Result<Slot, StoreError> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    dev.read_blocks(slot * spb, &mut buf)?;
    if buf.iter().all(|&b| b == 0) {
        return Ok(Slot::Blank);
    }
    let Ok((sb, rest)) = Superblock::read_from_prefix(&buf) else { return Ok(Slot::Foreign) };
    if sb.magic != MAGIC {
        return Ok(Slot::Foreign);
    }
    let tail_zero = rest.iter().all(|&b| b == 0);
    Ok(Slot::Header(Box::new(sb), tail_zero))
}

/// Reads the plaintext headers of both slots (no key needed; nothing here is authenticated).
pub fn read_headers<D: BlockDevice>(dev: &mut D) -> Result<Vec<HeaderInfo>, StoreError> {
    let spb = sectors_per_block(dev)?;
    if device_blocks(dev, spb) < FIRST_DATA_BLOCK {
        return Err(StoreError::Unformatted { detail: "device smaller than two blocks" });
    }
    let mut out = Vec::new();
    for slot in 0..FIRST_DATA_BLOCK {
        if let Slot::Header(sb, _) = read_slot(dev, spb, slot)? {
            out.push(HeaderInfo {
                slot: slot as u8,
                format: (sb.format_major.get(), sb.format_minor.get()),
                features: (sb.incompat.get(), sb.ro_compat.get(), sb.compat.get()),
                volume_id: VolumeId(sb.volume_id),
                num_blocks: sb.num_blocks.get(),
                generation: sb.generation.get(),
                ledger_mode: sb.ledger_mode,
            });
        }
    }
    Ok(out)
}

/// Checks everything about a header that does not need the key.
fn check_header(sb: &Superblock, read_only: bool) -> Result<(), StoreError> {
    if sb.format_major.get() != FORMAT_MAJOR {
        return Err(StoreError::UnsupportedVersion {
            major: sb.format_major.get(),
            minor: sb.format_minor.get(),
            supported: FORMAT_MAJOR,
        });
    }
    let unknown = sb.incompat.get() & !INCOMPAT_SUPPORTED;
    if unknown != 0 {
        return Err(StoreError::UnsupportedFeature { kind: FeatureKind::Incompat, bits: unknown });
    }
    let unknown = sb.ro_compat.get() & !RO_COMPAT_SUPPORTED;
    if unknown != 0 && !read_only {
        return Err(StoreError::UnsupportedFeature { kind: FeatureKind::RoCompat, bits: unknown });
    }
    if sb.aead_alg.get() != AEAD_AES256_GCM {
        return Err(StoreError::UnsupportedAlgorithm { detail: "unknown AEAD algorithm id" });
    }
    if sb.kdf_alg.get() != KDF_HKDF_SHA256 {
        return Err(StoreError::UnsupportedAlgorithm { detail: "unknown KDF algorithm id" });
    }
    if sb.block_size_log2 != BLOCK_SIZE_LOG2 {
        return Err(StoreError::UnsupportedAlgorithm { detail: "block size other than 4096" });
    }
    Ok(())
}

/// Structural checks on an authenticated superblock (a valid MAC proves we wrote it, but defence in depth
/// costs nothing and keeps every later computation on checked values).
fn check_authenticated(sb: &Superblock, slot: u64) -> Result<(), &'static str> {
    if sb.header_len.get() as usize != SUPERBLOCK_LEN {
        return Err("unexpected header length");
    }
    if sb.generation.get() == 0 || sb.generation.get() % 2 != slot {
        return Err("generation stored in the wrong slot");
    }
    let n = sb.num_blocks.get();
    if !(MIN_VOLUME_BLOCKS..=MAX_VOLUME_BLOCKS).contains(&n) {
        return Err("volume size out of range");
    }
    if LedgerMode::from_fields(sb.ledger_mode, sb.window_seconds.get()).is_none() {
        return Err("unknown ledger mode or window length");
    }
    if sb.reserved0 != [0; 2] || sb.reserved1 != [0; 7] || sb.key_epoch.get() != 0 {
        return Err("reserved fields set");
    }
    if sb.table_root.is_null() != (sb.object_count.get() == 0) {
        return Err("object count and table root disagree");
    }
    let anchor = sb.anchor_generation.get();
    if anchor >= sb.generation.get() || (anchor == 0 && sb.anchor_hash != [0; 32]) {
        return Err("ledger anchor is not an older generation");
    }
    Ok(())
}

/// Whether two authenticated superblocks describe the same volume.
fn same_volume(a: &Superblock, b: &Superblock) -> bool {
    a.volume_id == b.volume_id
        && a.kdf_salt == b.kdf_salt
        && a.num_blocks == b.num_blocks
        && a.ledger_mode == b.ledger_mode
        && a.window_seconds == b.window_seconds
        && a.incompat == b.incompat
        && a.ro_compat == b.ro_compat
        && a.aead_alg == b.aead_alg
        && a.kdf_alg == b.kdf_alg
}

impl<D: BlockDevice, L: Ledger> Store<D, L> {
    /// Formats `dev` as an empty volume (generation 1) and returns its id and the ledger record to enrol.
    ///
    /// Refuses a device that already holds a store in either slot ([`StoreError::AlreadyFormatted`]):
    /// nothing is ever overwritten implicitly. The volume is not usable until enrolled in a ledger:
    /// `ledger.compare_and_set(&f.volume_id, None, &f.record)`, or open once with [`OpenOptions::enroll`].
    pub fn format(mut dev: D, key: &StoreKey, mut params: FormatParams) -> Result<Formatted, StoreError> {
        let spb = sectors_per_block(&dev)?;
        let avail = device_blocks(&dev, spb);
        let num_blocks = params.num_blocks.unwrap_or(avail.min(MAX_VOLUME_BLOCKS));
        if num_blocks > avail {
            return Err(StoreError::DeviceTooSmall { device_blocks: avail, volume_blocks: num_blocks });
        }
        if !(MIN_VOLUME_BLOCKS..=MAX_VOLUME_BLOCKS).contains(&num_blocks) {
            return Err(StoreError::InvalidParams("volume must be 8 blocks (32 KiB) to 64 GiB"));
        }
        for slot in 0..FIRST_DATA_BLOCK {
            if let Slot::Header(..) = read_slot(&mut dev, spb, slot)? {
                return Err(StoreError::AlreadyFormatted);
            }
        }
        let mut sb = Superblock::new_zeroed();
        sb.magic = MAGIC;
        sb.format_major = U16::new(FORMAT_MAJOR);
        sb.format_minor = U16::new(FORMAT_MINOR);
        sb.header_len = U32::new(SUPERBLOCK_LEN as u32);
        params.rng.fill(&mut sb.volume_id).map_err(StoreError::Random)?;
        params.rng.fill(&mut sb.kdf_salt).map_err(StoreError::Random)?;
        sb.aead_alg = U16::new(AEAD_AES256_GCM);
        sb.kdf_alg = U16::new(KDF_HKDF_SHA256);
        sb.block_size_log2 = BLOCK_SIZE_LOG2;
        if let LedgerMode::Window { seconds } = params.ledger_mode
            && !(1..=MAX_WINDOW_SECONDS).contains(&seconds)
        {
            return Err(StoreError::InvalidParams("window must be 1 s to one week (0 is strict mode)"));
        }
        let (mode_byte, window_seconds) = params.ledger_mode.to_fields();
        sb.ledger_mode = mode_byte;
        sb.window_seconds = U32::new(window_seconds);
        sb.num_blocks = U64::new(num_blocks);
        let keys = VolumeKeys::derive(key, &key_context(&sb));
        sb.key_check = keys.key_check();
        sb.generation = U64::new(1);
        sb.mac = keys.superblock_mac(&sb);
        let mut block = vec![0u8; BLOCK_SIZE];
        // Slot 0 stays blank; generation 1 lives in slot 1.
        dev.write_blocks(0, &block, WriteMode::Cached)?;
        block[..SUPERBLOCK_LEN].copy_from_slice(sb.as_bytes());
        dev.write_blocks(spb, &block, WriteMode::Cached)?;
        dev.flush()?;
        tracing::info!(volume = %VolumeId(sb.volume_id), num_blocks, "formatted secure-store volume");
        Ok(Formatted {
            volume_id: VolumeId(sb.volume_id),
            record: LedgerRecord { generation: 1, superblock_hash: superblock_hash(&sb) },
        })
    }

    /// Opens a volume, accepting exactly the states the ledger allows, and verifies its tree.
    ///
    /// See `docs/store-format.md` ("Open") for the rules. Window mode (read-write) ends open with a boot
    /// commit: one new generation, the ledger moved to it. Otherwise never modifies the device; in boot-epoch mode (and
    /// on enrolment) it advances the ledger to the opened generation.
    pub fn open(dev: D, key: &StoreKey, ledger: L, options: OpenOptions) -> Result<Self, StoreError> {
        Self::open_inner(dev, key, ledger, options, false)
    }

    fn open_inner(
        mut dev: D,
        key: &StoreKey,
        mut ledger: L,
        mut options: OpenOptions,
        detached: bool,
    ) -> Result<Self, StoreError> {
        if detached {
            options.read_only = true;
        }
        let spb = sectors_per_block(&dev)?;
        let candidates = authenticated_slots(&mut dev, spb, key, options.read_only)?;
        let first = &candidates.first().ok_or(StoreError::Internal("no candidate"))?.0;
        let volume = VolumeId(first.volume_id);
        let mode = LedgerMode::from_fields(first.ledger_mode, first.window_seconds.get())
            .ok_or(StoreError::Internal("mode checked"))?;
        let mut clock = options.clock.take().map(WindowClock::new);
        #[cfg(feature = "std")]
        if clock.is_none() && matches!(mode, LedgerMode::Window { .. }) {
            clock = Some(WindowClock::new(Box::new(crate::clock::MonotonicClock::new())));
        }
        if clock.is_none() && matches!(mode, LedgerMode::Window { .. }) && !options.read_only {
            return Err(StoreError::InvalidParams("a window-mode volume needs a clock to open read-write"));
        }
        let num_blocks = first.num_blocks.get();
        let avail = device_blocks(&dev, spb);
        if avail < num_blocks {
            return Err(StoreError::DeviceTooSmall { device_blocks: avail, volume_blocks: num_blocks });
        }
        let keys = VolumeKeys::derive(key, &key_context(first));
        let record = if detached {
            // No freshness anchor: any authentic generation is acceptable (newest first, with fallback).
            Some(LedgerRecord { generation: 0, superblock_hash: [0; 32] })
        } else {
            ledger.read(&volume).map_err(StoreError::Ledger)?
        };
        let by_gen = |g: u64| candidates.iter().find(|(sb, _)| sb.generation.get() == g);
        let newest = candidates.iter().map(|(sb, _)| sb.generation.get()).max().unwrap_or(0);

        // Which slots may be opened, newest first, and whether each may fall back to the next.
        let mut report = OpenReport::default();
        let mut order: Vec<&(Superblock, [u8; 32])> = Vec::new();
        let mut advance_from: Option<Option<LedgerRecord>> = None;
        let selection_mode = if detached { LedgerMode::BootEpoch } else { mode };
        match (record, selection_mode) {
            (None, _) => {
                let only_gen1 = candidates.len() == 1 && newest == 1;
                if !options.enroll {
                    return Err(StoreError::NotEnrolled { volume });
                }
                if !only_gen1 {
                    return Err(StoreError::Rollback { found: newest, expected: 1 });
                }
                order.extend(by_gen(1));
                advance_from = Some(None);
            }
            (Some(rec), LedgerMode::Strict) => {
                let lgen = rec.generation;
                match by_gen(lgen) {
                    Some(c) if c.1 == rec.superblock_hash => order.push(c),
                    Some(_) => return Err(StoreError::Forked { generation: lgen }),
                    None if newest < lgen => {
                        return Err(StoreError::Rollback { found: newest, expected: lgen });
                    }
                    None => {
                        return Err(StoreError::Corrupt {
                            block: lgen % 2,
                            structure: Structure::Superblock { slot: (lgen % 2) as u8 },
                            detail: "the ledger's generation is missing while a newer one is present",
                        });
                    }
                }
                if newest == lgen + 1 {
                    // Committed locally, never acknowledged: discard (its slot is overwritten by the next commit).
                    report.discarded = Some(newest);
                }
            }
            (Some(rec), _) => {
                // Boot-epoch and window modes (and detached open).
                let l = rec.generation;
                // A newer generation is acceptable only on a chain anchored at the ledger's record: it was
                // written by a session opened from exactly (L, H). Anything else is a fork (e.g. an image from
                // an earlier run that a later, cleanly closed run has superseded).
                let descends = |sb: &Superblock| {
                    detached || (sb.anchor_generation.get() == l && sb.anchor_hash == rec.superblock_hash)
                };
                for c in candidates.iter().rev() {
                    let g = c.0.generation.get();
                    if (g > l && descends(&c.0)) || (g == l && c.1 == rec.superblock_hash) {
                        order.push(c);
                    }
                }
                if order.is_empty() {
                    if newest > l {
                        return Err(StoreError::Forked { generation: newest });
                    }
                    if by_gen(l).is_some() {
                        return Err(StoreError::Forked { generation: l });
                    }
                    return Err(StoreError::Rollback { found: newest, expected: l });
                }
                if !detached {
                    advance_from = Some(Some(rec));
                }
            }
        }

        let mut last_err = None;
        let mut chosen = None;
        for (i, (sb, _)) in order.iter().enumerate() {
            let mut vol = Vol {
                dev: &mut dev,
                keys: &keys,
                volume_id: sb.volume_id,
                num_blocks,
                sectors_per_block: spb,
                key_epoch: sb.key_epoch.get(),
            };
            let g = sb.generation.get();
            let check = if options.verify_all_data { DataCheck::All } else { DataCheck::BornIn(g) };
            match tree::walk(
                &mut vol,
                &sb.table_root,
                sb.table_depth,
                sb.object_count.get(),
                g,
                check,
                false,
                &mut |_| {},
            ) {
                Ok(w) => {
                    report.data_blocks_verified = w.data_blocks_verified;
                    chosen = Some(State::from_walk(*sb, w));
                    if i > 0 {
                        report.discarded = order.first().map(|c| c.0.generation.get());
                    }
                    break;
                }
                // Only an authentication failure of a commit that may have been cut short justifies falling
                // back; a device error never does (it would turn a transient fault into a rollback).
                Err(e @ StoreError::Corrupt { .. }) if i + 1 < order.len() => {
                    tracing::warn!(generation = g, error = %e, "newest generation incomplete; falling back");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        let state = chosen.ok_or(last_err.unwrap_or(StoreError::Internal("no candidate walked")))?;
        report.generation = state.sb.generation.get();

        // Window mode, read-write: the ledger moves at the boot commit below instead (one round trip).
        let boot_commit = matches!(mode, LedgerMode::Window { .. }) && !options.read_only && !detached;
        let mut anchor = state.record();
        if let Some(expected) = advance_from {
            let new = state.record();
            if expected != Some(new) {
                report.ledger_was = expected.map(|r| r.generation);
                if options.read_only {
                    if expected.is_none() {
                        return Err(StoreError::ReadOnly);
                    }
                } else if let (true, Some(held)) = (boot_commit, expected) {
                    anchor = held;
                } else {
                    cas(&mut ledger, &volume, expected.as_ref(), &new)?;
                }
            }
        }
        tracing::debug!(volume = %volume, generation = report.generation, ?report, "opened secure-store volume");
        let cursor = FIRST_DATA_BLOCK;
        // The window starts when open has moved the ledger to the opened generation.
        let advanced_at_ms = clock.as_mut().map_or(0, |c| c.now_ms(ledger.trusted_time_ms()));
        let seal_count = state.sb.seal_count.get();
        let mut store = Store {
            dev,
            ledger,
            keys,
            rng: options.rng,
            mode,
            sectors_per_block: spb,
            read_only: options.read_only,
            poisoned: false,
            state,
            pending: None,
            anchor,
            clock,
            advanced_at_ms,
            seal_count,
            cursor,
            report,
        };
        if boot_commit {
            // A boot boundary the host cannot undo: a new generation (the opened objects under a freshly
            // sealed table, so its hash is unique to this boot), and the ledger moved to it before open
            // returns. Without it a run opened at exactly the ledger's record would share its anchor with the
            // run before, whose later images would then still be accepted after this run crashes.
            let mut tx = store.begin();
            tx.force = true;
            tx.commit()?;
            if store.pending.is_some() {
                return Err(StoreError::Internal("boot commit left pending"));
            }
        }
        Ok(store)
    }

    /// What open found.
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// The committed generation reads see.
    pub fn generation(&self) -> u64 {
        self.state.sb.generation.get()
    }

    /// The volume's id.
    pub fn volume_id(&self) -> VolumeId {
        VolumeId(self.state.sb.volume_id)
    }

    /// The ledger mode recorded at format.
    pub fn ledger_mode(&self) -> LedgerMode {
        self.mode
    }

    /// The ledger record of the current generation.
    pub fn ledger_record(&self) -> LedgerRecord {
        self.state.record()
    }

    /// Figures about the volume.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            volume_id: self.volume_id(),
            generation: self.generation(),
            objects: self.state.objects.len() as u64,
            object_bytes: self.state.objects.values().map(|e| e.size.get()).sum(),
            total_blocks: self.state.sb.num_blocks.get(),
            used_blocks: self.state.used.count_ones(),
            seal_count: self.seal_count,
            ledger_mode: self.mode,
        }
    }

    /// Every object id and its size, in id order.
    pub fn objects(&self) -> impl Iterator<Item = (ObjectId, u64)> + '_ {
        self.state.objects.values().map(|e| (e.id.get(), e.size.get()))
    }

    /// Size of an object, if present.
    pub fn size_of(&self, id: ObjectId) -> Option<u64> {
        self.state.objects.get(&id).map(|e| e.size.get())
    }

    fn vol(&mut self) -> Vol<'_, D> {
        Vol {
            dev: &mut self.dev,
            keys: &self.keys,
            volume_id: self.state.sb.volume_id,
            num_blocks: self.state.sb.num_blocks.get(),
            sectors_per_block: self.sectors_per_block,
            key_epoch: self.state.sb.key_epoch.get(),
        }
    }

    /// Reads a whole object (authenticating every block), or `None` if it does not exist.
    pub fn get(&mut self, id: ObjectId) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let Some(size) = self.size_of(id) else { return Ok(None) };
        let mut out =
            Zeroizing::new(vec![0u8; usize::try_from(size).map_err(|_| StoreError::Internal("size"))?]);
        self.read_into(id, 0, &mut out)?;
        Ok(Some(out))
    }

    /// Reads `buf.len()` bytes (or up to the end of the object) starting at `offset`; returns bytes read.
    /// Only the blocks covering the range (and their index path) are read and authenticated.
    pub fn read_at(
        &mut self,
        id: ObjectId,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<Option<usize>, StoreError> {
        let Some(size) = self.size_of(id) else { return Ok(None) };
        if offset > size {
            return Err(StoreError::OutOfRange { id, offset, size });
        }
        let n = (size - offset).min(buf.len() as u64) as usize;
        self.read_into(id, offset, &mut buf[..n])?;
        Ok(Some(n))
    }

    fn read_into(&mut self, id: ObjectId, offset: u64, out: &mut [u8]) -> Result<(), StoreError> {
        if out.is_empty() {
            return Ok(());
        }
        let e = *self.state.objects.get(&id).ok_or(StoreError::Internal("object vanished"))?;
        let generation = self.generation();
        let bs = BLOCK_SIZE as u64;
        let end = offset + out.len() as u64;
        let nblocks = tree::data_blocks(e.size.get());
        let mut sink = |index: u64, block: &[u8; BLOCK_SIZE]| {
            let block_start = index * bs;
            let from = offset.max(block_start);
            let to = end.min(block_start + bs);
            if from < to {
                out[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&block[(from - block_start) as usize..(to - block_start) as usize]);
            }
        };
        let mut v = Visit {
            check: DataCheck::None,
            generation,
            want: offset / bs..end.div_ceil(bs),
            sink: Some(&mut sink),
            all_nodes: false,
            extent: None,
            kinds: None,
        };
        let mut scratch = Vec::new();
        let mut vol = self.vol();
        tree::visit_subtree(&mut vol, &mut v, id, &e.root, e.depth, 0, nblocks, &mut scratch, &mut |_| {})
    }

    /// Walks the current generation and authenticates every block, data included (what `fsck` does).
    /// `progress` is called with the number of data blocks verified so far and the total.
    pub fn verify_all(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<u64, StoreError> {
        let total: u64 = self.state.objects.values().map(|e| tree::data_blocks(e.size.get())).sum();
        let sb = self.state.sb;
        let mut done = 0u64;
        let mut vol = self.vol();
        let w = tree::walk(
            &mut vol,
            &sb.table_root,
            sb.table_depth,
            sb.object_count.get(),
            sb.generation.get(),
            DataCheck::All,
            false,
            &mut |n| {
                done += n;
                progress(done, total);
            },
        )?;
        if w.used != self.state.used {
            return Err(StoreError::Internal("block map differs from the one built at open"));
        }
        Ok(w.data_blocks_verified)
    }

    /// What every block of the current generation is (superblock slots, table nodes, index nodes, data
    /// blocks), in address order; blocks not listed are free. Re-walks the tree (metadata only).
    pub fn block_usage(&mut self) -> Result<Vec<(u64, Structure)>, StoreError> {
        let sb = self.state.sb;
        let mut vol = self.vol();
        let w = tree::walk(
            &mut vol,
            &sb.table_root,
            sb.table_depth,
            sb.object_count.get(),
            sb.generation.get(),
            DataCheck::None,
            true,
            &mut |_| {},
        )?;
        let mut kinds = w.kinds.unwrap_or_default();
        kinds.push((0, Structure::Superblock { slot: 0 }));
        kinds.push((1, Structure::Superblock { slot: 1 }));
        kinds.sort_by_key(|(a, _)| *a);
        Ok(kinds)
    }

    /// Starts a transaction. Nothing is visible to `get` or durable until [`Transaction::commit`].
    pub fn begin(&mut self) -> Transaction<'_, D, L> {
        Transaction {
            store: self,
            changes: BTreeMap::new(),
            alloc: None,
            seals: 0,
            run: Vec::new(),
            force: false,
        }
    }

    /// Settles a commit whose ledger acknowledgement was lost (strict, or a window advance): asks the ledger
    /// which record it holds. The new one: the commit is adopted; the one before: it is discarded.
    pub fn sync_ledger(&mut self) -> Result<(), StoreError> {
        let Some((pending, at_ms)) = self.pending.take() else { return Ok(()) };
        let volume = self.volume_id();
        // What the ledger held before the lost request: strict mode follows every commit; window mode
        // holds the session's anchor (its last advance).
        let before = if self.mode == LedgerMode::Strict { self.state.record() } else { self.anchor };
        match self.ledger.read(&volume) {
            Ok(Some(r)) if r == pending.record() => {
                if matches!(self.mode, LedgerMode::Window { .. }) {
                    self.anchor = r;
                    self.advanced_at_ms = at_ms;
                }
                self.state = pending;
                Ok(())
            }
            Ok(Some(r)) if r == before => Ok(()),
            Ok(found) => {
                self.poisoned = true;
                Err(StoreError::LedgerConflict { expected: Some(pending.record()), found })
            }
            Err(e) => {
                self.pending = Some((pending, at_ms));
                Err(StoreError::Ledger(e))
            }
        }
    }

    /// The latest authenticated time the ledger has given this volume's client (ms since the Unix epoch),
    /// if the ledger carries one (the ledger service does; it refuses a reply older than one already seen).
    /// For the vTPM's clock and for policy ("not after"): it is the service's time when that reply was sent,
    /// so it lags real time by the reply's transit and by the time since the last ledger exchange.
    pub fn trusted_time_ms(&self) -> Option<u64> {
        self.ledger.trusted_time_ms()
    }

    /// Window mode: the window clock now, i.e. [`Store::trusted_time_ms`] carried forward by the local
    /// monotonic clock since that reply (or the local clock alone if the ledger carries no time). `None`
    /// in other modes.
    pub fn window_clock_ms(&mut self) -> Option<u64> {
        let trusted = self.ledger.trusted_time_ms();
        self.clock.as_mut().map(|c| c.now_ms(trusted))
    }

    /// Window mode: how long ago (on the store's clock) the ledger last moved, and whether commits made
    /// since are still unprotected (a host could roll them back). `None` in other modes.
    pub fn window_status(&mut self) -> Option<(u64, bool)> {
        if !matches!(self.mode, LedgerMode::Window { .. }) {
            return None;
        }
        let trusted = self.ledger.trusted_time_ms();
        let age = self.clock.as_mut()?.now_ms(trusted).saturating_sub(self.advanced_at_ms);
        Some((age, self.state.record() != self.anchor))
    }

    /// Window mode: advances the ledger to the current generation if commits made since the last advance
    /// are unprotected and the window has run out. A daemon calls this periodically so that an idle volume's
    /// last commits are protected within about T, not only at the next commit. Returns whether it advanced.
    /// A no-op in other modes.
    pub fn advance_if_due(&mut self) -> Result<bool, StoreError> {
        let LedgerMode::Window { seconds } = self.mode else { return Ok(false) };
        if self.read_only || self.poisoned {
            return Ok(false);
        }
        self.sync_ledger()?;
        let trusted = self.ledger.trusted_time_ms();
        let Some(clock) = self.clock.as_mut() else { return Ok(false) };
        let now = clock.now_ms(trusted);
        let new = self.state.record();
        if new == self.anchor || now.saturating_sub(self.advanced_at_ms) < u64::from(seconds) * 1000 {
            return Ok(false);
        }
        let volume = self.volume_id();
        match cas(&mut self.ledger, &volume, Some(&self.anchor), &new) {
            Ok(()) => {
                self.anchor = new;
                self.advanced_at_ms = now;
                Ok(true)
            }
            Err(e @ StoreError::LedgerConflict { .. }) => {
                self.poisoned = true;
                Err(e)
            }
            Err(e) => {
                // Outcome unknown; the state is already current, so only the anchor is in doubt.
                self.pending = Some((self.state.clone(), now));
                Err(e)
            }
        }
    }

    /// Clean shutdown: in boot-epoch and window modes advances the ledger to the current generation, so
    /// images from before this point are refused at the next open. Returns the device.
    pub fn close(mut self) -> Result<D, StoreError> {
        self.sync_ledger()?;
        if self.mode.adopts_descendants() && !self.read_only {
            let volume = self.volume_id();
            let current = self.ledger.read(&volume).map_err(StoreError::Ledger)?;
            let new = self.state.record();
            if current != Some(new) {
                let ok = current.is_some_and(|c| c.generation < new.generation);
                if !ok {
                    return Err(StoreError::LedgerConflict { expected: Some(new), found: current });
                }
                cas(&mut self.ledger, &volume, current.as_ref(), &new)?;
            }
        }
        Ok(self.dev)
    }

    /// Gives the device and ledger back without touching the ledger (tests: simulate a crash).
    pub fn into_parts(self) -> (D, L) {
        (self.dev, self.ledger)
    }
}

impl<D: BlockDevice> Store<D, crate::ledger::Detached> {
    /// Opens a volume **read-only without any freshness check**: the newest authentic generation on the
    /// device is used, whatever any ledger says. For backups and offline inspection of images that are not the
    /// live volume; never for state a guest depends on.
    pub fn open_detached(dev: D, key: &StoreKey, options: OpenOptions) -> Result<Self, StoreError> {
        Self::open_inner(dev, key, crate::ledger::Detached, options, true)
    }
}

/// Compare-and-set with read-back when the outcome is unknown.
fn cas<L: Ledger>(
    ledger: &mut L,
    volume: &VolumeId,
    expected: Option<&LedgerRecord>,
    new: &LedgerRecord,
) -> Result<(), StoreError> {
    match ledger.compare_and_set(volume, expected, new) {
        Ok(()) => Ok(()),
        Err(LedgerError::Conflict { current }) if current.as_ref() == Some(new) => Ok(()),
        Err(LedgerError::Conflict { current }) => {
            Err(StoreError::LedgerConflict { expected: expected.copied(), found: current })
        }
        Err(e) => Err(StoreError::Ledger(e)),
    }
}

/// Reads both slots and returns the authenticated superblocks (with their hashes), oldest first.
fn authenticated_slots<D: BlockDevice>(
    dev: &mut D,
    spb: u64,
    key: &StoreKey,
    read_only: bool,
) -> Result<Vec<(Superblock, [u8; 32])>, StoreError> {
    if device_blocks(dev, spb) < FIRST_DATA_BLOCK {
        return Err(StoreError::Unformatted { detail: "device smaller than two blocks" });
    }
    let slots = [read_slot(dev, spb, 0)?, read_slot(dev, spb, 1)?];
    let headers: Vec<(u64, &Superblock, bool)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::Header(sb, tail) => Some((i as u64, &**sb, *tail)),
            _ => None,
        })
        .collect();
    if headers.is_empty() {
        let blank = slots.iter().all(|s| matches!(s, Slot::Blank));
        return Err(StoreError::Unformatted {
            detail: if blank {
                "both superblock slots are blank"
            } else {
                "no superblock magic in either slot"
            },
        });
    }
    let mut first_version_error = None;
    let mut key_matched = false;
    let mut valid: Vec<(Superblock, [u8; 32])> = Vec::new();
    let mut last_slot = 0;
    for (slot, sb, tail_zero) in headers {
        last_slot = slot;
        if let Err(e) = check_header(sb, read_only) {
            first_version_error.get_or_insert(e);
            continue;
        }
        let keys = VolumeKeys::derive(key, &key_context(sb));
        if keys.key_check() != sb.key_check {
            continue;
        }
        key_matched = true;
        if tail_zero && keys.verify_superblock(sb) && check_authenticated(sb, slot).is_ok() {
            valid.push((*sb, superblock_hash(sb)));
        } else {
            tracing::debug!(slot, "superblock slot does not verify (torn write or tampering)");
        }
    }
    if valid.is_empty() {
        if let Some(e) = first_version_error {
            return Err(e);
        }
        if !key_matched {
            return Err(StoreError::WrongKey);
        }
        return Err(StoreError::Corrupt {
            block: last_slot,
            structure: Structure::Superblock { slot: last_slot as u8 },
            detail: "no superblock slot authenticates",
        });
    }
    if valid.len() == 2 && !same_volume(&valid[0].0, &valid[1].0) {
        return Err(StoreError::Corrupt {
            block: 1,
            structure: Structure::Superblock { slot: 1 },
            detail: "the two superblocks belong to different volumes",
        });
    }
    valid.sort_by_key(|(sb, _)| sb.generation.get());
    Ok(valid)
}

/// A staged change.
#[derive(Debug)]
enum Change {
    Put { entry: ObjectEntry, extent: Vec<u32> },
    Delete,
}

/// An atomic group of puts and deletes. Dropping it without [`Transaction::commit`] discards it (the blocks
/// it wrote were never referenced by a superblock).
pub struct Transaction<'s, D: BlockDevice, L: Ledger> {
    store: &'s mut Store<D, L>,
    changes: BTreeMap<ObjectId, Change>,
    alloc: Option<Allocator>,
    seals: u64,
    /// Write buffer reused by every put of the transaction (ciphertext only).
    run: Vec<u8>,
    /// Window mode's boot commit: commit even without changes, and advance the ledger whatever the clock.
    force: bool,
}

impl<D: BlockDevice, L: Ledger> core::fmt::Debug for Transaction<'_, D, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transaction").field("changes", &self.changes.len()).finish_non_exhaustive()
    }
}

impl<D: BlockDevice, L: Ledger> Transaction<'_, D, L> {
    fn prepare(&mut self) -> Result<(), StoreError> {
        if self.store.poisoned {
            return Err(StoreError::Poisoned);
        }
        if self.store.read_only {
            return Err(StoreError::ReadOnly);
        }
        if self.store.seal_count >= NONCE_BUDGET {
            return Err(StoreError::NonceBudgetExhausted);
        }
        if self.alloc.is_none() {
            self.store.sync_ledger()?;
            let used = &self.store.state.used;
            let total = self.store.state.sb.num_blocks.get();
            self.alloc = Some(Allocator {
                busy: used.clone(),
                cursor: self.store.cursor,
                free: total - used.count_ones(),
            });
        }
        Ok(())
    }

    /// Stages `bytes` as the new content of object `id` (writing its blocks now, to fresh locations).
    pub fn put(&mut self, id: ObjectId, bytes: &[u8]) -> Result<(), StoreError> {
        if !ids::is_writable(id) {
            return Err(StoreError::InvalidObjectId { id });
        }
        self.prepare()?;
        let birth = self.store.generation() + 1;
        let mut alloc = self.alloc.take().ok_or(StoreError::Internal("allocator"))?;
        let store = &mut *self.store;
        let mut vol = Vol {
            dev: &mut store.dev,
            keys: &store.keys,
            volume_id: store.state.sb.volume_id,
            num_blocks: store.state.sb.num_blocks.get(),
            sectors_per_block: store.sectors_per_block,
            key_epoch: store.state.sb.key_epoch.get(),
        };
        let before = self.seals;
        let result = tree::write_object(
            &mut vol,
            &mut *store.rng,
            &mut alloc,
            id,
            bytes,
            birth,
            &mut self.seals,
            &mut self.run,
        );
        store.seal_count = store.seal_count.saturating_add(self.seals - before);
        match result {
            Ok((entry, extent)) => {
                self.release_staged(&mut alloc, id);
                self.changes.insert(id, Change::Put { entry, extent });
                self.alloc = Some(alloc);
                Ok(())
            }
            Err(e) => {
                // Blocks taken by the failed put stay marked busy for this transaction only: harmless.
                self.alloc = Some(alloc);
                Err(e)
            }
        }
    }

    /// Stages removal of object `id` (no error if it does not exist).
    pub fn delete(&mut self, id: ObjectId) -> Result<(), StoreError> {
        if id == 0 {
            return Err(StoreError::InvalidObjectId { id });
        }
        self.prepare()?;
        let mut alloc = self.alloc.take().ok_or(StoreError::Internal("allocator"))?;
        self.release_staged(&mut alloc, id);
        self.alloc = Some(alloc);
        self.changes.insert(id, Change::Delete);
        Ok(())
    }

    /// Blocks written for an earlier put of `id` in this transaction were never committed: reuse them.
    fn release_staged(&mut self, alloc: &mut Allocator, id: ObjectId) {
        if let Some(Change::Put { extent, .. }) = self.changes.remove(&id) {
            for b in extent {
                alloc.busy.clear(u64::from(b));
            }
        }
    }

    /// Makes the transaction durable and returns the new generation.
    ///
    /// Returns only when the new superblock and everything it references are on stable media (one flush),
    /// and in strict mode when the ledger has acknowledged it. On error nothing is visible; the transaction
    /// may still surface at the next open only if it was fully durable (all-or-nothing).
    pub fn commit(mut self) -> Result<u64, StoreError> {
        self.prepare()?;
        let store = &mut *self.store;
        let base = store.state.clone();
        if self.changes.is_empty() && !self.force {
            return Ok(base.sb.generation.get());
        }
        let generation = base.sb.generation.get().checked_add(1).ok_or(StoreError::NonceBudgetExhausted)?;
        let mut alloc = self.alloc.take().ok_or(StoreError::Internal("allocator"))?;
        let mut objects = base.objects.clone();
        let mut extents = base.extents.clone();
        for (id, change) in core::mem::take(&mut self.changes) {
            match change {
                Change::Put { entry, extent } => {
                    objects.insert(id, entry);
                    extents.insert(id, extent);
                }
                Change::Delete => {
                    objects.remove(&id);
                    extents.remove(&id);
                }
            }
        }
        let mut vol = Vol {
            dev: &mut store.dev,
            keys: &store.keys,
            volume_id: base.sb.volume_id,
            num_blocks: base.sb.num_blocks.get(),
            sectors_per_block: store.sectors_per_block,
            key_epoch: base.sb.key_epoch.get(),
        };
        let before = self.seals;
        let table =
            tree::write_table(&mut vol, &mut *store.rng, &mut alloc, &objects, generation, &mut self.seals);
        store.seal_count = store.seal_count.saturating_add(self.seals - before);
        let (root, depth, table_blocks) = table?;
        let seal_count = store.seal_count;
        if seal_count > NONCE_BUDGET {
            return Err(StoreError::NonceBudgetExhausted);
        }
        let mut sb = base.sb;
        sb.generation = U64::new(generation);
        sb.table_root = root;
        sb.table_depth = depth;
        sb.object_count = U64::new(objects.len() as u64);
        sb.seal_count = U64::new(seal_count);
        sb.prev_hash = base.hash;
        sb.anchor_generation = U64::new(store.anchor.generation);
        sb.anchor_hash = store.anchor.superblock_hash;
        sb.mac = store.keys.superblock_mac(&sb);
        let mut block = vec![0u8; BLOCK_SIZE];
        block[..SUPERBLOCK_LEN].copy_from_slice(sb.as_bytes());
        // One barrier makes the new tree and its superblock durable together. If power is cut before it
        // completes, any subset may have landed: open then authenticates every block born in this generation
        // and falls back to the previous slot, which nothing here touched.
        vol.write_raw(generation % 2, &block, WriteMode::Cached)?;
        store.dev.flush()?;

        let mut used = Bitmap::new(base.sb.num_blocks.get());
        for slot in 0..FIRST_DATA_BLOCK {
            used.set(slot);
        }
        for b in extents.values().flatten().chain(table_blocks.iter()) {
            used.set(u64::from(*b));
        }
        let new = State { hash: superblock_hash(&sb), sb, objects, extents, used };
        store.cursor = alloc.cursor;
        // Which ledger record this commit must replace before it may return, if any: strict mode always;
        // window mode when the ledger last moved T or more ago (measured now, after the flush), so no
        // acknowledged commit is ever more than T younger than the last advance.
        let trusted = store.ledger.trusted_time_ms();
        let now = store.clock.as_mut().map_or(0, |c| c.now_ms(trusted));
        let advance_from = match store.mode {
            LedgerMode::Strict => Some(base.record()),
            LedgerMode::BootEpoch => None,
            LedgerMode::Window { seconds } => {
                (now.saturating_sub(store.advanced_at_ms) >= u64::from(seconds) * 1000 || self.force)
                    .then_some(store.anchor)
            }
        };
        if let Some(expected) = advance_from {
            let volume = VolumeId(sb.volume_id);
            match cas(&mut store.ledger, &volume, Some(&expected), &new.record()) {
                Ok(()) => {
                    if store.mode != LedgerMode::Strict {
                        store.anchor = new.record();
                        store.advanced_at_ms = now;
                    }
                }
                Err(e @ StoreError::LedgerConflict { .. }) => {
                    store.poisoned = true;
                    return Err(e);
                }
                Err(e) => {
                    // Outcome unknown: neither adopt nor forget it until the ledger says which.
                    store.pending = Some((new, now));
                    return Err(e);
                }
            }
        }
        store.state = new;
        tracing::trace!(generation, "committed");
        Ok(generation)
    }
}
