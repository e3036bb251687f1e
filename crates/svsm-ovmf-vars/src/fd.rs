//! OVMF/edk2 variable-store flash images (`OVMF_VARS*.fd`): read every live variable, write a new image.
//!
//! Reading validates the firmware volume (signature, revision, header length, checksum, block map), the
//! authenticated variable store header (GUID, format, state, size) and every variable header on the way
//! (start id, sizes inside the store, and for live copies the name and attributes), and keeps the copies edk2
//! itself would use: state ADDED, or ADDED-in-deleted-transition when the update that started deleting it
//! never finished. See FORMAT.md beside this crate for the layout and the rules.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use uguid::Guid;
use virtfw_libefi::efivar::types::{EfiVar, EfiVarAttr, EfiVarId};
use virtfw_libefi::types::EfiTime;
use zerocopy::{FromBytes, IntoBytes};

use crate::api::VarStoreFormat;
use crate::error::{Error, Result};
use crate::wire::{
    self, AuthVariableHeader, FtwWorkingBlockHeader, FvBlockMapEntry, FvHeader, VariableStoreHeader, state,
};

/// Attribute bits UEFI defines (NV, BS, RT, HW_ERROR, AUTH_WRITE, TIME_BASED_AUTH, APPEND_WRITE); a live
/// variable with any other bit is refused.
pub const DEFINED_ATTRIBUTES: u32 = 0x7f;
/// EFI_VARIABLE_NON_VOLATILE.
const ATTR_NON_VOLATILE: u32 = 0x01;

/// The qcow2 magic, "QFI\xfb".
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
/// virt-fw-vars and edk2 look for the volume at 1 KiB steps.
const VOLUME_SEARCH_STEP: usize = 1024;

/// Where the parts of a variable-store image sit, as read from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdGeometry {
    /// Offset of the firmware volume in the file.
    pub fv_offset: usize,
    /// FvLength.
    pub fv_length: u64,
    /// Offset of the VARIABLE_STORE_HEADER (the volume's HeaderLength past `fv_offset`).
    pub store_offset: usize,
    /// The store header's Size.
    pub store_size: u32,
    /// Offset of the first variable header.
    pub variables_start: usize,
    /// End of the store (`store_offset + store_size`).
    pub store_end: usize,
    /// Offset of the first erased byte after the last variable header.
    pub used_end: usize,
}

impl FdGeometry {
    /// Bytes available for variable headers, names and data.
    pub fn capacity(&self) -> usize {
        self.store_end - self.variables_start
    }
}

/// Counts of the variable headers an image holds, for progress and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdStats {
    /// Live copies (state ADDED) kept.
    pub added: usize,
    /// Copies in deleted transition kept because no ADDED copy of the same variable exists.
    pub recovered: usize,
    /// Copies in deleted transition dropped because an ADDED copy exists.
    pub superseded: usize,
    /// Deleted copies and headers whose write never completed (HEADER_VALID_ONLY), skipped.
    pub dead: usize,
}

/// A parsed image: its live variables, in store order, and where things were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdImage {
    /// The live variables.
    pub variables: Vec<EfiVar>,
    /// The image's layout.
    pub geometry: FdGeometry,
    /// What the parser saw.
    pub stats: FdStats,
}

/// The image layout to write into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdLayout {
    /// The layout of OVMF's 4 MiB build (Debian's `OVMF_VARS_4M.fd`, 540672 bytes): a 132 x 4 KiB volume,
    /// the store up to 0x40000, an erased 4 KiB gap, the 4 KiB fault-tolerant-write working block at 0x41000
    /// and the spare area. With no variables it is byte for byte the empty Debian file.
    Ovmf4M,
    /// Everything outside the variable area copied from this image (any valid OVMF_VARS file, e.g. the 2 MiB
    /// build's 128 KiB one); its variables are replaced.
    Template(Vec<u8>),
}

/// The OVMF `.fd` format as a [`VarStoreFormat`]; `layout` is used when writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfFd {
    /// Layout of the images [`VarStoreFormat::write`] produces.
    pub layout: FdLayout,
}

impl Default for OvmfFd {
    fn default() -> Self {
        Self { layout: FdLayout::Ovmf4M }
    }
}

impl VarStoreFormat for OvmfFd {
    fn read(&self, bytes: &[u8]) -> Result<Vec<EfiVar>> {
        parse(bytes).map(|image| image.variables)
    }

    fn write(&self, vars: &[EfiVar]) -> Result<Vec<u8>> {
        write(vars, &self.layout)
    }
}

/// `len` bytes at `offset` of `bytes`, or the precise [`Error::Truncated`] for `what`.
fn slice<'a>(bytes: &'a [u8], offset: usize, len: usize, what: &'static str) -> Result<&'a [u8]> {
    offset.checked_add(len).and_then(|end| bytes.get(offset..end)).ok_or(Error::Truncated {
        what,
        offset,
        needed: len as u64,
        available: bytes.len().saturating_sub(offset) as u64,
    })
}

/// Reads a `T` at `offset`.
fn read_at<T: FromBytes>(bytes: &[u8], offset: usize, what: &'static str) -> Result<T> {
    let raw = slice(bytes, offset, size_of::<T>(), what)?;
    // The slice has exactly size_of::<T>() bytes, and T is FromBytes, so this cannot fail; map defensively.
    T::read_from_bytes(raw).map_err(|_| Error::Truncated {
        what,
        offset,
        needed: size_of::<T>() as u64,
        available: raw.len() as u64,
    })
}

/// The 16-bit sum edk2's `CalculateSum16` computes (an odd trailing byte is impossible: lengths are even).
fn sum16(bytes: &[u8]) -> u16 {
    bytes.chunks_exact(2).fold(0u16, |acc, pair| acc.wrapping_add(u16::from_le_bytes([pair[0], pair[1]])))
}

/// Offset of the first firmware volume whose file-system GUID is the NV-data GUID.
fn find_volume(bytes: &[u8]) -> Result<usize> {
    if bytes.starts_with(&QCOW2_MAGIC) {
        return Err(Error::Qcow2Image);
    }
    let wanted = wire::NV_DATA_FV_GUID.to_bytes();
    let mut offset = 0usize;
    while let Some(guid) = offset.checked_add(16).and_then(|start| bytes.get(start..start + 16)) {
        if guid == wanted {
            return Ok(offset);
        }
        offset = offset.saturating_add(VOLUME_SEARCH_STEP);
    }
    Err(Error::NoVolume { len: bytes.len() })
}

/// Validates the firmware volume at `fv_offset`; returns (FvLength, HeaderLength).
fn parse_volume(bytes: &[u8], fv_offset: usize) -> Result<(u64, usize)> {
    let fv: FvHeader = read_at(bytes, fv_offset, "firmware volume header")?;
    if fv.signature.get() != wire::FV_SIGNATURE {
        return Err(Error::BadFvSignature { offset: fv_offset, found: fv.signature.get() });
    }
    if fv.revision != wire::FV_REVISION {
        return Err(Error::BadFvRevision { offset: fv_offset, found: fv.revision });
    }
    let fv_length = fv.fv_length.get();
    let available = (bytes.len() - fv_offset) as u64;
    if fv_length > available {
        return Err(Error::Truncated {
            what: "firmware volume (FvLength)",
            offset: fv_offset,
            needed: fv_length,
            available,
        });
    }
    let header_length = fv.header_length.get();
    let bad_length = |why| Error::BadFvHeaderLength { offset: fv_offset, header_length, why };
    let min_header = size_of::<FvHeader>() + 2 * size_of::<FvBlockMapEntry>();
    if !header_length.is_multiple_of(2) {
        return Err(bad_length("odd"));
    }
    if usize::from(header_length) < min_header {
        return Err(bad_length("shorter than the header plus one block-map entry and its terminator"));
    }
    if u64::from(header_length) > fv_length {
        return Err(bad_length("longer than the volume"));
    }
    let header = slice(bytes, fv_offset, usize::from(header_length), "firmware volume header")?;
    let sum = sum16(header);
    if sum != 0 {
        return Err(Error::BadFvChecksum { offset: fv_offset, sum });
    }
    // Block map: entries up to the {0, 0} terminator, all inside HeaderLength, adding up to FvLength.
    let map = &header[size_of::<FvHeader>()..];
    let mut blocks = 0u64;
    let mut terminated = false;
    for entry in map.chunks_exact(size_of::<FvBlockMapEntry>()) {
        let entry = FvBlockMapEntry::read_from_bytes(entry)
            .map_err(|_| Error::BadBlockMap { offset: fv_offset, why: "entry is cut short" })?;
        let (num_blocks, length) = (entry.num_blocks.get(), entry.length.get());
        if num_blocks == 0 && length == 0 {
            terminated = true;
            break;
        }
        if num_blocks == 0 || length == 0 {
            return Err(Error::BadBlockMap {
                offset: fv_offset,
                why: "has an entry with zero blocks or zero length",
            });
        }
        blocks = blocks.saturating_add(u64::from(num_blocks) * u64::from(length));
    }
    if !terminated {
        return Err(Error::BadBlockMap {
            offset: fv_offset,
            why: "has no {0, 0} terminator inside HeaderLength",
        });
    }
    if blocks != fv_length {
        return Err(Error::BlockMapMismatch { offset: fv_offset, blocks, fv_length });
    }
    Ok((fv_length, usize::from(header_length)))
}

/// Validates the variable store header; returns (Size, end of the store).
fn parse_store_header(bytes: &[u8], store_offset: usize, fv_end: usize) -> Result<(u32, usize)> {
    let header: VariableStoreHeader = read_at(&bytes[..fv_end], store_offset, "variable store header")?;
    let guid = Guid::from_bytes(header.signature);
    if guid == wire::PLAIN_VARIABLE_STORE_GUID {
        return Err(Error::PlainVariableStore { offset: store_offset, guid });
    }
    if guid != wire::AUTH_VARIABLE_STORE_GUID {
        return Err(Error::BadStoreGuid { offset: store_offset, guid });
    }
    if header.format != wire::STORE_FORMATTED {
        return Err(Error::BadStoreFormat { offset: store_offset, found: header.format });
    }
    if header.state != wire::STORE_HEALTHY {
        return Err(Error::BadStoreState { offset: store_offset, found: header.state });
    }
    let size = header.size.get();
    let room = (fv_end - store_offset) as u64;
    if u64::from(size) > room || (size as usize) < size_of::<VariableStoreHeader>() {
        return Err(Error::BadStoreSize { offset: store_offset, size, room });
    }
    Ok((size, store_offset + size as usize))
}

/// `offset` rounded up to the variable header alignment.
fn align_header(offset: usize) -> usize {
    offset.div_ceil(wire::HEADER_ALIGNMENT) * wire::HEADER_ALIGNMENT
}

/// Decodes a UCS-2 name of `raw.len()` bytes (NUL included) at header `offset`.
fn decode_name(raw: &[u8], offset: usize) -> Result<String> {
    let name_size = raw.len() as u32;
    if raw.len() < 2 || !raw.len().is_multiple_of(2) {
        return Err(Error::BadNameSize { offset, name_size });
    }
    let units: Vec<u16> = raw.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
    let (last, text) = units.split_last().ok_or(Error::BadNameSize { offset, name_size })?;
    if *last != 0 || text.contains(&0) {
        return Err(Error::BadNameTerminator { offset });
    }
    let name: String = char::decode_utf16(text.iter().copied())
        .collect::<core::result::Result<_, _>>()
        .map_err(|_| Error::BadName { offset })?;
    if name.is_empty() {
        return Err(Error::BadName { offset });
    }
    Ok(name)
}

/// The live copy of one variable as found in the store.
struct Found {
    offset: usize,
    state: u8,
    var: EfiVar,
}

/// Builds the [`EfiVar`] of the live copy whose header is at `offset`.
fn live_variable(header: &AuthVariableHeader, name_raw: &[u8], data: &[u8], offset: usize) -> Result<EfiVar> {
    let name = decode_name(name_raw, offset)?;
    let guid = Guid::from_bytes(header.vendor_guid);
    let attr = header.attributes.get();
    check_attributes(&name, guid, attr)?;
    // A zero timestamp means "none" (every variable but the time-based authenticated ones), as in
    // virt-fw-vars' JSON; MonotonicCount and PubKeyIndex belong to the count-based authenticated variables
    // edk2 no longer supports and are not carried (FORMAT.md).
    let time =
        (header.time_stamp != [0u8; 16]).then(|| EfiTime::read_from_bytes(&header.time_stamp).ok()).flatten();
    Ok(EfiVar::new_with_vec_full(EfiVarId::new(name, guid), EfiVarAttr::from(attr), data.to_vec(), time))
}

/// The attribute rules a variable must meet to be read from or written to a store.
pub(crate) fn check_attributes(name: &str, guid: Guid, attr: u32) -> Result<()> {
    if attr & !DEFINED_ATTRIBUTES != 0 {
        return Err(Error::ReservedAttributes { name: name.into(), guid, attr });
    }
    if attr & ATTR_NON_VOLATILE == 0 {
        return Err(Error::VolatileVariable { name: name.into(), guid, attr });
    }
    Ok(())
}

/// Parses an OVMF variable-store image and returns its live variables.
pub fn parse(bytes: &[u8]) -> Result<FdImage> {
    let fv_offset = find_volume(bytes)?;
    let (fv_length, header_length) = parse_volume(bytes, fv_offset)?;
    // fv_length <= bytes.len() - fv_offset was checked, so this fits in usize.
    let fv_end = fv_offset + fv_length as usize;
    let store_offset = fv_offset + header_length;
    let (store_size, store_end) = parse_store_header(bytes, store_offset, fv_end)?;
    let variables_start = align_header(store_offset + size_of::<VariableStoreHeader>());
    let store = &bytes[..store_end];

    let mut stats = FdStats::default();
    let mut found: Vec<Found> = Vec::new();
    let mut offset = variables_start;
    // Free space starts where the start id is erased, or where there is no room for one.
    while let Some(start_id) = offset.checked_add(2).and_then(|end| store.get(offset..end)) {
        let start_id = u16::from_le_bytes([start_id[0], start_id[1]]);
        if start_id == wire::ERASED_START_ID {
            break;
        }
        if start_id != wire::VARIABLE_START_ID {
            return Err(Error::BadStartId { offset, found: start_id });
        }
        let header: AuthVariableHeader = read_at(store, offset, "variable header")
            .map_err(|_| Error::HeaderPastEnd { offset, end: store_end })?;
        let (name_size, data_size) = (header.name_size.get(), header.data_size.get());
        let name_start = offset + size_of::<AuthVariableHeader>();
        let body_end = (name_start as u64) + u64::from(name_size) + u64::from(data_size);
        if body_end > store_end as u64 {
            return Err(Error::VariableOverrun { offset, name_size, data_size, end: store_end });
        }
        let data_start = name_start + name_size as usize;
        let next = align_header(body_end as usize);

        match header.state {
            state::ADDED | state::ADDED_IN_DELETED_TRANSITION => {
                let var = live_variable(
                    &header,
                    &store[name_start..data_start],
                    &store[data_start..body_end as usize],
                    offset,
                )?;
                found.push(Found { offset, state: header.state, var });
            }
            _ => stats.dead += 1,
        }
        offset = next;
    }

    // edk2's rule: an ADDED copy wins; a copy in deleted transition is live only when no ADDED copy exists.
    // Two copies in the same state are damage edk2 never leaves behind.
    let mut variables = Vec::with_capacity(found.len());
    for (index, candidate) in found.iter().enumerate() {
        let same = |other: &Found| {
            other.var.name() == candidate.var.name() && other.var.guid() == candidate.var.guid()
        };
        if let Some(twin) = found[..index].iter().find(|other| same(other) && other.state == candidate.state)
        {
            return Err(Error::DuplicateVariable {
                name: candidate.var.name().into(),
                guid: *candidate.var.guid(),
                first: twin.offset,
                second: candidate.offset,
            });
        }
        if candidate.state == state::ADDED {
            stats.added += 1;
            variables.push(candidate.var.clone());
        } else if found.iter().any(|other| same(other) && other.state == state::ADDED) {
            stats.superseded += 1;
        } else {
            stats.recovered += 1;
            variables.push(candidate.var.clone());
        }
    }

    let geometry = FdGeometry {
        fv_offset,
        fv_length,
        store_offset,
        store_size,
        variables_start,
        store_end,
        used_end: offset.min(store_end),
    };
    Ok(FdImage { variables, geometry, stats })
}

/// Encodes a name as UCS-2 little-endian with its NUL.
fn encode_name(var: &EfiVar) -> Result<Vec<u8>> {
    if var.name().is_empty() || var.name().contains('\0') {
        return Err(Error::UnwritableName { name: var.name().into(), guid: *var.guid() });
    }
    Ok(var.name().encode_utf16().chain(core::iter::once(0)).flat_map(u16::to_le_bytes).collect())
}

/// The bytes of one variable: header, name, data, erased padding to the next header.
fn encode_variable(var: &EfiVar) -> Result<Vec<u8>> {
    let attr = u32::from(var.attr());
    check_attributes(var.name(), *var.guid(), attr)?;
    let name = encode_name(var)?;
    let too_large = || Error::VariableTooLarge { name: var.name().into(), guid: *var.guid() };
    let name_size = u32::try_from(name.len()).map_err(|_| too_large())?;
    let data_size = u32::try_from(var.data().len()).map_err(|_| too_large())?;
    let mut time_stamp = [0u8; 16];
    if let Some(time) = var.time() {
        time_stamp.copy_from_slice(time.as_bytes());
    }
    let header = AuthVariableHeader {
        start_id: wire::VARIABLE_START_ID.into(),
        state: state::ADDED,
        reserved: 0,
        attributes: attr.into(),
        monotonic_count: 0.into(),
        time_stamp,
        pub_key_index: 0.into(),
        name_size: name_size.into(),
        data_size: data_size.into(),
        vendor_guid: var.guid().to_bytes(),
    };
    let mut out =
        Vec::with_capacity(align_header(size_of::<AuthVariableHeader>() + name.len() + var.data().len()));
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&name);
    out.extend_from_slice(var.data());
    out.resize(align_header(out.len()), 0xff);
    Ok(out)
}

/// Geometry of [`FdLayout::Ovmf4M`].
mod ovmf_4m {
    /// Volume (and file) size: 132 blocks of 4 KiB.
    pub const FV_LENGTH: usize = 0x84000;
    /// Flash block size.
    pub const BLOCK_SIZE: u32 = 0x1000;
    /// The store header's Size: the store ends at 0x40000.
    pub const STORE_END: usize = 0x40000;
    /// The fault-tolerant-write working block.
    pub const FTW_OFFSET: usize = 0x41000;
    /// Its size.
    pub const FTW_SIZE: usize = 0x1000;
    /// `EFI_FVB2_*` attributes OVMF's volume carries.
    pub const FV_ATTRIBUTES: u32 = 0x0004_feff;
}

/// CRC-32 (IEEE, reflected), as edk2's `CalculateCrc32`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Where the parts of an empty image go (all offsets from the start of the volume).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmptyLayout {
    /// Volume (and file) size, a whole number of blocks.
    pub fv_length: usize,
    /// Flash block size.
    pub block_size: u32,
    /// End of the variable store.
    pub store_end: usize,
    /// The fault-tolerant-write working block.
    pub ftw_offset: usize,
    /// Its size.
    pub ftw_size: usize,
}

impl EmptyLayout {
    /// [`FdLayout::Ovmf4M`].
    pub(crate) const OVMF_4M: Self = Self {
        fv_length: ovmf_4m::FV_LENGTH,
        block_size: ovmf_4m::BLOCK_SIZE,
        store_end: ovmf_4m::STORE_END,
        ftw_offset: ovmf_4m::FTW_OFFSET,
        ftw_size: ovmf_4m::FTW_SIZE,
    };
}

/// An empty image of `layout`: FV header and block map, an empty healthy store, an initialised FTW working
/// block, erased flash elsewhere.
pub(crate) fn empty_image(layout: EmptyLayout) -> Vec<u8> {
    let mut image = vec![0xffu8; layout.fv_length];
    let header_length = size_of::<FvHeader>() + 2 * size_of::<FvBlockMapEntry>();
    let mut fv = FvHeader {
        zero_vector: [0; 16],
        file_system_guid: wire::NV_DATA_FV_GUID.to_bytes(),
        fv_length: (layout.fv_length as u64).into(),
        signature: wire::FV_SIGNATURE.into(),
        attributes: ovmf_4m::FV_ATTRIBUTES.into(),
        header_length: (header_length as u16).into(),
        checksum: 0.into(),
        ext_header_offset: 0.into(),
        reserved: 0,
        revision: wire::FV_REVISION,
    };
    let map = FvBlockMapEntry {
        num_blocks: ((layout.fv_length as u32) / layout.block_size).into(),
        length: layout.block_size.into(),
    };
    let terminator = FvBlockMapEntry { num_blocks: 0.into(), length: 0.into() };
    let mut header = Vec::with_capacity(header_length);
    header.extend_from_slice(fv.as_bytes());
    header.extend_from_slice(map.as_bytes());
    header.extend_from_slice(terminator.as_bytes());
    fv.checksum = 0u16.wrapping_sub(sum16(&header)).into();
    header[..size_of::<FvHeader>()].copy_from_slice(fv.as_bytes());
    image[..header_length].copy_from_slice(&header);

    let store = VariableStoreHeader {
        signature: wire::AUTH_VARIABLE_STORE_GUID.to_bytes(),
        size: ((layout.store_end - header_length) as u32).into(),
        format: wire::STORE_FORMATTED,
        state: wire::STORE_HEALTHY,
        reserved: 0.into(),
        reserved1: 0.into(),
    };
    image[header_length..header_length + size_of::<VariableStoreHeader>()].copy_from_slice(store.as_bytes());

    // The CRC covers the header with Crc and the state byte still erased, as the FTW driver computes it.
    let mut ftw = FtwWorkingBlockHeader {
        signature: wire::FTW_WORKING_BLOCK_GUID.to_bytes(),
        crc: u32::MAX.into(),
        state: 0xff,
        reserved: [0xff; 3],
        write_queue_size: ((layout.ftw_size - size_of::<FtwWorkingBlockHeader>()) as u64).into(),
    };
    ftw.crc = crc32(ftw.as_bytes()).into();
    ftw.state = 0xfe; // WorkingBlockValid
    let ftw_header = layout.ftw_offset..layout.ftw_offset + size_of::<FtwWorkingBlockHeader>();
    image[ftw_header].copy_from_slice(ftw.as_bytes());
    image
}

/// Writes `vars` as a complete image of `layout`, in the order given, each as a single ADDED copy.
pub fn write(vars: &[EfiVar], layout: &FdLayout) -> Result<Vec<u8>> {
    let mut image = match layout {
        FdLayout::Ovmf4M => empty_image(EmptyLayout::OVMF_4M),
        FdLayout::Template(template) => template.clone(),
    };
    let geometry = parse(&image)?.geometry;
    let mut area = Vec::new();
    for (index, var) in vars.iter().enumerate() {
        if vars[..index].iter().any(|other| other.name() == var.name() && other.guid() == var.guid()) {
            return Err(Error::DuplicateToWrite { name: var.name().into(), guid: *var.guid() });
        }
        area.extend_from_slice(&encode_variable(var)?);
    }
    let capacity = geometry.capacity();
    // The area must leave room for at least the erased start id that ends the list, unless it fills the store.
    if area.len() > capacity {
        return Err(Error::StoreFull { needed: area.len() as u64, available: capacity as u64 });
    }
    let target = &mut image[geometry.variables_start..geometry.store_end];
    target.fill(0xff);
    target[..area.len()].copy_from_slice(&area);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn empty_4m_image_parses_with_no_variables() {
        let image = parse(&empty_image(EmptyLayout::OVMF_4M)).unwrap();
        assert!(image.variables.is_empty());
        assert_eq!(image.geometry.variables_start, 0x64);
        assert_eq!(image.geometry.store_end, 0x40000);
    }
}
