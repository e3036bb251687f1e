//! Framing on the SVSM <-> host proxy channel (vsock, serial, Unix socket, TCP loopback).
//!
//! Every message is an 8-byte header and a payload (spec: `docs/key-release.md`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version, [`FRAME_VERSION`] |
//! | 1 | 1 | kind, [`Kind`] |
//! | 2 | 2 | reserved, zero |
//! | 4 | 4 | payload length, little-endian, at most [`MAX_PAYLOAD`] |
//!
//! The length is explicit and bounded so a reader allocates at most `MAX_PAYLOAD` whatever the peer sends.
//! The header itself is the workspace's one channel framing (`svsm-channel`); this module adds the
//! key-release kinds and bound.

use alloc::vec::Vec;

use crate::error::FrameError;

pub use svsm_channel::{FRAME_VERSION, HEADER_LEN};
/// Largest payload accepted either way: an SNP attestation with its certificate chain in the `sev` crate's
/// serde form (byte arrays as JSON numbers) is about 30 KiB; a resource JWE is well under 4 KiB.
pub const MAX_PAYLOAD: usize = 256 * 1024;

const _: () = assert!(MAX_PAYLOAD <= u32::MAX as usize);

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// SVSM -> proxy: KBS Request JSON for `POST /kbs/v0/auth`.
    AuthRequest = 0x01,
    /// SVSM -> proxy: KBS Attestation JSON for `POST /kbs/v0/attest` (the proxy adds the session cookie).
    AttestRequest = 0x02,
    /// SVSM -> proxy: `<repository>/<type>/<tag>` for `GET /kbs/v0/resource/...`.
    ResourceRequest = 0x03,
    /// Proxy -> SVSM: the proxy could not relay the request; payload is a UTF-8 reason.
    ProxyError = 0x7F,
    /// Proxy -> SVSM: reply to `AuthRequest`: u16 LE HTTP status, then the body.
    AuthReply = 0x81,
    /// Proxy -> SVSM: reply to `AttestRequest`.
    AttestReply = 0x82,
    /// Proxy -> SVSM: reply to `ResourceRequest`.
    ResourceReply = 0x83,
}

impl Kind {
    /// The kind for a wire byte.
    pub fn from_byte(b: u8) -> Result<Kind, FrameError> {
        Ok(match b {
            0x01 => Kind::AuthRequest,
            0x02 => Kind::AttestRequest,
            0x03 => Kind::ResourceRequest,
            0x7F => Kind::ProxyError,
            0x81 => Kind::AuthReply,
            0x82 => Kind::AttestReply,
            0x83 => Kind::ResourceReply,
            other => return Err(FrameError::Kind(other)),
        })
    }

    /// The reply kind for a request kind (`None` for replies).
    pub fn reply(self) -> Option<Kind> {
        match self {
            Kind::AuthRequest => Some(Kind::AuthReply),
            Kind::AttestRequest => Some(Kind::AttestReply),
            Kind::ResourceRequest => Some(Kind::ResourceReply),
            _ => None,
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: Kind,
    /// The payload (at most [`MAX_PAYLOAD`] bytes).
    pub payload: Vec<u8>,
}

impl Frame {
    /// A frame; fails if the payload is too large to send.
    pub fn new(kind: Kind, payload: Vec<u8>) -> Result<Frame, FrameError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::Oversize { len: payload.len() as u64, max: MAX_PAYLOAD });
        }
        Ok(Frame { kind, payload })
    }

    /// A proxy reply: HTTP status, then body.
    pub fn reply(kind: Kind, status: u16, body: &[u8]) -> Result<Frame, FrameError> {
        let mut payload = Vec::with_capacity(2 + body.len());
        payload.extend_from_slice(&status.to_le_bytes());
        payload.extend_from_slice(body);
        Frame::new(kind, payload)
    }

    /// Splits a reply payload into HTTP status and body.
    pub fn status_and_body(&self) -> Result<(u16, &[u8]), FrameError> {
        match self.payload.as_slice() {
            [lo, hi, body @ ..] => Ok((u16::from_le_bytes([*lo, *hi]), body)),
            short => Err(FrameError::Truncated { need: HEADER_LEN + 2, have: HEADER_LEN + short.len() }),
        }
    }

    /// Header and payload as sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&encode_header(self.kind, self.payload.len()));
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes exactly one frame occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        let (kind, payload) = svsm_channel::decode(bytes, MAX_PAYLOAD, Kind::from_byte)?;
        Ok(Frame { kind, payload: payload.to_vec() })
    }
}

/// The header for a payload of `len` bytes (`len` must be at most [`MAX_PAYLOAD`]).
pub fn encode_header(kind: Kind, len: usize) -> [u8; HEADER_LEN] {
    svsm_channel::encode_header(kind as u8, len.min(MAX_PAYLOAD))
}

/// Checks a header and returns the kind and payload length; a stream reader calls this before allocating.
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<(Kind, usize), FrameError> {
    svsm_channel::decode_header(h, MAX_PAYLOAD, Kind::from_byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn round_trip_and_exact_bytes() {
        let f = Frame::reply(Kind::AuthReply, 200, b"{}").unwrap();
        let bytes = f.encode();
        assert_eq!(bytes, [1, 0x81, 0, 0, 4, 0, 0, 0, 200, 0, b'{', b'}']);
        assert_eq!(Frame::decode(&bytes).unwrap(), f);
        assert_eq!(f.status_and_body().unwrap(), (200, &b"{}"[..]));
    }

    #[test]
    fn rejects_each_malformation() {
        let good = Frame::new(Kind::ResourceRequest, b"default/key/vtpm".to_vec()).unwrap().encode();
        assert!(matches!(Frame::decode(&good[..5]), Err(FrameError::Truncated { need: 8, have: 5 })));
        assert!(matches!(Frame::decode(&good[..good.len() - 1]), Err(FrameError::Truncated { .. })));
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Frame::decode(&long), Err(FrameError::Trailing(1)));
        let mut v = good.clone();
        v[0] = 2;
        assert_eq!(Frame::decode(&v), Err(FrameError::Version(2)));
        let mut k = good.clone();
        k[1] = 0x55;
        assert_eq!(Frame::decode(&k), Err(FrameError::Kind(0x55)));
        let mut r = good.clone();
        r[3] = 1;
        assert_eq!(Frame::decode(&r), Err(FrameError::Reserved));
        let mut o = good;
        o[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Frame::decode(&o),
            Err(FrameError::Oversize { len: u64::from(u32::MAX), max: MAX_PAYLOAD })
        );
        assert!(Frame::new(Kind::AuthRequest, vec![0; MAX_PAYLOAD + 1]).is_err());
        assert!(Frame::new(Kind::AuthRequest, vec![0; MAX_PAYLOAD]).is_ok());
        assert!(Frame::reply(Kind::AuthReply, 200, &[]).unwrap().status_and_body().is_ok());
        assert!(Frame::new(Kind::AuthReply, vec![1]).unwrap().status_and_body().is_err());
    }
}
