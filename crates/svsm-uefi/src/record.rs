//! The UEFI variable volume's layout: one secure-store object per non-volatile variable, plus a marker.
//!
//! Every object is sealed, authenticated and versioned by `svsm-store`; this module only defines what the
//! plaintext of each object means. All integers are little-endian.
//!
//! | object id | content |
//! |---|---|
//! | `0x10` ([`MARKER_OBJECT`]) | the volume marker: `b"SVSM-UEFI-VARS\0\0"` (16) then format version u32 (= 1) |
//! | `0x11..=0xEF` ([`VARIABLE_OBJECTS`]) | one variable each, self-describing (below); which slot holds which variable carries no meaning |
//!
//! Variable object:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"UVAR"` |
//! | 4 | 4 | attributes (EFI_VARIABLE_*; NON_VOLATILE always set) |
//! | 8 | 16 | vendor GUID (EFI byte order) |
//! | 24 | 16 | EFI_TIME of the last time-based authenticated write (all zero if none) |
//! | 40 | 4 | flags: bit 0 = the timestamp is present; other bits zero |
//! | 44 | 4 | name length in bytes (UTF-8, no NUL; 1..=[`MAX_NAME_BYTES`]) |
//! | 48 | 4 | data length in bytes (1..=[`MAX_DATA_BYTES`]) |
//! | 52 | name | name (UTF-8) |
//! | 52+name | data | data |
//!
//! Decoding is strict: the object must be exactly `52 + name + data` bytes, the name valid UTF-8 without
//! NUL, reserved flag bits clear. Objects outside the UEFI range, or a missing or different marker on a
//! non-empty volume, make the volume foreign.

use alloc::string::String;
use alloc::vec::Vec;

use crate::api::StoredVariable;
use crate::error::UefiError;

/// The object holding the volume marker.
pub const MARKER_OBJECT: u64 = svsm_store::ids::UEFI_VARSTORE;
/// The objects holding variables, one each.
pub const VARIABLE_OBJECTS: core::ops::RangeInclusive<u64> =
    (MARKER_OBJECT + 1)..=*svsm_store::ids::UEFI.end();
/// The marker's magic.
pub const MARKER_MAGIC: &[u8; 16] = b"SVSM-UEFI-VARS\0\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Variable object magic.
pub const VARIABLE_MAGIC: &[u8; 4] = b"UVAR";
/// Fixed header size of a variable object.
pub const VARIABLE_HEADER_LEN: usize = 52;
/// Longest name accepted (bytes of UTF-8): edk2's PcdMaxVariableSize bounds it well below this.
pub const MAX_NAME_BYTES: usize = 1024;
/// Largest data accepted: the 64 KiB MM buffer bounds what a guest can send.
pub const MAX_DATA_BYTES: usize = 256 * 1024;

const FLAG_HAS_TIME: u32 = 1;

const _: () = assert!(VARIABLE_HEADER_LEN == 4 + 4 + 16 + 16 + 4 + 4 + 4);
const _: () = assert!(*VARIABLE_OBJECTS.start() == 0x11 && *VARIABLE_OBJECTS.end() == 0xEF);

/// The marker object's bytes.
pub fn encode_marker() -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(MARKER_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out
}

/// Checks the marker object.
pub fn decode_marker(bytes: &[u8]) -> Result<(), UefiError> {
    if bytes.len() != 20 || bytes.get(..16) != Some(&MARKER_MAGIC[..]) {
        return Err(UefiError::Foreign("object 0x10 is not the UEFI variable volume marker"));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&bytes[16..20]);
    match u32::from_le_bytes(v) {
        FORMAT_VERSION => Ok(()),
        other => Err(UefiError::UnsupportedVersion(other)),
    }
}

/// Encodes a variable (refusing what [`decode_variable`] would refuse).
pub fn encode_variable(var: &StoredVariable) -> Result<Vec<u8>, UefiError> {
    check_variable(var)?;
    let mut out = Vec::with_capacity(VARIABLE_HEADER_LEN + var.name.len() + var.data.len());
    out.extend_from_slice(VARIABLE_MAGIC);
    out.extend_from_slice(&var.attributes.to_le_bytes());
    out.extend_from_slice(&var.vendor.0);
    out.extend_from_slice(&var.timestamp.unwrap_or([0; 16]));
    out.extend_from_slice(&(if var.timestamp.is_some() { FLAG_HAS_TIME } else { 0 }).to_le_bytes());
    out.extend_from_slice(&(var.name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(var.data.len() as u32).to_le_bytes());
    out.extend_from_slice(var.name.as_bytes());
    out.extend_from_slice(&var.data);
    Ok(out)
}

/// What every stored variable must satisfy.
pub fn check_variable(var: &StoredVariable) -> Result<(), UefiError> {
    if var.name.is_empty() || var.name.len() > MAX_NAME_BYTES || var.name.contains('\0') {
        return Err(UefiError::InvalidVariable("name must be 1 to 1024 bytes without NUL"));
    }
    if var.data.is_empty() || var.data.len() > MAX_DATA_BYTES {
        return Err(UefiError::InvalidVariable("data must be 1 byte to 256 KiB"));
    }
    if var.attributes & crate::mm::ATTR_NON_VOLATILE == 0 {
        return Err(UefiError::InvalidVariable("only non-volatile variables are stored"));
    }
    Ok(())
}

fn word(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Decodes variable object `object` strictly.
pub fn decode_variable(object: u64, bytes: &[u8]) -> Result<StoredVariable, UefiError> {
    let corrupt = |reason| UefiError::Corrupt { object, reason };
    if bytes.len() < VARIABLE_HEADER_LEN {
        return Err(corrupt("shorter than the variable header"));
    }
    if &bytes[..4] != VARIABLE_MAGIC {
        return Err(corrupt("bad magic"));
    }
    let attributes = word(bytes, 4);
    let mut vendor = [0u8; 16];
    vendor.copy_from_slice(&bytes[8..24]);
    let mut time = [0u8; 16];
    time.copy_from_slice(&bytes[24..40]);
    let flags = word(bytes, 40);
    if flags & !FLAG_HAS_TIME != 0 {
        return Err(corrupt("reserved flag bits set"));
    }
    let name_len = word(bytes, 44) as usize;
    let data_len = word(bytes, 48) as usize;
    let total = VARIABLE_HEADER_LEN
        .checked_add(name_len)
        .and_then(|t| t.checked_add(data_len))
        .ok_or(corrupt("lengths overflow"))?;
    if total != bytes.len() {
        return Err(corrupt("lengths disagree with the object size"));
    }
    let name = core::str::from_utf8(&bytes[VARIABLE_HEADER_LEN..VARIABLE_HEADER_LEN + name_len])
        .map_err(|_| corrupt("name is not UTF-8"))?;
    let var = StoredVariable {
        name: String::from(name),
        vendor: svsm_protocol::Guid(vendor),
        attributes,
        timestamp: (flags & FLAG_HAS_TIME != 0).then_some(time),
        data: bytes[VARIABLE_HEADER_LEN + name_len..].to_vec(),
    };
    check_variable(&var).map_err(|_| corrupt("name, data or attributes out of range"))?;
    Ok(var)
}
