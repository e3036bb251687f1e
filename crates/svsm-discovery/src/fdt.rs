//! A bounds-checked reader for flattened device trees (DTB, Devicetree Specification v0.4 chapter 5), and
//! the virtio-mmio device search on top of it.
//!
//! The blob comes from the host (an IGVM parameter), so the reader trusts nothing in it: the header's
//! offsets and sizes are checked against the blob, every token, length and string is checked against its
//! block, nesting is limited to [`MAX_DEPTH`], and every token consumes at least four bytes, so the work is
//! linear in the structure block's size. There are no pointers to follow, so a hostile blob cannot make the
//! walk loop.

use alloc::string::String;
use alloc::vec::Vec;

use crate::api::{DeviceSource, VirtioMmioDevice};
use crate::error::DiscoveryError;

/// First word of every DTB (big-endian).
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Opens a node; followed by its NUL-terminated name, padded to 4 bytes.
pub const FDT_BEGIN_NODE: u32 = 0x1;
/// Closes the innermost open node.
pub const FDT_END_NODE: u32 = 0x2;
/// A property: `{len: u32, nameoff: u32}` then `len` value bytes, padded to 4 bytes.
pub const FDT_PROP: u32 = 0x3;
/// Ignored filler.
pub const FDT_NOP: u32 = 0x4;
/// Ends the structure block.
pub const FDT_END: u32 = 0x9;
/// The format version this reader implements; later versions that declare themselves compatible with it
/// (`last_comp_version <= 17`) are read too.
pub const FDT_VERSION: u32 = 17;
/// Size of the version-17 header.
pub const HEADER_LEN: usize = 40;
/// Deepest node nesting accepted. Real trees are a handful of levels deep; the limit bounds the walk's memory.
pub const MAX_DEPTH: usize = 64;
/// `#address-cells` when a parent does not state it (Devicetree Specification 2.3.5).
pub const DEFAULT_ADDRESS_CELLS: u32 = 2;
/// `#size-cells` when a parent does not state it (Devicetree Specification 2.3.5).
pub const DEFAULT_SIZE_CELLS: u32 = 1;
/// The `compatible` entry of a virtio-mmio transport node.
pub const VIRTIO_MMIO_COMPATIBLE: &[u8] = b"virtio,mmio";

/// The DTB header as laid out on the wire; every field is a big-endian u32.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FdtHeader {
    /// [`FDT_MAGIC`].
    pub magic: [u8; 4],
    /// Size of the whole blob, header included.
    pub totalsize: [u8; 4],
    /// Offset of the structure block.
    pub off_dt_struct: [u8; 4],
    /// Offset of the strings block.
    pub off_dt_strings: [u8; 4],
    /// Offset of the memory reservation map (not needed for device discovery).
    pub off_mem_rsvmap: [u8; 4],
    /// Format version.
    pub version: [u8; 4],
    /// Oldest version this blob is compatible with.
    pub last_comp_version: [u8; 4],
    /// Boot CPU id.
    pub boot_cpuid_phys: [u8; 4],
    /// Size of the strings block.
    pub size_dt_strings: [u8; 4],
    /// Size of the structure block.
    pub size_dt_struct: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<FdtHeader>() == HEADER_LEN);
const _: () = assert!(core::mem::offset_of!(FdtHeader, totalsize) == 4);
const _: () = assert!(core::mem::offset_of!(FdtHeader, off_dt_struct) == 8);
const _: () = assert!(core::mem::offset_of!(FdtHeader, off_dt_strings) == 12);
const _: () = assert!(core::mem::offset_of!(FdtHeader, version) == 20);
const _: () = assert!(core::mem::offset_of!(FdtHeader, last_comp_version) == 24);
const _: () = assert!(core::mem::offset_of!(FdtHeader, size_dt_strings) == 32);
const _: () = assert!(core::mem::offset_of!(FdtHeader, size_dt_struct) == 36);

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    Some(u32::from_be_bytes(bytes.get(at..end)?.try_into().ok()?))
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// A validated DTB: header checked, structure and strings blocks located inside the blob.
#[derive(Debug, Clone, Copy)]
pub struct Fdt<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    version: u32,
}

impl<'a> Fdt<'a> {
    /// Checks the header and locates the blocks. `blob` may be longer than `totalsize` (IGVM parameter areas
    /// are page-sized); bytes past `totalsize` are ignored.
    pub fn parse(blob: &'a [u8]) -> Result<Self, DiscoveryError> {
        let len = blob.len();
        if len < HEADER_LEN {
            return Err(DiscoveryError::FdtTruncatedHeader { len });
        }
        let field = |i: usize| be_u32(blob, i * 4).ok_or(DiscoveryError::FdtTruncatedHeader { len });
        let magic = field(0)?;
        if magic != FDT_MAGIC {
            return Err(DiscoveryError::FdtBadMagic { magic });
        }
        let totalsize = field(1)?;
        let total = totalsize as usize;
        if total < HEADER_LEN || total > len {
            return Err(DiscoveryError::FdtTotalSize { totalsize, len });
        }
        let version = field(5)?;
        let last_comp_version = field(6)?;
        if version < FDT_VERSION || last_comp_version > FDT_VERSION {
            return Err(DiscoveryError::FdtUnsupportedVersion { version, last_comp_version });
        }
        let blob = blob.get(..total).ok_or(DiscoveryError::FdtTotalSize { totalsize, len })?;
        let block = |name: &'static str, offset: u32, size: u32, align: usize| {
            let err = DiscoveryError::FdtBlockOutOfBounds { block: name, offset, size, totalsize };
            let start = offset as usize;
            if start < HEADER_LEN || !start.is_multiple_of(align) {
                return Err(err);
            }
            let end = start.checked_add(size as usize).ok_or(err.clone())?;
            blob.get(start..end).ok_or(err)
        };
        let structure = block("structure", field(2)?, field(9)?, 4)?;
        let strings = block("strings", field(3)?, field(8)?, 1)?;
        Ok(Self { structure, strings, version })
    }

    /// The header's format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The structure block's tokens in order, each validated as it is read.
    pub fn tokens(&self) -> Tokens<'a> {
        Tokens { data: self.structure, pos: 0, done: false }
    }

    /// The property name at `nameoff` in the strings block.
    pub fn string(&self, nameoff: u32) -> Result<&'a [u8], DiscoveryError> {
        let rest = self
            .strings
            .get(nameoff as usize..)
            .filter(|r| !r.is_empty())
            .ok_or(DiscoveryError::FdtStringOffset { nameoff, strings_size: self.strings.len() })?;
        let nul =
            rest.iter().position(|&b| b == 0).ok_or(DiscoveryError::FdtUnterminatedString { nameoff })?;
        Ok(rest.get(..nul).unwrap_or_default())
    }
}

/// One structure-block token. Offsets are relative to the structure block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// A node opens; `name` excludes the NUL (empty for the root).
    BeginNode {
        /// Token offset.
        offset: usize,
        /// Unit name, e.g. `virtio_mmio@feb00000`.
        name: &'a [u8],
    },
    /// The innermost node closes.
    EndNode {
        /// Token offset.
        offset: usize,
    },
    /// A property of the innermost open node.
    Prop {
        /// Token offset.
        offset: usize,
        /// Offset of its name in the strings block (see [`Fdt::string`]).
        nameoff: u32,
        /// Its value.
        value: &'a [u8],
    },
    /// Filler.
    Nop,
    /// The end of the structure block.
    End {
        /// Token offset.
        offset: usize,
    },
}

/// Iterator over the tokens of an [`Fdt`]; stops after END or the first error.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Tokens<'a> {
    fn read_token(&mut self) -> Result<Token<'a>, DiscoveryError> {
        let offset = self.pos;
        let truncated = DiscoveryError::FdtTruncatedStructure { offset };
        let token = be_u32(self.data, offset).ok_or(truncated.clone())?;
        let body = offset.checked_add(4).ok_or(truncated.clone())?;
        match token {
            FDT_BEGIN_NODE => {
                let rest = self.data.get(body..).ok_or(truncated.clone())?;
                let nul = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(DiscoveryError::FdtUnterminatedName { offset })?;
                let name = rest.get(..nul).ok_or(truncated.clone())?;
                self.pos =
                    body.checked_add(nul).and_then(|n| n.checked_add(1)).and_then(align4).ok_or(truncated)?;
                Ok(Token::BeginNode { offset, name })
            }
            FDT_END_NODE => {
                self.pos = body;
                Ok(Token::EndNode { offset })
            }
            FDT_PROP => {
                let len = be_u32(self.data, body).ok_or(truncated.clone())? as usize;
                let nameoff_at = body.checked_add(4).ok_or(truncated.clone())?;
                let nameoff = be_u32(self.data, nameoff_at).ok_or(truncated.clone())?;
                let start = nameoff_at.checked_add(4).ok_or(truncated.clone())?;
                let end = start.checked_add(len).ok_or(truncated.clone())?;
                let value = self.data.get(start..end).ok_or(truncated.clone())?;
                self.pos = align4(end).ok_or(truncated)?;
                Ok(Token::Prop { offset, nameoff, value })
            }
            FDT_NOP => {
                self.pos = body;
                Ok(Token::Nop)
            }
            FDT_END => {
                self.pos = body;
                Ok(Token::End { offset })
            }
            token => Err(DiscoveryError::FdtUnknownToken { token, offset }),
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<Token<'a>, DiscoveryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let token = self.read_token();
        self.done = matches!(token, Ok(Token::End { .. }) | Err(_));
        Some(token)
    }
}

/// What the walk remembers about one open node.
#[derive(Debug)]
struct Frame<'a> {
    offset: usize,
    name: &'a [u8],
    /// This node's `#address-cells`/`#size-cells`: how its *children's* `reg` is laid out.
    address_cells: u32,
    size_cells: u32,
    has_child: bool,
    virtio: bool,
    enabled: bool,
    reg: Option<(&'a [u8], usize)>,
    plane: Option<u32>,
}

impl<'a> Frame<'a> {
    fn new(offset: usize, name: &'a [u8]) -> Self {
        Self {
            offset,
            name,
            address_cells: DEFAULT_ADDRESS_CELLS,
            size_cells: DEFAULT_SIZE_CELLS,
            has_child: false,
            virtio: false,
            enabled: true,
            reg: None,
            plane: None,
        }
    }
}

fn bad(property: &'static str, value: &[u8], offset: usize, detail: &'static str) -> DiscoveryError {
    DiscoveryError::FdtBadProperty { property, len: value.len(), offset, detail }
}

fn u32_prop(property: &'static str, value: &[u8], offset: usize) -> Result<u32, DiscoveryError> {
    match value.len() {
        4 => be_u32(value, 0).ok_or(bad(property, value, offset, "expected one 32-bit cell")),
        _ => Err(bad(property, value, offset, "expected one 32-bit cell")),
    }
}

/// A `<stringlist>`: one or more NUL-terminated strings.
fn string_list<'v>(
    property: &'static str,
    value: &'v [u8],
    offset: usize,
) -> Result<impl Iterator<Item = &'v [u8]>, DiscoveryError> {
    match value.split_last() {
        Some((0, body)) => Ok(body.split(|&b| b == 0)),
        _ => Err(bad(property, value, offset, "not a NUL-terminated string list")),
    }
}

/// Reads a big-endian number of `cells` 32-bit cells (at most 2) from `bytes`.
fn cells(bytes: &[u8], cells: u32) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..cells as usize {
        v = (v << 32) | u64::from(be_u32(bytes, i.checked_mul(4)?)?);
    }
    Some(v)
}

fn finish_virtio(frame: &Frame<'_>, parent: Option<&Frame<'_>>) -> Result<VirtioMmioDevice, DiscoveryError> {
    let (ac, sc) =
        parent.map_or((DEFAULT_ADDRESS_CELLS, DEFAULT_SIZE_CELLS), |p| (p.address_cells, p.size_cells));
    if !(1..=2).contains(&ac) || sc > 2 {
        return Err(DiscoveryError::FdtUnsupportedCells {
            offset: frame.offset,
            address_cells: ac,
            size_cells: sc,
        });
    }
    let (reg, reg_offset) = frame.reg.ok_or(DiscoveryError::FdtMissingReg { offset: frame.offset })?;
    // ac + sc <= 4 cells: no overflow.
    let entry = ((ac + sc) * 4) as usize;
    if reg.is_empty() || !reg.len().is_multiple_of(entry) {
        return Err(bad("reg", reg, reg_offset, "not a whole number of (address, size) entries"));
    }
    let malformed = || bad("reg", reg, reg_offset, "entry shorter than #address-cells + #size-cells");
    let address = cells(reg, ac).ok_or_else(malformed)?;
    let size = match sc {
        0 => None,
        _ => Some(cells(reg.get((ac * 4) as usize..).ok_or_else(malformed)?, sc).ok_or_else(malformed)?),
    };
    if let Some(size) = size
        && address.checked_add(size).is_none()
    {
        return Err(DiscoveryError::WindowOverflow { address, size });
    }
    Ok(VirtioMmioDevice {
        address,
        size,
        plane: frame.plane,
        name: Some(String::from_utf8_lossy(frame.name).into_owned()),
    })
}

fn structure_error(offset: usize, detail: &'static str) -> DiscoveryError {
    DiscoveryError::FdtStructure { offset, detail }
}

impl DeviceSource for Fdt<'_> {
    /// Every enabled node whose `compatible` list contains `"virtio,mmio"`, with its first `reg` entry decoded
    /// with the parent's `#address-cells`/`#size-cells` (defaults 2 and 1). Nodes whose `status` is present
    /// and not `"okay"`/`"ok"` are skipped, as the specification says such devices are not usable.
    fn virtio_mmio_devices(&self) -> Result<Vec<VirtioMmioDevice>, DiscoveryError> {
        let mut devices = Vec::new();
        let mut stack: Vec<Frame<'_>> = Vec::new();
        let mut root_closed = false;
        for token in self.tokens() {
            match token? {
                Token::Nop => {}
                Token::BeginNode { offset, name } => {
                    if root_closed {
                        return Err(structure_error(offset, "a second root node"));
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(DiscoveryError::FdtTooDeep { max: MAX_DEPTH });
                    }
                    if let Some(parent) = stack.last_mut() {
                        parent.has_child = true;
                    }
                    stack.push(Frame::new(offset, name));
                }
                Token::EndNode { offset } => {
                    let frame =
                        stack.pop().ok_or(structure_error(offset, "END_NODE without an open node"))?;
                    if frame.virtio && frame.enabled {
                        devices.push(finish_virtio(&frame, stack.last())?);
                    }
                    root_closed = stack.is_empty();
                }
                Token::Prop { offset, nameoff, value } => {
                    let name = self.string(nameoff)?;
                    let frame =
                        stack.last_mut().ok_or(structure_error(offset, "property outside any node"))?;
                    if frame.has_child {
                        return Err(structure_error(offset, "property after a subnode"));
                    }
                    match name {
                        b"#address-cells" => frame.address_cells = u32_prop("#address-cells", value, offset)?,
                        b"#size-cells" => frame.size_cells = u32_prop("#size-cells", value, offset)?,
                        b"plane" => frame.plane = Some(u32_prop("plane", value, offset)?),
                        b"reg" => frame.reg = Some((value, offset)),
                        b"compatible" => {
                            frame.virtio = string_list("compatible", value, offset)?
                                .any(|c| c == VIRTIO_MMIO_COMPATIBLE);
                        }
                        b"status" => {
                            let mut list = string_list("status", value, offset)?;
                            frame.enabled = matches!(list.next(), Some(b"okay" | b"ok"));
                        }
                        _ => {}
                    }
                }
                Token::End { offset } => {
                    if !root_closed {
                        return Err(structure_error(offset, "END before the root node was closed"));
                    }
                    return Ok(devices);
                }
            }
        }
        // The iterator only stops early on END (handled above) or an error (returned above); running out of
        // tokens without END is caught by read_token as truncation, so this is unreachable in practice.
        Err(structure_error(self.structure.len(), "no END token"))
    }
}

/// The virtio-mmio devices a DTB describes.
pub fn virtio_mmio_from_fdt(blob: &[u8]) -> Result<Vec<VirtioMmioDevice>, DiscoveryError> {
    Fdt::parse(blob)?.virtio_mmio_devices()
}
