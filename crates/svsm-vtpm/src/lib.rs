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
//! * [`swtpm_state`]: swtpm's state-directory file format (plain or `--key`-encrypted `tpm2-00.permall`), for
//!   importing a swtpm TPM and exporting one swtpm runs.
//! * [`MemNvStorage`]: RAM-backed NV storage, for staging a manufacture before one durable commit, and tests.
//! * With feature `test-utils` (never a default), `double::TpmDouble`: a **test double** of a TPM engine that
//!   keeps the [`TpmEngine`] contract (NV durable before the response, power, state) and answers in TPM wire
//!   format, so [`Vtpm`] and [`manufacture`] are tested without libtpms. Production uses `svsm-libtpms`.
//! * With feature `store`, `store_nv::StoreNvStorage`: NV blobs as objects of the secure store (`svsm-store`),
//!   each NV commit one durable store transaction.
//! * With feature `stateblob`, `stateblob`: the sealed state blobs of migration and snapshots (swtpm
//!   CMD_GET/SET_STATEBLOB), bound to the store key, the blob type and the vTPM's volume id.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
#[cfg(feature = "test-utils")]
pub mod double;
pub mod error;
pub mod fuzzing;
pub mod manufacture;
pub mod marshal;
mod mem_storage;
pub mod mssim;
pub mod service;
#[cfg(feature = "stateblob")]
pub mod stateblob;
#[cfg(feature = "store")]
pub mod store_nv;
pub mod svsm_page;
pub mod swtpm;
pub mod swtpm_state;

pub use api::{NvBlob, NvData, NvStorage, TpmEngine};
pub use error::{EngineError, FrameError, MarshalError, StorageError, VtpmError};
pub use mem_storage::MemNvStorage;
pub use service::Vtpm;

/// Largest TPM command or response any front end accepts: the TPM 2.0 reference `MAX_COMMAND_SIZE` and
/// `MAX_RESPONSE_SIZE` of libtpms, and the SVSM page's 4 KiB limit.
pub const MAX_TPM_MESSAGE: usize = 4096;
