//! Blocking frame reader and writer over `std::io` streams (Unix sockets, TCP loopback).

use std::io::{ErrorKind, Read, Write};
use std::vec::Vec;

use crate::error::FrameError;
use crate::frame::{HEADER_LEN, decode_header, encode};

/// Why no frame was read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream ended at a frame boundary.
    #[error("channel closed")]
    Closed,
    /// The stream failed (including a time-out).
    #[error("channel I/O: {0}")]
    Io(std::io::Error),
    /// The bytes broke the framing (a stream that ends inside a frame is [`FrameError::Truncated`]).
    #[error(transparent)]
    Frame(FrameError),
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, ReadError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(got)
}

/// Reads one frame: the header is checked (`max`, `kind`, as [`decode_header`]) before the payload is
/// allocated.
pub fn read_frame<K>(
    r: &mut impl Read,
    max: usize,
    kind: impl FnOnce(u8) -> Result<K, FrameError>,
) -> Result<(K, Vec<u8>), ReadError> {
    let mut header = [0u8; HEADER_LEN];
    match read_full(r, &mut header)? {
        0 => return Err(ReadError::Closed),
        n if n < HEADER_LEN => {
            return Err(ReadError::Frame(FrameError::Truncated { need: HEADER_LEN, have: n }));
        }
        _ => {}
    }
    let (kind, len) = decode_header(&header, max, kind).map_err(ReadError::Frame)?;
    let mut payload = std::vec![0u8; len];
    let n = read_full(r, &mut payload)?;
    if n < len {
        return Err(ReadError::Frame(FrameError::Truncated { need: HEADER_LEN + len, have: HEADER_LEN + n }));
    }
    Ok((kind, payload))
}

/// Writes one frame (one `write_all` of header and payload) and flushes.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&encode(kind, payload))?;
    w.flush()
}
