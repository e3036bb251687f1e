//! The vTPM core: everything about serving a TPM that does not depend on where it runs.
//!
//! A TPM here is an engine (libtpms, in `svsm-libtpms`) plus durable NV state plus the interfaces clients use
//! to reach it. This crate holds the parts an SVSM kernel embeds unchanged (it is `no_std` + `alloc` and
//! synchronous):
//!
//! * [`api`]: the [`TpmEngine`] trait an engine implements and the [`NvStorage`] trait its NV blobs go through.
//! * [`Vtpm`] ([`service`]): the platform state machine (power, NV, locality, cancel, established flag) that
//!   every front end drives, so mssim, swtpm and the SVSM page behave the same.
//! * [`marshal`]: typed TPM 2.0 command builders and response readers (no magic offsets).
//! * [`manufacture`]: first-start provisioning expressed as TPM commands (EKs per the TCG EK Credential
//!   Profile, optional certificates and persistent handles) and the record that proves it happened.
//! * Frame parsers for untrusted input, pure functions so they can be fuzzed: [`mssim`] (MS simulator
//!   command and platform ports), [`swtpm`] (swtpm control channel and raw data channel), [`svsm_page`]
//!   (the SVSM vTPM request/response page).
//! * [`MemNvStorage`]: RAM-backed NV storage, for staging a manufacture before one durable commit, and tests.
//! * With feature `store`, `store_nv::StoreNvStorage`: NV blobs as objects of the secure store (`svsm-store`),
//!   each NV commit one durable store transaction.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod error;
pub mod fuzzing;
pub mod manufacture;
pub mod marshal;
mod mem_storage;
pub mod mssim;
pub mod service;
#[cfg(feature = "store")]
pub mod store_nv;
pub mod svsm_page;
pub mod swtpm;

pub use api::{NvBlob, NvData, NvStorage, TpmEngine};
pub use error::{EngineError, FrameError, MarshalError, StorageError, VtpmError};
pub use mem_storage::MemNvStorage;
pub use service::Vtpm;

/// Largest TPM command or response any front end accepts: the TPM 2.0 reference `MAX_COMMAND_SIZE` and
/// `MAX_RESPONSE_SIZE` of libtpms, and the SVSM page's 4 KiB limit.
pub const MAX_TPM_MESSAGE: usize = 4096;
