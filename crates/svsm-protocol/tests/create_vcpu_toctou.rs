//! CREATE_VCPU must check the VMSA the hardware will run, not a copy the guest can change afterwards.
//!
//! A second guest vCPU races the SVSM: it rewrites the VMSA's VMPL to 0 right after the SVSM's first read of
//! the page. The platform double reads the VMSA as hardware does when it becomes runnable. The guest may only
//! write the page while the platform has not revoked its access (the double models RMPADJUST: once the page
//! is claimed for a VMSA, guest writes fault).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use svsm_protocol::api::{
    GuestMemory, PageSize, PageStatePlatform, PvalidateFailure, VcpuPlatform, VcpuRequest,
};
use svsm_protocol::doubles::UnsignedReportDouble;
use svsm_protocol::error::{GuestMemoryError, SVSM_SUCCESS, SvsmError};
use svsm_protocol::wire::vmsa;
use svsm_protocol::{Registers, Svsm, SvsmConfig, VecGuestMemory};

const GUEST_VMPL: u8 = 2;
const VMSA: u64 = 0x5_0000;
const CAA: u64 = 0x5_1000;

/// Guest memory plus what the "hardware" knows: which pages the guest can no longer write.
struct Machine {
    mem: VecGuestMemory,
    /// Pages whose guest access the platform revoked (RMPADJUST / VMSA bit).
    revoked: BTreeSet<u64>,
    /// Whether the racing vCPU already had its go.
    raced: bool,
    /// Racing writes the hardware refused.
    refused_writes: u32,
    /// VMPL of every VMSA at the moment the platform made it runnable.
    created_with_vmpl: Vec<u8>,
}

type Shared = Arc<Mutex<Machine>>;

/// The SVSM's view of guest memory, with a second guest vCPU writing VMPL 0 right after the first read of
/// the VMSA page.
struct RacingMemory(Shared);

impl GuestMemory for RacingMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let mut m = self.0.lock().unwrap();
        m.mem.read(gpa, buf)?;
        let covers_vmsa =
            gpa <= VMSA + vmsa::VMPL as u64 && gpa + buf.len() as u64 > VMSA + vmsa::VMPL as u64;
        if covers_vmsa && !m.raced {
            m.raced = true;
            if m.revoked.contains(&VMSA) {
                m.refused_writes += 1; // #NPF for the guest: the page is no longer guest-writable
            } else {
                m.mem.write(VMSA + vmsa::VMPL as u64, &[0]).unwrap();
            }
        }
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError> {
        self.0.lock().unwrap().mem.write(gpa, data)
    }
    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.0.lock().unwrap().mem.contains(gpa, len)
    }
}

/// A platform that, like hardware, runs whatever the VMSA page holds when the vCPU is created.
struct HardwareLikeVcpus(Shared);

impl VcpuPlatform for HardwareLikeVcpus {
    fn apic_id_exists(&self, apic_id: u32) -> bool {
        apic_id < 4
    }
    fn guest_vmpl(&self) -> u8 {
        GUEST_VMPL
    }
    fn caller_sev_features(&self) -> u64 {
        1
    }
    fn claim_vmsa_page(&mut self, gpa: u64) -> Result<(), SvsmError> {
        self.0.lock().unwrap().revoked.insert(gpa);
        Ok(())
    }
    fn release_vmsa_page(&mut self, gpa: u64) -> Result<(), SvsmError> {
        self.0.lock().unwrap().revoked.remove(&gpa);
        Ok(())
    }
    fn create_vcpu(&mut self, request: VcpuRequest) -> Result<(), SvsmError> {
        let mut m = self.0.lock().unwrap();
        let mut vmpl = [0u8; 1];
        m.mem.read(request.vmsa_gpa + vmsa::VMPL as u64, &mut vmpl).unwrap();
        m.created_with_vmpl.push(vmpl[0]);
        Ok(())
    }
    fn delete_vcpu(&mut self, vmsa_gpa: u64) -> Result<(), SvsmError> {
        self.0.lock().unwrap().revoked.remove(&vmsa_gpa);
        Ok(())
    }
}

struct NoPages;
impl PageStatePlatform for NoPages {
    fn pvalidate(&mut self, _: u64, _: PageSize, _: bool) -> Result<(), PvalidateFailure> {
        Ok(())
    }
}

fn vmsa_page(vmpl: u8) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[vmsa::VMPL] = vmpl;
    p[vmsa::EFER..vmsa::EFER + 8].copy_from_slice(&vmsa::EFER_SVME.to_le_bytes());
    p[vmsa::SEV_FEATURES..vmsa::SEV_FEATURES + 8].copy_from_slice(&1u64.to_le_bytes());
    p
}

fn setup(page: &[u8]) -> (Svsm, Shared) {
    let mut mem = VecGuestMemory::new(0, 1 << 20);
    mem.write(VMSA, page).unwrap();
    let machine = Arc::new(Mutex::new(Machine {
        mem,
        revoked: BTreeSet::new(),
        raced: false,
        refused_writes: 0,
        created_with_vmpl: Vec::new(),
    }));
    let svsm = Svsm::new(
        SvsmConfig { svsm_base: 0xf_0000, svsm_size: 0x1_0000, initial_caa: 0x1000 },
        Box::new(NoPages),
        Box::new(HardwareLikeVcpus(machine.clone())),
        None,
        Box::new(UnsignedReportDouble::default()),
    );
    (svsm, machine)
}

fn create(svsm: &mut Svsm, machine: &Shared) -> u32 {
    let mut regs = Registers { rax: 2, rcx: VMSA, rdx: CAA, r8: 1, r9: 0 };
    svsm.handle_call(&mut RacingMemory(machine.clone()), &mut regs);
    regs.rax as u32
}

#[test]
fn a_racing_vcpu_cannot_turn_the_checked_vmsa_into_a_vmpl0_vcpu() {
    let (mut svsm, machine) = setup(&vmsa_page(GUEST_VMPL));
    let rc = create(&mut svsm, &machine);
    let m = machine.lock().unwrap();
    assert!(m.raced, "the racing write was attempted");
    for vmpl in &m.created_with_vmpl {
        assert_eq!(*vmpl, GUEST_VMPL, "the platform made a VMSA with VMPL {vmpl} runnable (rc {rc:#x})");
    }
    assert_eq!(rc, SVSM_SUCCESS, "the honest VMSA is created");
    assert_eq!(m.created_with_vmpl.len(), 1);
    assert_eq!(m.refused_writes, 1, "the racing write hit a page the guest no longer owns");
    assert!(m.revoked.contains(&VMSA), "a running VMSA stays out of the guest's reach");
}

#[test]
fn a_refused_vmsa_is_given_back_to_the_guest() {
    let (mut svsm, machine) = setup(&vmsa_page(0));
    assert_ne!(create(&mut svsm, &machine), SVSM_SUCCESS, "VMPL0 VMSA refused");
    let m = machine.lock().unwrap();
    assert!(m.created_with_vmpl.is_empty());
    assert!(m.revoked.is_empty(), "the page is released after a failed check");
}

#[test]
fn deleting_a_vcpu_releases_its_page() {
    let (mut svsm, machine) = setup(&vmsa_page(GUEST_VMPL));
    assert_eq!(create(&mut svsm, &machine), SVSM_SUCCESS);
    let mut regs = Registers { rax: 3, rcx: VMSA, ..Default::default() };
    svsm.handle_call(&mut RacingMemory(machine.clone()), &mut regs);
    assert_eq!(regs.rax as u32, SVSM_SUCCESS);
    assert!(machine.lock().unwrap().revoked.is_empty());
}
