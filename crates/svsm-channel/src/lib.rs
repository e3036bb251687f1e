//! The framing of the byte channels an SVSM runs through the untrusted host: key release (`svsm-kbs`) and
//! the freshness ledger (`svsm-ledger`) frame their messages with this one definition (`FORMAT.md`).
//!
//! - [`frame`]: the header and whole-frame encode/decode/split, parameterised by each protocol's kinds and
//!   payload bound; [`error`]: why a frame is refused.
//! - [`io`] (feature `std`): a blocking reader and writer over `std::io` streams.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod frame;
#[cfg(feature = "std")]
pub mod io;

pub use error::FrameError;
pub use frame::{FRAME_VERSION, HEADER_LEN, decode, decode_header, encode, encode_header, split};
