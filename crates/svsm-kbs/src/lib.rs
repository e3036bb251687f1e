//! Attested key release from a Trustee KBS (protocol 0.4.0) through an untrusted host proxy.
//!
//! * [`client`]: the client state machine (auth -> challenge -> attestation -> resource -> JWE) and a driver
//!   over any [`api::Channel`].
//! * [`binding`]: REPORT_DATA = SHA-384 of the canonical runtime data, as current Trustee checks it.
//! * [`jwe`]: the per-attempt ephemeral key and `ECDH-ES+A256KW` / `A256GCM` decryption.
//! * [`frame`]: the SVSM <-> proxy framing (spec: `docs/key-release.md`).
//! * [`keys`]: per-volume store keys from the released secret (HKDF).
//!
//! `#![no_std]` + `alloc`, synchronous, no I/O: the SVSM kernel brings the channel, the evidence and the
//! randomness. The `std` feature adds the socket channel, `snp-evidence` the SNP evidence JSON.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod binding;
pub mod client;
pub mod error;
pub mod frame;
pub mod jwe;
pub mod keys;
#[cfg(feature = "sample-tee")]
pub mod sample;
#[cfg(feature = "snp-evidence")]
pub mod snp;
#[cfg(feature = "std")]
pub mod stream;

pub use api::{Channel, EvidenceProvider};
pub use client::{ClientConfig, KbsClient, ReleasedSecret, Step, release};
pub use error::{ChannelError, FrameError, JweError, KbsError, Stage};
pub use kbs_types::Tee;
