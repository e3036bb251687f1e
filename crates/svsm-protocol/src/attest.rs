//! Attestation protocol (protocol 1): ATTEST_SERVICES, ATTEST_SINGLE_SERVICE and the selector extension
//! ATTEST_SINGLE_SERVICE_EX (protocol version 2).
//!
//! The sizing contract is what Linux depends on: on success and on INVALID_PARAMETER for a too-small buffer,
//! RCX = manifest size, RDX = certificate size (0 if none), R8 = report size, all exact. On every *other*
//! error the size registers are left as the guest set them, so Linux (which presets RDX = R8 = -1 and only
//! retries when a returned size grew) never loops on a request it cannot fix by resizing.

use alloc::vec::Vec;

use sha2::{Digest, Sha512};

use crate::api::{CertificateRequest, GuestMemory};
use crate::dispatch::{Registers, Svsm};
use crate::error::{PlatformError, SvsmError, VtpmError};
use crate::guid::{Guid, VTPM_SERVICE_GUID};
use crate::manifest::{build_services_manifest, certificate_table_is_empty};
use crate::memory::{read_array, read_vec};
use crate::wire::{AttestServicesOp, AttestSingleServiceExOp, AttestSingleServiceOp};
use svsm_vtpm::MarshalError;
use svsm_vtpm::manufacture::EkKind;
use svsm_vtpm::marshal::{CreatedPrimary, PublicArea, Response, cmd, rh};

/// SVSM_ATTEST_SERVICES.
pub const ATTEST_SERVICES: u32 = 0;
/// SVSM_ATTEST_SINGLE_SERVICE.
pub const ATTEST_SINGLE_SERVICE: u32 = 1;
/// SVSM_ATTEST_SINGLE_SERVICE_EX (selector extension, protocol version 2).
pub const ATTEST_SINGLE_SERVICE_EX: u32 = 2;

/// The nonce is the SNP REPORT_DATA size.
pub const NONCE_SIZE: usize = 64;
/// Largest selector accepted: 8-byte kind plus a TPMT_PUBLIC that fits a TPM2B (65535).
pub const MAX_SELECTOR_SIZE: u32 = 65543;
/// Selector kind 1: a TPMT_PUBLIC template for TPM2_CreatePrimary on the endorsement hierarchy.
pub const SELECTOR_KIND_EK_TEMPLATE: u64 = 1;
/// The tag mixed into REPORT_DATA for EX requests with a selector ("SSM2", u32 LE 0x324D5353).
pub const SELECTOR_BINDING_TAG: &[u8; 4] = b"SSM2";

/// REPORT_DATA for ATTEST_SERVICES: SHA-512(nonce || manifest). The services manifest names every service
/// by GUID, so the binding is complete. (SVSM spec 1.00 uses the same formula for ATTEST_SINGLE_SERVICE; this
/// SVSM does not: see [`report_data_with_selector`].)
pub fn report_data(nonce: &[u8], manifest: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(nonce);
    h.update(manifest);
    h.finalize().into()
}

/// REPORT_DATA for ATTEST_SINGLE_SERVICE and ATTEST_SINGLE_SERVICE_EX:
/// SHA-512(nonce || "SSM2" || service GUID || manifest_version (u32 LE) || selector || manifest), the
/// selector empty for SINGLE_SERVICE (and EX with selector size 0, which is the same request).
///
/// For SINGLE_SERVICE this deviates from SVSM spec 1.00 (SHA-512(nonce || manifest)) on purpose: a single
/// service's manifest carries no GUID and no version, so under the spec's formula a report for one service
/// (or manifest version) verifies as another's whose manifest has the same bytes. Binding them here makes the
/// report say which service and version it is for. The wire (registers, buffers, sizes) is unchanged, so the
/// Linux and configfs-tsm guests work as before; only a verifier needs to know (docs/svsm-protocols.md).
pub fn report_data_with_selector(
    nonce: &[u8],
    service: Guid,
    manifest_version: u32,
    selector: &[u8],
    manifest: &[u8],
) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(nonce);
    h.update(SELECTOR_BINDING_TAG);
    h.update(service.as_bytes());
    h.update(manifest_version.to_le_bytes());
    h.update(selector);
    h.update(manifest);
    h.finalize().into()
}

impl Svsm {
    pub(crate) fn attest_call(
        &mut self,
        mem: &mut dyn GuestMemory,
        regs: &mut Registers,
        call: u32,
    ) -> Result<(), SvsmError> {
        match call {
            ATTEST_SERVICES => {
                self.check_guest_range(mem, regs.rcx, AttestServicesOp::SIZE as u64)?;
                let op = AttestServicesOp::decode(&read_array(mem, regs.rcx)?);
                let nonce = self.validate_common(mem, &op)?;
                let manifest = self.services_manifest()?;
                let rd = report_data(&nonce, &manifest);
                self.finish_attestation(mem, regs, &op, &manifest, &rd)
            }
            ATTEST_SINGLE_SERVICE => {
                self.check_guest_range(mem, regs.rcx, AttestSingleServiceOp::SIZE as u64)?;
                let op = AttestSingleServiceOp::decode(&read_array(mem, regs.rcx)?);
                self.single_service(mem, regs, &op, None)
            }
            ATTEST_SINGLE_SERVICE_EX => {
                self.check_guest_range(mem, regs.rcx, AttestSingleServiceExOp::SIZE as u64)?;
                let op = AttestSingleServiceExOp::decode(&read_array(mem, regs.rcx)?);
                if op.reserved != 0 {
                    return Err(SvsmError::InvalidParameter("reserved field at 0x64 is not zero"));
                }
                if op.selector_size == 0 {
                    return self.single_service(mem, regs, &op.single, None);
                }
                if op.selector_size > MAX_SELECTOR_SIZE {
                    return Err(SvsmError::SelectorInvalid("selector larger than 65543 bytes"));
                }
                self.check_guest_range(mem, op.selector_gpa, u64::from(op.selector_size))?;
                let selector = read_vec(mem, op.selector_gpa, op.selector_size as usize)?;
                self.single_service(mem, regs, &op.single, Some(&selector))
            }
            _ => Err(SvsmError::UnsupportedCall { protocol: 1, call }),
        }
    }

    fn single_service(
        &mut self,
        mem: &mut dyn GuestMemory,
        regs: &mut Registers,
        op: &AttestSingleServiceOp,
        selector: Option<&[u8]>,
    ) -> Result<(), SvsmError> {
        if op.reserved != 0 {
            return Err(SvsmError::InvalidParameter("reserved field at 0x54 is not zero"));
        }
        let nonce = self.validate_common(mem, &op.base)?;
        let guid = op.guid();
        if guid != VTPM_SERVICE_GUID {
            // A registered protocol's service (e.g. UEFI variables): its manifest body, no selector.
            let entry = self.registered_manifest_entries().into_iter().find(|(g, _)| *g == guid);
            let Some((_, body)) = entry else { return Err(SvsmError::UnknownService(guid)) };
            if selector.is_some() {
                return Err(SvsmError::SelectorInvalid("this service takes no selector"));
            }
            if op.manifest_version != 0 {
                return Err(SvsmError::InvalidParameter("service manifest version must be 0"));
            }
            let rd = report_data(&nonce, &body);
            return self.finish_attestation(mem, regs, &op.base, &body, &rd);
        }
        if self.vtpm.is_none() {
            return Err(SvsmError::UnknownService(guid));
        }
        if op.manifest_version != 0 {
            return Err(SvsmError::InvalidParameter("vTPM manifest version must be 0"));
        }
        let (manifest, rd) = match selector {
            None => {
                let m = self.ek_public()?;
                let rd = report_data_with_selector(&nonce, guid, op.manifest_version, &[], &m);
                (m, rd)
            }
            Some(sel) => {
                let template = parse_selector(sel)?;
                let m = self.create_primary(template).map_err(|e| match e {
                    EkError::Tpm(rc) => SvsmError::TpmResponse(rc),
                    EkError::Unavailable(err) => err,
                })?;
                let rd = report_data_with_selector(&nonce, guid, op.manifest_version, sel, &m);
                (m, rd)
            }
        };
        self.finish_attestation(mem, regs, &op.base, &manifest, &rd)
    }

    /// Checks the fields common to every operation and copies the nonce in.
    fn validate_common(&self, mem: &dyn GuestMemory, op: &AttestServicesOp) -> Result<[u8; 64], SvsmError> {
        if !op.reserved_clear() {
            return Err(SvsmError::InvalidParameter("reserved field is not zero"));
        }
        if usize::from(op.nonce_size) != NONCE_SIZE {
            return Err(SvsmError::InvalidParameter("nonce must be exactly 64 bytes"));
        }
        if (op.nonce_gpa & 0xfff) + NONCE_SIZE as u64 > 0x1000 {
            return Err(SvsmError::InvalidParameter("nonce crosses a page boundary"));
        }
        if op.report_gpa & 0xfff != 0 || op.manifest_gpa & 0xfff != 0 {
            return Err(SvsmError::InvalidParameter("report and manifest buffers must be page aligned"));
        }
        if op.certificates_size != 0 && op.certificates_gpa & 0xfff != 0 {
            return Err(SvsmError::InvalidParameter("certificate buffer must be page aligned"));
        }
        self.check_guest_range(mem, op.nonce_gpa, NONCE_SIZE as u64)?;
        self.check_guest_range(mem, op.report_gpa, u64::from(op.report_size))?;
        self.check_guest_range(mem, op.manifest_gpa, u64::from(op.manifest_size))?;
        if op.certificates_size != 0 {
            self.check_guest_range(mem, op.certificates_gpa, u64::from(op.certificates_size))?;
        }
        read_array::<64>(mem, op.nonce_gpa)
    }

    fn services_manifest(&mut self) -> Result<Vec<u8>, SvsmError> {
        let mut services: Vec<(Guid, Vec<u8>)> = Vec::new();
        if self.vtpm.is_some() {
            services.push((VTPM_SERVICE_GUID, self.ek_public()?));
        }
        services.extend(self.registered_manifest_entries());
        let refs: Vec<(Guid, &[u8])> = services.iter().map(|(g, d)| (*g, d.as_slice())).collect();
        build_services_manifest(&refs).map_err(|_| SvsmError::InvalidRequest("services manifest too large"))
    }

    /// The EK TPMT_PUBLIC from the TCG L-1 template, created once and cached.
    fn ek_public(&mut self) -> Result<Vec<u8>, SvsmError> {
        if let Some(ek) = &self.ek_public {
            return Ok(ek.clone());
        }
        let ek = self.create_primary(&EkKind::Rsa2048.template_bytes()).map_err(|e| match e {
            EkError::Tpm(_) => SvsmError::InvalidRequest("the vTPM refused to create the EK"),
            EkError::Unavailable(err) => err,
        })?;
        self.ek_public = Some(ek.clone());
        Ok(ek)
    }

    /// CreatePrimary on the endorsement hierarchy, then FlushContext so no transient slot leaks.
    fn create_primary(&mut self, template: &[u8]) -> Result<Vec<u8>, EkError> {
        let vtpm = self.vtpm.as_mut().ok_or(EkError::Unavailable(SvsmError::InvalidRequest("no vTPM")))?;
        let command = cmd::create_primary_from(rh::ENDORSEMENT, template, SESSION_CONTINUE)
            .map_err(|_| EkError::Unavailable(SvsmError::SelectorInvalid("template too large")))?;
        let response = vtpm.send_command(0, &command).map_err(|e| EkError::Unavailable(vtpm_error(e)))?;
        let created = CreatedPrimary::parse(&response).map_err(|e| match e {
            MarshalError::ResponseCode(rc) => EkError::Tpm(rc),
            _ => EkError::Unavailable(SvsmError::InvalidRequest("malformed CreatePrimary response")),
        })?;
        let flushed = cmd::flush_context(created.handle)
            .ok()
            .and_then(|flush| vtpm.send_command(0, &flush).ok())
            .is_some_and(|resp| Response::parse(&resp, 0).is_ok());
        if !flushed {
            tracing::warn!(handle = created.handle, "FlushContext of attested primary failed");
        }
        Ok(created.public_bytes)
    }

    /// Requests the report and writes the outputs, or reports the sizes the guest must provide.
    fn finish_attestation(
        &mut self,
        mem: &mut dyn GuestMemory,
        regs: &mut Registers,
        op: &AttestServicesOp,
        manifest: &[u8],
        report_data: &[u8; 64],
    ) -> Result<(), SvsmError> {
        let certs_req = match op.certificates_size {
            0 => CertificateRequest::None,
            n => CertificateRequest::UpTo(n),
        };
        let (report, certificates, certs_needed) = match self.snp.request_report(report_data, certs_req) {
            Ok(resp) => {
                let certs = if op.certificates_size == 0 || certificate_table_is_empty(&resp.certificates) {
                    Vec::new()
                } else {
                    resp.certificates
                };
                let len = certs.len();
                (resp.report, certs, len)
            }
            Err(PlatformError::CertificatesTooLarge { needed }) => {
                // Without the certificates we cannot finish, but the guest needs every size to resize once.
                (Vec::new(), Vec::new(), needed as usize)
            }
            Err(PlatformError::RequestFailed(why)) => return Err(SvsmError::ReportFailed(why)),
        };
        let report_len = if report.is_empty() { crate::SNP_REPORT_SIZE } else { report.len() };
        let too_small = manifest.len() > op.manifest_size as usize
            || report_len > op.report_size as usize
            || certs_needed > op.certificates_size as usize
            || report.is_empty();
        regs.rcx = manifest.len() as u64;
        regs.rdx = certs_needed as u64;
        regs.r8 = report_len as u64;
        if too_small {
            return Err(SvsmError::InvalidParameter("a buffer is too small; sizes returned in RCX/RDX/R8"));
        }
        mem.write(op.report_gpa, &report)?;
        mem.write(op.manifest_gpa, manifest)?;
        if !certificates.is_empty() {
            mem.write(op.certificates_gpa, &certificates)?;
        }
        Ok(())
    }
}

/// TPMA_SESSION continueSession, set on the CreatePrimary password session.
const SESSION_CONTINUE: u8 = 0x01;

enum EkError {
    Tpm(u32),
    Unavailable(SvsmError),
}

fn vtpm_error(e: VtpmError) -> SvsmError {
    match e {
        VtpmError::NotAvailable => SvsmError::InvalidRequest("the vTPM is not available"),
        VtpmError::CommandTooLarge(_) => SvsmError::SelectorInvalid("template too large for the vTPM"),
        VtpmError::Engine(why) => SvsmError::InvalidRequest(why),
    }
}

/// Splits a selector into its kind and checks the kind-1 template is exactly one TPMT_PUBLIC.
fn parse_selector(selector: &[u8]) -> Result<&[u8], SvsmError> {
    let kind: [u8; 8] = selector
        .get(..8)
        .and_then(|k| k.try_into().ok())
        .ok_or(SvsmError::SelectorInvalid("selector shorter than its 8-byte kind"))?;
    if u64::from_le_bytes(kind) != SELECTOR_KIND_EK_TEMPLATE {
        return Err(SvsmError::SelectorInvalid("unknown selector kind"));
    }
    let template = selector.get(8..).unwrap_or_default();
    PublicArea::parse(template)
        .map_err(|_| SvsmError::SelectorInvalid("selector template is not one well-formed TPMT_PUBLIC"))?;
    Ok(template)
}
