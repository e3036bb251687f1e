//! The SVSM call dispatcher: decodes RAX, routes to the protocol, and writes the result registers.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::api::{GuestMemory, PageStatePlatform, SnpPlatform, VcpuPlatform, VcpuRequest, VtpmService};
use crate::error::{SVSM_SUCCESS, SvsmError};
use crate::registry::{CallContext, ProtocolHandler};
use crate::wire::CALLING_AREA_SIZE;

/// Protocol number of the core protocol.
pub const PROTOCOL_CORE: u32 = 0;
/// Protocol number of the attestation protocol.
pub const PROTOCOL_ATTEST: u32 = 1;
/// Protocol number of the vTPM protocol.
pub const PROTOCOL_VTPM: u32 = 2;

/// Builds RAX for a call: `(protocol << 32) | call`.
pub const fn call_rax(protocol: u32, call: u32) -> u64 {
    ((protocol as u64) << 32) | call as u64
}

/// The registers an SVSM call reads and writes (RAX in: protocol/call; RAX out: result code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registers {
    /// In: `(protocol << 32) | call`; out: result code (low 32 bits).
    pub rax: u64,
    /// Parameter / result.
    pub rcx: u64,
    /// Parameter / result.
    pub rdx: u64,
    /// Parameter / result.
    pub r8: u64,
    /// Parameter (never written).
    pub r9: u64,
}

/// Where the SVSM itself lives; guest requests touching it are refused with INVALID_ADDRESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvsmConfig {
    /// gPA of SVSM memory.
    pub svsm_base: u64,
    /// Size of SVSM memory.
    pub svsm_size: u64,
    /// gPA of the BSP's initial calling area.
    pub initial_caa: u64,
}

/// One SVSM instance: protocol state plus the platform services behind the calls.
pub struct Svsm {
    pub(crate) config: SvsmConfig,
    pub(crate) pages: Box<dyn PageStatePlatform + Send>,
    pub(crate) vcpus: Box<dyn VcpuPlatform + Send>,
    pub(crate) vtpm: Option<Box<dyn VtpmService + Send>>,
    pub(crate) snp: Box<dyn SnpPlatform + Send>,
    pub(crate) caa: u64,
    pub(crate) vcpu_table: BTreeMap<u64, VcpuRequest>,
    pub(crate) ek_public: Option<Vec<u8>>,
    /// Protocols registered with [`Svsm::register_protocol`], by protocol number.
    pub(crate) registered: BTreeMap<u32, Box<dyn ProtocolHandler + Send>>,
}

impl core::fmt::Debug for Svsm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Svsm")
            .field("config", &self.config)
            .field("caa", &self.caa)
            .field("vtpm", &self.vtpm.is_some())
            .field("vcpus", &self.vcpu_table.len())
            .field("registered", &self.registered.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Svsm {
    /// An SVSM serving the given platform; `vtpm = None` leaves the vTPM protocol and service unadvertised.
    pub fn new(
        config: SvsmConfig,
        pages: Box<dyn PageStatePlatform + Send>,
        vcpus: Box<dyn VcpuPlatform + Send>,
        vtpm: Option<Box<dyn VtpmService + Send>>,
        snp: Box<dyn SnpPlatform + Send>,
    ) -> Self {
        Svsm {
            config,
            pages,
            vcpus,
            vtpm,
            snp,
            caa: config.initial_caa,
            vcpu_table: BTreeMap::new(),
            ek_public: None,
            registered: BTreeMap::new(),
        }
    }

    /// Adds a protocol served outside this crate (e.g. the UEFI variable protocol, 4). Refuses a number that
    /// is built in or already registered, so no protocol is silently replaced.
    pub fn register_protocol(&mut self, handler: Box<dyn ProtocolHandler + Send>) -> Result<(), SvsmError> {
        let protocol = handler.protocol();
        if protocol <= PROTOCOL_VTPM || self.registered.contains_key(&protocol) {
            return Err(SvsmError::InvalidRequest("protocol number already served"));
        }
        self.registered.insert(protocol, handler);
        Ok(())
    }

    /// Builder form of [`Svsm::register_protocol`]: `Svsm::new(..).with_protocol(handler)?`.
    pub fn with_protocol(mut self, handler: Box<dyn ProtocolHandler + Send>) -> Result<Self, SvsmError> {
        self.register_protocol(handler)?;
        Ok(self)
    }

    /// The manifest entries of the registered protocols, in protocol-number order.
    pub(crate) fn registered_manifest_entries(&mut self) -> Vec<(crate::guid::Guid, Vec<u8>)> {
        self.registered.values_mut().filter_map(|h| h.manifest_entry()).collect()
    }

    /// gPA of the current calling area (changed by REMAP_CA).
    pub fn calling_area(&self) -> u64 {
        self.caa
    }

    /// Services one VMGEXIT: if the calling area's `call_pending` is 1, runs the call in `regs` and clears the
    /// flag; returns whether a call was serviced. A guest that did not set the flag gets no call run, which
    /// it detects by finding the flag still 1 after `xchg` (Linux: -EINVAL).
    pub fn service_vmgexit(&mut self, mem: &mut dyn GuestMemory, regs: &mut Registers) -> bool {
        let mut pending = [0u8; 1];
        if mem.read(self.caa, &mut pending).is_err() || pending[0] != 1 {
            return false;
        }
        let caa = self.caa;
        self.handle_call(mem, regs);
        // REMAP_CA moves the calling area; the flag belongs to the one the call arrived on.
        let _ = mem.write(caa, &[0]);
        true
    }

    /// Runs the call in `regs` and writes the result code to RAX.
    pub fn handle_call(&mut self, mem: &mut dyn GuestMemory, regs: &mut Registers) {
        let protocol = (regs.rax >> 32) as u32;
        let call = regs.rax as u32;
        let result = match protocol {
            PROTOCOL_CORE => self.core_call(mem, regs, call),
            PROTOCOL_ATTEST => self.attest_call(mem, regs, call),
            PROTOCOL_VTPM if self.vtpm.is_some() => self.vtpm_call(mem, regs, call),
            other => match self.registered.get_mut(&other) {
                Some(handler) => handler.handle_call(&CallContext::new(self.config), mem, regs, call),
                None => Err(SvsmError::UnsupportedProtocol(other)),
            },
        };
        regs.rax = match result {
            Ok(()) => u64::from(SVSM_SUCCESS),
            Err(err) => {
                tracing::debug!(protocol, call, %err, code = err.code(), "SVSM call failed");
                u64::from(err.code())
            }
        };
    }

    /// Versions supported per protocol: (min, max).
    pub fn protocol_versions(&self, protocol: u32) -> Option<(u32, u32)> {
        match protocol {
            PROTOCOL_CORE => Some((1, 1)),
            PROTOCOL_ATTEST => Some((1, 2)),
            PROTOCOL_VTPM if self.vtpm.is_some() => Some((1, 1)),
            other => self.registered.get(&other).map(|h| h.versions()),
        }
    }

    /// Checks that `[gpa, gpa+len)` is guest memory and does not touch SVSM memory.
    pub(crate) fn check_guest_range(
        &self,
        mem: &dyn GuestMemory,
        gpa: u64,
        len: u64,
    ) -> Result<(), SvsmError> {
        check_guest_range(&self.config, mem, gpa, len)
    }

    /// Checks that a gPA names one whole page of guest memory.
    pub(crate) fn check_guest_page(&self, mem: &dyn GuestMemory, gpa: u64) -> Result<(), SvsmError> {
        if gpa & 0xfff != 0 {
            return Err(SvsmError::InvalidAddress { gpa, reason: "not page aligned" });
        }
        self.check_guest_range(mem, gpa, CALLING_AREA_SIZE as u64)
    }
}

/// Checks that `[gpa, gpa+len)` is guest memory and does not touch the SVSM memory `config` names.
pub(crate) fn check_guest_range(
    config: &SvsmConfig,
    mem: &dyn GuestMemory,
    gpa: u64,
    len: u64,
) -> Result<(), SvsmError> {
    let end = gpa.checked_add(len).ok_or(SvsmError::InvalidAddress { gpa, reason: "range wraps" })?;
    if !mem.contains(gpa, len) {
        return Err(SvsmError::InvalidAddress { gpa, reason: "not guest memory" });
    }
    let svsm_end = config.svsm_base.saturating_add(config.svsm_size);
    if len > 0 && gpa < svsm_end && end > config.svsm_base {
        return Err(SvsmError::InvalidAddress { gpa, reason: "overlaps SVSM memory" });
    }
    Ok(())
}
