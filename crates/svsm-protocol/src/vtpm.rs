//! vTPM protocol (protocol 2): SVSM_VTPM_QUERY and SVSM_VTPM_CMD carrying ms-tpm platform commands in a
//! 4 KiB buffer (only TPM_SEND_COMMAND is offered).

use crate::api::GuestMemory;
use crate::dispatch::{Registers, Svsm};
use crate::error::{SvsmError, VtpmError};
use crate::memory::read_array;

/// SVSM_VTPM_QUERY.
pub const VTPM_QUERY: u32 = 0;
/// SVSM_VTPM_CMD.
pub const VTPM_CMD: u32 = 1;
/// ms-tpm platform command TPM_SEND_COMMAND.
pub const TPM_SEND_COMMAND: u32 = 8;
/// The response sent instead of one larger than [`MAX_TPM_RESPONSE`]: TPM_ST_NO_SESSIONS, 10 bytes,
/// TPM_RC_SIZE (0x095).
pub const TPM_RC_SIZE_RESPONSE: [u8; 10] = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0x95];
/// TPM2_ChangeEPS: replaces the endorsement primary seed (and so the EK).
pub const TPM_CC_CHANGE_EPS: u32 = 0x0000_0124;
/// Size of the request/response buffer.
pub const VTPM_BUFFER_SIZE: usize = 4096;
/// Largest TPM command that fits after the 9-byte request header.
pub const MAX_TPM_COMMAND: usize = VTPM_BUFFER_SIZE - 9;
/// Largest TPM response that fits after the 4-byte response header.
pub const MAX_TPM_RESPONSE: usize = VTPM_BUFFER_SIZE - 4;

/// ms-tpm platform command numbers that exist but that this SVSM does not offer (answered UNSUPPORTED_CALL;
/// any other number is INVALID_PARAMETER).
const KNOWN_PLATFORM_COMMANDS: &[u32] =
    &[1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 25, 30];

impl Svsm {
    pub(crate) fn vtpm_call(
        &mut self,
        mem: &mut dyn GuestMemory,
        regs: &mut Registers,
        call: u32,
    ) -> Result<(), SvsmError> {
        let vtpm = self.vtpm.as_mut().ok_or(SvsmError::UnsupportedProtocol(2))?;
        match call {
            VTPM_QUERY => {
                regs.rcx = vtpm.supported_platform_commands();
                regs.rdx = 0;
                Ok(())
            }
            VTPM_CMD => {
                let gpa = regs.rcx;
                if gpa == 0 {
                    return Err(SvsmError::InvalidParameter("vTPM buffer address is null"));
                }
                self.check_guest_range(mem, gpa, VTPM_BUFFER_SIZE as u64)?;
                // One copy of the whole buffer: the command size is read from it, never re-fetched.
                let buf = read_array::<VTPM_BUFFER_SIZE>(mem, gpa)?;
                let platform_command = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if platform_command != TPM_SEND_COMMAND {
                    return Err(if KNOWN_PLATFORM_COMMANDS.contains(&platform_command) {
                        SvsmError::UnsupportedCall { protocol: 2, call: platform_command }
                    } else {
                        SvsmError::InvalidParameter("unknown vTPM platform command")
                    });
                }
                if buf[4] != 0 {
                    return Err(SvsmError::InvalidParameter("locality must be 0"));
                }
                let size = u32::from_le_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
                if size > MAX_TPM_COMMAND {
                    return Err(SvsmError::InvalidParameter("TPM command larger than 4087 bytes"));
                }
                let command = buf.get(9..9 + size).ok_or(SvsmError::InvalidParameter("bad size"))?;
                let vtpm = self.vtpm.as_mut().ok_or(SvsmError::UnsupportedProtocol(2))?;
                let response = vtpm.send_command(0, command).map_err(|e| match e {
                    VtpmError::NotAvailable => SvsmError::InvalidRequest("the vTPM is not powered on"),
                    VtpmError::CommandTooLarge(_) => SvsmError::InvalidParameter("TPM command too large"),
                    VtpmError::Engine(why) => SvsmError::InvalidRequest(why),
                })?;
                // A new endorsement primary seed means a new EK: drop the cached one (re-derived on the next
                // attestation) whether or not the TPM accepted the command, recreating it is cheap.
                if command.get(6..10) == Some(&TPM_CC_CHANGE_EPS.to_be_bytes()[..]) {
                    self.ek_public = None;
                }
                // The command has run (its NV effects may be durable), so refusing the call would tell the
                // guest nothing true. Answer as a TPM whose response does not fit would: TPM_RC_SIZE.
                let response = if response.len() > MAX_TPM_RESPONSE {
                    tracing::warn!(len = response.len(), "TPM response larger than the 4092-byte buffer");
                    TPM_RC_SIZE_RESPONSE.to_vec()
                } else {
                    response
                };
                let mut out = alloc::vec::Vec::with_capacity(4 + response.len());
                out.extend_from_slice(&(response.len() as u32).to_le_bytes());
                out.extend_from_slice(&response);
                mem.write(gpa, &out)?;
                Ok(())
            }
            _ => Err(SvsmError::UnsupportedCall { protocol: 2, call }),
        }
    }
}
