//! Reading, writing and walking the authenticated tree: object table nodes, object index nodes, data blocks.
//!
//! Every block read here comes from the host, so everything is checked before use: addresses against the
//! volume, tags against the parent, node headers against what the parent said the node must be, counts
//! against what the object size implies. A failure names the block and the structure.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use svsm_block::{BlockDevice, WriteMode};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use crate::api::RandomSource;
use crate::bitmap::Bitmap;
use crate::crypto::VolumeKeys;
use crate::error::{StoreError, Structure};
use crate::format::{
    BLOCK_SIZE, BlockAad, FIRST_DATA_BLOCK, FORMAT_MAJOR, INDEX_FANOUT, INTERIOR_CAPACITY, LEAF_CAPACITY,
    MAX_OBJECT_DEPTH, MAX_TABLE_DEPTH, NODE_VERSION, NodeHeader, ObjectEntry, Pointer, TableChild, node_type,
};

/// A 4 KiB block buffer on the heap (SVSM stacks are small), zeroized on drop since it held plaintext.
pub(crate) struct BlockBuf(Box<[u8; BLOCK_SIZE]>);

impl core::ops::Deref for BlockBuf {
    type Target = [u8; BLOCK_SIZE];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl core::ops::DerefMut for BlockBuf {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.0);
    }
}

pub(crate) fn new_block() -> BlockBuf {
    BlockBuf(Box::new([0u8; BLOCK_SIZE]))
}

/// Largest run of contiguous data blocks read or written in one device call.
pub(crate) const RUN_BLOCKS: usize = INDEX_FANOUT;
/// Largest run of contiguous data blocks sealed and written in one device call by `put` (1 MiB).
const WRITE_RUN_BLOCKS: usize = 256;

/// Volume-wide context every tree operation needs.
pub(crate) struct Vol<'a, D: BlockDevice> {
    pub dev: &'a mut D,
    pub keys: &'a VolumeKeys,
    pub volume_id: [u8; 16],
    pub num_blocks: u64,
    pub sectors_per_block: u64,
    pub key_epoch: u32,
}

impl<D: BlockDevice> Vol<'_, D> {
    pub(crate) fn aad(&self, node: u8, level: u8, addr: u64, object: u64, position: u64) -> BlockAad {
        BlockAad {
            volume_id: self.volume_id,
            format_major: FORMAT_MAJOR.into(),
            node_type: node,
            level,
            key_epoch: self.key_epoch.into(),
            addr: addr.into(),
            object_id: object.into(),
            position: position.into(),
        }
    }

    pub(crate) fn read_raw(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let lba = addr.checked_mul(self.sectors_per_block).ok_or(StoreError::Internal("lba overflow"))?;
        self.dev.read_blocks(lba, buf)?;
        Ok(())
    }

    pub(crate) fn write_raw(&mut self, addr: u64, buf: &[u8], mode: WriteMode) -> Result<(), StoreError> {
        let lba = addr.checked_mul(self.sectors_per_block).ok_or(StoreError::Internal("lba overflow"))?;
        self.dev.write_blocks(lba, buf, mode)?;
        Ok(())
    }

    fn check_addr(&self, ptr: &Pointer, structure: Structure, generation: u64) -> Result<u64, StoreError> {
        let addr = ptr.addr.get();
        if addr < FIRST_DATA_BLOCK || addr >= self.num_blocks {
            return Err(StoreError::Corrupt { block: addr, structure, detail: "pointer outside the volume" });
        }
        if ptr.birth.get() == 0 || ptr.birth.get() > generation {
            return Err(StoreError::Corrupt {
                block: addr,
                structure,
                detail: "pointer from a future generation",
            });
        }
        if ptr.flags.get() != 0 {
            return Err(StoreError::Corrupt { block: addr, structure, detail: "unknown pointer flags" });
        }
        Ok(addr)
    }

    /// Reads and authenticates one block the pointer names.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_sealed(
        &mut self,
        ptr: &Pointer,
        node: u8,
        level: u8,
        object: u64,
        position: u64,
        structure: Structure,
        generation: u64,
        buf: &mut [u8; BLOCK_SIZE],
    ) -> Result<(), StoreError> {
        let addr = self.check_addr(ptr, structure, generation)?;
        self.read_raw(addr, buf)?;
        let aad = self.aad(node, level, addr, object, position);
        if !self.keys.open(&aad, &ptr.nonce, &ptr.tag, buf) {
            buf.fill(0);
            return Err(StoreError::Corrupt {
                block: addr,
                structure,
                detail: "authentication tag mismatch",
            });
        }
        Ok(())
    }

    /// Seals `buf` in place for `addr` and returns the pointer to it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal(
        &self,
        rng: &mut dyn RandomSource,
        node: u8,
        level: u8,
        addr: u64,
        object: u64,
        position: u64,
        birth: u64,
        buf: &mut [u8; BLOCK_SIZE],
    ) -> Result<Pointer, StoreError> {
        let aad = self.aad(node, level, addr, object, position);
        let (nonce, tag) = self.keys.seal(rng, &aad, buf)?;
        Ok(Pointer { addr: addr.into(), birth: birth.into(), nonce, tag, flags: U32::new(0) })
    }
}

/// Data blocks an object of `size` bytes occupies.
pub(crate) fn data_blocks(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE as u64)
}

/// Index levels an object of `n` data blocks needs (0 for 0 or 1 blocks).
pub(crate) fn depth_for_blocks(n: u64) -> u8 {
    let mut depth = 0u8;
    let mut cover = 1u64;
    while cover < n {
        cover = cover.saturating_mul(INDEX_FANOUT as u64);
        depth += 1;
    }
    depth
}

/// Data blocks one child of a node at `level` covers: 85^(level-1).
fn child_span(level: u8) -> u64 {
    (INDEX_FANOUT as u64).saturating_pow(u32::from(level.saturating_sub(1)))
}

fn parse_header(buf: &[u8; BLOCK_SIZE]) -> NodeHeader {
    // A 4096-byte buffer always holds a 16-byte header.
    NodeHeader::read_from_prefix(buf).map(|(h, _)| h).unwrap_or_default()
}

/// What a walk should do with data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataCheck {
    /// Authenticate none (only mark them used).
    None,
    /// Authenticate those written by the commit of this generation (open: proves the last commit landed).
    BornIn(u64),
    /// Authenticate all (fsck).
    All,
}

/// The result of walking a committed tree: the object table and the block map.
#[derive(Debug, Clone)]
pub(crate) struct Walked {
    pub objects: BTreeMap<u64, ObjectEntry>,
    /// Every block each object occupies (index nodes and data), for freeing on overwrite.
    pub extents: BTreeMap<u64, Vec<u32>>,
    pub table_blocks: Vec<u32>,
    pub used: Bitmap,
    pub data_blocks_verified: u64,
    /// What each block is, when asked for (inspection and tamper campaigns).
    pub kinds: Option<Vec<(u64, Structure)>>,
}

/// Walks the whole tree of one superblock, authenticating every table and index node and the data blocks
/// `check` asks for, and rebuilds the in-use map. Memory: the table entries, 4 bytes per used block, and a
/// run buffer of 85 blocks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk<D: BlockDevice>(
    vol: &mut Vol<'_, D>,
    root: &Pointer,
    table_depth: u8,
    object_count: u64,
    generation: u64,
    check: DataCheck,
    record_kinds: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<Walked, StoreError> {
    let mut w = Walked {
        kinds: record_kinds.then(Vec::new),
        objects: BTreeMap::new(),
        extents: BTreeMap::new(),
        table_blocks: Vec::new(),
        used: Bitmap::new(vol.num_blocks),
        data_blocks_verified: 0,
    };
    for slot in 0..FIRST_DATA_BLOCK {
        w.used.set(slot);
    }
    let sb_structure = Structure::Superblock { slot: (generation % 2) as u8 };
    if root.is_null() {
        if object_count != 0 || table_depth != 0 {
            return Err(StoreError::Corrupt {
                block: generation % 2,
                structure: sb_structure,
                detail: "empty table with a nonzero object count",
            });
        }
        return Ok(w);
    }
    if table_depth > MAX_TABLE_DEPTH {
        return Err(StoreError::Corrupt {
            block: generation % 2,
            structure: sb_structure,
            detail: "table too deep",
        });
    }
    let mut ordinals = [0u64; MAX_TABLE_DEPTH as usize + 1];
    let mut scratch = vec![0u8; RUN_BLOCKS * BLOCK_SIZE];
    walk_table(
        vol,
        &mut w,
        root,
        table_depth,
        1,
        u64::MAX,
        &mut ordinals,
        generation,
        check,
        &mut scratch,
        progress,
    )?;
    if w.objects.len() as u64 != object_count {
        return Err(StoreError::Corrupt {
            block: generation % 2,
            structure: sb_structure,
            detail: "object count differs from the table",
        });
    }
    Ok(w)
}

fn mark(w: &mut Walked, addr: u64, structure: Structure) -> Result<(), StoreError> {
    if w.used.set(addr) {
        return Err(StoreError::Corrupt { block: addr, structure, detail: "block referenced twice" });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn walk_table<D: BlockDevice>(
    vol: &mut Vol<'_, D>,
    w: &mut Walked,
    ptr: &Pointer,
    level: u8,
    lo: u64,
    hi: u64,
    ordinals: &mut [u64; MAX_TABLE_DEPTH as usize + 1],
    generation: u64,
    check: DataCheck,
    scratch: &mut Vec<u8>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), StoreError> {
    let structure = Structure::TableNode { level };
    let ordinal = ordinals[level as usize];
    ordinals[level as usize] = ordinal.saturating_add(1);
    let node = if level == 0 { node_type::TABLE_LEAF } else { node_type::TABLE_INTERIOR };
    let mut buf = new_block();
    vol.read_sealed(ptr, node, level, 0, ordinal, structure, generation, &mut buf)?;
    let addr = ptr.addr.get();
    mark(w, addr, structure)?;
    w.table_blocks.push(addr as u32);
    if let Some(k) = w.kinds.as_mut() {
        k.push((addr, structure));
    }
    let corrupt = |detail| StoreError::Corrupt { block: addr, structure, detail };
    let h = parse_header(&buf);
    if h.node_type != node || h.node_version != NODE_VERSION || h.level != level || h.object_id.get() != 0 {
        return Err(corrupt("node header does not match its pointer"));
    }
    let count = h.count.get() as usize;
    let body = &buf[16..];
    if level == 0 {
        if count == 0 || count > LEAF_CAPACITY {
            return Err(corrupt("bad table leaf entry count"));
        }
        let mut prev: Option<u64> = None;
        for i in 0..count {
            let e = ObjectEntry::read_from_prefix(&body[i * 72..]).map_err(|_| corrupt("short leaf"))?.0;
            let id = e.id.get();
            if id < lo || id >= hi || prev.is_some_and(|p| id <= p) || id == 0 {
                return Err(corrupt("table entries out of order"));
            }
            prev = Some(id);
            walk_object(vol, w, &e, generation, check, scratch, progress)?;
            w.objects.insert(id, e);
        }
    } else {
        if count == 0 || count > INTERIOR_CAPACITY {
            return Err(corrupt("bad table interior child count"));
        }
        let children: Vec<TableChild> = (0..count)
            .map(|i| {
                TableChild::read_from_prefix(&body[i * 56..])
                    .map(|(c, _)| c)
                    .map_err(|_| corrupt("short node"))
            })
            .collect::<Result<_, _>>()?;
        for (i, c) in children.iter().enumerate() {
            let first = c.first_id.get();
            let next = children.get(i + 1).map_or(hi, |n| n.first_id.get());
            if first < lo || first >= next || next > hi {
                return Err(corrupt("table children out of order"));
            }
            walk_table(
                vol,
                w,
                &c.ptr,
                level - 1,
                first,
                next,
                ordinals,
                generation,
                check,
                scratch,
                progress,
            )?;
        }
    }
    Ok(())
}

fn walk_object<D: BlockDevice>(
    vol: &mut Vol<'_, D>,
    w: &mut Walked,
    e: &ObjectEntry,
    generation: u64,
    check: DataCheck,
    scratch: &mut Vec<u8>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), StoreError> {
    let id = e.id.get();
    let size = e.size.get();
    let entry_corrupt = |detail| StoreError::Corrupt {
        block: e.root.addr.get(),
        structure: Structure::IndexNode { object: id, level: e.depth },
        detail,
    };
    if e.flags != 0 || e.reserved != [0; 6] {
        return Err(entry_corrupt("unknown object flags"));
    }
    let nblocks = data_blocks(size);
    if nblocks > vol.num_blocks || e.depth != depth_for_blocks(nblocks) || e.depth > MAX_OBJECT_DEPTH {
        return Err(entry_corrupt("object size and depth disagree"));
    }
    if (nblocks == 0) != e.root.is_null() {
        return Err(entry_corrupt("empty object with a root, or non-empty without one"));
    }
    let mut extent = Vec::new();
    if nblocks > 0 {
        let mut visit = Visit {
            check,
            generation,
            want: 0..nblocks,
            sink: None,
            all_nodes: true,
            extent: Some(&mut extent),
            kinds: w.kinds.as_mut(),
        };
        visit_subtree(vol, &mut visit, id, &e.root, e.depth, 0, nblocks, scratch, &mut |n| {
            w.data_blocks_verified += n;
            progress(n)
        })?;
    }
    for &a in &extent {
        let structure = Structure::IndexNode { object: id, level: 0 };
        mark(w, u64::from(a), structure)?;
    }
    w.extents.insert(id, extent);
    Ok(())
}

/// Receives decrypted data blocks: (block index within the object, plaintext).
pub(crate) type BlockSink<'o> = dyn FnMut(u64, &[u8; BLOCK_SIZE]) + 'o;

/// Parameters of one descent into an object's tree.
pub(crate) struct Visit<'o> {
    pub check: DataCheck,
    pub generation: u64,
    /// Data block indexes of interest.
    pub want: core::ops::Range<u64>,
    /// Where decrypted data blocks go: (block index, plaintext). Implies authenticating them.
    pub sink: Option<&'o mut BlockSink<'o>>,
    /// Visit every index node (open/fsck), not only those on the path to `want`.
    pub all_nodes: bool,
    /// Collects every block address of the object.
    pub extent: Option<&'o mut Vec<u32>>,
    /// Collects what each block is.
    pub kinds: Option<&'o mut Vec<(u64, Structure)>>,
}

/// Descends from `ptr` (a node at `level` covering data blocks `base..`), `nblocks` data blocks in the object.
#[allow(clippy::too_many_arguments)]
pub(crate) fn visit_subtree<D: BlockDevice>(
    vol: &mut Vol<'_, D>,
    v: &mut Visit<'_>,
    object: u64,
    ptr: &Pointer,
    level: u8,
    base: u64,
    nblocks: u64,
    scratch: &mut Vec<u8>,
    verified: &mut dyn FnMut(u64),
) -> Result<(), StoreError> {
    if level == 0 {
        // A single data block (object depth 0).
        return visit_data_run(vol, v, object, core::slice::from_ref(ptr), None, base, scratch, verified);
    }
    let structure = Structure::IndexNode { object, level };
    let mut buf = new_block();
    vol.read_sealed(ptr, node_type::INDEX, level, object, base, structure, v.generation, &mut buf)?;
    let addr = ptr.addr.get();
    if let Some(ext) = v.extent.as_deref_mut() {
        ext.push(addr as u32);
    }
    if let Some(k) = v.kinds.as_deref_mut() {
        k.push((addr, structure));
    }
    let corrupt = |detail| StoreError::Corrupt { block: addr, structure, detail };
    let h = parse_header(&buf);
    if h.node_type != node_type::INDEX
        || h.node_version != NODE_VERSION
        || h.level != level
        || h.object_id.get() != object
    {
        return Err(corrupt("node header does not match its pointer"));
    }
    let span = child_span(level);
    let covered = nblocks.saturating_sub(base).min(span.saturating_mul(INDEX_FANOUT as u64));
    let expected = covered.div_ceil(span);
    if u64::from(h.count.get()) != expected || expected == 0 || expected > INDEX_FANOUT as u64 {
        return Err(corrupt("index node child count does not match the object size"));
    }
    let children: Vec<Pointer> = (0..expected as usize)
        .map(|i| {
            Pointer::read_from_prefix(&buf[16 + i * 48..]).map(|(p, _)| p).map_err(|_| corrupt("short node"))
        })
        .collect::<Result<_, _>>()?;
    drop(buf);
    if level == 1 {
        return visit_data_run(vol, v, object, &children, Some(ptr.birth.get()), base, scratch, verified);
    }
    for (i, c) in children.iter().enumerate() {
        let child_base = base + i as u64 * span;
        let child_end = child_base.saturating_add(span);
        if !v.all_nodes && (child_end <= v.want.start || child_base >= v.want.end) {
            continue;
        }
        if c.birth.get() > ptr.birth.get() {
            return Err(corrupt("child newer than its parent"));
        }
        visit_subtree(vol, v, object, c, level - 1, child_base, nblocks, scratch, verified)?;
    }
    Ok(())
}

/// Handles the data-block children of one level-1 node (or the single block of a depth-0 object):
/// range-checks and records them, and reads and authenticates those requested, in contiguous runs.
/// `parent_birth` is the birth of the index node holding `ptrs` (none for a depth-0 object's only block).
#[allow(clippy::too_many_arguments)]
fn visit_data_run<D: BlockDevice>(
    vol: &mut Vol<'_, D>,
    v: &mut Visit<'_>,
    object: u64,
    ptrs: &[Pointer],
    parent_birth: Option<u64>,
    base: u64,
    scratch: &mut Vec<u8>,
    verified: &mut dyn FnMut(u64),
) -> Result<(), StoreError> {
    let mut selected: Vec<(u64, &Pointer)> = Vec::new();
    for (i, p) in ptrs.iter().enumerate() {
        let index = base + i as u64;
        let structure = Structure::DataBlock { object, index };
        let addr = vol.check_addr(p, structure, v.generation)?;
        // The spec's "child birth <= parent" rule holds for data children too: a commit that rewrites a data
        // block rewrites every index node above it.
        if parent_birth.is_some_and(|pb| p.birth.get() > pb) {
            return Err(StoreError::Corrupt {
                block: addr,
                structure,
                detail: "data block newer than its index node",
            });
        }
        if let Some(ext) = v.extent.as_deref_mut() {
            ext.push(addr as u32);
        }
        if let Some(k) = v.kinds.as_deref_mut() {
            k.push((addr, structure));
        }
        let wanted = v.want.contains(&index)
            && (v.sink.is_some()
                || match v.check {
                    DataCheck::None => false,
                    DataCheck::BornIn(g) => p.birth.get() == g,
                    DataCheck::All => true,
                });
        if wanted {
            selected.push((index, p));
        }
    }
    let mut i = 0;
    while i < selected.len() {
        // Extend a run while addresses are consecutive.
        let start = selected[i].1.addr.get();
        let mut j = i + 1;
        while j < selected.len() && selected[j].1.addr.get() == start + (j - i) as u64 && j - i < RUN_BLOCKS {
            j += 1;
        }
        let run = &selected[i..j];
        let bytes = run.len() * BLOCK_SIZE;
        if scratch.len() < bytes {
            scratch.resize(bytes, 0);
        }
        vol.read_raw(start, &mut scratch[..bytes])?;
        for (k, (index, p)) in run.iter().enumerate() {
            let block: &mut [u8; BLOCK_SIZE] = (&mut scratch[k * BLOCK_SIZE..(k + 1) * BLOCK_SIZE])
                .try_into()
                .map_err(|_| StoreError::Internal("run slicing"))?;
            let addr = p.addr.get();
            let aad = vol.aad(node_type::DATA, 0, addr, object, *index);
            // Verification-only walks never decrypt: no plaintext, half the work.
            let authentic = if v.sink.is_some() {
                vol.keys.open(&aad, &p.nonce, &p.tag, block)
            } else {
                vol.keys.verify(&aad, &p.nonce, &p.tag, block)
            };
            if !authentic {
                scratch.fill(0);
                return Err(StoreError::Corrupt {
                    block: addr,
                    structure: Structure::DataBlock { object, index: *index },
                    detail: "authentication tag mismatch",
                });
            }
            if let Some(sink) = v.sink.as_deref_mut() {
                sink(*index, block);
            }
        }
        if v.sink.is_some() {
            // The run held plaintext.
            scratch[..bytes].fill(0);
        }
        verified(run.len() as u64);
        i = j;
    }
    Ok(())
}

/// Allocates blocks for a transaction: next-fit over the union of blocks in use by the base state and blocks
/// this transaction already took.
#[derive(Debug, Clone)]
pub(crate) struct Allocator {
    pub busy: Bitmap,
    pub cursor: u64,
    pub free: u64,
}

impl Allocator {
    pub(crate) fn alloc(&mut self) -> Result<u64, StoreError> {
        let a = self.busy.find_clear(self.cursor).ok_or(StoreError::VolumeFull { free: self.free })?;
        self.busy.set(a);
        self.cursor = a + 1;
        Ok(a)
    }
}

/// Writes an object's data blocks and index nodes (copy-on-write, never touching live blocks) and returns
/// its table entry and the blocks it occupies.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_object<D: BlockDevice>(
    vol: &mut Vol<'_, D>,
    rng: &mut dyn RandomSource,
    alloc: &mut Allocator,
    id: u64,
    data: &[u8],
    birth: u64,
    seals: &mut u64,
    run: &mut Vec<u8>,
) -> Result<(ObjectEntry, Vec<u32>), StoreError> {
    let size = data.len() as u64;
    let nblocks = data_blocks(size);
    let depth = depth_for_blocks(nblocks);
    let mut extent = Vec::new();
    let mut ptrs: Vec<Pointer> = Vec::with_capacity(nblocks as usize);
    // The run buffer only ever holds ciphertext (full blocks are encrypted straight from `data`, the padded
    // last block in place), so it needs no zeroizing and can be reused across puts.
    let want = WRITE_RUN_BLOCKS.min(nblocks as usize).max(1) * BLOCK_SIZE;
    if run.len() < want {
        run.resize(want, 0);
    }
    let mut chunks = data.chunks(BLOCK_SIZE).enumerate().peekable();
    while chunks.peek().is_some() {
        // Fill a run of consecutive addresses.
        let first = alloc.alloc()?;
        let mut addrs = vec![first];
        let mut n = 0usize;
        while let Some((index, chunk)) = chunks.next() {
            let addr = first + n as u64;
            if n > 0 {
                addrs.push(addr);
            }
            let block: &mut [u8; BLOCK_SIZE] = (&mut run[n * BLOCK_SIZE..(n + 1) * BLOCK_SIZE])
                .try_into()
                .map_err(|_| StoreError::Internal("run slicing"))?;
            let ptr = match <&[u8; BLOCK_SIZE]>::try_from(chunk) {
                Ok(full) => {
                    let aad = vol.aad(node_type::DATA, 0, addr, id, index as u64);
                    let (nonce, tag) = vol.keys.seal_into(rng, &aad, full, block)?;
                    Pointer { addr: addr.into(), birth: birth.into(), nonce, tag, flags: U32::new(0) }
                }
                Err(_) => {
                    block[..chunk.len()].copy_from_slice(chunk);
                    block[chunk.len()..].fill(0);
                    vol.seal(rng, node_type::DATA, 0, addr, id, index as u64, birth, block)?
                }
            };
            ptrs.push(ptr);
            *seals += 1;
            n += 1;
            // Continue the run only if the next address is free.
            let next = first + n as u64;
            if n == WRITE_RUN_BLOCKS
                || chunks.peek().is_none()
                || next >= vol.num_blocks
                || alloc.busy.get(next)
            {
                break;
            }
            alloc.busy.set(next);
        }
        vol.write_raw(first, &run[..n * BLOCK_SIZE], WriteMode::Cached)?;
        alloc.cursor = first + n as u64;
        extent.extend(addrs.iter().map(|&a| a as u32));
    }
    // Index levels, bottom-up.
    let mut level = 0u8;
    let mut span = 1u64;
    while ptrs.len() > 1 || (level < depth) {
        level += 1;
        let mut parents = Vec::with_capacity(ptrs.len().div_ceil(INDEX_FANOUT));
        for (i, group) in ptrs.chunks(INDEX_FANOUT).enumerate() {
            let mut buf = new_block();
            let h = NodeHeader {
                node_type: node_type::INDEX,
                node_version: NODE_VERSION,
                level,
                reserved: 0,
                count: U32::new(group.len() as u32),
                object_id: U64::new(id),
            };
            buf[..16].copy_from_slice(h.as_bytes());
            for (k, p) in group.iter().enumerate() {
                buf[16 + k * 48..16 + (k + 1) * 48].copy_from_slice(p.as_bytes());
            }
            let addr = alloc.alloc()?;
            let position = i as u64 * span * INDEX_FANOUT as u64;
            let p = vol.seal(rng, node_type::INDEX, level, addr, id, position, birth, &mut buf)?;
            *seals += 1;
            vol.write_raw(addr, &buf[..], WriteMode::Cached)?;
            extent.push(addr as u32);
            parents.push(p);
        }
        ptrs = parents;
        span = span.saturating_mul(INDEX_FANOUT as u64);
    }
    if level != depth {
        return Err(StoreError::Internal("index depth mismatch"));
    }
    let entry = ObjectEntry {
        id: id.into(),
        size: size.into(),
        depth,
        flags: 0,
        reserved: [0; 6],
        root: ptrs.first().copied().unwrap_or_default(),
    };
    Ok((entry, extent))
}

/// Writes the object table for `objects` and returns (root, interior depth, blocks used).
pub(crate) fn write_table<D: BlockDevice>(
    vol: &mut Vol<'_, D>,
    rng: &mut dyn RandomSource,
    alloc: &mut Allocator,
    objects: &BTreeMap<u64, ObjectEntry>,
    birth: u64,
    seals: &mut u64,
) -> Result<(Pointer, u8, Vec<u32>), StoreError> {
    let mut blocks = Vec::new();
    if objects.is_empty() {
        return Ok((Pointer::default(), 0, blocks));
    }
    let entries: Vec<&ObjectEntry> = objects.values().collect();
    // Level 0: leaves.
    let mut level_nodes: Vec<(u64, Pointer)> = Vec::new();
    for (ordinal, group) in entries.chunks(LEAF_CAPACITY).enumerate() {
        let mut buf = new_block();
        let h = NodeHeader {
            node_type: node_type::TABLE_LEAF,
            node_version: NODE_VERSION,
            level: 0,
            reserved: 0,
            count: U32::new(group.len() as u32),
            object_id: U64::new(0),
        };
        buf[..16].copy_from_slice(h.as_bytes());
        for (k, e) in group.iter().enumerate() {
            buf[16 + k * 72..16 + (k + 1) * 72].copy_from_slice(e.as_bytes());
        }
        let addr = alloc.alloc()?;
        let p = vol.seal(rng, node_type::TABLE_LEAF, 0, addr, 0, ordinal as u64, birth, &mut buf)?;
        *seals += 1;
        vol.write_raw(addr, &buf[..], WriteMode::Cached)?;
        blocks.push(addr as u32);
        level_nodes.push((group[0].id.get(), p));
    }
    let mut level = 0u8;
    while level_nodes.len() > 1 {
        level += 1;
        if level > MAX_TABLE_DEPTH {
            return Err(StoreError::InvalidParams("too many objects for a v1 object table"));
        }
        let mut parents = Vec::new();
        for (ordinal, group) in level_nodes.chunks(INTERIOR_CAPACITY).enumerate() {
            let mut buf = new_block();
            let h = NodeHeader {
                node_type: node_type::TABLE_INTERIOR,
                node_version: NODE_VERSION,
                level,
                reserved: 0,
                count: U32::new(group.len() as u32),
                object_id: U64::new(0),
            };
            buf[..16].copy_from_slice(h.as_bytes());
            for (k, (first, p)) in group.iter().enumerate() {
                let c = TableChild { first_id: (*first).into(), ptr: *p };
                buf[16 + k * 56..16 + (k + 1) * 56].copy_from_slice(c.as_bytes());
            }
            let addr = alloc.alloc()?;
            let p =
                vol.seal(rng, node_type::TABLE_INTERIOR, level, addr, 0, ordinal as u64, birth, &mut buf)?;
            *seals += 1;
            vol.write_raw(addr, &buf[..], WriteMode::Cached)?;
            blocks.push(addr as u32);
            parents.push((group[0].0, p));
        }
        level_nodes = parents;
    }
    Ok((level_nodes[0].1, level, blocks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyContext;
    use crate::crypto::StoreKey;
    use crate::rng::SeededRandom;
    use svsm_block::MemDisk;

    const OBJECT: u64 = 7;

    /// A depth-1 object forged with the volume keys (as only a key holder could): one level-1 index node
    /// born at `node_birth` at block 4 whose only child, a data block at block 3, was born at `data_birth`.
    /// Returns the result of an fsck-style descent from the node.
    fn descend(node_birth: u64, data_birth: u64) -> Result<(), StoreError> {
        let root = StoreKey::from_bytes([9; 32]);
        let ctx = KeyContext {
            volume_id: &[1; 16],
            kdf_salt: &[2; 32],
            format_major: FORMAT_MAJOR,
            aead_alg: 1,
            kdf_alg: 1,
            block_size_log2: 12,
            incompat: 0,
            key_epoch: 0,
        };
        let keys = VolumeKeys::derive(&root, &ctx);
        let mut disk = MemDisk::new(BLOCK_SIZE as u32, 16).unwrap();
        let mut vol = Vol {
            dev: &mut disk,
            keys: &keys,
            volume_id: [1; 16],
            num_blocks: 16,
            sectors_per_block: 1,
            key_epoch: 0,
        };
        let mut rng = SeededRandom::new(1);
        let mut data = new_block();
        data.fill(0x5A);
        let data_ptr = vol.seal(&mut rng, node_type::DATA, 0, 3, OBJECT, 0, data_birth, &mut data).unwrap();
        vol.write_raw(3, &data[..], WriteMode::Cached).unwrap();
        let mut node = new_block();
        let header = NodeHeader {
            node_type: node_type::INDEX,
            node_version: NODE_VERSION,
            level: 1,
            reserved: 0,
            count: 1.into(),
            object_id: OBJECT.into(),
        };
        node[..16].copy_from_slice(header.as_bytes());
        node[16..64].copy_from_slice(data_ptr.as_bytes());
        let node_ptr = vol.seal(&mut rng, node_type::INDEX, 1, 4, OBJECT, 0, node_birth, &mut node).unwrap();
        vol.write_raw(4, &node[..], WriteMode::Cached).unwrap();
        let mut visit = Visit {
            check: DataCheck::All,
            generation: 9,
            want: 0..1,
            sink: None,
            all_nodes: true,
            extent: None,
            kinds: None,
        };
        let mut scratch = Vec::new();
        visit_subtree(&mut vol, &mut visit, OBJECT, &node_ptr, 1, 0, 1, &mut scratch, &mut |_| {})
    }

    #[test]
    fn data_child_born_after_its_index_node_is_corrupt() {
        assert!(descend(5, 5).is_ok(), "same birth is the normal case");
        assert!(descend(5, 3).is_ok(), "an older data block under a rewritten node is normal");
        match descend(3, 5) {
            Err(StoreError::Corrupt {
                structure: Structure::DataBlock { object: OBJECT, index: 0 }, ..
            }) => {}
            other => panic!("expected Corrupt on the data block, got {other:?}"),
        }
    }
}
