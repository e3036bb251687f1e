//! Every way a host-provided discovery blob can be malformed.
//!
//! Each variant says where in the blob the problem is, so a report can be matched against a hex dump of what
//! the host supplied. None of them is recoverable by retrying: the blob is what it is. The caller either falls
//! back to the other discovery source or refuses to boot with the error.

/// A malformed `etc/hardware-info` blob or device tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Fewer than 16 bytes remain where a `{type, size}` record header must start.
    #[error(
        "etc/hardware-info: record header at offset {offset} is truncated ({remaining} of 16 bytes present); \
         the host supplied a corrupt fw_cfg file"
    )]
    HwInfoTruncatedHeader {
        /// Byte offset of the record.
        offset: usize,
        /// Bytes left in the blob.
        remaining: usize,
    },
    /// A record claims more payload than the blob holds (including sizes that overflow any address).
    #[error(
        "etc/hardware-info: record at offset {offset} claims a {size}-byte payload but only {remaining} bytes \
         follow its header"
    )]
    HwInfoPayloadPastEnd {
        /// Byte offset of the record.
        offset: usize,
        /// Payload size the record claims.
        size: u64,
        /// Bytes after the record header.
        remaining: usize,
    },
    /// A virtio-mmio record whose payload is not exactly one little-endian u64 address.
    #[error("etc/hardware-info: virtio-mmio record at offset {offset} has a {size}-byte payload, expected 8")]
    HwInfoVirtioPayloadSize {
        /// Byte offset of the record.
        offset: usize,
        /// Payload size the record claims.
        size: u64,
    },
    /// A device window that wraps past the end of the address space.
    #[error("virtio-mmio window at {address:#x} of {size:#x} bytes wraps past the end of the address space")]
    WindowOverflow {
        /// Stated base address.
        address: u64,
        /// Stated or assumed window size.
        size: u64,
    },
    /// The blob is shorter than the 40-byte FDT header.
    #[error("device tree: {len} bytes is too short for the 40-byte header")]
    FdtTruncatedHeader {
        /// Blob length.
        len: usize,
    },
    /// The header does not start with 0xd00dfeed: this is not a device tree.
    #[error("device tree: bad magic {magic:#010x} (expected 0xd00dfeed); the blob is not a DTB")]
    FdtBadMagic {
        /// The first big-endian word.
        magic: u32,
    },
    /// `totalsize` is smaller than the header or larger than the blob we were given.
    #[error("device tree: header totalsize {totalsize} does not fit the {len}-byte blob")]
    FdtTotalSize {
        /// Header `totalsize`.
        totalsize: u32,
        /// Blob length.
        len: usize,
    },
    /// A format version this parser cannot read (it reads version 17 and anything compatible with it).
    #[error(
        "device tree: version {version} (last compatible {last_comp_version}) is not readable as version 17; \
         regenerate the DTB with a current dtc"
    )]
    FdtUnsupportedVersion {
        /// Header `version`.
        version: u32,
        /// Header `last_comp_version`.
        last_comp_version: u32,
    },
    /// The structure or strings block lies (partly) outside the blob, overlaps the header or is misaligned.
    #[error(
        "device tree: {block} block at offset {offset} of {size} bytes is not inside the {totalsize}-byte blob"
    )]
    FdtBlockOutOfBounds {
        /// `"structure"` or `"strings"`.
        block: &'static str,
        /// Header offset of the block.
        offset: u32,
        /// Header size of the block.
        size: u32,
        /// Header `totalsize`.
        totalsize: u32,
    },
    /// A token, length or value runs past the end of the structure block.
    #[error("device tree: structure block ends inside the item at offset {offset}")]
    FdtTruncatedStructure {
        /// Offset within the structure block.
        offset: usize,
    },
    /// A token value that is not BEGIN_NODE, END_NODE, PROP, NOP or END.
    #[error("device tree: unknown token {token:#x} at structure offset {offset}")]
    FdtUnknownToken {
        /// The token value.
        token: u32,
        /// Offset within the structure block.
        offset: usize,
    },
    /// A node name without its terminating NUL inside the structure block.
    #[error("device tree: node name at structure offset {offset} is not NUL-terminated")]
    FdtUnterminatedName {
        /// Offset within the structure block.
        offset: usize,
    },
    /// A property name offset outside the strings block.
    #[error("device tree: property name offset {nameoff} is outside the {strings_size}-byte strings block")]
    FdtStringOffset {
        /// The `nameoff` field.
        nameoff: u32,
        /// Size of the strings block.
        strings_size: usize,
    },
    /// A property name that runs off the end of the strings block.
    #[error("device tree: property name at strings offset {nameoff} is not NUL-terminated")]
    FdtUnterminatedString {
        /// The `nameoff` field.
        nameoff: u32,
    },
    /// Nodes nested deeper than [`crate::fdt::MAX_DEPTH`].
    #[error("device tree: nodes nested deeper than {max} levels")]
    FdtTooDeep {
        /// The limit.
        max: usize,
    },
    /// The node structure is not one well-formed tree followed by END.
    #[error("device tree: malformed node structure at structure offset {offset}: {detail}")]
    FdtStructure {
        /// Offset within the structure block.
        offset: usize,
        /// What is wrong.
        detail: &'static str,
    },
    /// A property this parser interprets has a value of the wrong shape.
    #[error(
        "device tree: property `{property}` ({len} bytes) at structure offset {offset} is malformed: {detail}"
    )]
    FdtBadProperty {
        /// Property name.
        property: &'static str,
        /// Value length.
        len: usize,
        /// Offset within the structure block.
        offset: usize,
        /// What is wrong.
        detail: &'static str,
    },
    /// `#address-cells`/`#size-cells` of a virtio-mmio node's parent that cannot describe a 64-bit window.
    #[error(
        "device tree: virtio-mmio node at structure offset {offset} uses #address-cells = {address_cells}, \
         #size-cells = {size_cells}; only 1..=2 and 0..=2 are supported"
    )]
    FdtUnsupportedCells {
        /// Offset of the node within the structure block.
        offset: usize,
        /// The parent's `#address-cells`.
        address_cells: u32,
        /// The parent's `#size-cells`.
        size_cells: u32,
    },
    /// A virtio-mmio node without a `reg` property.
    #[error("device tree: virtio-mmio node at structure offset {offset} has no `reg` property")]
    FdtMissingReg {
        /// Offset of the node within the structure block.
        offset: usize,
    },
    /// The fw_cfg signature item does not read "QEMU": no fw_cfg device at the ports used.
    #[error(
        "fw_cfg: signature reads {found:02x?}, expected \"QEMU\"; this platform has no fw_cfg device there"
    )]
    FwCfgNoDevice {
        /// The four bytes read.
        found: [u8; 4],
    },
    /// The fw_cfg file directory claims more files than any QEMU creates.
    #[error("fw_cfg: the file directory claims {count} files (at most {max} accepted)")]
    FwCfgTooManyFiles {
        /// Count the directory claims.
        count: u32,
        /// Our bound.
        max: u32,
    },
    /// A fw_cfg file is larger than the caller accepts.
    #[error("fw_cfg: file {name} is {size} bytes, more than the {max} accepted")]
    FwCfgFileTooLarge {
        /// File name.
        name: alloc::string::String,
        /// Size the directory states.
        size: u32,
        /// The caller's bound.
        max: usize,
    },
    /// The fw_cfg file the caller needs is not in the directory.
    #[error("fw_cfg: no file {name}; start QEMU with `-fw_cfg name={name},file=...` or use the device tree")]
    FwCfgFileMissing {
        /// File name.
        name: alloc::string::String,
    },
    /// A DMA transfer reported an error (or never completed within the bound).
    #[error("fw_cfg: DMA read of item {key:#06x} failed: {detail}")]
    FwCfgDma {
        /// Item selector.
        key: u16,
        /// What happened.
        detail: &'static str,
    },
}
