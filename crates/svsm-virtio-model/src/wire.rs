//! Wire layouts of the split virtqueue and of virtio-blk (virtio 1.2, sections 2.7 and 5.2), pinned at
//! compile time. The model parses guest memory by these offsets, little-endian.

use core::mem::{offset_of, size_of};

/// One descriptor-table entry.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Descriptor {
    /// Guest-physical buffer address.
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// `DESC_F_*`.
    pub flags: u16,
    /// Next descriptor if `DESC_F_NEXT`.
    pub next: u16,
}
const _: () = assert!(size_of::<Descriptor>() == 16);
const _: () = assert!(offset_of!(Descriptor, addr) == 0);
const _: () = assert!(offset_of!(Descriptor, len) == 8);
const _: () = assert!(offset_of!(Descriptor, flags) == 12);
const _: () = assert!(offset_of!(Descriptor, next) == 14);

impl Descriptor {
    /// Parses a descriptor from its 16 wire bytes.
    pub fn parse(b: &[u8; 16]) -> Self {
        let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = *b;
        Descriptor {
            addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            flags: u16::from_le_bytes([f0, f1]),
            next: u16::from_le_bytes([n0, n1]),
        }
    }
}

/// The buffer continues in `next`.
pub const DESC_F_NEXT: u16 = 1;
/// The buffer is device-writable.
pub const DESC_F_WRITE: u16 = 2;
/// The buffer is a table of descriptors.
pub const DESC_F_INDIRECT: u16 = 4;

/// One used-ring element.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UsedElem {
    /// Head of the completed descriptor chain.
    pub id: u32,
    /// Bytes the device wrote into the chain.
    pub len: u32,
}
const _: () = assert!(size_of::<UsedElem>() == 8);
const _: () = assert!(offset_of!(UsedElem, id) == 0);
const _: () = assert!(offset_of!(UsedElem, len) == 4);

/// Offsets in the available ring (driver area): `flags u16, idx u16, ring[size] u16, used_event u16`.
pub const AVAIL_IDX: u64 = 2;
/// Offset of `avail.ring[0]`.
pub const AVAIL_RING: u64 = 4;
/// Offsets in the used ring (device area): `flags u16, idx u16, ring[size] UsedElem, avail_event u16`.
pub const USED_IDX: u64 = 2;
/// Offset of `used.ring[0]`.
pub const USED_RING: u64 = 4;

/// The virtio-blk request header (`struct virtio_blk_req` up to the data).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlkReqHeader {
    /// `VIRTIO_BLK_T_*`.
    pub kind: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// First 512-byte sector.
    pub sector: u64,
}
const _: () = assert!(size_of::<BlkReqHeader>() == 16);
const _: () = assert!(offset_of!(BlkReqHeader, kind) == 0);
const _: () = assert!(offset_of!(BlkReqHeader, reserved) == 4);
const _: () = assert!(offset_of!(BlkReqHeader, sector) == 8);

/// Read sectors into the request's writable buffers.
pub const T_IN: u32 = 0;
/// Write sectors from the request's readable buffers.
pub const T_OUT: u32 = 1;
/// Make every completed write durable.
pub const T_FLUSH: u32 = 4;
/// Return the 20-byte device id string.
pub const T_GET_ID: u32 = 8;
/// Success.
pub const S_OK: u8 = 0;
/// The request failed.
pub const S_IOERR: u8 = 1;
/// The request type is not supported.
pub const S_UNSUPP: u8 = 2;
/// Bytes of a virtio-blk sector.
pub const SECTOR: u64 = 512;

/// `struct virtio_blk_config` up to `opt_io_size`; the model serves this many bytes of config space.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlkConfig {
    /// Capacity in 512-byte sectors.
    pub capacity: u64,
    /// `size_max` (feature SIZE_MAX, not offered).
    pub size_max: u32,
    /// `seg_max` (feature SEG_MAX, not offered).
    pub seg_max: u32,
    /// `geometry.cylinders`.
    pub cylinders: u16,
    /// `geometry.heads`.
    pub heads: u8,
    /// `geometry.sectors`.
    pub sectors: u8,
    /// Logical block size (feature BLK_SIZE).
    pub blk_size: u32,
    /// `topology.physical_block_exp`.
    pub physical_block_exp: u8,
    /// `topology.alignment_offset`.
    pub alignment_offset: u8,
    /// `topology.min_io_size`.
    pub min_io_size: u16,
    /// `topology.opt_io_size`.
    pub opt_io_size: u32,
}
const _: () = assert!(size_of::<BlkConfig>() == 32);
const _: () = assert!(offset_of!(BlkConfig, capacity) == 0);
const _: () = assert!(offset_of!(BlkConfig, size_max) == 8);
const _: () = assert!(offset_of!(BlkConfig, seg_max) == 12);
const _: () = assert!(offset_of!(BlkConfig, cylinders) == 16);
const _: () = assert!(offset_of!(BlkConfig, blk_size) == 20);
const _: () = assert!(offset_of!(BlkConfig, opt_io_size) == 28);

/// Byte offset of `capacity` in config space.
pub const CFG_CAPACITY: usize = offset_of!(BlkConfig, capacity);
/// Byte offset of `blk_size` in config space.
pub const CFG_BLK_SIZE: usize = offset_of!(BlkConfig, blk_size);
/// Bytes of config space the model serves.
pub const CFG_LEN: usize = size_of::<BlkConfig>();

/// Feature bits (virtio 1.2 sections 5.2.3 and 6).
pub mod feature {
    /// Device is read-only.
    pub const BLK_RO: u64 = 1 << 5;
    /// `blk_size` is valid.
    pub const BLK_BLK_SIZE: u64 = 1 << 6;
    /// FLUSH is supported.
    pub const BLK_FLUSH: u64 = 1 << 9;
    /// Indirect descriptors.
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// `used_event` / `avail_event` notification suppression.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// Virtio 1.x (non-legacy) device.
    pub const VERSION_1: u64 = 1 << 32;
}
