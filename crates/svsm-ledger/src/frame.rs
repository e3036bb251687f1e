//! Byte-channel framing between the SVSM, the untrusted host relay and the service: the key-release
//! channel's framing (`svsm-channel`, its `FORMAT.md`), with the ledger's two kinds and its bound.
//!
//! A request travels as kind [`KIND_REQUEST`], a reply as [`KIND_REPLY`]; anything else, and any payload
//! longer than [`MAX_PAYLOAD`], is refused from the header alone, before anything is allocated.

use alloc::vec::Vec;

pub use svsm_channel::{FRAME_VERSION, FrameError, HEADER_LEN};

/// Kind of a request frame (SVSM -> host -> service).
pub const KIND_REQUEST: u8 = 0x10;
/// Kind of a reply frame (service -> host -> SVSM).
pub const KIND_REPLY: u8 = 0x90;
/// Largest payload accepted either way (the messages are fixed-size and far smaller).
pub const MAX_PAYLOAD: usize = 4096;

fn expect(want: u8) -> impl FnOnce(u8) -> Result<(), FrameError> {
    move |k| if k == want { Ok(()) } else { Err(FrameError::Kind(k)) }
}

/// Frames a request payload.
pub fn encode_request(payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    svsm_channel::encode(KIND_REQUEST, payload)
}

/// Frames a reply payload.
pub fn encode_reply(payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    svsm_channel::encode(KIND_REPLY, payload)
}

/// Checks a request header (the service side); returns the payload length to read.
pub fn request_len(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    svsm_channel::decode_header(header, MAX_PAYLOAD, expect(KIND_REQUEST)).map(|((), n)| n)
}

/// Checks a reply header (the SVSM side); returns the payload length to read.
pub fn reply_len(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    svsm_channel::decode_header(header, MAX_PAYLOAD, expect(KIND_REPLY)).map(|((), n)| n)
}

/// Splits one whole reply frame off the front of `buf`: `Ok(None)` if more bytes are needed, else the
/// payload and the bytes consumed.
pub fn split(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    Ok(svsm_channel::split(buf, MAX_PAYLOAD, expect(KIND_REPLY))?.map(|((), p, n)| (p, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_headers_are_refused() {
        let f = encode_reply(b"hello");
        assert_eq!(&f[..HEADER_LEN], &[FRAME_VERSION, KIND_REPLY, 0, 0, 5, 0, 0, 0]);
        assert_eq!(split(&f).unwrap(), Some((&b"hello"[..], f.len())));
        for cut in 0..f.len() {
            assert_eq!(split(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
        let request = encode_request(b"hello");
        assert_eq!(split(&request), Err(FrameError::Kind(KIND_REQUEST)), "a request is not a reply");
        assert_eq!(request_len(request[..HEADER_LEN].try_into().unwrap()), Ok(5));
        assert_eq!(reply_len(request[..HEADER_LEN].try_into().unwrap()), Err(FrameError::Kind(KIND_REQUEST)));
        let huge = [FRAME_VERSION, KIND_REPLY, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(split(&huge), Err(FrameError::Oversize { len: 0xffff_ffff, max: MAX_PAYLOAD }));
        assert_eq!(split(&[9, KIND_REPLY, 0, 0, 0, 0, 0, 0]), Err(FrameError::Version(9)));
    }
}
