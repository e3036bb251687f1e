//! The swtpm socket protocol: a raw data channel and a control channel (swtpm's `tpm_ioctl.h`).
//!
//! The data channel carries bare TPM command and response bytes; a command's length comes from its own
//! header. The control channel carries a big-endian u32 command code followed by a fixed-size body; the
//! answer starts with a u32 result code (except GET_CAPABILITY, which is a bare u64 bitmap). Parsers are pure
//! functions over the bytes received so far, as in [`crate::mssim`].

use alloc::vec::Vec;

use crate::MAX_TPM_MESSAGE;
use crate::error::FrameError;
use crate::marshal::HEADER_SIZE;
pub use crate::mssim::Parse;

/// Control command codes.
pub mod code {
    /// Capability bitmap.
    pub const GET_CAPABILITY: u32 = 0x01;
    /// Power on / re-initialise.
    pub const INIT: u32 = 0x02;
    /// Power off (swtpm: and exit).
    pub const SHUTDOWN: u32 = 0x03;
    /// Read the established flag.
    pub const GET_TPMESTABLISHED: u32 = 0x04;
    /// Set the locality of subsequent commands.
    pub const SET_LOCALITY: u32 = 0x05;
    /// H-CRTM hash start.
    pub const HASH_START: u32 = 0x06;
    /// H-CRTM hash data.
    pub const HASH_DATA: u32 = 0x07;
    /// H-CRTM hash end.
    pub const HASH_END: u32 = 0x08;
    /// Cancel the running command.
    pub const CANCEL_TPM_CMD: u32 = 0x09;
    /// Store the volatile state.
    pub const STORE_VOLATILE: u32 = 0x0A;
    /// Clear the established flag.
    pub const RESET_TPMESTABLISHED: u32 = 0x0B;
    /// Read a state blob (migration).
    pub const GET_STATEBLOB: u32 = 0x0C;
    /// Write a state blob (migration).
    pub const SET_STATEBLOB: u32 = 0x0D;
    /// Stop the TPM (power off, server keeps running).
    pub const STOP: u32 = 0x0E;
    /// Configuration flags.
    pub const GET_CONFIG: u32 = 0x0F;
    /// Hand over the data channel as a file descriptor (Unix sockets, SCM_RIGHTS).
    pub const SET_DATAFD: u32 = 0x10;
    /// Negotiate the I/O buffer size.
    pub const SET_BUFFERSIZE: u32 = 0x11;
    /// Information strings.
    pub const GET_INFO: u32 = 0x12;
}

/// Capability bits (PTM_CAP_*).
pub mod cap {
    /// CMD_INIT.
    pub const INIT: u64 = 1;
    /// CMD_SHUTDOWN.
    pub const SHUTDOWN: u64 = 1 << 1;
    /// CMD_GET_TPMESTABLISHED.
    pub const GET_TPMESTABLISHED: u64 = 1 << 2;
    /// CMD_SET_LOCALITY.
    pub const SET_LOCALITY: u64 = 1 << 3;
    /// CMD_HASH_*.
    pub const HASHING: u64 = 1 << 4;
    /// CMD_CANCEL_TPM_CMD.
    pub const CANCEL_TPM_CMD: u64 = 1 << 5;
    /// CMD_STORE_VOLATILE.
    pub const STORE_VOLATILE: u64 = 1 << 6;
    /// CMD_RESET_TPMESTABLISHED.
    pub const RESET_TPMESTABLISHED: u64 = 1 << 7;
    /// CMD_GET_STATEBLOB.
    pub const GET_STATEBLOB: u64 = 1 << 8;
    /// CMD_SET_STATEBLOB.
    pub const SET_STATEBLOB: u64 = 1 << 9;
    /// CMD_STOP.
    pub const STOP: u64 = 1 << 10;
    /// CMD_GET_CONFIG.
    pub const GET_CONFIG: u64 = 1 << 11;
    /// CMD_SET_DATAFD.
    pub const SET_DATAFD: u64 = 1 << 12;
    /// CMD_SET_BUFFERSIZE.
    pub const SET_BUFFERSIZE: u64 = 1 << 13;
}

/// What this server implements (no H-CRTM hashing, no info strings). The state-blob commands are what QEMU
/// needs before it allows migration and snapshots of a VM with this TPM.
pub const CAPABILITIES: u64 = cap::INIT
    | cap::SHUTDOWN
    | cap::GET_TPMESTABLISHED
    | cap::SET_LOCALITY
    | cap::CANCEL_TPM_CMD
    | cap::STORE_VOLATILE
    | cap::RESET_TPMESTABLISHED
    | cap::GET_STATEBLOB
    | cap::SET_STATEBLOB
    | cap::STOP
    | cap::GET_CONFIG
    | cap::SET_DATAFD
    | cap::SET_BUFFERSIZE;

/// CMD_INIT flag: discard stored volatile state instead of resuming from it.
pub const INIT_FLAG_DELETE_VOLATILE: u32 = 1;

/// State blob types of GET/SET_STATEBLOB (`PTM_BLOB_TYPE_*`).
pub mod blob_type {
    /// Permanent state (libtpms `permall`).
    pub const PERMANENT: u32 = 1;
    /// Volatile state of a running TPM.
    pub const VOLATILE: u32 = 2;
    /// Save state (TPM 1.2 style; empty for a TPM 2.0).
    pub const SAVESTATE: u32 = 3;
}

/// GET_STATEBLOB request flag: the client asks for the blob without the state encryption (swtpm `--key`).
pub const STATE_FLAG_DECRYPTED: u32 = 1;
/// Blob flag: the blob is encrypted (this server's blobs always are; a SET without it is refused).
pub const STATE_FLAG_ENCRYPTED: u32 = 2;

/// Largest state blob SET_STATEBLOB accepts (swtpm's limit; a TPM 2.0 `permall` is tens of KiB).
pub const MAX_STATE_BLOB: usize = 512 * 1024;

/// Result code for a control command this server refuses (TPM_BAD_ORDINAL).
pub const RESULT_BAD_ORDINAL: u32 = 0x0A;
/// Result code for a failed control command (TPM_FAIL).
pub const RESULT_FAIL: u32 = 0x09;
/// Result code for a bad parameter (TPM_BAD_PARAMETER).
pub const RESULT_BAD_PARAMETER: u32 = 0x03;
/// Result code for a state blob that does not authenticate or decrypt (TPM_DECRYPT_ERROR, as swtpm).
pub const RESULT_DECRYPT_ERROR: u32 = 0x21;
/// Result code for a command that is not allowed in the TPM's current state (TPM_INVALID_POSTINIT).
pub const RESULT_INVALID_POSTINIT: u32 = 0x26;

/// A control-channel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrlRequest<'a> {
    /// CMD_GET_CAPABILITY.
    GetCapability,
    /// CMD_INIT with flags.
    Init {
        /// PTM_INIT_FLAG_*.
        flags: u32,
    },
    /// CMD_SHUTDOWN.
    Shutdown,
    /// CMD_GET_TPMESTABLISHED.
    GetEstablished,
    /// CMD_SET_LOCALITY.
    SetLocality(u8),
    /// CMD_CANCEL_TPM_CMD.
    Cancel,
    /// CMD_STORE_VOLATILE.
    StoreVolatile,
    /// CMD_RESET_TPMESTABLISHED from a locality.
    ResetEstablished(u8),
    /// CMD_STOP.
    Stop,
    /// CMD_GET_CONFIG.
    GetConfig,
    /// CMD_SET_DATAFD (the descriptor travels out of band).
    SetDataFd,
    /// CMD_SET_BUFFERSIZE (0 = query).
    SetBufferSize(u32),
    /// CMD_GET_STATEBLOB (`ptm_getstate` request).
    GetStateBlob {
        /// `STATE_FLAG_*` the client asks for.
        flags: u32,
        /// `blob_type::*`.
        blob_type: u32,
        /// Offset into the blob to answer from.
        offset: u32,
    },
    /// CMD_SET_STATEBLOB (`ptm_setstate` header plus the blob that follows it on the same stream).
    SetStateBlob {
        /// `STATE_FLAG_*` of the blob (as GET_STATEBLOB returned them).
        flags: u32,
        /// `blob_type::*`.
        blob_type: u32,
        /// The blob.
        data: &'a [u8],
    },
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_be_bytes(a))
}

/// Parses one control request from the start of `buf` (the bytes received so far of a request/response
/// stream: a client sends its next request only after the answer to this one).
///
/// The locality requests (SET_LOCALITY, RESET_TPMESTABLISHED) carry one byte, but QEMU sends the C struct
/// (`sizeof(ptm_loc)` = 4: the byte and three bytes of padding) while tpm2-tss sends the byte alone. Since the
/// client waits for the answer, zero bytes already received right after the locality belong to the same
/// request and are consumed with it (up to three); otherwise they would be read as the next command code.
pub fn parse_ctrl(buf: &[u8]) -> Result<Parse<CtrlRequest<'_>>, FrameError> {
    let Some(c) = be32(buf, 0) else { return Ok(Parse::Incomplete { needed: 4 }) };
    let fixed = |req: CtrlRequest<'static>| Ok(Parse::Complete { frame: req, consumed: 4 });
    let byte = |f: fn(u8) -> CtrlRequest<'static>| match buf.get(4) {
        None => Ok(Parse::Incomplete { needed: 5 }),
        Some(&b) if b > 4 => Err(FrameError::InvalidField { field: "locality", value: u64::from(b) }),
        Some(&b) => {
            let padding = buf.iter().skip(5).take(3).take_while(|&&p| p == 0).count();
            Ok(Parse::Complete { frame: f(b), consumed: 5 + padding })
        }
    };
    let word = |f: fn(u32) -> CtrlRequest<'static>| match be32(buf, 4) {
        None => Ok(Parse::Incomplete { needed: 8 }),
        Some(v) => Ok(Parse::Complete { frame: f(v), consumed: 8 }),
    };
    match c {
        code::GET_CAPABILITY => fixed(CtrlRequest::GetCapability),
        code::INIT => word(|flags| CtrlRequest::Init { flags }),
        code::SHUTDOWN => fixed(CtrlRequest::Shutdown),
        code::GET_TPMESTABLISHED => fixed(CtrlRequest::GetEstablished),
        code::SET_LOCALITY => byte(CtrlRequest::SetLocality),
        code::CANCEL_TPM_CMD => fixed(CtrlRequest::Cancel),
        code::STORE_VOLATILE => fixed(CtrlRequest::StoreVolatile),
        code::RESET_TPMESTABLISHED => byte(CtrlRequest::ResetEstablished),
        code::STOP => fixed(CtrlRequest::Stop),
        code::GET_CONFIG => fixed(CtrlRequest::GetConfig),
        code::SET_DATAFD => fixed(CtrlRequest::SetDataFd),
        code::SET_BUFFERSIZE => word(CtrlRequest::SetBufferSize),
        code::HASH_START | code::HASH_DATA | code::HASH_END => Err(FrameError::Unsupported("H-CRTM hashing")),
        code::GET_STATEBLOB => match (be32(buf, 4), be32(buf, 8), be32(buf, 12)) {
            (Some(flags), Some(blob_type), Some(offset)) => Ok(Parse::Complete {
                frame: CtrlRequest::GetStateBlob { flags, blob_type, offset },
                consumed: 16,
            }),
            _ => Ok(Parse::Incomplete { needed: 16 }),
        },
        code::SET_STATEBLOB => {
            let (Some(flags), Some(blob_type), Some(length)) = (be32(buf, 4), be32(buf, 8), be32(buf, 12))
            else {
                return Ok(Parse::Incomplete { needed: 16 });
            };
            let len = usize::try_from(length).unwrap_or(usize::MAX);
            if len > MAX_STATE_BLOB {
                return Err(FrameError::Oversize { len: u64::from(length), max: MAX_STATE_BLOB as u64 });
            }
            let end = 16 + len;
            match buf.get(16..end) {
                None => Ok(Parse::Incomplete { needed: end }),
                Some(data) => Ok(Parse::Complete {
                    frame: CtrlRequest::SetStateBlob { flags, blob_type, data },
                    consumed: end,
                }),
            }
        }
        code::GET_INFO => Err(FrameError::Unsupported("GET_INFO")),
        other => Err(FrameError::UnknownCommand(other)),
    }
}

/// Encoders for control-channel answers.
pub mod reply {
    use super::*;

    /// GET_CAPABILITY: bare u64 bitmap.
    pub fn capability(caps: u64) -> Vec<u8> {
        caps.to_be_bytes().to_vec()
    }

    /// A bare result code.
    pub fn result(res: u32) -> Vec<u8> {
        res.to_be_bytes().to_vec()
    }

    /// GET_TPMESTABLISHED: result, flag byte, padding to the C struct's 8 bytes.
    pub fn established(res: u32, bit: bool) -> Vec<u8> {
        let mut v = res.to_be_bytes().to_vec();
        v.extend_from_slice(&[u8::from(bit), 0, 0, 0]);
        v
    }

    /// GET_CONFIG: result and flags.
    pub fn config(res: u32, flags: u32) -> Vec<u8> {
        let mut v = res.to_be_bytes().to_vec();
        v.extend_from_slice(&flags.to_be_bytes());
        v
    }

    /// GET_STATEBLOB (`ptm_getstate` response): result, flags, total length, length, then the data. On a
    /// socket the whole rest of the blob goes in one answer, so both lengths are the data's.
    pub fn state_blob(res: u32, flags: u32, data: &[u8]) -> Vec<u8> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut v = Vec::with_capacity(16 + data.len());
        for x in [res, flags, len, len] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    /// SET_BUFFERSIZE: result, size, min, max.
    pub fn buffer_size(res: u32, size: u32, min: u32, max: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        for x in [res, size, min, max] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }
}

/// Parses one raw TPM command from the start of a data-channel buffer (its length is in its header).
pub fn parse_data(buf: &[u8]) -> Result<Parse<&[u8]>, FrameError> {
    let Some(size) = be32(buf, 2) else { return Ok(Parse::Incomplete { needed: HEADER_SIZE }) };
    if buf.len() < HEADER_SIZE {
        return Ok(Parse::Incomplete { needed: HEADER_SIZE });
    }
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    if len > MAX_TPM_MESSAGE {
        return Err(FrameError::Oversize { len: u64::from(size), max: MAX_TPM_MESSAGE as u64 });
    }
    if len < HEADER_SIZE {
        return Err(FrameError::Undersize { len: u64::from(size), min: HEADER_SIZE as u64 });
    }
    match buf.get(..len) {
        None => Ok(Parse::Incomplete { needed: len }),
        Some(cmd) => Ok(Parse::Complete { frame: cmd, consumed: len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_requests_parse_with_exact_body_lengths() {
        let mut init = code::INIT.to_be_bytes().to_vec();
        assert_eq!(parse_ctrl(&init), Ok(Parse::Incomplete { needed: 8 }));
        init.extend_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            parse_ctrl(&init),
            Ok(Parse::Complete { frame: CtrlRequest::Init { flags: 1 }, consumed: 8 })
        );
        let mut loc = code::SET_LOCALITY.to_be_bytes().to_vec();
        loc.push(5);
        assert!(matches!(parse_ctrl(&loc), Err(FrameError::InvalidField { .. })));
        assert_eq!(parse_ctrl(&0x99u32.to_be_bytes()), Err(FrameError::UnknownCommand(0x99)));
        assert!(matches!(parse_ctrl(&code::HASH_START.to_be_bytes()), Err(FrameError::Unsupported(_))));
        assert_eq!(reply::established(0, true).len(), 8);
    }

    #[test]
    fn locality_requests_take_qemus_struct_padding_but_not_the_next_command() {
        // QEMU: SET_LOCALITY with sizeof(ptm_loc) = 4 body bytes, then (after the answer) CMD_SHUTDOWN.
        let mut qemu = code::SET_LOCALITY.to_be_bytes().to_vec();
        qemu.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            parse_ctrl(&qemu),
            Ok(Parse::Complete { frame: CtrlRequest::SetLocality(0), consumed: 8 })
        );
        qemu.drain(..8);
        qemu.extend_from_slice(&code::SHUTDOWN.to_be_bytes());
        assert_eq!(parse_ctrl(&qemu), Ok(Parse::Complete { frame: CtrlRequest::Shutdown, consumed: 4 }));
        // tpm2-tss: the byte alone.
        let mut tss = code::RESET_TPMESTABLISHED.to_be_bytes().to_vec();
        tss.push(3);
        assert_eq!(
            parse_ctrl(&tss),
            Ok(Parse::Complete { frame: CtrlRequest::ResetEstablished(3), consumed: 5 })
        );
    }

    #[test]
    fn state_blob_requests_carry_their_header_and_data() {
        let mut get = code::GET_STATEBLOB.to_be_bytes().to_vec();
        for x in [STATE_FLAG_DECRYPTED, blob_type::VOLATILE] {
            get.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(parse_ctrl(&get), Ok(Parse::Incomplete { needed: 16 }));
        get.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            parse_ctrl(&get),
            Ok(Parse::Complete {
                frame: CtrlRequest::GetStateBlob { flags: 1, blob_type: 2, offset: 0 },
                consumed: 16
            })
        );
        let mut set = code::SET_STATEBLOB.to_be_bytes().to_vec();
        for x in [STATE_FLAG_ENCRYPTED, blob_type::PERMANENT, 3] {
            set.extend_from_slice(&x.to_be_bytes());
        }
        set.extend_from_slice(b"ab");
        assert_eq!(parse_ctrl(&set), Ok(Parse::Incomplete { needed: 19 }));
        set.push(b'c');
        assert_eq!(
            parse_ctrl(&set),
            Ok(Parse::Complete {
                frame: CtrlRequest::SetStateBlob { flags: 2, blob_type: 1, data: b"abc" },
                consumed: 19
            })
        );
        set[12..16].copy_from_slice(&(MAX_STATE_BLOB as u32 + 1).to_be_bytes());
        assert!(matches!(parse_ctrl(&set), Err(FrameError::Oversize { .. })));
        let r = reply::state_blob(0, STATE_FLAG_ENCRYPTED, b"xyz");
        assert_eq!(r.len(), 19);
        assert_eq!(&r[8..16], &[0, 0, 0, 3, 0, 0, 0, 3]);
    }

    #[test]
    fn data_frames_are_length_checked() {
        let cmd = crate::marshal::cmd::get_random(8).unwrap();
        assert_eq!(parse_data(&cmd[..9]), Ok(Parse::Incomplete { needed: 10 }));
        assert_eq!(parse_data(&cmd), Ok(Parse::Complete { frame: &cmd[..], consumed: 12 }));
        let mut big = cmd.clone();
        big[2..6].copy_from_slice(&0x0100_0000u32.to_be_bytes());
        assert!(matches!(parse_data(&big), Err(FrameError::Oversize { .. })));
        let mut small = cmd;
        small[2..6].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(parse_data(&small), Err(FrameError::Undersize { .. })));
    }
}
