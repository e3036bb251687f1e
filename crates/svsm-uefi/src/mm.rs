//! The MM messages a guest sends, byte for byte: `EFI_MM_COMMUNICATE_HEADER` (PI vol. 4 §5.7) and the
//! `SMM_VARIABLE_COMMUNICATE_*` payloads of edk2's `VariableSmmRuntimeDxe`, plus builders and reply parsers
//! for the guest side (`svsm-host guest uefi`, tests) and the bounds checks the service applies before any
//! byte reaches `virtfw-varstore`.
//!
//! Layout (all little-endian, packed):
//!
//! | structure | fields |
//! |---|---|
//! | `EFI_MM_COMMUNICATE_HEADER` (24) | HeaderGuid\[16\] @0, MessageLength u64 @16, data @24 |
//! | `SMM_VARIABLE_COMMUNICATE_HEADER` (16) | Function u64 @0, ReturnStatus u64 @8, payload @16 |
//! | `..._ACCESS_VARIABLE` (36 + name + data) | Guid @0, DataSize u64 @16, NameSize u64 @24, Attributes u32 @32, Name @36, Data @36+NameSize |
//! | `..._GET_NEXT_VARIABLE_NAME` (24 + name) | Guid @0, NameSize u64 @16, Name @24 |
//! | `..._QUERY_VARIABLE_INFO` (28) | MaximumVariableStorageSize u64, RemainingVariableStorageSize u64, MaximumVariableSize u64, Attributes u32 |

use alloc::string::String;
use alloc::vec::Vec;

use svsm_protocol::Guid;

/// Size of `EFI_MM_COMMUNICATE_HEADER`.
pub const MM_HEADER_SIZE: usize = 24;
/// Size of `SMM_VARIABLE_COMMUNICATE_HEADER`.
pub const VARIABLE_HEADER_SIZE: usize = 16;
/// Size of `SMM_VARIABLE_COMMUNICATE_ACCESS_VARIABLE` up to `Name`.
pub const ACCESS_HEADER_SIZE: usize = 36;
/// Size of `SMM_VARIABLE_COMMUNICATE_GET_NEXT_VARIABLE_NAME` up to `Name`.
pub const NEXT_HEADER_SIZE: usize = 24;
/// Size of `SMM_VARIABLE_COMMUNICATE_QUERY_VARIABLE_INFO`.
pub const QUERY_INFO_SIZE: usize = 28;
/// The communication buffer edk2's `VirtMmCommunicationDxe` passes on every request (64 KiB).
pub const EDK2_BUFFER_SIZE: usize = 64 * 1024;

const _: () = assert!(MM_HEADER_SIZE == 16 + 8);
const _: () = assert!(VARIABLE_HEADER_SIZE == 8 + 8);
const _: () = assert!(ACCESS_HEADER_SIZE == 16 + 8 + 8 + 4);
const _: () = assert!(NEXT_HEADER_SIZE == 16 + 8);
const _: () = assert!(QUERY_INFO_SIZE == 3 * 8 + 4);

/// `SMM_VARIABLE_FUNCTION_GET_VARIABLE`.
pub const FN_GET_VARIABLE: u64 = 1;
/// `SMM_VARIABLE_FUNCTION_GET_NEXT_VARIABLE_NAME`.
pub const FN_GET_NEXT_VARIABLE_NAME: u64 = 2;
/// `SMM_VARIABLE_FUNCTION_SET_VARIABLE`.
pub const FN_SET_VARIABLE: u64 = 3;
/// `SMM_VARIABLE_FUNCTION_QUERY_VARIABLE_INFO`.
pub const FN_QUERY_VARIABLE_INFO: u64 = 4;
/// `SMM_VARIABLE_FUNCTION_READY_TO_BOOT`.
pub const FN_READY_TO_BOOT: u64 = 5;
/// `SMM_VARIABLE_FUNCTION_EXIT_BOOT_SERVICE`.
pub const FN_EXIT_BOOT_SERVICE: u64 = 6;
/// `SMM_VARIABLE_FUNCTION_GET_STATISTICS`.
pub const FN_GET_STATISTICS: u64 = 7;
/// `SMM_VARIABLE_FUNCTION_LOCK_VARIABLE`.
pub const FN_LOCK_VARIABLE: u64 = 8;
/// `SMM_VARIABLE_FUNCTION_GET_PAYLOAD_SIZE`.
pub const FN_GET_PAYLOAD_SIZE: u64 = 11;

/// `gEfiSmmVariableProtocolGuid`: the variable messages.
pub const SMM_VARIABLE_GUID: Guid =
    Guid::from_fields(0xed32d533, 0x99e6, 0x4209, [0x9c, 0xc0, 0x2d, 0x72, 0xcd, 0xd9, 0x98, 0xa7]);
/// `gVarCheckPolicyLibMmiHandlerGuid`: variable policy messages.
pub const VAR_CHECK_POLICY_GUID: Guid =
    Guid::from_fields(0xda1b0d11, 0xd1a7, 0x46c4, [0x9d, 0xc9, 0xf3, 0x71, 0x48, 0x75, 0xc6, 0xeb]);
/// `gEfiEndOfDxeEventGroupGuid`.
pub const END_OF_DXE_GUID: Guid =
    Guid::from_fields(0x02ce967a, 0xdd7e, 0x4ffc, [0x9e, 0xe7, 0x81, 0x0c, 0xf0, 0x47, 0x08, 0x80]);
/// `gEfiEventExitBootServicesGuid`.
pub const EXIT_BOOT_SERVICES_GUID: Guid =
    Guid::from_fields(0x27abf055, 0xb1b8, 0x4c26, [0x80, 0x48, 0x74, 0x8f, 0x37, 0xba, 0xa2, 0xdf]);
/// `gEfiEventReadyToBootGuid`.
pub const READY_TO_BOOT_GUID: Guid =
    Guid::from_fields(0x7ce88fb3, 0x4bd7, 0x4679, [0x87, 0xa8, 0xa8, 0xd8, 0xde, 0xe5, 0x0d, 0x2b]);
/// `gEfiGlobalVariableGuid`.
pub const EFI_GLOBAL_VARIABLE_GUID: Guid =
    Guid::from_fields(0x8be4df61, 0x93ca, 0x11d2, [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c]);
/// `gEfiImageSecurityDatabaseGuid` (db, dbx).
pub const IMAGE_SECURITY_DATABASE_GUID: Guid =
    Guid::from_fields(0xd719b2cb, 0x3d3a, 0x4596, [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f]);

/// `EFI_VARIABLE_NON_VOLATILE`.
pub const ATTR_NON_VOLATILE: u32 = 0x01;
/// `EFI_VARIABLE_BOOTSERVICE_ACCESS`.
pub const ATTR_BOOTSERVICE_ACCESS: u32 = 0x02;
/// `EFI_VARIABLE_RUNTIME_ACCESS`.
pub const ATTR_RUNTIME_ACCESS: u32 = 0x04;
/// `EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS`.
pub const ATTR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS: u32 = 0x20;
/// `EFI_VARIABLE_APPEND_WRITE`.
pub const ATTR_APPEND_WRITE: u32 = 0x40;

/// EFI status codes the service itself produces (UEFI spec appendix D; high bit set = error).
pub mod status {
    /// `EFI_SUCCESS`.
    pub const SUCCESS: u64 = 0;
    const ERR: u64 = 1 << 63;
    /// `EFI_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: u64 = ERR | 2;
    /// `EFI_UNSUPPORTED`.
    pub const UNSUPPORTED: u64 = ERR | 3;
    /// `EFI_BUFFER_TOO_SMALL`.
    pub const BUFFER_TOO_SMALL: u64 = ERR | 5;
    /// `EFI_DEVICE_ERROR`.
    pub const DEVICE_ERROR: u64 = ERR | 7;
    /// `EFI_WRITE_PROTECTED`.
    pub const WRITE_PROTECTED: u64 = ERR | 8;
    /// `EFI_OUT_OF_RESOURCES`.
    pub const OUT_OF_RESOURCES: u64 = ERR | 9;
    /// `EFI_NOT_FOUND`.
    pub const NOT_FOUND: u64 = ERR | 14;
    /// `EFI_ACCESS_DENIED`.
    pub const ACCESS_DENIED: u64 = ERR | 15;
    /// `EFI_SECURITY_VIOLATION`.
    pub const SECURITY_VIOLATION: u64 = ERR | 26;
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn guid_at(b: &[u8], off: usize) -> Option<Guid> {
    Some(Guid(b.get(off..off.checked_add(16)?)?.try_into().ok()?))
}

/// A variable name as UCS-2 with the terminating NUL (what `NameSize` counts).
pub fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * name.len() + 2);
    for unit in name.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// Decodes a UCS-2 name up to its first NUL; `None` if there is no NUL, the length is odd, or a code
/// unit is a surrogate (UCS-2 has none).
pub fn decode_name(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let mut name = String::new();
    for pair in bytes.chunks_exact(2) {
        let unit = u16::from_le_bytes([pair[0], pair[1]]);
        if unit == 0 {
            return Some(name);
        }
        name.push(char::from_u32(u32::from(unit))?);
    }
    None
}

/// An `EFI_MM_COMMUNICATE` message: the header GUID and `MessageLength` bytes of data.
pub fn encode_communicate(guid: &Guid, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MM_HEADER_SIZE + data.len());
    out.extend_from_slice(guid.as_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn variable_message(function: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VARIABLE_HEADER_SIZE + payload.len());
    out.extend_from_slice(&function.to_le_bytes());
    // edk2 presets ReturnStatus to EFI_NOT_STARTED-like garbage; the handler always overwrites it.
    out.extend_from_slice(&status::SUCCESS.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn access_payload(vendor: &Guid, name: &str, attributes: u32, data_size: u64, data: &[u8]) -> Vec<u8> {
    let name = encode_name(name);
    let mut p = Vec::with_capacity(ACCESS_HEADER_SIZE + name.len() + data.len());
    p.extend_from_slice(vendor.as_bytes());
    p.extend_from_slice(&data_size.to_le_bytes());
    p.extend_from_slice(&(name.len() as u64).to_le_bytes());
    p.extend_from_slice(&attributes.to_le_bytes());
    p.extend_from_slice(&name);
    p.extend_from_slice(data);
    p
}

/// GetVariable as edk2 sends it: `DataSize` = room for the data, that many zero bytes after the name.
pub fn get_variable_message(vendor: &Guid, name: &str, data_capacity: usize) -> Vec<u8> {
    let room = alloc::vec![0u8; data_capacity];
    variable_message(FN_GET_VARIABLE, &access_payload(vendor, name, 0, data_capacity as u64, &room))
}

/// SetVariable: the new data (empty deletes, as in `SetVariable(.., 0, NULL)`).
pub fn set_variable_message(vendor: &Guid, name: &str, attributes: u32, data: &[u8]) -> Vec<u8> {
    variable_message(FN_SET_VARIABLE, &access_payload(vendor, name, attributes, data.len() as u64, data))
}

/// GetNextVariableName: the current name (empty = first) in a name buffer of `name_capacity` bytes.
pub fn get_next_variable_message(vendor: &Guid, name: &str, name_capacity: usize) -> Vec<u8> {
    let mut current = encode_name(name);
    current.resize(current.len().max(name_capacity), 0);
    let mut p = Vec::with_capacity(NEXT_HEADER_SIZE + current.len());
    p.extend_from_slice(vendor.as_bytes());
    p.extend_from_slice(&(current.len() as u64).to_le_bytes());
    p.extend_from_slice(&current);
    variable_message(FN_GET_NEXT_VARIABLE_NAME, &p)
}

/// QueryVariableInfo for `attributes`.
pub fn query_variable_info_message(attributes: u32) -> Vec<u8> {
    let mut p = alloc::vec![0u8; QUERY_INFO_SIZE];
    p[24..28].copy_from_slice(&attributes.to_le_bytes());
    variable_message(FN_QUERY_VARIABLE_INFO, &p)
}

/// An event notification (EndOfDxe, ReadyToBoot, ExitBootServices): edk2 sends one zero byte.
pub fn event_message() -> Vec<u8> {
    alloc::vec![0u8]
}

/// The reply to a variable message: function, EFI status and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableReply {
    /// Function echoed back.
    pub function: u64,
    /// `ReturnStatus`.
    pub status: u64,
    /// The payload after the 16-byte header.
    pub payload: Vec<u8>,
}

/// Parses a variable reply (`None` if shorter than its header).
pub fn parse_variable_reply(reply: &[u8]) -> Option<VariableReply> {
    Some(VariableReply {
        function: u64_at(reply, 0)?,
        status: u64_at(reply, 8)?,
        payload: reply.get(VARIABLE_HEADER_SIZE..)?.to_vec(),
    })
}

/// A parsed `ACCESS_VARIABLE` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessVariable {
    /// Vendor GUID.
    pub vendor: Guid,
    /// Attributes.
    pub attributes: u32,
    /// Name (without NUL).
    pub name: String,
    /// `DataSize` as the message states it (the real size when the reply is BUFFER_TOO_SMALL).
    pub data_size: u64,
    /// Data present in the message (at most `data_size` bytes).
    pub data: Vec<u8>,
}

/// Why an `ACCESS_VARIABLE` or `GET_NEXT` payload is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Shorter than its fixed header.
    #[error("payload shorter than its header")]
    Truncated,
    /// `NameSize` or `DataSize` point beyond the message (or overflow when added).
    #[error("name or data size beyond the message")]
    SizeBeyondMessage,
    /// The name is empty, of odd size, not NUL-terminated exactly at `NameSize`, or not UCS-2.
    #[error("name is not a NUL-terminated UCS-2 string")]
    BadName,
}

/// Parses an `ACCESS_VARIABLE` payload strictly: sizes inside the message without overflow, the name
/// NUL-terminated exactly at `NameSize`. With `data_in_message = false` (a BUFFER_TOO_SMALL reply) the
/// data may be shorter than `DataSize`.
pub fn parse_access(payload: &[u8], data_in_message: bool) -> Result<AccessVariable, PayloadError> {
    let vendor = guid_at(payload, 0).ok_or(PayloadError::Truncated)?;
    let data_size = u64_at(payload, 16).ok_or(PayloadError::Truncated)?;
    let name_size = u64_at(payload, 24).ok_or(PayloadError::Truncated)?;
    let attributes = u32_at(payload, 32).ok_or(PayloadError::Truncated)?;
    let rest = payload.get(ACCESS_HEADER_SIZE..).ok_or(PayloadError::Truncated)?;
    let ns = usize::try_from(name_size).map_err(|_| PayloadError::SizeBeyondMessage)?;
    let name_bytes = rest.get(..ns).ok_or(PayloadError::SizeBeyondMessage)?;
    let name = decode_name(name_bytes).ok_or(PayloadError::BadName)?;
    if ns < 2 || (name.encode_utf16().count() + 1) * 2 != ns {
        return Err(PayloadError::BadName);
    }
    let after = rest.get(ns..).ok_or(PayloadError::SizeBeyondMessage)?;
    let data = match usize::try_from(data_size).ok().and_then(|ds| after.get(..ds)) {
        Some(d) => d.to_vec(),
        None if !data_in_message => after.to_vec(),
        None => return Err(PayloadError::SizeBeyondMessage),
    };
    Ok(AccessVariable { vendor, attributes, name, data_size, data })
}

/// Parses a `GET_NEXT_VARIABLE_NAME` payload: vendor, and the name up to its NUL within `NameSize`.
pub fn parse_next(payload: &[u8]) -> Result<(Guid, String, u64), PayloadError> {
    let vendor = guid_at(payload, 0).ok_or(PayloadError::Truncated)?;
    let name_size = u64_at(payload, 16).ok_or(PayloadError::Truncated)?;
    let rest = payload.get(NEXT_HEADER_SIZE..).ok_or(PayloadError::Truncated)?;
    let ns = usize::try_from(name_size).map_err(|_| PayloadError::SizeBeyondMessage)?;
    let name_bytes = rest.get(..ns).ok_or(PayloadError::SizeBeyondMessage)?;
    let name = decode_name(name_bytes).ok_or(PayloadError::BadName)?;
    Ok((vendor, name, name_size))
}

/// Checks a variable message before it reaches `virtfw-varstore`, whose parser adds `NameSize + DataSize`
/// unchecked and indexes with them. `Err` carries the EFI status the guest gets instead.
pub(crate) fn precheck_variable_message(message: &[u8]) -> Result<(), u64> {
    let Some(function) = u64_at(message, 0) else { return Ok(()) };
    let payload = message.get(VARIABLE_HEADER_SIZE..).unwrap_or(&[]);
    match function {
        FN_GET_VARIABLE => parse_access(payload, false).map(|_| ()),
        FN_SET_VARIABLE => parse_access(payload, true).map(|_| ()),
        FN_GET_NEXT_VARIABLE_NAME | FN_LOCK_VARIABLE => parse_next(payload).map(|_| ()),
        _ => Ok(()),
    }
    .map_err(|_| status::INVALID_PARAMETER)
}

/// A variable reply carrying only a status (the function echoed).
pub(crate) fn status_reply(function: u64, status: u64) -> Vec<u8> {
    variable_message(function, &[])
        .into_iter()
        .enumerate()
        .map(|(i, b)| if (8..16).contains(&i) { status.to_le_bytes()[i - 8] } else { b })
        .collect()
}

/// Reads the function number of a variable message.
pub(crate) fn function_of(message: &[u8]) -> Option<u64> {
    u64_at(message, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_match_virtfw_libefi() {
        use virtfw_libefi::guids as g;
        for (ours, theirs) in [
            (SMM_VARIABLE_GUID, g::EfiSmmVariableProtocol),
            (VAR_CHECK_POLICY_GUID, g::VarCheckPolicyLibMmiHandler),
            (END_OF_DXE_GUID, g::EfiEndOfDxeEventGroup),
            (EXIT_BOOT_SERVICES_GUID, g::EfiEventExitBootServices),
            (READY_TO_BOOT_GUID, g::EfiEventReadyToBoot),
            (EFI_GLOBAL_VARIABLE_GUID, g::EfiGlobalVariable),
            (IMAGE_SECURITY_DATABASE_GUID, g::EfiImageSecurityDatabase),
        ] {
            assert_eq!(ours.0, theirs.to_bytes(), "{theirs}");
        }
    }

    #[test]
    fn names_round_trip_and_reject_malformed() {
        let n = encode_name("Boot0001");
        assert_eq!(n.len(), 18);
        assert_eq!(decode_name(&n).as_deref(), Some("Boot0001"));
        assert_eq!(decode_name(&n[..16]), None, "no terminator");
        assert_eq!(decode_name(&n[..17]), None, "odd size");
        assert_eq!(decode_name(&[0x00, 0xd8, 0, 0]), None, "surrogate");
    }

    #[test]
    fn access_sizes_are_checked_without_overflow() {
        let m = set_variable_message(&EFI_GLOBAL_VARIABLE_GUID, "X", 7, b"abc");
        let a = parse_access(&m[16..], true).expect("parses");
        assert_eq!((a.name.as_str(), a.attributes, a.data.as_slice()), ("X", 7, &b"abc"[..]));
        let mut bad = m.clone();
        bad[16 + 16..16 + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_access(&bad[16..], true), Err(PayloadError::SizeBeyondMessage));
        let mut bad = m.clone();
        bad[16 + 24..16 + 32].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        assert_eq!(parse_access(&bad[16..], true), Err(PayloadError::SizeBeyondMessage));
        let mut bad = m;
        bad[16 + 24..16 + 32].copy_from_slice(&6u64.to_le_bytes()); // "X\0" + 2 data bytes as name
        assert_eq!(parse_access(&bad[16..], true), Err(PayloadError::BadName));
    }
}
