//! vTPM protocol (protocol 2): SVSM_VTPM_QUERY and SVSM_VTPM_CMD carrying ms-tpm platform commands in a
//! 4 KiB buffer (only TPM_SEND_COMMAND is offered). The page itself is parsed and written by
//! `svsm_vtpm::svsm_page`, the one handler of its layout.

use crate::api::GuestMemory;
use crate::dispatch::{Registers, Svsm};
use crate::error::{SvsmError, VtpmError};
use crate::memory::read_array;
use svsm_vtpm::FrameError;
use svsm_vtpm::svsm_page::{self, PageError};

/// SVSM_VTPM_QUERY.
pub const VTPM_QUERY: u32 = 0;
/// SVSM_VTPM_CMD.
pub const VTPM_CMD: u32 = 1;
/// ms-tpm platform command TPM_SEND_COMMAND.
pub use svsm_vtpm::svsm_page::SEND_COMMAND as TPM_SEND_COMMAND;
/// The response sent instead of one larger than [`MAX_TPM_RESPONSE`]: TPM_ST_NO_SESSIONS, 10 bytes,
/// TPM_RC_SIZE (0x095).
pub const TPM_RC_SIZE_RESPONSE: [u8; 10] = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0x95];
/// TPM2_ChangeEPS: replaces the endorsement primary seed (and so the EK).
pub const TPM_CC_CHANGE_EPS: u32 = svsm_vtpm::marshal::cc::CHANGE_EPS;
/// Largest TPM command that fits after the 9-byte request header.
pub use svsm_vtpm::svsm_page::MAX_COMMAND as MAX_TPM_COMMAND;
/// Largest TPM response that fits after the 4-byte response header.
pub use svsm_vtpm::svsm_page::MAX_RESPONSE as MAX_TPM_RESPONSE;
/// Size of the request/response buffer.
pub use svsm_vtpm::svsm_page::PAGE_SIZE as VTPM_BUFFER_SIZE;

/// The SVSM error for a page the vTPM page parser (`svsm_vtpm::svsm_page`, the one parser of this page)
/// refused.
fn page_error(e: PageError) -> SvsmError {
    match e {
        PageError::UnsupportedCall(call) => SvsmError::UnsupportedCall { protocol: 2, call },
        PageError::InvalidParameter(FrameError::UnknownCommand(_)) => {
            SvsmError::InvalidParameter("unknown vTPM platform command")
        }
        PageError::InvalidParameter(FrameError::InvalidField { .. }) => {
            SvsmError::InvalidParameter("locality must be 0")
        }
        PageError::InvalidParameter(FrameError::Oversize { .. }) => {
            SvsmError::InvalidParameter("TPM command larger than 4087 bytes")
        }
        PageError::InvalidParameter(FrameError::Undersize { .. }) => {
            SvsmError::InvalidParameter("TPM command shorter than its 10-byte header")
        }
        PageError::InvalidParameter(_) => SvsmError::InvalidParameter("bad size"),
        PageError::InvalidRequest(_) => SvsmError::InvalidRequest("the vTPM cannot serve requests"),
        PageError::ResponseTooLarge(_) => SvsmError::InvalidRequest("TPM response larger than the buffer"),
    }
}

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
                let request = svsm_page::parse_request(&buf[..]).map_err(page_error)?;
                let command = request.command;
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
                let mut page = [0u8; VTPM_BUFFER_SIZE];
                svsm_page::write_response(&mut page, &response).map_err(page_error)?;
                // Only the size and the response go back, as before: the rest of the guest's buffer is left
                // as the guest wrote it.
                mem.write(gpa, &page[..svsm_page::RESPONSE_HEADER + response.len()])?;
                Ok(())
            }
            _ => Err(SvsmError::UnsupportedCall { protocol: 2, call }),
        }
    }
}
