//! OVMF/edk2 variable-store images (`OVMF_VARS*.fd`) and virt-fw-vars JSON, read and written as
//! virtfw-varstore variables.
//!
//! This crate is the file-format half of the operator tools `svsm-host uefi import/export`: it knows the bytes
//! of the formats other tools use (edk2's flash layout, which OVMF and QEMU's pflash load; virt-firmware's JSON,
//! which `virt-fw-vars` and QEMU's `uefi-vars` device read), and nothing about where the variables live in the
//! SVSM. Both formats implement [`VarStoreFormat`] over [`EfiVar`], the type virtfw-varstore's engine keeps,
//! so there is one definition of a variable across the stack.
//!
//! The `.fd` layout and the rules the parser applies are written down in `FORMAT.md` beside this crate
//! (included below).
//! Every input is untrusted: any defect is a precise [`Error`], never a panic (the `fd` and `json` fuzz
//! targets in `fuzz/` hold that).
//!
//! `no_std` + `alloc`; the `json` feature (host tools) needs `std`.
#![doc = ""]
#![doc = include_str!("../FORMAT.md")]
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod api;
pub mod error;
pub mod fd;
#[cfg(feature = "json")]
pub mod json;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use api::VarStoreFormat;
pub use error::{Error, Result};
pub use fd::{FdGeometry, FdImage, FdLayout, FdStats, OvmfFd};
#[cfg(feature = "json")]
pub use json::VirtFwJson;
/// Vendor GUIDs.
pub use uguid::Guid;
/// The variable type both formats read and write (virtfw-varstore's).
pub use virtfw_libefi::efivar::types::{EfiVar, EfiVarAttr, EfiVarId};
/// Timestamps of time-based authenticated variables.
pub use virtfw_libefi::types::EfiTime;

/// The 16 bytes of an `EFI_TIME`, as variable headers and persistence records store them.
pub fn efi_time_to_bytes(time: &EfiTime) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(zerocopy::IntoBytes::as_bytes(time));
    out
}

/// An `EFI_TIME` from its 16 stored bytes (any bytes are a value; nothing is validated).
pub fn efi_time_from_bytes(bytes: &[u8; 16]) -> EfiTime {
    zerocopy::FromBytes::read_from_bytes(bytes.as_slice()).unwrap_or_default()
}
