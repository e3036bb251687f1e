//! A simulated SNP platform for hosts without SEV-SNP: real-layout reports signed by a simulated VCEK.

use std::sync::Arc;

use der::Encode;
use p384::ecdsa::signature::Signer;
use rand::{CryptoRng, RngCore};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use svsm_protocol::guid::{CERT_TABLE_ARK_GUID, CERT_TABLE_ASK_GUID, CERT_TABLE_VCEK_GUID};
use svsm_protocol::manifest::build_certificate_table;
use svsm_protocol::{CertificateRequest, PlatformError, SnpPlatform, SnpReportResponse};

use crate::chain::{SimulatedRoots, Tcb};
use crate::report::{SIG_ALGO_ECDSA_P384_SHA384, SIGNATURE_R_OFFSET, SIGNATURE_S_OFFSET, SIGNED_LEN};

/// What the simulated platform puts into every report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedSnpConfig {
    /// Launch MEASUREMENT.
    pub measurement: [u8; 48],
    /// HOST_DATA.
    pub host_data: [u8; 32],
    /// Guest POLICY (bit 17 is reserved-1 and always set).
    pub policy: u64,
    /// VMPL recorded in the report (the SVSM requests VMPL0).
    pub vmpl: u32,
    /// The platform TCB (current = reported = committed = launch; the VCEK is issued for it).
    pub tcb: Tcb,
    /// CHIP_ID (also the VCEK's hwID).
    pub chip_id: [u8; 64],
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// FAMILY_ID (from the ID block; zero without one).
    pub family_id: [u8; 16],
    /// IMAGE_ID (from the ID block; zero without one).
    pub image_id: [u8; 16],
    /// ID_KEY_DIGEST (zero when launched without an ID block).
    pub id_key_digest: [u8; 48],
    /// AUTHOR_KEY_DIGEST; `Some` also sets KEY_INFO.AUTHOR_KEY_EN.
    pub author_key_digest: Option<[u8; 48]>,
}

impl Default for SimulatedSnpConfig {
    fn default() -> Self {
        SimulatedSnpConfig {
            measurement: [0; 48],
            host_data: [0; 32],
            policy: 0x3_0000, // SMT allowed, reserved bit 17
            vmpl: 0,
            tcb: Tcb { bootloader: 3, tee: 0, snp: 14, microcode: 209 },
            chip_id: [0xC1; 64],
            guest_svn: 0,
            family_id: [0; 16],
            image_id: [0; 16],
            id_key_digest: [0; 48],
            author_key_digest: None,
        }
    }
}

/// The simulated SNP firmware: a VCEK (issued by simulated roots for the configured TCB and chip) that
/// signs version-3 Milan reports.
#[derive(Debug, Clone)]
pub struct SimulatedSnp {
    roots: Arc<SimulatedRoots>,
    vcek_key: p384::ecdsa::SigningKey,
    vcek: x509_cert::Certificate,
    config: SimulatedSnpConfig,
    report_counter: u64,
}

impl SimulatedSnp {
    /// A platform whose VCEK is freshly generated and issued by `roots` for `config`'s TCB and chip.
    pub fn new(
        roots: Arc<SimulatedRoots>,
        config: SimulatedSnpConfig,
        rng: &mut (impl CryptoRng + RngCore),
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let vcek_key = p384::ecdsa::SigningKey::random(rng);
        let vcek = roots.issue_vcek(vcek_key.verifying_key(), config.tcb, &config.chip_id, rng)?;
        Ok(SimulatedSnp { roots, vcek_key, vcek, config, report_counter: 0 })
    }

    /// A platform with a given (stored) VCEK key; the certificate is issued by `roots` for `config`.
    pub fn with_vcek_key(
        roots: Arc<SimulatedRoots>,
        vcek_key: p384::ecdsa::SigningKey,
        config: SimulatedSnpConfig,
        rng: &mut (impl CryptoRng + RngCore),
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let vcek = roots.issue_vcek(vcek_key.verifying_key(), config.tcb, &config.chip_id, rng)?;
        Ok(SimulatedSnp { roots, vcek_key, vcek, config, report_counter: 0 })
    }

    /// Re-issues the VCEK certificate for the same key but other claims (a platform whose reported TCB or
    /// chip no longer matches its certificate), for negative tests.
    pub fn reissue_vcek(
        &mut self,
        tcb: Tcb,
        chip_id: &[u8; 64],
        rng: &mut (impl CryptoRng + RngCore),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.vcek = self.roots.issue_vcek(self.vcek_key.verifying_key(), tcb, chip_id, rng)?;
        Ok(())
    }

    /// The VCEK certificate.
    pub fn vcek(&self) -> &x509_cert::Certificate {
        &self.vcek
    }

    /// The roots.
    pub fn roots(&self) -> &SimulatedRoots {
        &self.roots
    }

    /// The GHCB certificate table an extended report carries: VCEK, ASK, ARK (DER).
    pub fn certificate_table(&self) -> Result<Vec<u8>, PlatformError> {
        let der =
            |c: &x509_cert::Certificate| c.to_der().map_err(|_| PlatformError::RequestFailed("DER encoding"));
        let (v, a, r) = (der(&self.vcek)?, der(&self.roots.ask)?, der(&self.roots.ark)?);
        build_certificate_table(&[
            (CERT_TABLE_VCEK_GUID, &v),
            (CERT_TABLE_ASK_GUID, &a),
            (CERT_TABLE_ARK_GUID, &r),
        ])
        .map_err(|_| PlatformError::RequestFailed("certificate table too large"))
    }

    /// Builds and signs one report for `report_data`.
    pub fn sign_report(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, PlatformError> {
        let c = &self.config;
        let tcb = sev::firmware::host::TcbVersion {
            fmc: None,
            bootloader: c.tcb.bootloader,
            tee: c.tcb.tee,
            snp: c.tcb.snp,
            microcode: c.tcb.microcode,
        };
        self.report_counter += 1;
        let mut report_id = [0u8; 32];
        report_id[..8].copy_from_slice(&self.report_counter.to_le_bytes());
        let report = AttestationReport {
            version: 3,
            guest_svn: c.guest_svn,
            policy: c.policy.into(),
            family_id: c.family_id,
            image_id: c.image_id,
            key_info: u32::from(c.author_key_digest.is_some()).into(),
            id_key_digest: c.id_key_digest,
            author_key_digest: c.author_key_digest.unwrap_or([0; 48]),
            vmpl: c.vmpl,
            sig_algo: SIG_ALGO_ECDSA_P384_SHA384,
            current_tcb: tcb,
            report_data: *report_data,
            measurement: c.measurement,
            host_data: c.host_data,
            report_id,
            reported_tcb: tcb,
            cpuid_fam_id: Some(0x19),
            cpuid_mod_id: Some(0x01),
            cpuid_step: Some(0x01),
            chip_id: c.chip_id,
            committed_tcb: tcb,
            current: sev::firmware::guest::Version::new(1, 55, 0),
            committed: sev::firmware::guest::Version::new(1, 55, 0),
            launch_tcb: tcb,
            ..Default::default()
        };
        let mut bytes =
            report.to_bytes().map_err(|_| PlatformError::RequestFailed("report encoding failed"))?.to_vec();
        let signed = bytes.get(..SIGNED_LEN).ok_or(PlatformError::RequestFailed("short report"))?;
        let sig: p384::ecdsa::Signature = self.vcek_key.sign(signed);
        let (r, s) = sig.split_bytes();
        // SNP encodes R and S little-endian, zero-padded to 72 bytes.
        for (off, be) in [(SIGNATURE_R_OFFSET, r), (SIGNATURE_S_OFFSET, s)] {
            let field = bytes.get_mut(off..off + 72).ok_or(PlatformError::RequestFailed("short report"))?;
            field.fill(0);
            for (dst, src) in field.iter_mut().zip(be.iter().rev()) {
                *dst = *src;
            }
        }
        Ok(bytes)
    }
}

impl SnpPlatform for SimulatedSnp {
    fn request_report(
        &mut self,
        report_data: &[u8; 64],
        certificates: CertificateRequest,
    ) -> Result<SnpReportResponse, PlatformError> {
        let certificates = match certificates {
            CertificateRequest::None => Vec::new(),
            CertificateRequest::UpTo(cap) => {
                let table = self.certificate_table()?;
                if table.len() > cap as usize {
                    let needed = u32::try_from(table.len().div_ceil(4096) * 4096)
                        .map_err(|_| PlatformError::RequestFailed("certificate table too large"))?;
                    return Err(PlatformError::CertificatesTooLarge { needed });
                }
                table
            }
        };
        Ok(SnpReportResponse { report: self.sign_report(report_data)?, certificates })
    }
}
