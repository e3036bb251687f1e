//! The frame: an 8-byte header (version, kind, reserved, payload length) and the payload (`FORMAT.md`).
//!
//! A channel's protocol supplies its maximum payload and a function that accepts its kinds; the header is
//! checked in the documented order before anything is allocated, whatever length the peer announces.

use alloc::vec::Vec;

use crate::error::FrameError;

/// The framing version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// Header size.
pub const HEADER_LEN: usize = 8;

/// The header for a `kind` frame of `len` payload bytes (`len` above `u32::MAX` is clamped; callers check
/// their maximum first).
pub fn encode_header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
    let l = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes();
    [FRAME_VERSION, kind, 0, 0, l[0], l[1], l[2], l[3]]
}

/// Checks a header against the channel's rules (`kind` accepts the protocol's kinds, `max` bounds the
/// payload) and returns the kind and the payload length. A stream reader calls this before allocating.
pub fn decode_header<K>(
    h: &[u8; HEADER_LEN],
    max: usize,
    kind: impl FnOnce(u8) -> Result<K, FrameError>,
) -> Result<(K, usize), FrameError> {
    if h[0] != FRAME_VERSION {
        return Err(FrameError::Version(h[0]));
    }
    let kind = kind(h[1])?;
    if h[2] != 0 || h[3] != 0 {
        return Err(FrameError::Reserved);
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len as usize > max {
        return Err(FrameError::Oversize { len: u64::from(len), max });
    }
    Ok((kind, len as usize))
}

/// Header and payload as sent.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&encode_header(kind, payload.len()));
    out.extend_from_slice(payload);
    out
}

/// Decodes exactly one frame occupying all of `bytes`.
pub fn decode<K>(
    bytes: &[u8],
    max: usize,
    kind: impl FnOnce(u8) -> Result<K, FrameError>,
) -> Result<(K, &[u8]), FrameError> {
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated { need: HEADER_LEN, have: bytes.len() })?;
    let (kind, len) = decode_header(header, max, kind)?;
    let rest = &bytes[HEADER_LEN..];
    if rest.len() < len {
        return Err(FrameError::Truncated { need: HEADER_LEN + len, have: bytes.len() });
    }
    if rest.len() > len {
        return Err(FrameError::Trailing(rest.len() - len));
    }
    Ok((kind, rest))
}

/// One frame split off a buffer: its kind, its payload and the bytes it took.
pub type Split<'a, K> = (K, &'a [u8], usize);

/// Splits one whole frame off the front of `buf` (a stream's bytes so far): `Ok(None)` if more bytes are
/// needed, else the kind, the payload and the bytes consumed. A bad header is refused as soon as it is in.
pub fn split<K>(
    buf: &[u8],
    max: usize,
    kind: impl FnOnce(u8) -> Result<K, FrameError>,
) -> Result<Option<Split<'_, K>>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN).and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok()) else {
        return Ok(None);
    };
    let (kind, len) = decode_header(header, max, kind)?;
    Ok(buf.get(HEADER_LEN..HEADER_LEN + len).map(|payload| (kind, payload, HEADER_LEN + len)))
}
