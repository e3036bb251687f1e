//! Wire layouts of every structure a guest places in memory for an SVSM call.
//!
//! Each structure is a `#[repr(C)]` type whose size and field offsets are pinned at compile time against the
//! byte tables of the SVSM specification (and the Linux / COCONUT peers). Decoding works on a byte array
//! that was copied out of guest memory in one piece, so each field is read exactly once.

use core::mem::{offset_of, size_of};

use crate::guid::Guid;
use crate::memory::le;

/// Size of a calling area page.
pub const CALLING_AREA_SIZE: usize = 4096;
/// Offset of the free-form buffer in the calling area.
pub const CALLING_AREA_BUFFER_OFFSET: usize = 8;
/// Size of the calling area's free-form buffer.
pub const CALLING_AREA_BUFFER_SIZE: usize = CALLING_AREA_SIZE - CALLING_AREA_BUFFER_OFFSET;

/// Calling area header (one 4 KiB page per vCPU; the rest is `svsm_buffer`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallingAreaHeader {
    /// Guest sets 1 before requesting VMPL0; the SVSM clears it once the call is serviced.
    pub call_pending: u8,
    /// The SVSM sets it when it wants memory deposited.
    pub mem_available: u8,
    /// COCONUT APIC-protocol extension (spec: reserved).
    pub no_eoi_required: u8,
    /// Reserved.
    pub reserved: [u8; 5],
}
const _: () = assert!(size_of::<CallingAreaHeader>() == 8);
const _: () = assert!(offset_of!(CallingAreaHeader, call_pending) == 0x0);
const _: () = assert!(offset_of!(CallingAreaHeader, mem_available) == 0x1);
const _: () = assert!(offset_of!(CallingAreaHeader, no_eoi_required) == 0x2);
const _: () = assert!(offset_of!(CallingAreaHeader, reserved) == 0x3);

/// PVALIDATE list header; `num_entries` u64 entries follow at offset 8.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PvalidateListHeader {
    /// Number of entries (>= 1).
    pub num_entries: u16,
    /// Index of the next entry to process (in/out).
    pub next: u16,
    /// Reserved.
    pub reserved: u32,
}
const _: () = assert!(size_of::<PvalidateListHeader>() == 8);
const _: () = assert!(offset_of!(PvalidateListHeader, num_entries) == 0x0);
const _: () = assert!(offset_of!(PvalidateListHeader, next) == 0x2);
const _: () = assert!(offset_of!(PvalidateListHeader, reserved) == 0x4);

impl PvalidateListHeader {
    /// Decodes the 8 header bytes.
    pub fn decode(b: &[u8; 8]) -> Self {
        PvalidateListHeader {
            num_entries: le::u16_at(b, 0),
            next: le::u16_at(b, 2),
            reserved: le::u32_at(b, 4),
        }
    }
    /// Encodes the 8 header bytes.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        le::put(&mut b, 0, &self.num_entries.to_le_bytes());
        le::put(&mut b, 2, &self.next.to_le_bytes());
        le::put(&mut b, 4, &self.reserved.to_le_bytes());
        b
    }
}

/// One PVALIDATE list entry (a u64).
pub mod pvalidate_entry {
    /// Bits 1:0: page size (0 = 4K, 1 = 2M).
    pub const SIZE_MASK: u64 = 0b11;
    /// Bit 2: 1 = validate, 0 = invalidate.
    pub const ACTION_VALIDATE: u64 = 1 << 2;
    /// Bit 3: treat "unchanged" (CF=1) as success.
    pub const IGNORE_CF: u64 = 1 << 3;
    /// Bits 11:4: reserved, must be zero.
    pub const RESERVED_MASK: u64 = 0xff0;
    /// Bits 63:12: guest frame number.
    pub const GFN_MASK: u64 = !0xfff;

    /// Builds an entry.
    pub fn encode(gpa: u64, size_2m: bool, validate: bool, ignore_cf: bool) -> u64 {
        (gpa & GFN_MASK)
            | u64::from(size_2m)
            | if validate { ACTION_VALIDATE } else { 0 }
            | if ignore_cf { IGNORE_CF } else { 0 }
    }
}

/// Maximum PVALIDATE entries that fit in the calling-area buffer: (4088 - 8) / 8.
pub const PVALIDATE_MAX_ENTRIES_IN_CA: usize = (CALLING_AREA_BUFFER_SIZE - 8) / 8;
const _: () = assert!(PVALIDATE_MAX_ENTRIES_IN_CA == 510);

/// Attest Services operation (Table 11).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttestServicesOp {
    /// Report buffer gPA (4K aligned).
    pub report_gpa: u64,
    /// Report buffer size.
    pub report_size: u32,
    /// Reserved, MBZ.
    pub reserved0: u32,
    /// Nonce gPA (the nonce must not cross a 4K page).
    pub nonce_gpa: u64,
    /// Nonce size (spec u16; Linux writes a u32 whose high half lands in `reserved1[0..2]`, always 0).
    pub nonce_size: u16,
    /// Reserved, MBZ.
    pub reserved1: [u8; 6],
    /// Manifest buffer gPA (4K aligned).
    pub manifest_gpa: u64,
    /// Manifest buffer size.
    pub manifest_size: u32,
    /// Reserved, MBZ.
    pub reserved2: u32,
    /// Certificate buffer gPA (4K aligned; optional).
    pub certificates_gpa: u64,
    /// Certificate buffer size (0 = no certificates requested).
    pub certificates_size: u32,
    /// Reserved, MBZ.
    pub reserved3: u32,
}
const _: () = assert!(size_of::<AttestServicesOp>() == 0x40);
const _: () = assert!(offset_of!(AttestServicesOp, report_gpa) == 0x00);
const _: () = assert!(offset_of!(AttestServicesOp, report_size) == 0x08);
const _: () = assert!(offset_of!(AttestServicesOp, reserved0) == 0x0C);
const _: () = assert!(offset_of!(AttestServicesOp, nonce_gpa) == 0x10);
const _: () = assert!(offset_of!(AttestServicesOp, nonce_size) == 0x18);
const _: () = assert!(offset_of!(AttestServicesOp, reserved1) == 0x1A);
const _: () = assert!(offset_of!(AttestServicesOp, manifest_gpa) == 0x20);
const _: () = assert!(offset_of!(AttestServicesOp, manifest_size) == 0x28);
const _: () = assert!(offset_of!(AttestServicesOp, reserved2) == 0x2C);
const _: () = assert!(offset_of!(AttestServicesOp, certificates_gpa) == 0x30);
const _: () = assert!(offset_of!(AttestServicesOp, certificates_size) == 0x38);
const _: () = assert!(offset_of!(AttestServicesOp, reserved3) == 0x3C);

impl AttestServicesOp {
    /// Wire size.
    pub const SIZE: usize = 0x40;

    /// Decodes from the first 0x40 bytes.
    pub fn decode(b: &[u8; 0x40]) -> Self {
        let mut reserved1 = [0u8; 6];
        reserved1.copy_from_slice(&b[0x1A..0x20]);
        AttestServicesOp {
            report_gpa: le::u64_at(b, 0x00),
            report_size: le::u32_at(b, 0x08),
            reserved0: le::u32_at(b, 0x0C),
            nonce_gpa: le::u64_at(b, 0x10),
            nonce_size: le::u16_at(b, 0x18),
            reserved1,
            manifest_gpa: le::u64_at(b, 0x20),
            manifest_size: le::u32_at(b, 0x28),
            reserved2: le::u32_at(b, 0x2C),
            certificates_gpa: le::u64_at(b, 0x30),
            certificates_size: le::u32_at(b, 0x38),
            reserved3: le::u32_at(b, 0x3C),
        }
    }

    /// Encodes to 0x40 bytes.
    pub fn encode(&self) -> [u8; 0x40] {
        let mut b = [0u8; 0x40];
        le::put(&mut b, 0x00, &self.report_gpa.to_le_bytes());
        le::put(&mut b, 0x08, &self.report_size.to_le_bytes());
        le::put(&mut b, 0x0C, &self.reserved0.to_le_bytes());
        le::put(&mut b, 0x10, &self.nonce_gpa.to_le_bytes());
        le::put(&mut b, 0x18, &self.nonce_size.to_le_bytes());
        le::put(&mut b, 0x1A, &self.reserved1);
        le::put(&mut b, 0x20, &self.manifest_gpa.to_le_bytes());
        le::put(&mut b, 0x28, &self.manifest_size.to_le_bytes());
        le::put(&mut b, 0x2C, &self.reserved2.to_le_bytes());
        le::put(&mut b, 0x30, &self.certificates_gpa.to_le_bytes());
        le::put(&mut b, 0x38, &self.certificates_size.to_le_bytes());
        le::put(&mut b, 0x3C, &self.reserved3.to_le_bytes());
        b
    }

    /// Whether every reserved field is zero.
    pub fn reserved_clear(&self) -> bool {
        self.reserved0 == 0 && self.reserved1 == [0; 6] && self.reserved2 == 0 && self.reserved3 == 0
    }
}

/// Attest Single Service operation (Table 13).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttestSingleServiceOp {
    /// Bytes 0x00..0x40, as for Attest Services.
    pub base: AttestServicesOp,
    /// Service GUID (EFI byte order).
    pub service_guid: [u8; 16],
    /// Manifest version requested.
    pub manifest_version: u32,
    /// Reserved, MBZ.
    pub reserved: u32,
}
const _: () = assert!(size_of::<AttestSingleServiceOp>() == 0x58);
const _: () = assert!(offset_of!(AttestSingleServiceOp, base) == 0x00);
const _: () = assert!(offset_of!(AttestSingleServiceOp, service_guid) == 0x40);
const _: () = assert!(offset_of!(AttestSingleServiceOp, manifest_version) == 0x50);
const _: () = assert!(offset_of!(AttestSingleServiceOp, reserved) == 0x54);

impl AttestSingleServiceOp {
    /// Wire size.
    pub const SIZE: usize = 0x58;

    /// Decodes from 0x58 bytes.
    pub fn decode(b: &[u8; 0x58]) -> Self {
        let mut base = [0u8; 0x40];
        base.copy_from_slice(&b[..0x40]);
        let mut service_guid = [0u8; 16];
        service_guid.copy_from_slice(&b[0x40..0x50]);
        AttestSingleServiceOp {
            base: AttestServicesOp::decode(&base),
            service_guid,
            manifest_version: le::u32_at(b, 0x50),
            reserved: le::u32_at(b, 0x54),
        }
    }

    /// Encodes to 0x58 bytes.
    pub fn encode(&self) -> [u8; 0x58] {
        let mut b = [0u8; 0x58];
        le::put(&mut b, 0, &self.base.encode());
        le::put(&mut b, 0x40, &self.service_guid);
        le::put(&mut b, 0x50, &self.manifest_version.to_le_bytes());
        le::put(&mut b, 0x54, &self.reserved.to_le_bytes());
        b
    }

    /// The service GUID.
    pub fn guid(&self) -> Guid {
        Guid(self.service_guid)
    }
}

/// Attest Single Service EX operation (selector extension, attestation protocol version 2).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttestSingleServiceExOp {
    /// Bytes 0x00..0x58, as for Attest Single Service.
    pub single: AttestSingleServiceOp,
    /// Selector gPA (any alignment).
    pub selector_gpa: u64,
    /// Selector size (0 = behave exactly like Attest Single Service).
    pub selector_size: u32,
    /// Reserved, MBZ.
    pub reserved: u32,
}
const _: () = assert!(size_of::<AttestSingleServiceExOp>() == 0x68);
const _: () = assert!(offset_of!(AttestSingleServiceExOp, single) == 0x00);
const _: () = assert!(offset_of!(AttestSingleServiceExOp, selector_gpa) == 0x58);
const _: () = assert!(offset_of!(AttestSingleServiceExOp, selector_size) == 0x60);
const _: () = assert!(offset_of!(AttestSingleServiceExOp, reserved) == 0x64);

impl AttestSingleServiceExOp {
    /// Wire size.
    pub const SIZE: usize = 0x68;

    /// Decodes from 0x68 bytes.
    pub fn decode(b: &[u8; 0x68]) -> Self {
        let mut single = [0u8; 0x58];
        single.copy_from_slice(&b[..0x58]);
        AttestSingleServiceExOp {
            single: AttestSingleServiceOp::decode(&single),
            selector_gpa: le::u64_at(b, 0x58),
            selector_size: le::u32_at(b, 0x60),
            reserved: le::u32_at(b, 0x64),
        }
    }

    /// Encodes to 0x68 bytes.
    pub fn encode(&self) -> [u8; 0x68] {
        let mut b = [0u8; 0x68];
        le::put(&mut b, 0, &self.single.encode());
        le::put(&mut b, 0x58, &self.selector_gpa.to_le_bytes());
        le::put(&mut b, 0x60, &self.selector_size.to_le_bytes());
        le::put(&mut b, 0x64, &self.reserved.to_le_bytes());
        b
    }
}

/// Services manifest header (24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestHeader {
    /// [`crate::guid::SERVICES_MANIFEST_GUID`].
    pub guid: [u8; 16],
    /// Size of the whole manifest.
    pub total_size: u32,
    /// Number of entries.
    pub entry_count: u32,
}
const _: () = assert!(size_of::<ManifestHeader>() == 24);
const _: () = assert!(offset_of!(ManifestHeader, guid) == 0x00);
const _: () = assert!(offset_of!(ManifestHeader, total_size) == 0x10);
const _: () = assert!(offset_of!(ManifestHeader, entry_count) == 0x14);

/// Services manifest entry (24 bytes), and also the GHCB certificate table entry (same shape).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuidTableEntry {
    /// Service (or certificate) GUID.
    pub guid: [u8; 16],
    /// Offset of the data from the start of the table.
    pub offset: u32,
    /// Size of the data.
    pub size: u32,
}
const _: () = assert!(size_of::<GuidTableEntry>() == 24);
const _: () = assert!(offset_of!(GuidTableEntry, guid) == 0x00);
const _: () = assert!(offset_of!(GuidTableEntry, offset) == 0x10);
const _: () = assert!(offset_of!(GuidTableEntry, size) == 0x14);

impl GuidTableEntry {
    /// Decodes 24 bytes.
    pub fn decode(b: &[u8; 24]) -> Self {
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&b[..16]);
        GuidTableEntry { guid, offset: le::u32_at(b, 16), size: le::u32_at(b, 20) }
    }
    /// Encodes 24 bytes.
    pub fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        le::put(&mut b, 0, &self.guid);
        le::put(&mut b, 16, &self.offset.to_le_bytes());
        le::put(&mut b, 20, &self.size.to_le_bytes());
        b
    }
}

/// vTPM TPM_SEND_COMMAND request header (Table 16, packed, 9 bytes); the TPM command follows.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VtpmSendCommandHeader {
    /// Platform command (8).
    pub platform_command: u32,
    /// Locality (must be 0).
    pub locality: u8,
    /// Size of the TPM command that follows.
    pub command_size: u32,
}
const _: () = assert!(size_of::<VtpmSendCommandHeader>() == 9);
const _: () = assert!(offset_of!(VtpmSendCommandHeader, platform_command) == 0);
const _: () = assert!(offset_of!(VtpmSendCommandHeader, locality) == 4);
const _: () = assert!(offset_of!(VtpmSendCommandHeader, command_size) == 5);

/// vTPM response header (Table 17); the TPM response follows.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VtpmResponseHeader {
    /// Size of the TPM response that follows.
    pub response_size: u32,
}
const _: () = assert!(size_of::<VtpmResponseHeader>() == 4);

/// The SVSM-related fields of the SNP secrets page (Linux `struct snp_secrets_page`, from offset 0x140).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretsPageSvsmArea {
    /// gPA of SVSM memory.
    pub svsm_base: u64,
    /// Size of SVSM memory.
    pub svsm_size: u64,
    /// gPA of the BSP's initial calling area.
    pub svsm_caa: u64,
    /// Highest core protocol version.
    pub svsm_max_version: u32,
    /// VMPL the guest OS runs at (> 0 means an SVSM is present).
    pub svsm_guest_vmpl: u8,
    /// Reserved.
    pub reserved: [u8; 3],
}
/// Offset of [`SecretsPageSvsmArea`] in the secrets page.
pub const SECRETS_PAGE_SVSM_OFFSET: usize = 0x140;
const _: () = assert!(size_of::<SecretsPageSvsmArea>() == 0x20);
const _: () = assert!(SECRETS_PAGE_SVSM_OFFSET + offset_of!(SecretsPageSvsmArea, svsm_base) == 0x140);
const _: () = assert!(SECRETS_PAGE_SVSM_OFFSET + offset_of!(SecretsPageSvsmArea, svsm_size) == 0x148);
const _: () = assert!(SECRETS_PAGE_SVSM_OFFSET + offset_of!(SecretsPageSvsmArea, svsm_caa) == 0x150);
const _: () = assert!(SECRETS_PAGE_SVSM_OFFSET + offset_of!(SecretsPageSvsmArea, svsm_max_version) == 0x158);
const _: () = assert!(SECRETS_PAGE_SVSM_OFFSET + offset_of!(SecretsPageSvsmArea, svsm_guest_vmpl) == 0x15C);
const _: () = assert!(SECRETS_PAGE_SVSM_OFFSET + offset_of!(SecretsPageSvsmArea, reserved) == 0x15D);

/// VMSA fields CREATE_VCPU inspects (Linux `struct sev_es_save_area`).
pub mod vmsa {
    /// Offset of the VMPL byte.
    pub const VMPL: usize = 0xCA;
    /// Offset of EFER (u64).
    pub const EFER: usize = 0xD0;
    /// Offset of SEV_FEATURES (u64).
    pub const SEV_FEATURES: usize = 0x3B0;
    /// EFER.SVME.
    pub const EFER_SVME: u64 = 1 << 12;
}
