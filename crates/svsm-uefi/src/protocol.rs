//! SVSM protocol 4 (`SVSM_UEFI_MM_PROTOCOL`) as COCONUT-SVSM defines it, registered with the
//! `svsm-protocol` dispatcher through [`svsm_protocol::ProtocolHandler`].
//!
//! One call, `SVSM_UEFI_MM_REQUEST` (1): RCX = gPA of a buffer holding an `EFI_MM_COMMUNICATE_HEADER` and
//! its message, RDX = the buffer size. Checks, in order, each with its SVSM code:
//!
//! | condition | RAX |
//! |---|---|
//! | any call but 1 | UNSUPPORTED_CALL |
//! | RCX = 0, RDX < 24, RDX > 256 KiB | INVALID_PARAMETER |
//! | RCX not 4 KiB aligned, buffer not (all) guest memory or overlapping the SVSM | INVALID_ADDRESS |
//! | `MessageLength` > RDX − 24 | INVALID_PARAMETER |
//! | the service stopped after a failed write | INVALID_REQUEST |
//!
//! Then the header and message are copied in once, handled, and the reply is copied out at gPA + 24 (the
//! header is not rewritten). The UEFI status is in the reply's `ReturnStatus`, never in RAX.

use alloc::vec::Vec;

use svsm_protocol::{CallContext, GuestMemory, Guid, ProtocolHandler, Registers, SvsmError};

use crate::api::MmService;
use crate::mm::MM_HEADER_SIZE;

/// `SVSM_UEFI_MM_PROTOCOL`.
pub const PROTOCOL_UEFI_MM: u32 = 4;
/// `SVSM_UEFI_MM_REQUEST`.
pub const UEFI_MM_REQUEST: u32 = 1;
/// Largest buffer accepted (`UEFI_MM_BUFFER_LIMIT`; edk2 passes 64 KiB).
pub const UEFI_MM_BUFFER_LIMIT: u64 = 256 * 1024;
/// The UEFI variable service's GUID in the services manifest.
pub const UEFI_SERVICE_GUID: Guid =
    Guid::from_fields(0xa4453a59, 0x9e1b, 0x4787, [0xa0, 0x33, 0x19, 0x86, 0xd6, 0xad, 0xbe, 0x55]);
/// Manifest flag: non-volatile variables persist.
pub const MANIFEST_PERSISTENT_NV_VARS: u32 = 1 << 0;
/// Manifest flag: Secure Boot keys are enrolled (a PK exists).
pub const MANIFEST_SECUREBOOT_ENABLED: u32 = 1 << 1;
/// Manifest flag: db updates are accepted (authenticated writes verified); set by the verifying policy.
pub const MANIFEST_SECUREBOOT_DB_UPDATE: u32 = 1 << 2;

/// The manifest body: `version: u32 = 0`, `flags: u32`.
pub fn manifest_body(flags: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out
}

/// Protocol 4 in front of an [`MmService`].
#[derive(Debug)]
pub struct UefiProtocol<M: MmService> {
    service: M,
    extra_flags: u32,
}

impl<M: MmService> UefiProtocol<M> {
    /// Serves `service`.
    pub fn new(service: M) -> Self {
        UefiProtocol { service, extra_flags: 0 }
    }

    /// Adds manifest flags the service itself cannot know (e.g. [`MANIFEST_SECUREBOOT_DB_UPDATE`] when a
    /// verifying policy is installed).
    pub fn with_manifest_flags(mut self, flags: u32) -> Self {
        self.extra_flags |= flags;
        self
    }

    /// The service behind the protocol.
    pub fn service(&self) -> &M {
        &self.service
    }

    /// The manifest flags now.
    pub fn manifest_flags(&self) -> u32 {
        let mut flags = self.extra_flags;
        if self.service.persistent() {
            flags |= MANIFEST_PERSISTENT_NV_VARS;
        }
        if self.service.secure_boot_enabled() {
            flags |= MANIFEST_SECUREBOOT_ENABLED;
        }
        flags
    }

    fn mm_request(
        &mut self,
        ctx: &CallContext,
        mem: &mut dyn GuestMemory,
        regs: &Registers,
    ) -> Result<(), SvsmError> {
        let (gpa, size) = (regs.rcx, regs.rdx);
        if gpa == 0 {
            return Err(SvsmError::InvalidParameter("UEFI MM buffer address is null"));
        }
        if size < MM_HEADER_SIZE as u64 || size > UEFI_MM_BUFFER_LIMIT {
            return Err(SvsmError::InvalidParameter("UEFI MM buffer size outside 24 bytes..256 KiB"));
        }
        if gpa & 0xfff != 0 {
            return Err(SvsmError::InvalidAddress { gpa, reason: "UEFI MM buffer is not 4 KiB aligned" });
        }
        ctx.check_guest_range(mem, gpa, size)?;
        let mut header = [0u8; MM_HEADER_SIZE];
        mem.read(gpa, &mut header)?;
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&header[..16]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&header[16..24]);
        let message_len = u64::from_le_bytes(len);
        if message_len > size - MM_HEADER_SIZE as u64 {
            return Err(SvsmError::InvalidParameter("MessageLength exceeds the buffer"));
        }
        let message_len =
            usize::try_from(message_len).map_err(|_| SvsmError::InvalidParameter("MessageLength"))?;
        let mut message = alloc::vec![0u8; message_len];
        mem.read(gpa + MM_HEADER_SIZE as u64, &mut message)?;
        let reply = self.service.communicate(&Guid(guid), &message).map_err(|err| {
            tracing::error!(%err, "UEFI MM request refused");
            SvsmError::InvalidRequest("the UEFI variable service stopped after a failed write")
        })?;
        if reply.len() > message_len {
            return Err(SvsmError::InvalidRequest("UEFI MM reply larger than the message"));
        }
        mem.write(gpa + MM_HEADER_SIZE as u64, &reply)?;
        Ok(())
    }
}

impl<M: MmService + Send> ProtocolHandler for UefiProtocol<M> {
    fn protocol(&self) -> u32 {
        PROTOCOL_UEFI_MM
    }

    fn versions(&self) -> (u32, u32) {
        (1, 1)
    }

    fn handle_call(
        &mut self,
        ctx: &CallContext,
        mem: &mut dyn GuestMemory,
        regs: &mut Registers,
        call: u32,
    ) -> Result<(), SvsmError> {
        match call {
            UEFI_MM_REQUEST => self.mm_request(ctx, mem, regs),
            _ => Err(SvsmError::UnsupportedCall { protocol: PROTOCOL_UEFI_MM, call }),
        }
    }

    fn manifest_entry(&mut self) -> Option<(Guid, Vec<u8>)> {
        Some((UEFI_SERVICE_GUID, manifest_body(self.manifest_flags())))
    }
}
