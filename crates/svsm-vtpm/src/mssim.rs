//! The Microsoft TPM simulator ("mssim") TCP protocol: a command port and a platform port.
//!
//! All integers are big-endian. Every request starts with a u32 code; every answer ends with a u32 0
//! acknowledgement. The parsers here are pure functions over the bytes received so far: they either need
//! more bytes, or return one complete request and how many bytes it used, or reject the frame. A server
//! closes the connection on a rejected frame.

use crate::MAX_TPM_MESSAGE;
use crate::error::FrameError;

/// Command codes (TpmTcpProtocol.h).
pub mod code {
    /// Platform: power on.
    pub const SIGNAL_POWER_ON: u32 = 1;
    /// Platform: power off.
    pub const SIGNAL_POWER_OFF: u32 = 2;
    /// Platform: physical presence on.
    pub const SIGNAL_PHYS_PRES_ON: u32 = 3;
    /// Platform: physical presence off.
    pub const SIGNAL_PHYS_PRES_OFF: u32 = 4;
    /// Command port: hash start (H-CRTM).
    pub const SIGNAL_HASH_START: u32 = 5;
    /// Command port: hash data.
    pub const SIGNAL_HASH_DATA: u32 = 6;
    /// Command port: hash end.
    pub const SIGNAL_HASH_END: u32 = 7;
    /// Command port: send a TPM command.
    pub const SEND_COMMAND: u32 = 8;
    /// Platform: cancel on.
    pub const SIGNAL_CANCEL_ON: u32 = 9;
    /// Platform: cancel off.
    pub const SIGNAL_CANCEL_OFF: u32 = 10;
    /// Platform: NV on.
    pub const SIGNAL_NV_ON: u32 = 11;
    /// Platform: NV off.
    pub const SIGNAL_NV_OFF: u32 = 12;
    /// Platform: key cache on.
    pub const SIGNAL_KEY_CACHE_ON: u32 = 13;
    /// Platform: key cache off.
    pub const SIGNAL_KEY_CACHE_OFF: u32 = 14;
    /// Command port: handshake.
    pub const REMOTE_HANDSHAKE: u32 = 15;
    /// Command port: set alternative result (test hook).
    pub const SET_ALTERNATIVE_RESULT: u32 = 16;
    /// Platform: reset (power cycle).
    pub const SIGNAL_RESET: u32 = 17;
    /// Platform: restart.
    pub const SIGNAL_RESTART: u32 = 18;
    /// Both: end of session, close the connection.
    pub const SESSION_END: u32 = 20;
    /// Both: stop the server.
    pub const STOP: u32 = 21;
}

/// The server's answer to REMOTE_HANDSHAKE: protocol version.
pub const SERVER_VERSION: u32 = 1;
/// Handshake flags: platform available (1) | raw mode (4).
pub const HANDSHAKE_FLAGS: u32 = 1 | 4;

/// Result of feeding bytes to a streaming parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// At least `needed` bytes in total are required before the frame can be parsed.
    Incomplete {
        /// Total bytes needed (from the start of the frame).
        needed: usize,
    },
    /// A complete frame that used `consumed` bytes.
    Complete {
        /// The frame.
        frame: T,
        /// Bytes it occupied.
        consumed: usize,
    },
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_be_bytes(a))
}

/// A request on the command port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRequest<'a> {
    /// TPM_SEND_COMMAND: execute `command` at `locality`.
    SendCommand {
        /// Locality byte.
        locality: u8,
        /// The TPM command bytes.
        command: &'a [u8],
    },
    /// TPM_REMOTE_HANDSHAKE with the client's version.
    Handshake {
        /// Client protocol version (non-zero).
        client_version: u32,
    },
    /// TPM_SET_ALTERNATIVE_RESULT (acknowledged, ignored).
    SetAlternativeResult(u32),
    /// TPM_SESSION_END.
    SessionEnd,
    /// TPM_STOP.
    Stop,
}

/// Parses one command-port request from the start of `buf`.
///
/// Rejects unknown codes, TPM commands longer than [`MAX_TPM_MESSAGE`] or shorter than a TPM header, and
/// commands whose own size field disagrees with the frame length.
pub fn parse_command(buf: &[u8]) -> Result<Parse<CommandRequest<'_>>, FrameError> {
    let Some(c) = be32(buf, 0) else { return Ok(Parse::Incomplete { needed: 4 }) };
    match c {
        code::SEND_COMMAND => {
            // u32 code | u8 locality | u32 len | cmd[len]
            let Some(&locality) = buf.get(4) else { return Ok(Parse::Incomplete { needed: 9 }) };
            let Some(len) = be32(buf, 5) else { return Ok(Parse::Incomplete { needed: 9 }) };
            if locality > 4 {
                return Err(FrameError::InvalidField { field: "locality", value: u64::from(locality) });
            }
            let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
            if len_usize > MAX_TPM_MESSAGE {
                return Err(FrameError::Oversize { len: u64::from(len), max: MAX_TPM_MESSAGE as u64 });
            }
            if len_usize < crate::marshal::HEADER_SIZE {
                return Err(FrameError::Undersize {
                    len: u64::from(len),
                    min: crate::marshal::HEADER_SIZE as u64,
                });
            }
            let total = 9 + len_usize;
            let Some(command) = buf.get(9..total) else { return Ok(Parse::Incomplete { needed: total }) };
            let inner = be32(command, 2).unwrap_or(0);
            if inner != len {
                return Err(FrameError::InnerSizeMismatch { header: inner, frame: len });
            }
            Ok(Parse::Complete { frame: CommandRequest::SendCommand { locality, command }, consumed: total })
        }
        code::REMOTE_HANDSHAKE => match be32(buf, 4) {
            None => Ok(Parse::Incomplete { needed: 8 }),
            Some(0) => Err(FrameError::InvalidField { field: "client version", value: 0 }),
            Some(v) => {
                Ok(Parse::Complete { frame: CommandRequest::Handshake { client_version: v }, consumed: 8 })
            }
        },
        code::SET_ALTERNATIVE_RESULT => match be32(buf, 4) {
            None => Ok(Parse::Incomplete { needed: 8 }),
            Some(v) => Ok(Parse::Complete { frame: CommandRequest::SetAlternativeResult(v), consumed: 8 }),
        },
        code::SESSION_END => Ok(Parse::Complete { frame: CommandRequest::SessionEnd, consumed: 4 }),
        code::STOP => Ok(Parse::Complete { frame: CommandRequest::Stop, consumed: 4 }),
        code::SIGNAL_HASH_START | code::SIGNAL_HASH_DATA | code::SIGNAL_HASH_END => {
            Err(FrameError::Unsupported("H-CRTM hash sequence (TPM_SIGNAL_HASH_*)"))
        }
        other => Err(FrameError::UnknownCommand(other)),
    }
}

/// A signal on the platform port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformSignal {
    /// Power on.
    PowerOn,
    /// Power off.
    PowerOff,
    /// Physical presence on/off (acknowledged; the vTPM has no physical-presence input).
    PhysicalPresence(bool),
    /// Cancel on/off.
    Cancel(bool),
    /// NV on/off.
    Nv(bool),
    /// Key cache on/off (acknowledged, no effect).
    KeyCache(bool),
    /// Reset (power cycle).
    Reset,
    /// Restart (power cycle that keeps the TPM's orderly state; served as reset).
    Restart,
    /// End of session.
    SessionEnd,
    /// Stop the server.
    Stop,
}

/// Parses one platform-port signal from the start of `buf`.
pub fn parse_platform(buf: &[u8]) -> Result<Parse<PlatformSignal>, FrameError> {
    let Some(c) = be32(buf, 0) else { return Ok(Parse::Incomplete { needed: 4 }) };
    let s = match c {
        code::SIGNAL_POWER_ON => PlatformSignal::PowerOn,
        code::SIGNAL_POWER_OFF => PlatformSignal::PowerOff,
        code::SIGNAL_PHYS_PRES_ON => PlatformSignal::PhysicalPresence(true),
        code::SIGNAL_PHYS_PRES_OFF => PlatformSignal::PhysicalPresence(false),
        code::SIGNAL_CANCEL_ON => PlatformSignal::Cancel(true),
        code::SIGNAL_CANCEL_OFF => PlatformSignal::Cancel(false),
        code::SIGNAL_NV_ON => PlatformSignal::Nv(true),
        code::SIGNAL_NV_OFF => PlatformSignal::Nv(false),
        code::SIGNAL_KEY_CACHE_ON => PlatformSignal::KeyCache(true),
        code::SIGNAL_KEY_CACHE_OFF => PlatformSignal::KeyCache(false),
        code::SIGNAL_RESET => PlatformSignal::Reset,
        code::SIGNAL_RESTART => PlatformSignal::Restart,
        code::SESSION_END => PlatformSignal::SessionEnd,
        code::STOP => PlatformSignal::Stop,
        other => return Err(FrameError::UnknownCommand(other)),
    };
    Ok(Parse::Complete { frame: s, consumed: 4 })
}

/// Encodes a SEND_COMMAND answer: `u32 len | response | u32 0`.
pub fn encode_response(response: &[u8], out: &mut alloc::vec::Vec<u8>) {
    let len = u32::try_from(response.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(response);
    out.extend_from_slice(&0u32.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_command_frames_stream_in() {
        let cmd = crate::marshal::cmd::get_random(8).unwrap();
        let mut f = alloc::vec::Vec::new();
        f.extend_from_slice(&8u32.to_be_bytes());
        f.push(0);
        f.extend_from_slice(&(cmd.len() as u32).to_be_bytes());
        f.extend_from_slice(&cmd);
        for cut in 0..f.len() {
            assert!(matches!(parse_command(&f[..cut]), Ok(Parse::Incomplete { needed }) if needed > cut));
        }
        let Parse::Complete { frame, consumed } = parse_command(&f).unwrap() else { panic!() };
        assert_eq!(consumed, f.len());
        assert_eq!(frame, CommandRequest::SendCommand { locality: 0, command: &cmd });
    }

    #[test]
    fn bad_frames_are_rejected_with_a_reason() {
        let mut f = alloc::vec::Vec::new();
        f.extend_from_slice(&8u32.to_be_bytes());
        f.push(0);
        f.extend_from_slice(&0x10_0000u32.to_be_bytes());
        assert!(matches!(parse_command(&f), Err(FrameError::Oversize { .. })));
        f[5..9].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(parse_command(&f), Err(FrameError::Undersize { .. })));
        f[4] = 9;
        assert!(matches!(parse_command(&f), Err(FrameError::InvalidField { .. })));
        assert_eq!(parse_command(&99u32.to_be_bytes()), Err(FrameError::UnknownCommand(99)));
        assert_eq!(parse_platform(&99u32.to_be_bytes()), Err(FrameError::UnknownCommand(99)));
        // inner size disagrees with the frame
        let mut cmd = crate::marshal::cmd::get_random(8).unwrap();
        cmd[5] = 0x20;
        let mut f = alloc::vec::Vec::new();
        f.extend_from_slice(&8u32.to_be_bytes());
        f.push(0);
        f.extend_from_slice(&12u32.to_be_bytes());
        f.extend_from_slice(&cmd);
        assert!(matches!(parse_command(&f), Err(FrameError::InnerSizeMismatch { .. })));
    }
}
