//! Any bytes from the host through every entry point of the framing: whole-frame decode, split over a
//! stream buffer and the blocking reader. None may panic; whatever is accepted re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_channel::{FrameError, decode, encode, split};

fn kind(k: u8) -> Result<u8, FrameError> {
    if k == 0x7E { Err(FrameError::Kind(k)) } else { Ok(k) }
}

fuzz_target!(|data: &[u8]| {
    let max = 1 + usize::from(data.first().copied().unwrap_or(0)) * 64;
    if let Ok((k, payload)) = decode(data, max, kind) {
        assert!(payload.len() <= max);
        assert_eq!(encode(k, payload), data);
    }
    let mut rest = data;
    while let Ok(Some((k, payload, used))) = split(rest, max, kind) {
        assert_eq!(encode(k, payload), rest[..used]);
        rest = &rest[used..];
    }
    let mut r = data;
    while let Ok((_, payload)) = svsm_channel::io::read_frame(&mut r, max, kind) {
        assert!(payload.len() <= max);
    }
});
