//! Reading TPM bytes: the bounds-checked [`Reader`], command and response headers.

use alloc::vec::Vec;

use super::*;
use crate::error::MarshalError;

/// A bounds-checked big-endian reader over TPM bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], MarshalError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(MarshalError::Truncated { offset: self.pos, needed: n, available: self.remaining() })?;
        let out = self.buf.get(self.pos..end).ok_or(MarshalError::Truncated {
            offset: self.pos,
            needed: n,
            available: self.remaining(),
        })?;
        self.pos = end;
        Ok(out)
    }

    /// Reads a u8.
    pub fn u8(&mut self) -> Result<u8, MarshalError> {
        let b = self.take(1)?;
        Ok(b.first().copied().unwrap_or(0))
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, MarshalError> {
        let b = self.take(2)?;
        let mut a = [0u8; 2];
        a.copy_from_slice(b);
        Ok(u16::from_be_bytes(a))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, MarshalError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_be_bytes(a))
    }

    /// Reads a TPM2B (u16 size + bytes) and returns its contents.
    pub fn tpm2b(&mut self) -> Result<&'a [u8], MarshalError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }
}

/// A TPM command header, parsed and checked against the buffer it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHeader {
    /// TPM_ST tag.
    pub tag: u16,
    /// Size from the header (equals the buffer length).
    pub size: u32,
    /// TPM_CC command code.
    pub code: u32,
}

impl CommandHeader {
    /// Parses the header of a complete command buffer and checks the size field.
    pub fn parse(cmd: &[u8]) -> Result<Self, MarshalError> {
        let mut r = Reader::new(cmd);
        let tag = r.u16()?;
        let size = r.u32()?;
        let code = r.u32()?;
        if usize::try_from(size).ok() != Some(cmd.len()) {
            return Err(MarshalError::SizeMismatch { header: size, actual: cmd.len() });
        }
        Ok(CommandHeader { tag, size, code })
    }
}

/// A successful TPM response split into handles, parameters and the authorization area.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    /// Handles returned (e.g. the object handle of CreatePrimary).
    pub handles: Vec<u32>,
    /// The parameter area.
    pub params: &'a [u8],
}

impl<'a> Response<'a> {
    /// Parses a response expected to carry `handle_count` handles. A non-zero response code is an error.
    pub fn parse(resp: &'a [u8], handle_count: usize) -> Result<Self, MarshalError> {
        let mut r = Reader::new(resp);
        let tag = r.u16()?;
        let size = r.u32()?;
        let code = r.u32()?;
        if usize::try_from(size).ok() != Some(resp.len()) {
            return Err(MarshalError::SizeMismatch { header: size, actual: resp.len() });
        }
        if code != rc::SUCCESS {
            return Err(MarshalError::ResponseCode(code));
        }
        let mut handles = Vec::with_capacity(handle_count);
        for _ in 0..handle_count {
            handles.push(r.u32()?);
        }
        let params = match tag {
            st::NO_SESSIONS => r.rest(),
            st::SESSIONS => {
                let n = r.u32()?;
                r.take(usize::try_from(n).map_err(|_| MarshalError::TooLarge)?)?
            }
            other => return Err(MarshalError::BadTag(other)),
        };
        Ok(Response { handles, params })
    }
}

/// The response code of a response buffer (without validating the rest).
pub fn response_code(resp: &[u8]) -> Result<u32, MarshalError> {
    let mut r = Reader::new(resp);
    r.take(6)?;
    r.u32()
}

/// A minimal error response (`tag NO_SESSIONS, size 10, rc`), as a TPM sends for a rejected command.
pub fn error_response(code: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_SIZE);
    v.extend_from_slice(&st::NO_SESSIONS.to_be_bytes());
    v.extend_from_slice(&(HEADER_SIZE as u32).to_be_bytes());
    v.extend_from_slice(&code.to_be_bytes());
    v
}

/// The `randomBytes` of a TPM2_GetRandom response; a non-zero response code, a malformed header or bytes
/// after the TPM2B are errors.
pub fn random_bytes(resp: &[u8]) -> Result<Vec<u8>, MarshalError> {
    let r = Response::parse(resp, 0)?;
    let mut p = Reader::new(r.params);
    let bytes = p.tpm2b()?.to_vec();
    if p.remaining() != 0 {
        return Err(MarshalError::TrailingBytes(p.remaining()));
    }
    Ok(bytes)
}
