//! The SVSM vTPM protocol (protocol 2): the request/response page behind `SVSM_VTPM_CMD`.
//!
//! The guest passes the address of a 4 KiB buffer. The protocol layer copies it in once (so the guest cannot
//! change it while we parse), calls [`handle_page`], and copies the page back. Fields of the page are
//! little-endian; the TPM bytes inside are TPM-native big-endian.
//!
//! Request (`TPM_SEND_COMMAND`): `u32 command = 8 | u8 locality | u32 size | size bytes of TPM command`.
//! Response, written over the same page: `u32 size | size bytes of TPM response`.

use alloc::vec::Vec;

use crate::api::TpmEngine;
use crate::error::{FrameError, VtpmError};
use crate::service::Vtpm;

/// Size of the request/response buffer.
pub const PAGE_SIZE: usize = 4096;
/// The only platform command served: TPM_SEND_COMMAND.
pub const SEND_COMMAND: u32 = 8;
/// Offset of the TPM command in a request.
pub const REQUEST_HEADER: usize = 9;
/// Offset of the TPM response in a response.
pub const RESPONSE_HEADER: usize = 4;
/// Largest TPM command a page carries.
pub const MAX_COMMAND: usize = PAGE_SIZE - REQUEST_HEADER;
/// Largest TPM response a page carries.
pub const MAX_RESPONSE: usize = PAGE_SIZE - RESPONSE_HEADER;
/// `SVSM_VTPM_QUERY` answer in RCX: bit n set = platform command n supported (only TPM_SEND_COMMAND).
pub const QUERY_PLATFORM_COMMANDS: u64 = 1 << SEND_COMMAND;
/// `SVSM_VTPM_QUERY` answer in RDX: supported features (none defined).
pub const QUERY_FEATURES: u64 = 0;

/// SVSM result codes this handler produces (58019 chapter 5).
pub mod result {
    /// SVSM_ERR_UNSUPPORTED_CALL.
    pub const UNSUPPORTED_CALL: u64 = 0x8000_0002;
    /// SVSM_ERR_INVALID_PARAMETER.
    pub const INVALID_PARAMETER: u64 = 0x8000_0005;
    /// SVSM_ERR_INVALID_REQUEST.
    pub const INVALID_REQUEST: u64 = 0x8000_0006;
}

/// Platform command numbers of the mssim protocol the spec reuses (signals 1-7 and 9-21, command/response
/// sizes 25, test failure mode 30); any of these other than SEND_COMMAND is "known but unsupported"
/// (UNSUPPORTED_CALL) rather than invalid (INVALID_PARAMETER). The SVSM dispatcher answers from this list.
pub const KNOWN_PLATFORM_COMMANDS: [u32; 22] =
    [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 25, 30];

/// Why a page request failed; each maps to the SVSM result code the guest sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// A platform command that exists but is not served here.
    #[error("platform command {0} is not supported")]
    UnsupportedCall(u32),
    /// A malformed request (unknown command, bad locality, bad size).
    #[error("invalid vTPM request: {0}")]
    InvalidParameter(FrameError),
    /// The vTPM cannot serve requests (powered off or stopped after a persistence failure).
    #[error("the vTPM cannot serve requests: {0}")]
    InvalidRequest(VtpmError),
    /// The TPM response does not fit the page.
    #[error("TPM response of {0} bytes does not fit the page")]
    ResponseTooLarge(usize),
}

impl PageError {
    /// The SVSM result code for RAX.
    pub fn svsm_result(&self) -> u64 {
        match self {
            PageError::UnsupportedCall(_) => result::UNSUPPORTED_CALL,
            PageError::InvalidParameter(_) => result::INVALID_PARAMETER,
            PageError::InvalidRequest(_) | PageError::ResponseTooLarge(_) => result::INVALID_REQUEST,
        }
    }
}

/// A parsed TPM_SEND_COMMAND request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendCommand<'a> {
    /// Locality (always 0: the spec and COCONUT reject others).
    pub locality: u8,
    /// The TPM command bytes.
    pub command: &'a [u8],
}

fn le32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_le_bytes(a))
}

/// Parses a request page (any buffer up to a page; shorter buffers are truncated requests).
pub fn parse_request(page: &[u8]) -> Result<SendCommand<'_>, PageError> {
    let truncated =
        |needed| PageError::InvalidParameter(FrameError::Truncated { needed, available: page.len() });
    let cmd = le32(page, 0).ok_or_else(|| truncated(4))?;
    if cmd != SEND_COMMAND {
        return Err(if KNOWN_PLATFORM_COMMANDS.contains(&cmd) {
            PageError::UnsupportedCall(cmd)
        } else {
            PageError::InvalidParameter(FrameError::UnknownCommand(cmd))
        });
    }
    let locality = *page.get(4).ok_or_else(|| truncated(5))?;
    if locality != 0 {
        return Err(PageError::InvalidParameter(FrameError::InvalidField {
            field: "locality",
            value: u64::from(locality),
        }));
    }
    let size = le32(page, 5).ok_or_else(|| truncated(REQUEST_HEADER))?;
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    if len > MAX_COMMAND {
        return Err(PageError::InvalidParameter(FrameError::Oversize {
            len: u64::from(size),
            max: MAX_COMMAND as u64,
        }));
    }
    if len < crate::marshal::HEADER_SIZE {
        return Err(PageError::InvalidParameter(FrameError::Undersize {
            len: u64::from(size),
            min: crate::marshal::HEADER_SIZE as u64,
        }));
    }
    let end = REQUEST_HEADER.checked_add(len).ok_or_else(|| truncated(usize::MAX))?;
    let command = page.get(REQUEST_HEADER..end).ok_or_else(|| truncated(end))?;
    Ok(SendCommand { locality, command })
}

/// Writes a response into a page: `u32 size (LE) | response`, zeroing the rest so no stale request bytes
/// leak back.
pub fn write_response(page: &mut [u8; PAGE_SIZE], response: &[u8]) -> Result<(), PageError> {
    if response.len() > MAX_RESPONSE {
        return Err(PageError::ResponseTooLarge(response.len()));
    }
    let size = u32::try_from(response.len()).map_err(|_| PageError::ResponseTooLarge(response.len()))?;
    page.fill(0);
    page[..RESPONSE_HEADER].copy_from_slice(&size.to_le_bytes());
    let body = page
        .get_mut(RESPONSE_HEADER..RESPONSE_HEADER + response.len())
        .ok_or(PageError::ResponseTooLarge(response.len()))?;
    body.copy_from_slice(response);
    Ok(())
}

/// Serves one `SVSM_VTPM_CMD` on a page the protocol layer has already copied out of guest memory.
///
/// On success the page holds the response (TPM-level errors are in the TPM response, with SVSM success).
/// On error the page is left unchanged and the error says which SVSM result code to return.
pub fn handle_page<E: TpmEngine>(vtpm: &mut Vtpm<E>, page: &mut [u8; PAGE_SIZE]) -> Result<(), PageError> {
    let request = parse_request(&page[..])?;
    if !vtpm.is_powered() {
        return Err(PageError::InvalidRequest(VtpmError::Engine(crate::EngineError::NotPowered)));
    }
    let command: Vec<u8> = request.command.to_vec();
    let response = vtpm.execute_at(request.locality, &command).map_err(PageError::InvalidRequest)?;
    write_response(page, &response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_with(cmd: u32, locality: u8, size: u32, body: &[u8]) -> [u8; PAGE_SIZE] {
        let mut p = [0u8; PAGE_SIZE];
        p[..4].copy_from_slice(&cmd.to_le_bytes());
        p[4] = locality;
        p[5..9].copy_from_slice(&size.to_le_bytes());
        p[9..9 + body.len()].copy_from_slice(body);
        p
    }

    #[test]
    fn requests_are_validated() {
        let cmd = crate::marshal::cmd::get_random(8).unwrap();
        let p = page_with(8, 0, cmd.len() as u32, &cmd);
        assert_eq!(parse_request(&p).unwrap().command, &cmd[..]);
        assert_eq!(parse_request(&page_with(1, 0, 12, &cmd)).unwrap_err(), PageError::UnsupportedCall(1));
        assert_eq!(
            parse_request(&page_with(99, 0, 12, &cmd)).unwrap_err().svsm_result(),
            result::INVALID_PARAMETER
        );
        assert_eq!(
            parse_request(&page_with(8, 1, 12, &cmd)).unwrap_err().svsm_result(),
            result::INVALID_PARAMETER
        );
        assert!(parse_request(&page_with(8, 0, 4088, &cmd)).is_err());
        assert!(parse_request(&page_with(8, 0, 4087, &cmd)).is_ok());
        assert!(parse_request(&page_with(8, 0, 3, &cmd)).is_err());
        assert!(parse_request(&p[..20]).is_err());
    }

    #[test]
    fn every_platform_command_is_served_known_or_unknown() {
        let cmd = crate::marshal::cmd::get_random(8).unwrap();
        for platform in (0u32..=64).chain([100, 0x8000_0008, u32::MAX]) {
            let page = page_with(platform, 0, cmd.len() as u32, &cmd);
            let got = parse_request(&page);
            match platform {
                8 => assert_eq!(got.unwrap().command, &cmd[..]),
                1..=7 | 9..=21 | 25 | 30 => {
                    assert_eq!(got.unwrap_err(), PageError::UnsupportedCall(platform))
                }
                _ => assert_eq!(got.unwrap_err().svsm_result(), result::INVALID_PARAMETER, "{platform}"),
            }
        }
    }

    #[test]
    fn responses_fit_or_fail() {
        let mut p = [0xFFu8; PAGE_SIZE];
        write_response(&mut p, &[1, 2, 3]).unwrap();
        assert_eq!(&p[..7], &[3, 0, 0, 0, 1, 2, 3]);
        assert!(p[7..].iter().all(|&b| b == 0));
        assert!(write_response(&mut p, &[0; MAX_RESPONSE]).is_ok());
        assert_eq!(
            write_response(&mut p, &[0; MAX_RESPONSE + 1]),
            Err(PageError::ResponseTooLarge(MAX_RESPONSE + 1))
        );
    }
}
