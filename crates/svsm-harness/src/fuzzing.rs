//! Fuzzing entry point for the frame decoder (also run by the unit tests).

use crate::frame::{FRAME_SIZE, KIND_RESUME, KIND_VMGEXIT, RegisterFrame};

/// Decodes arbitrary bytes as frames of both kinds; a decoded frame must re-encode to the same bytes.
pub fn frame(data: &[u8]) {
    for chunk in data.chunks(FRAME_SIZE) {
        let mut b = [0u8; FRAME_SIZE];
        b[..chunk.len()].copy_from_slice(chunk);
        for kind in [KIND_VMGEXIT, KIND_RESUME] {
            if let Ok(f) = RegisterFrame::decode(&b, kind) {
                assert_eq!(f.encode(), b, "decode/encode must round-trip");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeded_random_frames() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut buf = [0u8; 96];
        for i in 0..20_000 {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            if i % 3 == 0 {
                buf[..8].copy_from_slice(&[0x53, 0x56, 0x53, 0x4D, 1, 0, 1, 0]);
            }
            super::frame(&buf[..i % 97]);
        }
    }
}
