//! The on-flash structures of an edk2 variable store, little-endian and packed as edk2 lays them out.
//!
//! Every struct is `Unaligned` (so it can be read from any offset of an untrusted image without copying) and
//! its size is pinned by a compile-time assert against the size edk2's headers give it. FORMAT.md beside
//! this crate describes the whole image; this module holds only the byte layouts.

use uguid::{Guid, guid};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `EFI_SYSTEM_NV_DATA_FV_GUID`, the file-system GUID of the firmware volume that holds the variable store.
pub const NV_DATA_FV_GUID: Guid = guid!("fff12b8d-7696-4c8b-a985-2747075b4f50");
/// `gEfiAuthenticatedVariableGuid`: a store of 60-byte authenticated variable headers (the only kind OVMF
/// builds since Secure Boot support; also what virt-fw-vars requires).
pub const AUTH_VARIABLE_STORE_GUID: Guid = guid!("aaf32c78-947b-439a-a180-2e144ec37792");
/// `gEfiVariableGuid`: the older store of 32-byte plain variable headers. Recognised only to name it in the
/// error.
pub const PLAIN_VARIABLE_STORE_GUID: Guid = guid!("ddcf3616-3275-4164-98b6-fe85707ffe7d");
/// `gEdkiiWorkingBlockSignatureGuid`: the fault-tolerant-write working block that follows the store.
pub const FTW_WORKING_BLOCK_GUID: Guid = guid!("9e58292b-7c68-497d-a0ce-6500fd9f1b95");

/// `EFI_FVH_SIGNATURE`, "_FVH" read as a little-endian u32.
pub const FV_SIGNATURE: u32 = u32::from_le_bytes(*b"_FVH");
/// `EFI_FVH_REVISION`.
pub const FV_REVISION: u8 = 2;
/// `VARIABLE_STORE_FORMATTED`.
pub const STORE_FORMATTED: u8 = 0x5a;
/// `VARIABLE_STORE_HEALTHY`.
pub const STORE_HEALTHY: u8 = 0xfe;
/// `VARIABLE_DATA`, the StartId of every variable header.
pub const VARIABLE_START_ID: u16 = 0x55aa;
/// StartId of erased flash: the free space after the last variable.
pub const ERASED_START_ID: u16 = 0xffff;
/// Variable headers start on 4-byte boundaries (`HEADER_ALIGNMENT`); the gap is erased (0xff).
pub const HEADER_ALIGNMENT: usize = 4;

/// Variable states. Flash bits only go from 1 to 0, so each step of a variable's life clears bits of the
/// previous state.
pub mod state {
    /// `VAR_HEADER_VALID_ONLY`: the header was written, name and data may not have been.
    pub const HEADER_VALID_ONLY: u8 = 0x7f;
    /// `VAR_ADDED`: a live variable.
    pub const ADDED: u8 = 0x3f;
    /// `VAR_ADDED & VAR_IN_DELETED_TRANSITION`: the old copy during an update; live only if the update's new
    /// copy never reached ADDED (edk2's recovery rule).
    pub const ADDED_IN_DELETED_TRANSITION: u8 = 0x3e;
    /// `VAR_DELETED` bit; any state with this bit cleared is a deleted copy (0x3c, 0x3d on real images).
    pub const DELETED_BIT: u8 = 0x02;
}

/// `EFI_FIRMWARE_VOLUME_HEADER` without its block map (which follows at offset 56).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FvHeader {
    /// Zero on OVMF images.
    pub zero_vector: [u8; 16],
    /// [`NV_DATA_FV_GUID`] for a variable store.
    pub file_system_guid: [u8; 16],
    /// The volume's length in bytes, headers included.
    pub fv_length: U64,
    /// [`FV_SIGNATURE`].
    pub signature: U32,
    /// `EFI_FVB_ATTRIBUTES_2` (0x0004feff on OVMF).
    pub attributes: U32,
    /// Header plus block map, in bytes; the variable store header starts here.
    pub header_length: U16,
    /// Makes the 16-bit sum of the whole `header_length` bytes zero.
    pub checksum: U16,
    /// 0 when there is no extended header (OVMF).
    pub ext_header_offset: U16,
    /// Zero.
    pub reserved: u8,
    /// [`FV_REVISION`].
    pub revision: u8,
}
const _: () = assert!(size_of::<FvHeader>() == 56);

/// One `EFI_FV_BLOCK_MAP_ENTRY`; the map ends with an all-zero entry.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FvBlockMapEntry {
    /// Number of blocks of `length` bytes.
    pub num_blocks: U32,
    /// Block size in bytes.
    pub length: U32,
}
const _: () = assert!(size_of::<FvBlockMapEntry>() == 8);

/// `VARIABLE_STORE_HEADER`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct VariableStoreHeader {
    /// [`AUTH_VARIABLE_STORE_GUID`].
    pub signature: [u8; 16],
    /// The store's size from this header on, in bytes (the FV header is not counted).
    pub size: U32,
    /// [`STORE_FORMATTED`].
    pub format: u8,
    /// [`STORE_HEALTHY`].
    pub state: u8,
    /// Zero.
    pub reserved: U16,
    /// Zero.
    pub reserved1: U32,
}
const _: () = assert!(size_of::<VariableStoreHeader>() == 28);

/// `EFI_TIME` as stored in a variable header (the raw 16 bytes; `virtfw_libefi::types::EfiTime` is the
/// typed view).
pub type RawEfiTime = [u8; 16];

/// `AUTHENTICATED_VARIABLE_HEADER`; the UCS-2 name (NUL included, `name_size` bytes) and then the data
/// (`data_size` bytes) follow it directly.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct AuthVariableHeader {
    /// [`VARIABLE_START_ID`].
    pub start_id: U16,
    /// One of [`state`].
    pub state: u8,
    /// Zero.
    pub reserved: u8,
    /// EFI_VARIABLE_* attributes.
    pub attributes: U32,
    /// For the deprecated count-based authenticated variables; zero otherwise.
    pub monotonic_count: U64,
    /// The timestamp of a time-based authenticated variable; zero otherwise.
    pub time_stamp: RawEfiTime,
    /// For the deprecated count-based authenticated variables; zero otherwise.
    pub pub_key_index: U32,
    /// Bytes of the name, terminating NUL included.
    pub name_size: U32,
    /// Bytes of data.
    pub data_size: U32,
    /// The variable's vendor GUID (EFI mixed-endian bytes).
    pub vendor_guid: [u8; 16],
}
const _: () = assert!(size_of::<AuthVariableHeader>() == 60);

/// `EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER`: the fault-tolerant-write driver's journal header, placed after
/// the variable store inside the same volume.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FtwWorkingBlockHeader {
    /// [`FTW_WORKING_BLOCK_GUID`].
    pub signature: [u8; 16],
    /// CRC-32 of this header with `crc` and `state` set to erased (0xff) bytes.
    pub crc: U32,
    /// Bit 0 WorkingBlockValid, bit 1 WorkingBlockInvalid, written as 0xfe (valid) by edk2.
    pub state: u8,
    /// Erased (0xff).
    pub reserved: [u8; 3],
    /// Bytes of the working block after this header.
    pub write_queue_size: U64,
}
const _: () = assert!(size_of::<FtwWorkingBlockHeader>() == 32);
