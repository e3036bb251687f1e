//! The conformance suite every [`BlockDevice`] implementation runs.
//!
//! One suite, many backends: MemDisk, FileDisk, FaultDisk, virtio-blk through the real driver, PFlash. A
//! backend's tests call [`run_all`] with a factory for fresh devices, so every backend is held to exactly the
//! same contract (documented on [`BlockDevice`]). Failures panic with a message naming the check, as test
//! assertions do.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use crate::api::{BlockDevice, MIN_BLOCK_SIZE, WriteMode};
use crate::error::BlockError;

/// A factory for fresh, writable devices of at least [`MIN_CONFORMANCE_BLOCKS`] blocks.
pub type Factory<'a> = &'a mut dyn FnMut() -> Box<dyn BlockDevice>;

/// Smallest device the suite can exercise fully.
pub const MIN_CONFORMANCE_BLOCKS: u64 = 32;

/// Bytes the large-transfer check moves in one request (clamped to the device).
pub const LARGE_TRANSFER_BYTES: usize = 1 << 20;

/// A deterministic, block- and generation-specific fill pattern, so a misplaced block is recognisable.
pub fn pattern(lba: u64, generation: u8, block_size: usize) -> Vec<u8> {
    let mut out = vec![0u8; block_size];
    let mut x =
        lba.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(generation).wrapping_mul(0xD1B5_4A32_D192_ED03);
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out
}

fn patterns(lba: u64, blocks: u64, generation: u8, block_size: usize) -> Vec<u8> {
    (lba..lba + blocks).flat_map(|b| pattern(b, generation, block_size)).collect()
}

fn read(dev: &mut dyn BlockDevice, lba: u64, blocks: u64) -> Vec<u8> {
    let mut buf = vec![0u8; blocks as usize * dev.block_size() as usize];
    dev.read_blocks(lba, &mut buf).expect("read within range must succeed");
    buf
}

/// Runs every check against fresh devices from `make_writable`, and the read-only checks against
/// `make_read_only` if the backend can produce one.
pub fn run_all(make_writable: Factory<'_>, make_read_only: Option<Factory<'_>>) {
    check_geometry(&mut *make_writable());
    check_read_after_write(&mut *make_writable());
    check_multi_block(&mut *make_writable());
    check_large_transfer(&mut *make_writable());
    check_out_of_range(&mut *make_writable());
    check_misaligned(&mut *make_writable());
    check_zero_length(&mut *make_writable());
    check_flush_and_durable(&mut *make_writable());
    if let Some(make) = make_read_only {
        check_read_only(&mut *make());
    }
}

/// Block size is a power of two >= 512 and the device is big enough for the suite.
pub fn check_geometry(dev: &mut dyn BlockDevice) {
    let info = dev.info();
    assert!(info.block_size >= MIN_BLOCK_SIZE, "block size {} < {MIN_BLOCK_SIZE}", info.block_size);
    assert!(info.block_size.is_power_of_two(), "block size {} is not a power of two", info.block_size);
    assert!(info.num_blocks >= MIN_CONFORMANCE_BLOCKS, "device too small for the suite: {}", info.num_blocks);
    assert_eq!(dev.block_size(), info.block_size);
    assert_eq!(dev.num_blocks(), info.num_blocks);
}

/// A written block reads back, first and last block included; overwrites replace.
pub fn check_read_after_write(dev: &mut dyn BlockDevice) {
    let bs = dev.block_size() as usize;
    let last = dev.num_blocks() - 1;
    for (lba, generation) in [(0, 1), (last, 1), (5, 1), (5, 2)] {
        dev.write_blocks(lba, &pattern(lba, generation, bs), WriteMode::Cached).expect("write");
        assert_eq!(read(dev, lba, 1), pattern(lba, generation, bs), "block {lba} generation {generation}");
    }
    assert_eq!(read(dev, 0, 1), pattern(0, 1, bs), "block 0 changed by later writes");
    assert_eq!(read(dev, last, 1), pattern(last, 1, bs), "last block changed by later writes");
}

/// Multi-block requests land block by block in the right place and do not touch their neighbours.
pub fn check_multi_block(dev: &mut dyn BlockDevice) {
    let bs = dev.block_size() as usize;
    let fence = pattern(u64::MAX, 7, bs);
    dev.write_blocks(9, &fence, WriteMode::Cached).expect("write fence before");
    dev.write_blocks(20, &fence, WriteMode::Cached).expect("write fence after");
    dev.write_blocks(10, &patterns(10, 10, 3, bs), WriteMode::Cached).expect("multi-block write");
    assert_eq!(read(dev, 10, 10), patterns(10, 10, 3, bs), "multi-block read-back");
    for lba in 10..20 {
        assert_eq!(read(dev, lba, 1), pattern(lba, 3, bs), "block {lba} read alone");
    }
    assert_eq!(read(dev, 9, 1), fence, "block before the request was modified");
    assert_eq!(read(dev, 20, 1), fence, "block after the request was modified");
    // A read spanning the fences sees all three regions in order.
    let mut expect = fence.clone();
    expect.extend(patterns(10, 10, 3, bs));
    expect.extend(&fence);
    assert_eq!(read(dev, 9, 12), expect, "read spanning fences");
}

/// One request of up to [`LARGE_TRANSFER_BYTES`] (more than one page, more than one DMA segment).
pub fn check_large_transfer(dev: &mut dyn BlockDevice) {
    let bs = dev.block_size() as usize;
    let blocks = (LARGE_TRANSFER_BYTES / bs).min(dev.num_blocks() as usize) as u64;
    let data = patterns(0, blocks, 4, bs);
    dev.write_blocks(0, &data, WriteMode::Cached).expect("large write");
    assert!(read(dev, 0, blocks) == data, "large read-back differs");
}

/// Requests past the end are refused whole, including ones whose end overflows u64, and change nothing.
pub fn check_out_of_range(dev: &mut dyn BlockDevice) {
    let bs = dev.block_size() as usize;
    let n = dev.num_blocks();
    dev.write_blocks(n - 1, &pattern(n - 1, 5, bs), WriteMode::Cached).expect("write last block");
    let two = patterns(n - 1, 2, 6, bs);
    for (lba, len) in [(n, bs), (n - 1, 2 * bs), (u64::MAX, bs), (u64::MAX - 1, 2 * bs)] {
        let buf = &two[..len];
        let err = dev.write_blocks(lba, buf, WriteMode::Cached).expect_err("write past the end must fail");
        assert!(matches!(err, BlockError::OutOfRange { .. }), "write at {lba}: {err:?}");
        let mut rbuf = vec![0u8; len];
        let err = dev.read_blocks(lba, &mut rbuf).expect_err("read past the end must fail");
        assert!(matches!(err, BlockError::OutOfRange { .. }), "read at {lba}: {err:?}");
    }
    assert_eq!(read(dev, n - 1, 1), pattern(n - 1, 5, bs), "a refused write changed the last block");
}

/// Buffers that are not a whole number of blocks are refused and change nothing.
pub fn check_misaligned(dev: &mut dyn BlockDevice) {
    let bs = dev.block_size() as usize;
    dev.write_blocks(3, &pattern(3, 8, bs), WriteMode::Cached).expect("write");
    for len in [1, bs - 1, bs + 1, 2 * bs - 512 / 2] {
        let buf = vec![0xAA; len];
        let err = dev.write_blocks(3, &buf, WriteMode::Cached).expect_err("misaligned write must fail");
        assert!(matches!(err, BlockError::Misaligned { .. }), "write of {len}: {err:?}");
        let mut rbuf = vec![0u8; len];
        let err = dev.read_blocks(3, &mut rbuf).expect_err("misaligned read must fail");
        assert!(matches!(err, BlockError::Misaligned { .. }), "read of {len}: {err:?}");
    }
    assert_eq!(read(dev, 3, 1), pattern(3, 8, bs), "a refused write changed the block");
}

/// Zero-length transfers succeed within range and are refused past the end.
pub fn check_zero_length(dev: &mut dyn BlockDevice) {
    let n = dev.num_blocks();
    dev.write_blocks(0, &[], WriteMode::Cached).expect("empty write at 0");
    dev.read_blocks(n, &mut []).expect("empty read at the end");
    let err = dev.read_blocks(n + 1, &mut []).expect_err("empty read past the end");
    assert!(matches!(err, BlockError::OutOfRange { .. }), "{err:?}");
}

/// Flush succeeds (repeatedly, with nothing pending too) and durable writes read back.
pub fn check_flush_and_durable(dev: &mut dyn BlockDevice) {
    let bs = dev.block_size() as usize;
    dev.flush().expect("flush with nothing pending");
    dev.write_blocks(7, &pattern(7, 9, bs), WriteMode::Cached).expect("cached write");
    dev.flush().expect("flush");
    dev.write_blocks(8, &pattern(8, 9, bs), WriteMode::Durable).expect("durable write");
    dev.flush().expect("second flush");
    assert_eq!(read(dev, 7, 2), patterns(7, 2, 9, bs), "read after flush");
}

/// A read-only device reads but refuses every write with [`BlockError::ReadOnly`].
pub fn check_read_only(dev: &mut dyn BlockDevice) {
    assert!(dev.info().read_only, "factory returned a writable device for the read-only check");
    let bs = dev.block_size() as usize;
    let before = read(dev, 0, 2);
    for mode in [WriteMode::Cached, WriteMode::Durable] {
        let err = dev.write_blocks(0, &vec![0x5A; bs], mode).expect_err("write to read-only must fail");
        assert_eq!(err, BlockError::ReadOnly, "{mode:?}");
    }
    assert_eq!(read(dev, 0, 2), before, "read-only device changed");
    dev.flush().expect("flush on a read-only device is a no-op");
}
