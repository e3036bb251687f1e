//! The SVSM's UEFI variable service: COCONUT-SVSM's UEFI MM protocol (4) in front of `virtfw-varstore`'s
//! `EfiVarStore`, with non-volatile variables persisted in their own secure-store volume.
//!
//! # API (for the service, the host tools and the authenticated-write verifier)
//!
//! * [`api`]: [`StoredVariable`] (name, vendor GUID, attributes, **timestamp**, data) and the two traits:
//!   [`VariableStorage`] (load / apply changes durably) and [`MmService`] (one MM message in, reply out).
//! * [`persist`]: [`persist::StoreVariableStorage`] on an opened `svsm_store::Store` (the `uefi-vars`
//!   volume; layout in [`record`]), [`persist::MemoryVariableStorage`] (nothing persists).
//!   Tools write variables offline with `StoreVariableStorage::open(store)?` then
//!   [`persist::StoreVariableStorage::replace_all`] or [`VariableStorage::apply`], and read them with
//!   [`VariableStorage::load`].
//! * [`UefiVariables`] ([`service`]): implements [`MmService`]; `UefiVariables::open(storage, config)` loads,
//!   runs the store's boot initialisation and commits it; every SetVariable of a non-volatile variable is
//!   committed before its reply exists. [`UefiVariables::variables`] / [`UefiVariables::get`] read the
//!   durable set in-process.
//! * [`authenticated`]: [`AuthenticatedWritePolicy`], the one interception point for time-based
//!   authenticated SetVariable (and APPEND_WRITE); [`authenticated::VarstoreDefault`] keeps
//!   `virtfw-varstore`'s behaviour. Install another with [`UefiVariables::open_with_policy`].
//! * [`protocol`]: [`UefiProtocol`], protocol 4 as a [`svsm_protocol::ProtocolHandler`]:
//!   `svsm.register_protocol(Box::new(UefiProtocol::new(service)))`; its services-manifest entry.
//! * [`guest`]: [`guest::UefiGuest`], the guest side as edk2 drives it (probe, 64 KiB buffer).
//! * [`mm`]: the MM wire layouts, builders for the guest side (GetVariable, SetVariable, ...) and strict
//!   parsers.
//!
//! Guest memory is reached only by copy-in / copy-out; every malformed request gets an SVSM code or an EFI
//! status, never a panic (fuzzed: `crates/svsm-uefi/fuzz`).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod authenticated;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod guest;
pub mod mm;
pub mod persist;
pub mod protocol;
pub mod record;
pub mod service;

pub use api::{MmService, StoredVariable, VariableChange, VariableKey, VariableStorage};
pub use authenticated::{AuthDecision, AuthenticatedWritePolicy};
pub use error::UefiError;
pub use protocol::{PROTOCOL_UEFI_MM, UEFI_SERVICE_GUID, UefiProtocol};
pub use service::{UefiConfig, UefiVariables};
