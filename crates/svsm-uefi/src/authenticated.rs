//! The interception point for time-based authenticated writes (`EFI_VARIABLE_TIME_BASED_AUTHENTICATED_
//! WRITE_ACCESS`, and `EFI_VARIABLE_APPEND_WRITE`).
//!
//! `virtfw-varstore` 0.6.6 strips the `EFI_VARIABLE_AUTHENTICATION_2` header without checking it, accepts
//! PK/KEK/db/dbx only in setup mode and has no append. Every SetVariable whose attributes carry either bit
//! is first offered to an [`AuthenticatedWritePolicy`]; [`VarstoreDefault`] keeps the crate's behaviour.
//! The verifying policy (PKCS#7 per the UEFI specification) is `svsm-uefi-auth`'s.
//!
//! A policy sees the request and the current variable (value and stored timestamp) and decides:
//! [`AuthDecision::Default`] hands the write to `virtfw-varstore` unchanged; [`AuthDecision::Refuse`]
//! answers with that EFI status and stores nothing; [`AuthDecision::Write`] stores exactly the given value
//! and timestamp (an append is the policy's to compute); [`AuthDecision::Delete`] removes the variable.
//! Whatever a decision stores is durable before the guest gets its answer, like any NV write.
//!
//! Limitation: after a [`AuthDecision::Write`] of `PK` the derived `SetupMode`/`SecureBoot` variables are
//! refreshed only at the next start (the crate's `auth_init` is private); the manifest flag is current.

use alloc::vec::Vec;

use svsm_protocol::Guid;

/// The SetVariable request as the guest sent it.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedWrite<'a> {
    /// Variable name.
    pub name: &'a str,
    /// Vendor GUID.
    pub vendor: Guid,
    /// Attributes as requested (TIME_BASED_AUTHENTICATED_WRITE_ACCESS and/or APPEND_WRITE set).
    pub attributes: u32,
    /// The data as sent, starting with the `EFI_VARIABLE_AUTHENTICATION_2` header when time-authenticated.
    pub data: &'a [u8],
}

/// The variable as currently stored.
#[derive(Debug, Clone, Copy)]
pub struct CurrentVariable<'a> {
    /// Attributes.
    pub attributes: u32,
    /// Value.
    pub data: &'a [u8],
    /// Timestamp of the last authenticated write (persisted by this crate).
    pub timestamp: Option<[u8; 16]>,
}

/// What a policy can read while deciding (PK and KEK to verify against, the target's timestamp).
pub trait VariableLookup {
    /// The current variable, regardless of boot phase.
    fn current(&self, name: &str, vendor: &Guid) -> Option<CurrentVariable<'_>>;
    /// Setup mode: no PK enrolled.
    fn setup_mode(&self) -> bool;
}

/// A policy's verdict on one authenticated write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Let `virtfw-varstore` handle it as it would without a policy.
    Default,
    /// Answer with this EFI status (e.g. `SECURITY_VIOLATION`); nothing is stored.
    Refuse(u64),
    /// Store exactly this value with this timestamp; the stored attributes are the request's without
    /// APPEND_WRITE.
    Write {
        /// The complete new value (payload without the AUTHENTICATION_2 header; for an append, old + new).
        data: Vec<u8>,
        /// The EFI_TIME to persist with it.
        timestamp: [u8; 16],
    },
    /// Remove the variable (a verified delete).
    Delete,
}

/// Decides time-based authenticated writes before `virtfw-varstore` sees them.
pub trait AuthenticatedWritePolicy: core::fmt::Debug {
    /// Judges one write.
    fn check(&mut self, lookup: &dyn VariableLookup, write: &AuthenticatedWrite<'_>) -> AuthDecision;
}

/// `virtfw-varstore` 0.6.6's own behaviour: no signature check (setup mode only for PK/KEK/db/dbx).
#[derive(Debug, Clone, Copy, Default)]
pub struct VarstoreDefault;

impl AuthenticatedWritePolicy for VarstoreDefault {
    fn check(&mut self, _lookup: &dyn VariableLookup, _write: &AuthenticatedWrite<'_>) -> AuthDecision {
        AuthDecision::Default
    }
}
