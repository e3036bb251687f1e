//! # svsm-uefi-auth
//!
//! One job: decide whether a time-based authenticated SetVariable of a Secure Boot key database (PK, KEK, db,
//! dbx, dbt, dbr) is authorised, and what to store. `virtfw-varstore` strips the `EFI_VARIABLE_AUTHENTICATION_2`
//! header without checking its signature and accepts these writes only in setup mode; a confidential VM must
//! take a signed dbx update in user mode and refuse a forged one. This crate does the checking UEFI 2.10
//! §8.2.2 requires, with RustCrypto (`cms`, `x509-cert`, `rsa`, `sha2`), `no_std` + `alloc`, synchronous:
//!
//! * [`auth2`] splits the buffer (descriptor, PKCS#7, new value) and builds the signed serialisation;
//! * [`pkcs7`] verifies the SignedData and the signer's chain to the allowed keys;
//! * [`siglist`] parses `EFI_SIGNATURE_LIST`s, applies the per-variable format rules and merges appends;
//! * [`authorise`] applies the rules (who signs what, timestamps, append, delete) and returns a [`Decision`].
//!
//! The variable service supplies the stored key databases through [`KeyDatabases`], stores what the
//! [`Decision`] says (with its timestamp) and returns [`AuthError::efi_status`] otherwise, storing nothing.
//! Wire layouts are in [`wire`]; the rules table is in [`policy`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod api;
pub mod auth2;
pub mod error;
pub mod guid;
pub mod pkcs7;
pub mod policy;
pub mod siglist;
pub mod wire;

pub use api::{Decision, KeyDatabases, SecureBootVariable, SetVariableRequest, StoredVariable};
pub use error::{AuthError, SignatureListError};
pub use guid::Guid;
pub use policy::authorise;
pub use wire::EfiTime;
