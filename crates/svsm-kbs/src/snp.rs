//! SNP evidence in the shape Trustee's `snp` verifier deserialises (`SnpEvidence` there):
//! `{"attestation_report": <sev::AttestationReport serde>, "cert_chain": [CertTableEntry...] | null}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::{CertTableEntry, CertType};
use sev::parser::ByteParser;

/// The `primary_evidence` of an SNP attestation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnpEvidence {
    /// The report.
    pub attestation_report: AttestationReport,
    /// VCEK (or VLEK), ASK, ARK as the extended report's certificate table returned them.
    pub cert_chain: Option<Vec<CertTableEntry>>,
}

impl SnpEvidence {
    /// From the raw 1184-byte report and DER certificates.
    pub fn from_report(report: &[u8], certs: Vec<(CertType, Vec<u8>)>) -> Result<Self, String> {
        let attestation_report =
            AttestationReport::from_bytes(report).map_err(|e| format!("SNP report: {e}"))?;
        let cert_chain = if certs.is_empty() {
            None
        } else {
            Some(certs.into_iter().map(|(cert_type, data)| CertTableEntry { cert_type, data }).collect())
        };
        Ok(SnpEvidence { attestation_report, cert_chain })
    }

    /// As JSON.
    pub fn to_value(&self) -> Result<Value, String> {
        serde_json::to_value(self).map_err(|e| e.to_string())
    }

    /// From JSON (untrusted).
    pub fn from_value(v: Value) -> Result<Self, String> {
        serde_json::from_value(v).map_err(|e| format!("SNP evidence: {e}"))
    }

    /// The report's raw bytes, re-encoded (what its signature covers).
    pub fn report_bytes(&self) -> Result<Vec<u8>, String> {
        self.attestation_report.to_bytes().map(|b| b.to_vec()).map_err(|e| format!("SNP report: {e}"))
    }

    /// The DER of the first certificate of `cert_type`.
    pub fn cert(&self, cert_type: &CertType) -> Option<&[u8]> {
        self.cert_chain.as_ref()?.iter().find(|e| &e.cert_type == cert_type).map(|e| e.data.as_slice())
    }
}

/// Evidence from `svsm-attest`'s simulated SNP platform (reports signed by a simulated VCEK, chain to the
/// simulated ARK). **Development only**: it verifies only against the simulated ARK, which no production
/// KBS trusts.
#[cfg(feature = "simulated")]
#[derive(Debug)]
pub struct SimulatedSnpEvidence {
    /// The platform.
    pub snp: svsm_attest::SimulatedSnp,
}

#[cfg(feature = "simulated")]
impl crate::api::EvidenceProvider for SimulatedSnpEvidence {
    fn tee(&self) -> kbs_types::Tee {
        kbs_types::Tee::Snp
    }

    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Value, String> {
        use der::Encode;
        let report = self.snp.sign_report(report_data).map_err(|e| format!("simulated SNP report: {e:?}"))?;
        let der = |c: &x509_cert::Certificate| c.to_der().map_err(|e| format!("certificate DER: {e}"));
        let certs = vec![
            (CertType::VCEK, der(self.snp.vcek())?),
            (CertType::ASK, der(&self.snp.roots().ask)?),
            (CertType::ARK, der(&self.snp.roots().ark)?),
        ];
        SnpEvidence::from_report(&report, certs)?.to_value()
    }
}
