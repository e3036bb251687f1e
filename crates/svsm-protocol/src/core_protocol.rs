//! Core protocol (protocol 0): calling-area remap, PVALIDATE lists, vCPU creation, protocol discovery.

use crate::api::{GuestMemory, PageSize, PvalidateFailure, VcpuRequest};
use crate::dispatch::{Registers, Svsm};
use crate::error::{SVSM_PVALIDATE_FAIL_UNCHANGED, SvsmError};
use crate::memory::{read_array, read_vec};
use crate::wire::{PvalidateListHeader, pvalidate_entry, vmsa};

/// SVSM_CORE_REMAP_CA.
pub const CORE_REMAP_CA: u32 = 0;
/// SVSM_CORE_PVALIDATE.
pub const CORE_PVALIDATE: u32 = 1;
/// SVSM_CORE_CREATE_VCPU.
pub const CORE_CREATE_VCPU: u32 = 2;
/// SVSM_CORE_DELETE_VCPU.
pub const CORE_DELETE_VCPU: u32 = 3;
/// SVSM_CORE_DEPOSIT_MEM.
pub const CORE_DEPOSIT_MEM: u32 = 4;
/// SVSM_CORE_WITHDRAW_MEM.
pub const CORE_WITHDRAW_MEM: u32 = 5;
/// SVSM_CORE_QUERY_PROTOCOL.
pub const CORE_QUERY_PROTOCOL: u32 = 6;
/// SVSM_CORE_CONFIGURE_VTOM.
pub const CORE_CONFIGURE_VTOM: u32 = 7;

impl Svsm {
    pub(crate) fn core_call(
        &mut self,
        mem: &mut dyn GuestMemory,
        regs: &mut Registers,
        call: u32,
    ) -> Result<(), SvsmError> {
        match call {
            CORE_REMAP_CA => self.remap_ca(mem, regs.rcx),
            CORE_PVALIDATE => self.pvalidate_list(mem, regs.rcx),
            CORE_CREATE_VCPU => self.create_vcpu(mem, regs),
            CORE_DELETE_VCPU => self.delete_vcpu(regs.rcx),
            CORE_QUERY_PROTOCOL => {
                let protocol = (regs.rcx >> 32) as u32;
                let requested = regs.rcx as u32;
                regs.rcx = match self.protocol_versions(protocol) {
                    Some((min, max)) if (min..=max).contains(&requested) => {
                        (u64::from(max) << 32) | u64::from(min)
                    }
                    _ => 0,
                };
                Ok(())
            }
            CORE_CONFIGURE_VTOM => {
                if regs.rcx & 1 == 1 {
                    // Query: no vTOM configurations are supported.
                    regs.rcx = 0;
                    Ok(())
                } else {
                    Err(SvsmError::InvalidRequest("vTOM configuration is not supported"))
                }
            }
            // DEPOSIT_MEM / WITHDRAW_MEM: this SVSM never asks for memory.
            _ => Err(SvsmError::UnsupportedCall { protocol: 0, call }),
        }
    }

    fn remap_ca(&mut self, mem: &mut dyn GuestMemory, gpa: u64) -> Result<(), SvsmError> {
        if gpa & 0xfff != 0 {
            return Err(SvsmError::InvalidParameter("calling area must be page aligned"));
        }
        self.check_guest_page(mem, gpa)?;
        mem.write(gpa, &[0u8; 4096])?;
        self.caa = gpa;
        Ok(())
    }

    /// Processes a PVALIDATE list from `next` onwards, writing `next` back after the last handled entry.
    fn pvalidate_list(&mut self, mem: &mut dyn GuestMemory, gpa: u64) -> Result<(), SvsmError> {
        if gpa & 7 != 0 {
            return Err(SvsmError::InvalidParameter("PVALIDATE list must be 8-byte aligned"));
        }
        self.check_guest_range(mem, gpa, 8)?;
        // The header's reserved word is deliberately not checked: Linux never clears it, and it holds
        // whatever the previous call left in the calling-area buffer (e.g. half an attestation gPA).
        let header = PvalidateListHeader::decode(&read_array::<8>(mem, gpa)?);
        let num = usize::from(header.num_entries);
        if num == 0 {
            return Err(SvsmError::InvalidParameter("PVALIDATE list has no entries"));
        }
        let room = 0x1000 - (gpa & 0xfff) as usize;
        if 8 + num * 8 > room {
            return Err(SvsmError::InvalidParameter("PVALIDATE list crosses a page boundary"));
        }
        if header.next >= header.num_entries {
            return Err(SvsmError::InvalidParameter("PVALIDATE next index is not below num_entries"));
        }
        let entries = read_vec(mem, gpa + 8, num * 8)?;
        let mut index = header.next;
        let mut result = Ok(());
        for chunk in entries.chunks_exact(8).skip(usize::from(header.next)) {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(chunk);
            if let Err(err) = self.pvalidate_entry(mem, u64::from_le_bytes(raw)) {
                result = Err(err);
                break;
            }
            index += 1;
        }
        mem.write(gpa + 2, &index.to_le_bytes())?;
        result
    }

    fn pvalidate_entry(&mut self, mem: &dyn GuestMemory, entry: u64) -> Result<(), SvsmError> {
        if entry & pvalidate_entry::RESERVED_MASK != 0 {
            return Err(SvsmError::InvalidParameter("PVALIDATE entry reserved bits set"));
        }
        let size = match entry & pvalidate_entry::SIZE_MASK {
            0 => PageSize::Size4K,
            1 => PageSize::Size2M,
            _ => return Err(SvsmError::InvalidParameter("PVALIDATE entry page size is not 4K or 2M")),
        };
        let page = entry & pvalidate_entry::GFN_MASK;
        if page & (size.bytes() - 1) != 0 {
            return Err(SvsmError::InvalidParameter("2M PVALIDATE entry is not 2M aligned"));
        }
        self.check_guest_range(mem, page, size.bytes())?;
        let validate = entry & pvalidate_entry::ACTION_VALIDATE != 0;
        let ignore_cf = entry & pvalidate_entry::IGNORE_CF != 0;
        match self.pages.pvalidate(page, size, validate) {
            Ok(()) => Ok(()),
            Err(PvalidateFailure::Unchanged) if ignore_cf => Ok(()),
            Err(PvalidateFailure::Unchanged) => Err(SvsmError::Pvalidate(
                SVSM_PVALIDATE_FAIL_UNCHANGED - crate::error::SVSM_ERR_PROTOCOL_BASE,
            )),
            Err(PvalidateFailure::Hardware(rc)) => Err(SvsmError::Pvalidate(rc)),
        }
    }

    fn create_vcpu(&mut self, mem: &mut dyn GuestMemory, regs: &Registers) -> Result<(), SvsmError> {
        let request = VcpuRequest { vmsa_gpa: regs.rcx, caa_gpa: regs.rdx, apic_id: regs.r8 as u32 };
        self.check_guest_page(mem, request.vmsa_gpa)?;
        self.check_guest_page(mem, request.caa_gpa)?;
        if request.vmsa_gpa == request.caa_gpa {
            return Err(SvsmError::InvalidAddress { gpa: request.caa_gpa, reason: "VMSA and CA overlap" });
        }
        let in_use =
            self.vcpu_table.values().any(|v| {
                [v.vmsa_gpa, v.caa_gpa].iter().any(|p| *p == request.vmsa_gpa || *p == request.caa_gpa)
            }) || request.vmsa_gpa == self.caa;
        if in_use {
            return Err(SvsmError::InvalidAddress {
                gpa: request.vmsa_gpa,
                reason: "page already in use by a vCPU",
            });
        }
        if !self.vcpus.apic_id_exists(request.apic_id) {
            return Err(SvsmError::InvalidParameter("unknown APIC ID"));
        }
        // The guest loses write access first (VcpuPlatform contract): the copy read next is then exactly the
        // page the hardware will run, whatever other guest vCPUs do meanwhile.
        self.vcpus.claim_vmsa_page(request.vmsa_gpa)?;
        let created = self.check_vmsa_and_create(mem, request);
        if let Err(err) = created {
            if let Err(release) = self.vcpus.release_vmsa_page(request.vmsa_gpa) {
                tracing::warn!(gpa = request.vmsa_gpa, %release, "could not give a refused VMSA page back");
            }
            return Err(err);
        }
        self.vcpu_table.insert(request.vmsa_gpa, request);
        Ok(())
    }

    /// With the page claimed: one copy of the VMSA, every check on that copy, then creation.
    fn check_vmsa_and_create(
        &mut self,
        mem: &dyn GuestMemory,
        request: VcpuRequest,
    ) -> Result<(), SvsmError> {
        let page = read_array::<4096>(mem, request.vmsa_gpa)?;
        let vmpl = page[vmsa::VMPL];
        let mut w = [0u8; 8];
        w.copy_from_slice(&page[vmsa::EFER..vmsa::EFER + 8]);
        let efer = u64::from_le_bytes(w);
        w.copy_from_slice(&page[vmsa::SEV_FEATURES..vmsa::SEV_FEATURES + 8]);
        let sev_features = u64::from_le_bytes(w);
        if vmpl != self.vcpus.guest_vmpl() {
            return Err(SvsmError::InvalidParameter("VMSA VMPL differs from the guest's VMPL"));
        }
        if efer & vmsa::EFER_SVME == 0 {
            return Err(SvsmError::InvalidParameter("VMSA EFER.SVME is clear"));
        }
        if sev_features != self.vcpus.caller_sev_features() {
            return Err(SvsmError::InvalidParameter("VMSA SEV_FEATURES differ from the caller's"));
        }
        self.vcpus.create_vcpu(request)
    }

    fn delete_vcpu(&mut self, vmsa_gpa: u64) -> Result<(), SvsmError> {
        if !self.vcpu_table.contains_key(&vmsa_gpa) {
            return Err(SvsmError::InvalidParameter("not a VMSA created by CREATE_VCPU"));
        }
        self.vcpus.delete_vcpu(vmsa_gpa)?;
        self.vcpu_table.remove(&vmsa_gpa);
        Ok(())
    }
}
