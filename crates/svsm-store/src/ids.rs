//! The object-id map: which 64-bit ids hold what. Ids are fixed (like VMGS file ids), so each consumer finds
//! its state without a directory and a host cannot make one consumer read another's object.
//!
//! | range | owner |
//! |---|---|
//! | `0` | never valid (the null id) |
//! | `0x01..=0x0F` | vTPM ([`VTPM_PERMANENT`], [`VTPM_VOLATILE`], [`VTPM_MANUFACTURE_INFO`]) |
//! | `0x10..=0xEF` | UEFI variables ([`UEFI_VARSTORE`]; later per-variable objects) |
//! | `0xF0..=0xFF` | key protectors and provisioning records ([`KEY_PROTECTORS`]) |
//! | `0x100..=0xFFFF` | reserved for future system use; refused |
//! | `0x1_0000..` | free for other consumers, tools and tests ([`USER`]) |

use core::ops::RangeInclusive;

/// An object id.
pub type ObjectId = u64;

/// The vTPM's range.
pub const VTPM: RangeInclusive<ObjectId> = 0x01..=0x0F;
/// vTPM permanent state (libtpms `permall` / NVChip): seeds, hierarchy auth, NV indexes, DA counters.
pub const VTPM_PERMANENT: ObjectId = 0x01;
/// vTPM volatile state (saved at `TPM2_Shutdown(STATE)` / suspend).
pub const VTPM_VOLATILE: ObjectId = 0x02;
/// Manufacturing record: "this TPM was manufactured", EK certificates and the like.
pub const VTPM_MANUFACTURE_INFO: ObjectId = 0x03;

/// UEFI's range.
pub const UEFI: RangeInclusive<ObjectId> = 0x10..=0xEF;
/// The UEFI variable store as one blob (authenticated variables, `db`, `dbx`, boot order ...).
pub const UEFI_VARSTORE: ObjectId = 0x10;

/// Key protectors (wrapped copies of the root secret) and provisioning records.
pub const KEY_PROTECTORS: RangeInclusive<ObjectId> = 0xF0..=0xFF;

/// Reserved for future system objects; `put` refuses them.
pub const RESERVED: RangeInclusive<ObjectId> = 0x100..=0xFFFF;

/// Ids for everything else (tools, tests, other consumers).
pub const USER: RangeInclusive<ObjectId> = 0x1_0000..=u64::MAX;

/// Whether an id may be written.
pub fn is_writable(id: ObjectId) -> bool {
    id != 0 && !RESERVED.contains(&id)
}
