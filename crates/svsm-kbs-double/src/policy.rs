//! The resource policy the double applies after attestation (Trustee expresses the same in Rego over the
//! EAR claims; the double takes it as data).

use sev::firmware::guest::AttestationReport;
use svsm_attest::chain::Tcb;

/// Who may read a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePolicy {
    /// Required launch MEASUREMENT (`None`: any).
    pub measurement: Option<[u8; 48]>,
    /// Required VMPL of the report.
    pub vmpl: u32,
    /// Whether a guest policy with DEBUG allowed may read it.
    pub allow_debug: bool,
    /// Minimum reported TCB, per component.
    pub min_tcb: Tcb,
}

impl Default for ResourcePolicy {
    fn default() -> Self {
        ResourcePolicy {
            measurement: None,
            vmpl: 0,
            allow_debug: false,
            min_tcb: Tcb { bootloader: 0, tee: 0, snp: 0, microcode: 0 },
        }
    }
}

impl ResourcePolicy {
    /// `Ok` if `report` satisfies the policy, else why not.
    pub fn evaluate(&self, report: &AttestationReport) -> Result<(), String> {
        if let Some(m) = self.measurement
            && report.measurement != m
        {
            return Err(format!("measurement {} is not the allowed one", hex::encode(report.measurement)));
        }
        if report.vmpl != self.vmpl {
            return Err(format!("VMPL {} is not {}", report.vmpl, self.vmpl));
        }
        if report.policy.debug_allowed() && !self.allow_debug {
            return Err("guest policy allows debugging".into());
        }
        let t = &report.reported_tcb;
        let m = &self.min_tcb;
        if t.bootloader < m.bootloader || t.tee < m.tee || t.snp < m.snp || t.microcode < m.microcode {
            return Err(format!(
                "reported TCB bl={} tee={} snp={} ucode={} is below the minimum bl={} tee={} snp={} ucode={}",
                t.bootloader, t.tee, t.snp, t.microcode, m.bootloader, m.tee, m.snp, m.microcode
            ));
        }
        Ok(())
    }
}
