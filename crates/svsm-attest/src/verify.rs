//! The verifier: from a report, a manifest, a nonce, a trust anchor and the certificates to a verdict and the
//! vTPM's EK.

use p384::ecdsa::signature::Verifier;
use rsa::pkcs8::EncodePublicKey;
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use svsm_protocol::attest::{report_data, report_data_with_selector};
use svsm_protocol::guid::{Guid, SERVICES_MANIFEST_GUID, VTPM_SERVICE_GUID};
use svsm_protocol::manifest::parse_services_manifest;
use svsm_vtpm::manufacture::EkKind;
use svsm_vtpm::marshal::{self, PublicArea, PublicKey};
use x509_cert::Certificate;

use crate::chain::{Tcb, VcekClaims, tcb_array, verify_chain};
use crate::error::VerifyError;
use crate::policy::{POLICY_ABI_MASK, POLICY_DEBUG, VerifierPolicy};
use crate::report::{
    POLICY_OFFSET, REPORT_DATA_OFFSET, REPORT_SIZE, SIG_ALGO_ECDSA_P384_SHA384, SIGNATURE_R_OFFSET,
    SIGNATURE_S_OFFSET, SIGNED_LEN,
};

/// Everything the verifier is given.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// The raw 1184-byte report.
    pub report: &'a [u8],
    /// The manifest returned with it (services manifest, or one service's manifest).
    pub manifest: &'a [u8],
    /// The 64-byte nonce the relying party chose.
    pub nonce: &'a [u8],
    /// What a single-service request asked for: (service GUID, manifest version, selector bytes), the
    /// selector empty for ATTEST_SINGLE_SERVICE. The report binds all three (REPORT_DATA), so evidence for
    /// one service presented as another's fails. `None`: an ATTEST_SERVICES report (services manifest).
    pub selector: Option<(Guid, u32, &'a [u8])>,
    /// The trusted ARK.
    pub trusted_ark: &'a Certificate,
    /// The chain: ARK (may equal the anchor), ASK, VCEK.
    pub ark: &'a Certificate,
    /// ASK.
    pub ask: &'a Certificate,
    /// VCEK.
    pub vcek: &'a Certificate,
}

/// A vTPM key as attested: the EK, or a key created from a guest's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndorsementKey {
    /// The TCG EK Credential Profile template the key was created from, or `None` if it is not an EK (a
    /// key the guest had created from its own SINGLE_SERVICE_EX template: it may be unrestricted, usable
    /// with an empty password, or derived from a guest-chosen `unique`; never bind an AK to it as an EK).
    pub profile: Option<EkKind>,
    /// The TPMT_PUBLIC bytes.
    pub tpmt_public: Vec<u8>,
    /// Name = nameAlg || H(TPMT_PUBLIC).
    pub name: Vec<u8>,
    /// SubjectPublicKeyInfo PEM, for RSA keys.
    pub public_key_pem: Option<String>,
    /// Parsed structure.
    pub public: PublicArea,
}

/// A verified attestation.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The report, parsed.
    pub report: AttestationReport,
    /// What the VCEK asserted.
    pub vcek: VcekClaims,
    /// Services in the manifest (a single-service manifest appears as one vTPM entry).
    pub services: Vec<(Guid, Vec<u8>)>,
    /// The vTPM EK, if the manifest lists the vTPM and the key is a TCG EK Credential Profile key (for
    /// SINGLE_SERVICE_EX: the selector's template is exactly a profile template).
    pub ek: Option<EndorsementKey>,
    /// The vTPM key of a SINGLE_SERVICE_EX attestation whose template is not a profile EK template: what
    /// the guest asked the vTPM to create, with its attributes in `public`. Never an EK.
    pub guest_template_key: Option<EndorsementKey>,
}

fn scalar(field: &[u8]) -> Result<p384::FieldBytes, VerifyError> {
    // 72-byte little-endian field; P-384 scalars use the low 48 bytes and the rest must be zero.
    if field.len() != 72 || field[48..].iter().any(|b| *b != 0) {
        return Err(VerifyError::ReportSignature);
    }
    let mut be = [0u8; 48];
    for (dst, src) in be.iter_mut().zip(field[..48].iter().rev()) {
        *dst = *src;
    }
    Ok(be.into())
}

/// Runs every check against `policy` (pass `&VerifierPolicy::default()` for the secure defaults); the first
/// that fails is returned.
pub fn verify_attestation(e: &Evidence<'_>, policy: &VerifierPolicy) -> Result<Verified, VerifyError> {
    let claims = verify_chain(e.trusted_ark, e.ark, e.ask, e.vcek, policy)?;
    verify_report(claims, e, policy)
}

/// The checks that need no relying-party nonce: report format and version, the signature under the VCEK
/// whose `claims` the chain established, TCB and chip against those claims, and the report against `policy`.
/// Verifiers with their own REPORT_DATA binding (a KBS) use this and then compare REPORT_DATA themselves.
pub fn verify_signed_report(
    claims: &VcekClaims,
    report_bytes: &[u8],
    policy: &VerifierPolicy,
) -> Result<AttestationReport, VerifyError> {
    if report_bytes.len() != REPORT_SIZE {
        return Err(VerifyError::ReportFormat(format!(
            "{} bytes, expected {REPORT_SIZE}",
            report_bytes.len()
        )));
    }
    let report = AttestationReport::from_bytes(report_bytes)
        .map_err(|err| VerifyError::ReportFormat(err.to_string()))?;
    if !(2..=5).contains(&report.version) {
        return Err(VerifyError::ReportFormat(format!("unsupported version {}", report.version)));
    }
    if report.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(VerifyError::SignatureAlgorithm(report.sig_algo));
    }
    let r = scalar(&report_bytes[SIGNATURE_R_OFFSET..SIGNATURE_R_OFFSET + 72])?;
    let s = scalar(&report_bytes[SIGNATURE_S_OFFSET..SIGNATURE_S_OFFSET + 72])?;
    let sig = p384::ecdsa::Signature::from_scalars(r, s).map_err(|_| VerifyError::ReportSignature)?;
    claims.key.verify(&report_bytes[..SIGNED_LEN], &sig).map_err(|_| VerifyError::ReportSignature)?;

    let reported = Tcb {
        bootloader: report.reported_tcb.bootloader,
        tee: report.reported_tcb.tee,
        snp: report.reported_tcb.snp,
        microcode: report.reported_tcb.microcode,
    };
    if reported != claims.tcb {
        return Err(VerifyError::TcbMismatch { report: tcb_array(reported), vcek: tcb_array(claims.tcb) });
    }
    if claims.hw_id.as_slice() != report.chip_id.as_slice() {
        return Err(VerifyError::ChipIdMismatch);
    }
    check_report_policy(&report, report_bytes, reported, policy)?;
    Ok(report)
}

/// The checks after the chain: report format, signature under the VCEK, TCB and chip against the VCEK's
/// claims, the report against `policy` (VMPL, guest policy, minimum TCB, measurement, HOST_DATA), the
/// REPORT_DATA binding, and the manifest. `e`'s certificates are not looked at.
pub fn verify_report(
    claims: VcekClaims,
    e: &Evidence<'_>,
    policy: &VerifierPolicy,
) -> Result<Verified, VerifyError> {
    let report = verify_signed_report(&claims, e.report, policy)?;
    if e.nonce.len() != 64 {
        return Err(VerifyError::NonceSize(e.nonce.len()));
    }
    let expected = match e.selector {
        Some((guid, version, sel)) => report_data_with_selector(e.nonce, guid, version, sel, e.manifest),
        None => report_data(e.nonce, e.manifest),
    };
    if e.report[REPORT_DATA_OFFSET..REPORT_DATA_OFFSET + 64] != expected || report.report_data != expected {
        return Err(VerifyError::ReportDataMismatch);
    }

    let services: Vec<(Guid, Vec<u8>)> = match e.selector {
        // A single service's manifest is that service's alone, for the GUID the report is bound to.
        Some((guid, _, _)) => vec![(guid, e.manifest.to_vec())],
        None if e.manifest.starts_with(SERVICES_MANIFEST_GUID.as_bytes()) => {
            parse_services_manifest(e.manifest)
                .map_err(|err| VerifyError::Manifest(err.to_string()))?
                .into_iter()
                .map(|s| (s.guid, s.data.to_vec()))
                .collect()
        }
        None => {
            return Err(VerifyError::Manifest(
                "not a services manifest; for a single-service report give the service GUID and manifest \
                 version it was requested for"
                    .into(),
            ));
        }
    };
    let mut key = match services.iter().find(|(g, _)| *g == VTPM_SERVICE_GUID) {
        Some((_, bytes)) => Some(endorsement_key(bytes)?),
        None => None,
    };
    // With a selector, the guest chose the template: an EK only if it asked for exactly a profile template
    // (zero unique), and the created key matches that profile.
    if let (Some(k), Some((_, _, sel))) = (key.as_mut(), e.selector)
        && !sel.is_empty()
    {
        let asked = sel.get(8..).unwrap_or_default();
        if k.profile.is_none_or(|p| p.template_bytes() != asked) {
            k.profile = None;
        }
    }
    let (ek, guest_template_key) = match key {
        Some(k) if k.profile.is_some() => (Some(k), None),
        other => (None, other),
    };
    Ok(Verified { report, vcek: claims, services, ek, guest_template_key })
}

/// The report's fields (`raw`: the signed bytes of `report`) against a relying party's policy, e.g. a KBS's
/// resource policy applied to a report verified earlier with [`verify_signed_report`].
pub fn report_meets_policy(
    report: &AttestationReport,
    raw: &[u8],
    policy: &VerifierPolicy,
) -> Result<(), VerifyError> {
    if raw.len() != REPORT_SIZE {
        return Err(VerifyError::ReportFormat(format!("{} bytes, expected {REPORT_SIZE}", raw.len())));
    }
    let t = &report.reported_tcb;
    let reported = Tcb { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
    check_report_policy(report, raw, reported, policy)
}

/// The report's fields against the relying party's policy.
fn check_report_policy(
    report: &AttestationReport,
    raw: &[u8],
    reported: Tcb,
    policy: &VerifierPolicy,
) -> Result<(), VerifyError> {
    if report.vmpl != policy.required_vmpl {
        return Err(VerifyError::Vmpl { expected: policy.required_vmpl, actual: report.vmpl });
    }
    // GUEST_POLICY as the firmware signed it (the `sev` type forces the reserved bit on when converted).
    let mut raw_policy = [0u8; 8];
    raw_policy.copy_from_slice(&raw[POLICY_OFFSET..POLICY_OFFSET + 8]);
    let guest_policy = u64::from_le_bytes(raw_policy);
    let disallowed = guest_policy & !POLICY_ABI_MASK & !policy.allowed_policy_bits;
    if disallowed & POLICY_DEBUG != 0 {
        return Err(VerifyError::DebugGuest { policy: guest_policy });
    }
    if disallowed != 0 {
        return Err(VerifyError::GuestPolicy { policy: guest_policy, disallowed });
    }
    let min = policy.minimum_tcb;
    if reported.bootloader < min.bootloader
        || reported.tee < min.tee
        || reported.snp < min.snp
        || reported.microcode < min.microcode
    {
        return Err(VerifyError::TcbBelowMinimum { report: tcb_array(reported), minimum: tcb_array(min) });
    }
    if policy.expected_measurement.is_some_and(|m| m != report.measurement) {
        return Err(VerifyError::MeasurementMismatch);
    }
    if policy.expected_host_data.is_some_and(|h| h != report.host_data) {
        return Err(VerifyError::HostDataMismatch);
    }
    Ok(())
}

/// Parses a vTPM manifest (TPMT_PUBLIC) into the key, its Name, (for RSA) its public key, and which TCG EK
/// profile template it matches, if any.
pub fn endorsement_key(tpmt_public: &[u8]) -> Result<EndorsementKey, VerifyError> {
    let public = PublicArea::parse(tpmt_public).map_err(|err| VerifyError::EkPublic(err.to_string()))?;
    let name = marshal::object_name(public.name_alg, tpmt_public)
        .ok_or_else(|| VerifyError::EkPublic(format!("unsupported nameAlg {:#06x}", public.name_alg)))?;
    let public_key_pem = match &public.key {
        PublicKey::Rsa { exponent, modulus, .. } => {
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(modulus), rsa::BigUint::from(e))
                .map_err(|err| VerifyError::EkPublic(err.to_string()))?;
            Some(
                key.to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                    .map_err(|err| VerifyError::EkPublic(err.to_string()))?,
            )
        }
        _ => None,
    };
    let profile = EkKind::of_created(tpmt_public);
    Ok(EndorsementKey { profile, tpmt_public: tpmt_public.to_vec(), name, public_key_pem, public })
}
