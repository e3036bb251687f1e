//! Why a frame is refused.

/// A frame that cannot be accepted (format: `FORMAT.md` beside this crate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared payload.
    #[error("truncated frame: {have} bytes, {need} needed")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A version this build does not speak.
    #[error("frame version {0}, this build speaks version {v}", v = crate::frame::FRAME_VERSION)]
    Version(u8),
    /// A message kind the channel's protocol does not define.
    #[error("unknown frame kind {0:#04x}")]
    Kind(u8),
    /// The reserved header bytes are not zero.
    #[error("reserved frame header bytes are not zero")]
    Reserved,
    /// The declared payload exceeds the channel's maximum.
    #[error("frame payload of {len} bytes exceeds the maximum of {max}")]
    Oversize {
        /// Declared length.
        len: u64,
        /// Maximum accepted.
        max: usize,
    },
    /// Bytes after the declared payload.
    #[error("{0} bytes after the frame payload")]
    Trailing(usize),
}
