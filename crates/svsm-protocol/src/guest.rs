//! The guest side of SVSM calls, behaving like the Linux drivers: the calling-area handshake, the
//! attestation resize-and-retry contract of `sev-guest` (configfs-tsm), the `tpm_svsm` command path, and
//! PVALIDATE with the 2M -> 4K fallback. Used by the driver-behaviour tests and host tools; it reaches the
//! SVSM only through a [`SvsmTransport`] (a VMGEXIT), never by calling the dispatcher's internals.

use alloc::vec::Vec;

use crate::api::GuestMemory;
use crate::attest::{ATTEST_SERVICES, ATTEST_SINGLE_SERVICE, ATTEST_SINGLE_SERVICE_EX};
use crate::dispatch::{PROTOCOL_ATTEST, PROTOCOL_CORE, PROTOCOL_VTPM, Registers, call_rax};
use crate::error::{
    SVSM_ERR_BUSY, SVSM_ERR_INCOMPLETE, SVSM_ERR_INVALID_PARAMETER, SVSM_PVALIDATE_FAIL_SIZEMISMATCH,
};
use crate::guid::Guid;
use crate::wire::{
    AttestServicesOp, AttestSingleServiceExOp, AttestSingleServiceOp, CALLING_AREA_BUFFER_OFFSET,
};

/// Linux `SVSM_MAX_RETRIES`.
pub const SVSM_MAX_RETRIES: u32 = 3;

/// How a guest reaches its SVSM: its own memory, and the request to run VMPL0 (VMGEXIT).
pub trait SvsmTransport {
    /// The guest's memory.
    fn memory(&mut self) -> &mut dyn GuestMemory;
    /// Switches to the SVSM with `regs` and returns with the SVSM's registers.
    fn vmgexit(&mut self, regs: &mut Registers);
}

/// Why a guest-side operation failed (what Linux would turn into an errno).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// The SVSM did not clear `call_pending` (Linux: -EINVAL).
    #[error("the SVSM did not service the call")]
    NotServiced,
    /// The SVSM returned this result code.
    #[error("SVSM result code {0:#x}")]
    Svsm(u32),
    /// Guest memory could not be accessed.
    #[error("guest memory access failed")]
    Memory,
    /// The guest ran out of memory for buffers.
    #[error("out of guest memory")]
    NoMemory,
    /// The input is not acceptable (Linux rejects it before calling).
    #[error("invalid input: {0}")]
    Invalid(&'static str),
    /// Resizing did not converge within SVSM_MAX_RETRIES (Linux: -EINVAL).
    #[error("buffers still too small after {0} retries")]
    RetriesExhausted(u32),
}

/// A guest: transport, its calling area, and a page allocator over a free region of its memory.
#[derive(Debug)]
pub struct Guest<T> {
    /// The transport.
    pub transport: T,
    /// gPA of this vCPU's calling area.
    pub caa: u64,
    free_start: u64,
    free_end: u64,
    next: u64,
    /// Calls made (each VMGEXIT), for tests of retry behaviour.
    pub calls: u32,
}

impl<T: SvsmTransport> Guest<T> {
    /// A guest using calling area `caa` and allocating buffers from `[free_start, free_end)` (page aligned).
    pub fn new(transport: T, caa: u64, free_start: u64, free_end: u64) -> Self {
        Guest { transport, caa, free_start, free_end, next: free_start, calls: 0 }
    }

    fn alloc(&mut self, len: usize) -> Result<u64, GuestError> {
        let pages = (len.max(1) as u64).div_ceil(4096);
        let start = self.next;
        let end = start.checked_add(pages * 4096).ok_or(GuestError::NoMemory)?;
        if end > self.free_end {
            return Err(GuestError::NoMemory);
        }
        self.next = end;
        Ok(start)
    }

    fn free_all(&mut self) {
        self.next = self.free_start;
    }

    /// One SVSM call the way Linux makes it: set call_pending, VMGEXIT, xchg the flag back, retry on
    /// INCOMPLETE/BUSY. Returns the registers on success, the code otherwise (registers still updated).
    pub fn call(&mut self, regs: &mut Registers) -> Result<(), GuestError> {
        loop {
            self.transport.memory().write(self.caa, &[1]).map_err(|_| GuestError::Memory)?;
            self.calls += 1;
            self.transport.vmgexit(regs);
            let mut pending = [0u8; 1];
            self.transport.memory().read(self.caa, &mut pending).map_err(|_| GuestError::Memory)?;
            self.transport.memory().write(self.caa, &[0]).map_err(|_| GuestError::Memory)?;
            if pending[0] != 0 {
                return Err(GuestError::NotServiced);
            }
            match regs.rax as u32 {
                0 => return Ok(()),
                SVSM_ERR_INCOMPLETE | SVSM_ERR_BUSY => continue,
                code => return Err(GuestError::Svsm(code)),
            }
        }
    }

    /// SVSM_CORE_QUERY_PROTOCOL: `(max, min)` or `None` if unsupported.
    pub fn query_protocol(&mut self, protocol: u32, version: u32) -> Result<Option<(u32, u32)>, GuestError> {
        let mut regs = Registers {
            rax: call_rax(PROTOCOL_CORE, 6),
            rcx: (u64::from(protocol) << 32) | u64::from(version),
            ..Default::default()
        };
        self.call(&mut regs)?;
        Ok(if regs.rcx == 0 { None } else { Some(((regs.rcx >> 32) as u32, regs.rcx as u32)) })
    }

    /// configfs-tsm with service_provider=svsm: ATTEST_SERVICES for a null GUID, else ATTEST_SINGLE_SERVICE
    /// (or ATTEST_SINGLE_SERVICE_EX with a selector). Follows `sev_svsm_report_new`: 4K/4K/16K buffers,
    /// RDX = R8 = -1 preset, a register that changed is a returned size, resize to PAGE_ALIGN and retry on
    /// INVALID_PARAMETER up to SVSM_MAX_RETRIES times, and export exactly the returned sizes on success.
    pub fn attest(
        &mut self,
        nonce: &[u8],
        service: Guid,
        manifest_version: u32,
        selector: Option<&[u8]>,
    ) -> Result<AttestOutput, GuestError> {
        if nonce.len() != 64 {
            return Err(GuestError::Invalid("inblob must be exactly 64 bytes"));
        }
        let (mut rep_len, mut man_len, mut certs_len) = (4096usize, 4096usize, 16384usize);
        let mut retries = 0;
        loop {
            self.free_all();
            let nonce_gpa = self.alloc(64)?;
            let rep = self.alloc(rep_len)?;
            let man = self.alloc(man_len)?;
            let certs = self.alloc(certs_len)?;
            let selector_gpa = match selector {
                Some(s) => {
                    let gpa = self.alloc(s.len())?;
                    self.transport.memory().write(gpa, s).map_err(|_| GuestError::Memory)?;
                    gpa
                }
                None => 0,
            };
            self.transport.memory().write(nonce_gpa, nonce).map_err(|_| GuestError::Memory)?;
            let base = AttestServicesOp {
                report_gpa: rep,
                report_size: rep_len as u32,
                nonce_gpa,
                nonce_size: 64,
                manifest_gpa: man,
                manifest_size: man_len as u32,
                certificates_gpa: certs,
                certificates_size: certs_len as u32,
                ..Default::default()
            };
            let single =
                AttestSingleServiceOp { base, service_guid: service.0, manifest_version, reserved: 0 };
            let op_gpa = self.caa + CALLING_AREA_BUFFER_OFFSET as u64;
            let (call, bytes): (u32, Vec<u8>) = if service == Guid::NULL {
                (ATTEST_SERVICES, base.encode().to_vec())
            } else if let Some(s) = selector {
                let ex = AttestSingleServiceExOp {
                    single,
                    selector_gpa,
                    selector_size: s.len() as u32,
                    reserved: 0,
                };
                (ATTEST_SINGLE_SERVICE_EX, ex.encode().to_vec())
            } else {
                (ATTEST_SINGLE_SERVICE, single.encode().to_vec())
            };
            self.transport.memory().write(op_gpa, &bytes).map_err(|_| GuestError::Memory)?;
            let mut regs = Registers {
                rax: call_rax(PROTOCOL_ATTEST, call),
                rcx: op_gpa,
                rdx: u64::MAX,
                r8: u64::MAX,
                r9: 0,
            };
            let result = self.call(&mut regs);
            // update_attest_input(): a register that changed carries a length (truncated to u32 as in Linux).
            let man_ret = if regs.rcx != op_gpa { regs.rcx as u32 as usize } else { man_len };
            let certs_ret = if regs.rdx != u64::MAX { regs.rdx as u32 as usize } else { certs_len };
            let rep_ret = if regs.r8 != u64::MAX { regs.r8 as u32 as usize } else { rep_len };
            match result {
                Ok(()) => {
                    let mut out = AttestOutput { retries, ..Default::default() };
                    let mem = self.transport.memory();
                    out.report = alloc::vec![0; rep_ret.min(rep_len)];
                    mem.read(rep, &mut out.report).map_err(|_| GuestError::Memory)?;
                    out.manifest = alloc::vec![0; man_ret.min(man_len)];
                    mem.read(man, &mut out.manifest).map_err(|_| GuestError::Memory)?;
                    out.certificates = alloc::vec![0; certs_ret.min(certs_len)];
                    mem.read(certs, &mut out.certificates).map_err(|_| GuestError::Memory)?;
                    return Ok(out);
                }
                Err(GuestError::Svsm(SVSM_ERR_INVALID_PARAMETER)) => {
                    let mut again = false;
                    if rep_ret > rep_len {
                        rep_len = rep_ret.div_ceil(4096) * 4096;
                        again = true;
                    }
                    if man_ret > man_len {
                        man_len = man_ret.div_ceil(4096) * 4096;
                        again = true;
                    }
                    if certs_ret > certs_len {
                        certs_len = certs_ret.div_ceil(4096) * 4096;
                        again = true;
                    }
                    if again && retries < SVSM_MAX_RETRIES {
                        retries += 1;
                        continue;
                    }
                    return Err(if again {
                        GuestError::RetriesExhausted(retries)
                    } else {
                        GuestError::Svsm(SVSM_ERR_INVALID_PARAMETER)
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `tpm_svsm` probe: SVSM_VTPM_QUERY must succeed with bit 8 (TPM_SEND_COMMAND) set.
    pub fn vtpm_probe(&mut self) -> Result<bool, GuestError> {
        let mut regs = Registers { rax: call_rax(PROTOCOL_VTPM, 0), ..Default::default() };
        self.call(&mut regs)?;
        Ok(regs.rcx & (1 << 8) != 0)
    }

    /// `tpm_svsm` send/recv: TPM_SEND_COMMAND in a 4 KiB buffer, response size checked against 4092.
    pub fn tpm_command(&mut self, buffer_gpa: u64, command: &[u8]) -> Result<Vec<u8>, GuestError> {
        if command.len() > 4096 - 9 {
            return Err(GuestError::Invalid("TPM command longer than 4087 bytes"));
        }
        let mut req = Vec::with_capacity(9 + command.len());
        req.extend_from_slice(&8u32.to_le_bytes());
        req.push(0);
        req.extend_from_slice(&(command.len() as u32).to_le_bytes());
        req.extend_from_slice(command);
        self.transport.memory().write(buffer_gpa, &req).map_err(|_| GuestError::Memory)?;
        let mut regs = Registers { rax: call_rax(PROTOCOL_VTPM, 1), rcx: buffer_gpa, ..Default::default() };
        self.call(&mut regs)?;
        let mut len = [0u8; 4];
        self.transport.memory().read(buffer_gpa, &mut len).map_err(|_| GuestError::Memory)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > 4096 - 4 {
            return Err(GuestError::Invalid("response larger than 4092 bytes"));
        }
        let mut resp = alloc::vec![0u8; len];
        self.transport.memory().read(buffer_gpa + 4, &mut resp).map_err(|_| GuestError::Memory)?;
        Ok(resp)
    }

    /// PVALIDATE a list of (gPA, 2M?) entries through the calling area, like Linux `svsm_pval_pages`: on
    /// FAIL_SIZEMISMATCH for a 2M entry, validate that entry as 512 4K pages and continue after it.
    pub fn pvalidate(&mut self, pages: &[(u64, bool)], validate: bool) -> Result<(), GuestError> {
        let list = self.caa + CALLING_AREA_BUFFER_OFFSET as u64;
        for chunk in pages.chunks(crate::wire::PVALIDATE_MAX_ENTRIES_IN_CA) {
            let mut start = 0usize;
            while start < chunk.len() {
                self.write_pvalidate_list(list, &chunk[start..], validate)?;
                let mut regs = Registers { rax: call_rax(PROTOCOL_CORE, 1), rcx: list, ..Default::default() };
                match self.call(&mut regs) {
                    Ok(()) => break,
                    Err(GuestError::Svsm(SVSM_PVALIDATE_FAIL_SIZEMISMATCH)) => {
                        let mut next = [0u8; 2];
                        self.transport.memory().read(list + 2, &mut next).map_err(|_| GuestError::Memory)?;
                        let failed = start + usize::from(u16::from_le_bytes(next));
                        let (gpa, is_2m) = *chunk.get(failed).ok_or(GuestError::Invalid("bad next index"))?;
                        if !is_2m {
                            return Err(GuestError::Svsm(SVSM_PVALIDATE_FAIL_SIZEMISMATCH));
                        }
                        let small: Vec<(u64, bool)> = (0..512).map(|i| (gpa + i * 4096, false)).collect();
                        for part in small.chunks(crate::wire::PVALIDATE_MAX_ENTRIES_IN_CA) {
                            self.write_pvalidate_list(list, part, validate)?;
                            let mut regs = Registers {
                                rax: call_rax(PROTOCOL_CORE, 1),
                                rcx: list,
                                ..Default::default()
                            };
                            self.call(&mut regs)?;
                        }
                        start = failed + 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn write_pvalidate_list(
        &mut self,
        list: u64,
        entries: &[(u64, bool)],
        validate: bool,
    ) -> Result<(), GuestError> {
        let n = entries.len().min(crate::wire::PVALIDATE_MAX_ENTRIES_IN_CA);
        let mut bytes = Vec::with_capacity(8 + n * 8);
        // Like Linux: num_entries and cur_index only; the reserved word keeps whatever was there.
        let mut reserved = [0u8; 4];
        self.transport.memory().read(list + 4, &mut reserved).map_err(|_| GuestError::Memory)?;
        bytes.extend_from_slice(&(n as u16).to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(&reserved);
        for (gpa, is_2m) in entries.iter().take(n) {
            bytes.extend_from_slice(
                &crate::wire::pvalidate_entry::encode(*gpa, *is_2m, validate, false).to_le_bytes(),
            );
        }
        self.transport.memory().write(list, &bytes).map_err(|_| GuestError::Memory)
    }
}

/// What configfs-tsm would export: outblob, manifestblob, auxblob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestOutput {
    /// The report (outblob).
    pub report: Vec<u8>,
    /// The manifest (manifestblob).
    pub manifest: Vec<u8>,
    /// The certificate table (auxblob; empty if none).
    pub certificates: Vec<u8>,
    /// How many times the request was retried with larger buffers.
    pub retries: u32,
}

/// A transport that calls an in-process [`crate::Svsm`] directly on a [`crate::VecGuestMemory`].
#[derive(Debug)]
pub struct DirectTransport {
    /// The SVSM.
    pub svsm: crate::Svsm,
    /// The guest's memory.
    pub memory: crate::VecGuestMemory,
}

impl SvsmTransport for DirectTransport {
    fn memory(&mut self) -> &mut dyn GuestMemory {
        &mut self.memory
    }
    fn vmgexit(&mut self, regs: &mut Registers) {
        self.svsm.service_vmgexit(&mut self.memory, regs);
    }
}
