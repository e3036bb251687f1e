//! The traits the protocol layer is built around: guest memory, and the platform services a call reaches.
//!
//! The protocol code never touches guest memory or hardware directly. Guest memory is reached only through
//! [`GuestMemory`], whose methods copy whole byte ranges in or out, so the SVSM never holds a Rust reference
//! into memory the guest can change under it and never reads a field twice (no double fetch). Hardware and
//! services sit behind [`PageStatePlatform`], [`VcpuPlatform`], [`VtpmService`] and [`SnpPlatform`], so the same
//! dispatcher runs inside an SVSM kernel, in the host harness, and under the fuzzer.

use alloc::vec::Vec;

use crate::error::{GuestMemoryError, PlatformError, SvsmError, VtpmError};

/// Guest physical memory as the SVSM sees it: copy-in and copy-out only.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes starting at `gpa` into `buf`, or fails without partial effect on `buf`'s
    /// meaning (callers discard `buf` on error).
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError>;
    /// Copies `data` to guest memory at `gpa`; on error nothing is written.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError>;
    /// Whether `[gpa, gpa + len)` is entirely accessible guest memory.
    fn contains(&self, gpa: u64, len: u64) -> bool;
}

/// Page size of a PVALIDATE / RMP entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB.
    Size4K,
    /// 2 MiB (the address must be 2 MiB aligned).
    Size2M,
}

impl PageSize {
    /// Bytes covered.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 0x1000,
            PageSize::Size2M => 0x20_0000,
        }
    }
}

/// What PVALIDATE reported when it did not change the page state as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvalidateFailure {
    /// RFLAGS.CF=1: the page was already in the requested state (no RMP update).
    Unchanged,
    /// The hardware returned this non-zero code in EAX (1 = FAIL_INPUT, 6 = FAIL_SIZEMISMATCH, ...).
    Hardware(u32),
}

/// Hardware PVALIDATE code for a size mismatch between the request and the RMP entry.
pub const PVALIDATE_FAIL_SIZEMISMATCH: u32 = 6;
/// Hardware PVALIDATE code for bad input.
pub const PVALIDATE_FAIL_INPUT: u32 = 1;

/// The platform's PVALIDATE (real hardware inside an SVSM, a page-state model on the host).
pub trait PageStatePlatform {
    /// Validates (`validate = true`) or invalidates one page of `size` at `gpa`.
    fn pvalidate(&mut self, gpa: u64, size: PageSize, validate: bool) -> Result<(), PvalidateFailure>;
}

/// What CREATE_VCPU checked before asking the platform to make the page a VMSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuRequest {
    /// gPA of the new vCPU's VMSA page.
    pub vmsa_gpa: u64,
    /// gPA of the new vCPU's calling area.
    pub caa_gpa: u64,
    /// APIC ID of the vCPU.
    pub apic_id: u32,
}

/// The platform side of CREATE_VCPU / DELETE_VCPU (RMPADJUST of the VMSA page, scheduling the vCPU).
///
/// **Contract (time of check vs. time of use).** The VMSA page is guest memory: any other guest vCPU can
/// rewrite it at any moment, so checks on a copy prove nothing about what the hardware later runs. CREATE_VCPU
/// therefore goes, in this order: [`claim_vmsa_page`](VcpuPlatform::claim_vmsa_page) (the guest loses write
/// access), copy the page in, check VMPL / EFER.SVME / SEV_FEATURES on that copy,
/// [`create_vcpu`](VcpuPlatform::create_vcpu). Because the guest can no longer change the page after the claim,
/// the copy equals what the hardware runs. If a check or the creation fails, the SVSM calls
/// [`release_vmsa_page`](VcpuPlatform::release_vmsa_page).
pub trait VcpuPlatform {
    /// Whether a vCPU with this APIC ID exists in the VM.
    fn apic_id_exists(&self, apic_id: u32) -> bool;
    /// VMPL the guest OS runs at (the VMSA's VMPL must equal it).
    fn guest_vmpl(&self) -> u8;
    /// SEV features of the calling vCPU (the new VMSA's must equal them).
    fn caller_sev_features(&self) -> u64;
    /// Revokes every guest VMPL's write access to the 4K page at `gpa` (on SNP: RMPADJUST of the guest
    /// VMPL's permissions, or setting the VMSA bit, which makes the page non-writable by any VMPL but 0). It
    /// must be in effect, on every vCPU, before this returns; a page the guest can no longer be denied (e.g.
    /// shared with the host) must be refused. Every other VcpuPlatform call about this page comes after it.
    fn claim_vmsa_page(&mut self, gpa: u64) -> Result<(), SvsmError>;
    /// Gives a page claimed by [`VcpuPlatform::claim_vmsa_page`] back to the guest (CREATE_VCPU refused it).
    fn release_vmsa_page(&mut self, gpa: u64) -> Result<(), SvsmError>;
    /// Turns the claimed, checked page into a runnable VMSA (RMPADJUST VMSA=1) for `request`.
    fn create_vcpu(&mut self, request: VcpuRequest) -> Result<(), SvsmError>;
    /// Undoes [`VcpuPlatform::create_vcpu`] for the VMSA at `vmsa_gpa` and gives the page back to the guest.
    fn delete_vcpu(&mut self, vmsa_gpa: u64) -> Result<(), SvsmError>;
}

/// The vTPM a guest reaches through the vTPM protocol and whose EK the attestation protocol reports.
///
/// Only raw TPM command/response bytes cross this trait: EK creation is built on top of it
/// (`svsm_vtpm::marshal`) so any engine that speaks the TPM 2.0 wire format works, and TPM-level errors stay in the
/// response exactly as the guest would see them.
pub trait VtpmService {
    /// Runs one TPM command at `locality` and returns the complete response.
    fn send_command(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, VtpmError>;
    /// Bitmap of supported ms-tpm platform commands (bit n = command n); TPM_SEND_COMMAND (8) at least.
    fn supported_platform_commands(&self) -> u64 {
        1 << crate::vtpm::TPM_SEND_COMMAND
    }
}

/// Whether, and how much, certificate data the caller can take with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRequest {
    /// A regular report, no certificates.
    None,
    /// An extended report whose certificate table may use up to this many bytes.
    UpTo(u32),
}

/// What the platform returned for a report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReportResponse {
    /// The raw ATTESTATION_REPORT (1184 bytes on current firmware), without the MSG_REPORT_RSP header.
    pub report: Vec<u8>,
    /// The GHCB certificate table (empty when none was requested or the host has none).
    pub certificates: Vec<u8>,
}

/// SNP firmware as the SVSM reaches it (a guest request at VMPL0 with key_sel = 0).
pub trait SnpPlatform {
    /// Requests an attestation report binding `report_data`, optionally extended with certificates.
    fn request_report(
        &mut self,
        report_data: &[u8; 64],
        certificates: CertificateRequest,
    ) -> Result<SnpReportResponse, PlatformError>;
}
