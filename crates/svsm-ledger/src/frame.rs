//! Byte-channel framing between the SVSM, the untrusted host relay and the service.
//!
//! A frame is `length: u32 LE` (of what follows), `version: u8` ([`FRAME_VERSION`]), then the payload. A
//! frame longer than [`MAX_FRAME`] is refused before anything is allocated, so a hostile peer cannot make the
//! reader allocate what it announces. Same shape as the key-release channel; one of the two will be folded
//! into the other once both have landed.

use alloc::vec::Vec;

/// The framing version this module speaks.
pub const FRAME_VERSION: u8 = 1;
/// Largest `length` accepted (version byte + payload).
pub const MAX_FRAME: usize = 4096;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 5;

/// A frame header that breaks the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// `length` is zero (no room for the version byte).
    #[error("empty frame")]
    Empty,
    /// `length` exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLong(usize),
    /// The version byte is not [`FRAME_VERSION`].
    #[error("frame version {0}, this side speaks {FRAME_VERSION}")]
    Version(u8),
}

/// Frames `payload` (which must fit; callers send fixed-size messages far below the limit).
pub fn encode(payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() < MAX_FRAME);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    out.push(FRAME_VERSION);
    out.extend_from_slice(payload);
    out
}

/// Checks the 4-byte length prefix; returns how many bytes follow it (version byte + payload).
pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    match len {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME => Err(FrameError::TooLong(n)),
        n => Ok(n),
    }
}

/// Checks the body (version byte + payload) read after the prefix; returns the payload.
pub fn payload(body: &[u8]) -> Result<&[u8], FrameError> {
    match body.split_first() {
        None => Err(FrameError::Empty),
        Some((&FRAME_VERSION, rest)) => Ok(rest),
        Some((&v, _)) => Err(FrameError::Version(v)),
    }
}

/// Splits one whole frame off the front of `buf`: `Ok(None)` if more bytes are needed, else the payload and
/// the bytes consumed.
pub fn split(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let len = body_len([prefix[0], prefix[1], prefix[2], prefix[3]])?;
    let Some(body) = buf.get(4..4 + len) else { return Ok(None) };
    Ok(Some((payload(body)?, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_headers_are_refused() {
        let f = encode(b"hello");
        assert_eq!(&f[..5], &[6, 0, 0, 0, FRAME_VERSION]);
        assert_eq!(split(&f).unwrap(), Some((&b"hello"[..], f.len())));
        for cut in 0..f.len() {
            assert_eq!(split(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(split(&[0, 0, 0, 0]), Err(FrameError::Empty));
        assert_eq!(split(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::TooLong(0xffff_ffff)));
        assert_eq!(split(&[1, 0, 0, 0, 9]), Err(FrameError::Version(9)));
    }
}
