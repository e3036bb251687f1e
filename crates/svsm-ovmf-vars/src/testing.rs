//! Helpers for tests that damage or inspect images (feature `testing`; never in production builds).

use alloc::vec::Vec;
use zerocopy::FromBytes;

use crate::fd::FdGeometry;
use crate::wire::{self, AuthVariableHeader};

/// Every variable header of a well-formed image, live or dead, with its offset, in store order.
///
/// Walks the same way the parser does but keeps deleted copies too; stops at the first header that does not
/// fit, so it is for images the test built or took from Debian.
pub fn variable_headers(image: &[u8], geometry: &FdGeometry) -> Vec<(usize, AuthVariableHeader)> {
    let mut out = Vec::new();
    let mut offset = geometry.variables_start;
    while let Some(raw) =
        image.get(offset..(offset + size_of::<AuthVariableHeader>()).min(geometry.store_end))
    {
        let Ok(header) = AuthVariableHeader::read_from_bytes(raw) else { break };
        if header.start_id.get() != wire::VARIABLE_START_ID {
            break;
        }
        let next = offset
            + size_of::<AuthVariableHeader>()
            + header.name_size.get() as usize
            + header.data_size.get() as usize;
        out.push((offset, header));
        offset = next.div_ceil(wire::HEADER_ALIGNMENT) * wire::HEADER_ALIGNMENT;
    }
    out
}

/// The UCS-2 name of the header at `offset` (for finding a variable's copies in a test image).
pub fn header_name(
    image: &[u8],
    offset: usize,
    header: &AuthVariableHeader,
) -> Option<alloc::string::String> {
    let start = offset + size_of::<AuthVariableHeader>();
    let raw = image.get(start..start + header.name_size.get() as usize)?;
    let units: Vec<u16> =
        raw.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).take_while(|&u| u != 0).collect();
    alloc::string::String::from_utf16(&units).ok()
}

/// A valid empty 16 KiB image (4 blocks of 4 KiB, store up to 8 KiB, FTW block at 12 KiB): a small template
/// for fuzzing and for tests that fill a store.
pub fn small_template() -> Vec<u8> {
    crate::fd::empty_image(crate::fd::EmptyLayout {
        fv_length: 0x4000,
        block_size: 0x1000,
        store_end: 0x2000,
        ftw_offset: 0x3000,
        ftw_size: 0x1000,
    })
}
