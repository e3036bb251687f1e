//! Platform models for running the SVSM where there is no SEV-SNP hardware: the RMP page-validation state
//! PVALIDATE acts on, and the VM's vCPUs. They model the hardware rules the guest-visible behaviour depends on
//! (CF=1 when nothing changes, FAIL_SIZEMISMATCH when the request size differs from the RMP entry size).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::api::{
    PVALIDATE_FAIL_SIZEMISMATCH, PageSize, PageStatePlatform, PvalidateFailure, VcpuPlatform, VcpuRequest,
};
use crate::error::SvsmError;

const SIZE_2M: u64 = 0x20_0000;

/// The validated state of guest pages as the RMP records it.
#[derive(Debug, Clone, Default)]
pub struct SimulatedRmp {
    validated_4k: BTreeSet<u64>,
    validated_2m: BTreeSet<u64>,
    host_4k_regions: BTreeSet<u64>,
    /// Every PVALIDATE the model executed, in order: (gPA, size, validate, outcome).
    pub log: Vec<(u64, PageSize, bool, Result<(), PvalidateFailure>)>,
}

impl SimulatedRmp {
    /// A model in which no page is validated.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the 2M region containing `gpa` as backed by 4K RMP entries (the host assigned it page by page),
    /// so a 2M PVALIDATE there fails with FAIL_SIZEMISMATCH, as it does on hardware.
    pub fn host_uses_4k_entries(&mut self, gpa: u64) {
        self.host_4k_regions.insert(gpa & !(SIZE_2M - 1));
    }

    /// Whether the 4K page at `gpa` is validated (individually or as part of a 2M page).
    pub fn is_validated(&self, gpa: u64) -> bool {
        self.validated_4k.contains(&(gpa & !0xfff)) || self.validated_2m.contains(&(gpa & !(SIZE_2M - 1)))
    }

    fn apply(&mut self, gpa: u64, size: PageSize, validate: bool) -> Result<(), PvalidateFailure> {
        let region = gpa & !(SIZE_2M - 1);
        match size {
            PageSize::Size4K => {
                if self.validated_2m.contains(&region) {
                    return Err(PvalidateFailure::Hardware(PVALIDATE_FAIL_SIZEMISMATCH));
                }
                let changed =
                    if validate { self.validated_4k.insert(gpa) } else { self.validated_4k.remove(&gpa) };
                if changed { Ok(()) } else { Err(PvalidateFailure::Unchanged) }
            }
            PageSize::Size2M => {
                let any_4k = self.validated_4k.range(region..region + SIZE_2M).next().is_some();
                if self.host_4k_regions.contains(&region) || any_4k {
                    return Err(PvalidateFailure::Hardware(PVALIDATE_FAIL_SIZEMISMATCH));
                }
                let changed = if validate {
                    self.validated_2m.insert(region)
                } else {
                    self.validated_2m.remove(&region)
                };
                if changed { Ok(()) } else { Err(PvalidateFailure::Unchanged) }
            }
        }
    }
}

impl PageStatePlatform for SimulatedRmp {
    fn pvalidate(&mut self, gpa: u64, size: PageSize, validate: bool) -> Result<(), PvalidateFailure> {
        let outcome = self.apply(gpa, size, validate);
        self.log.push((gpa, size, validate, outcome));
        outcome
    }
}

/// The VM's vCPUs as CREATE_VCPU / DELETE_VCPU see them.
#[derive(Debug, Clone)]
pub struct SimulatedVcpus {
    /// APIC IDs that exist in the VM.
    pub apic_ids: Vec<u32>,
    /// VMPL the guest OS runs at.
    pub guest_vmpl: u8,
    /// SEV_FEATURES of the calling vCPU.
    pub sev_features: u64,
    /// VMSAs made runnable, by gPA.
    pub running: BTreeMap<u64, VcpuRequest>,
    /// Pages whose guest access is revoked (claimed for a VMSA).
    pub claimed: BTreeSet<u64>,
}

impl SimulatedVcpus {
    /// `count` vCPUs with APIC IDs 0..count, guest at VMPL 2, SEV_FEATURES = SNP active (bit 0).
    pub fn new(count: u32) -> Self {
        SimulatedVcpus {
            apic_ids: (0..count).collect(),
            guest_vmpl: 2,
            sev_features: 1,
            running: BTreeMap::new(),
            claimed: BTreeSet::new(),
        }
    }
}

impl VcpuPlatform for SimulatedVcpus {
    fn apic_id_exists(&self, apic_id: u32) -> bool {
        self.apic_ids.contains(&apic_id)
    }
    fn guest_vmpl(&self) -> u8 {
        self.guest_vmpl
    }
    fn caller_sev_features(&self) -> u64 {
        self.sev_features
    }
    fn claim_vmsa_page(&mut self, gpa: u64) -> Result<(), SvsmError> {
        if !self.claimed.insert(gpa) {
            return Err(SvsmError::InvalidAddress { gpa, reason: "page already claimed for a VMSA" });
        }
        Ok(())
    }
    fn release_vmsa_page(&mut self, gpa: u64) -> Result<(), SvsmError> {
        if self.running.contains_key(&gpa) || !self.claimed.remove(&gpa) {
            return Err(SvsmError::InvalidParameter("not a claimed, non-running VMSA page"));
        }
        Ok(())
    }
    fn create_vcpu(&mut self, request: VcpuRequest) -> Result<(), SvsmError> {
        if !self.claimed.contains(&request.vmsa_gpa) {
            return Err(SvsmError::InvalidParameter("VMSA page was not claimed first"));
        }
        if self.running.values().any(|r| r.apic_id == request.apic_id) {
            return Err(SvsmError::InvalidParameter("a vCPU with this APIC ID is already running"));
        }
        self.running.insert(request.vmsa_gpa, request);
        Ok(())
    }
    fn delete_vcpu(&mut self, vmsa_gpa: u64) -> Result<(), SvsmError> {
        self.running.remove(&vmsa_gpa).ok_or(SvsmError::InvalidParameter("not a running VMSA"))?;
        self.claimed.remove(&vmsa_gpa);
        Ok(())
    }
}
