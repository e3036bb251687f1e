//! Why an image or JSON document was refused, or why a set of variables cannot be written.
//!
//! Every offset is a byte offset into the file as given, so an operator can look at it with `xxd -s`.

use alloc::string::String;
use thiserror::Error;
use uguid::Guid;

/// What went wrong reading or writing a variable store. Each variant names one defect.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is a qcow2 image, not a raw flash image.
    #[error(
        "this is a qcow2 image, not a raw OVMF varstore: convert it first (qemu-img convert -O raw IN OUT)"
    )]
    Qcow2Image,
    /// No firmware volume with the NV-data file-system GUID at any 1 KiB boundary.
    #[error(
        "no variable-store firmware volume (file-system GUID fff12b8d-7696-4c8b-a985-2747075b4f50) in this \
         {len}-byte file: is it an OVMF_VARS .fd file?"
    )]
    NoVolume {
        /// Length of the file.
        len: usize,
    },
    /// A structure runs past the end of the file or of the region that must hold it.
    #[error(
        "truncated: the {what} at offset {offset:#x} needs {needed} bytes but only {available} are there"
    )]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Its size.
        needed: u64,
        /// Bytes from `offset` to the end of the file (or region).
        available: u64,
    },
    /// The FV header's signature is not `_FVH`.
    #[error("firmware volume at {offset:#x}: signature {found:#010x}, expected \"_FVH\" (0x4856465f)")]
    BadFvSignature {
        /// Offset of the volume.
        offset: usize,
        /// The signature read.
        found: u32,
    },
    /// The FV header revision is not 2.
    #[error("firmware volume at {offset:#x}: header revision {found}, expected 2")]
    BadFvRevision {
        /// Offset of the volume.
        offset: usize,
        /// The revision read.
        found: u8,
    },
    /// HeaderLength is odd, too short for a block map, or past the volume.
    #[error("firmware volume at {offset:#x}: header length {header_length} is invalid ({why})")]
    BadFvHeaderLength {
        /// Offset of the volume.
        offset: usize,
        /// The length read.
        header_length: u16,
        /// Why it is refused.
        why: &'static str,
    },
    /// The 16-bit sum of the FV header is not zero: the header was altered or damaged.
    #[error("firmware volume at {offset:#x}: header checksum fails (16-bit sum {sum:#06x}, expected 0)")]
    BadFvChecksum {
        /// Offset of the volume.
        offset: usize,
        /// The sum computed.
        sum: u16,
    },
    /// The block map has no terminating entry inside the header, or an empty entry.
    #[error("firmware volume at {offset:#x}: block map {why}")]
    BadBlockMap {
        /// Offset of the volume.
        offset: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The blocks of the block map do not add up to FvLength.
    #[error("firmware volume at {offset:#x}: block map covers {blocks} bytes but FvLength is {fv_length}")]
    BlockMapMismatch {
        /// Offset of the volume.
        offset: usize,
        /// Bytes the block map covers.
        blocks: u64,
        /// FvLength.
        fv_length: u64,
    },
    /// The variable store uses the old non-authenticated layout.
    #[error(
        "variable store at {offset:#x} is a non-authenticated store (GUID {guid}); only authenticated stores \
         (aaf32c78-947b-439a-a180-2e144ec37792, OVMF since Secure Boot) are supported"
    )]
    PlainVariableStore {
        /// Offset of the store header.
        offset: usize,
        /// The GUID read.
        guid: Guid,
    },
    /// The variable store header's GUID is not the authenticated-store GUID.
    #[error(
        "variable store at {offset:#x}: signature GUID {guid} is not the authenticated variable store GUID \
         aaf32c78-947b-439a-a180-2e144ec37792"
    )]
    BadStoreGuid {
        /// Offset of the store header.
        offset: usize,
        /// The GUID read.
        guid: Guid,
    },
    /// The store header's Format byte is not 0x5a.
    #[error("variable store at {offset:#x}: format {found:#04x}, expected 0x5a (formatted)")]
    BadStoreFormat {
        /// Offset of the store header.
        offset: usize,
        /// The byte read.
        found: u8,
    },
    /// The store header's State byte is not 0xfe.
    #[error("variable store at {offset:#x}: state {found:#04x}, expected 0xfe (healthy)")]
    BadStoreState {
        /// Offset of the store header.
        offset: usize,
        /// The byte read.
        found: u8,
    },
    /// The store's Size does not fit the volume.
    #[error("variable store at {offset:#x}: size {size} does not fit the {room} bytes the volume leaves it")]
    BadStoreSize {
        /// Offset of the store header.
        offset: usize,
        /// The size read.
        size: u32,
        /// Bytes from the store header to the end of the volume.
        room: u64,
    },
    /// A variable header starts with neither 0x55AA nor erased flash.
    #[error("variable header at {offset:#x}: start id {found:#06x}, expected 0x55aa (or erased 0xffff)")]
    BadStartId {
        /// Offset of the header.
        offset: usize,
        /// The StartId read.
        found: u16,
    },
    /// A variable header does not fit before the end of the store.
    #[error("variable header at {offset:#x} runs past the end of the store at {end:#x}")]
    HeaderPastEnd {
        /// Offset of the header.
        offset: usize,
        /// End of the store.
        end: usize,
    },
    /// A variable's name and data do not fit before the end of the store.
    #[error(
        "variable at {offset:#x}: name size {name_size} + data size {data_size} run past the end of the store at \
         {end:#x}"
    )]
    VariableOverrun {
        /// Offset of the header.
        offset: usize,
        /// NameSize read.
        name_size: u32,
        /// DataSize read.
        data_size: u32,
        /// End of the store.
        end: usize,
    },
    /// A live variable's NameSize is zero or odd (UCS-2 names are whole 16-bit units, NUL included).
    #[error("variable at {offset:#x}: name size {name_size} is not a whole, non-empty UCS-2 string")]
    BadNameSize {
        /// Offset of the header.
        offset: usize,
        /// NameSize read.
        name_size: u32,
    },
    /// A live variable's name does not end in NUL or has one before its end.
    #[error("variable at {offset:#x}: name is not NUL-terminated exactly at its name size")]
    BadNameTerminator {
        /// Offset of the header.
        offset: usize,
    },
    /// A live variable's name is empty or not valid UTF-16.
    #[error("variable at {offset:#x}: name is empty or not valid UCS-2/UTF-16")]
    BadName {
        /// Offset of the header.
        offset: usize,
    },
    /// A live variable has attribute bits that UEFI reserves.
    #[error("variable {name} ({guid}): attributes {attr:#x} have reserved bits set (above 0x7f)")]
    ReservedAttributes {
        /// The variable's name.
        name: String,
        /// Its vendor GUID.
        guid: Guid,
        /// The attributes.
        attr: u32,
    },
    /// A variable without the non-volatile attribute, which has no place in a flash store.
    #[error(
        "variable {name} ({guid}): attributes {attr:#x} lack NON_VOLATILE; a varstore holds only non-volatile variables"
    )]
    VolatileVariable {
        /// The variable's name.
        name: String,
        /// Its vendor GUID.
        guid: Guid,
        /// The attributes.
        attr: u32,
    },
    /// Two live copies of the same variable: edk2 never leaves that behind, so the image is damaged.
    #[error(
        "variable {name} ({guid}) has two live copies (at {first:#x} and {second:#x}): the store is damaged"
    )]
    DuplicateVariable {
        /// The variable's name.
        name: String,
        /// Its vendor GUID.
        guid: Guid,
        /// Offset of the first live copy.
        first: usize,
        /// Offset of the second.
        second: usize,
    },
    /// The same variable twice in the set to be written.
    #[error("variable {name} ({guid}) appears twice in the variables to write")]
    DuplicateToWrite {
        /// The variable's name.
        name: String,
        /// Its vendor GUID.
        guid: Guid,
    },
    /// The variables need more room than the store has.
    #[error("the variables need {needed} bytes but the store holds only {available}")]
    StoreFull {
        /// Bytes the variable headers, names and data need.
        needed: u64,
        /// Bytes available after the store header.
        available: u64,
    },
    /// A variable to be written has an empty name or one with a NUL in it.
    #[error("variable {name:?} ({guid}): a name must be non-empty and contain no NUL")]
    UnwritableName {
        /// The name.
        name: String,
        /// Its vendor GUID.
        guid: Guid,
    },
    /// A variable to be written is larger than a u32 size field.
    #[error("variable {name} ({guid}) is too large for a variable header")]
    VariableTooLarge {
        /// The name.
        name: String,
        /// Its vendor GUID.
        guid: Guid,
    },
    /// The JSON document does not parse or has the wrong shape.
    #[error("JSON varstore: {0}")]
    JsonSyntax(String),
    /// The JSON document's version is not 2.
    #[error("JSON varstore: version {0}, expected 2 (the virt-fw-vars / QEMU UefiVarStore format)")]
    JsonVersion(u32),
    /// A JSON variable's hex field does not decode.
    #[error("JSON varstore: variable {name} ({guid}): field \"{field}\" is not {why}")]
    JsonField {
        /// The variable's name.
        name: String,
        /// Its vendor GUID.
        guid: Guid,
        /// Which field.
        field: &'static str,
        /// What it should be.
        why: &'static str,
    },
}

/// Result with this crate's [`enum@Error`].
pub type Result<T> = core::result::Result<T, Error>;
