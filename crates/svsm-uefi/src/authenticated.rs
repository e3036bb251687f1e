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

/// The verifying policy (the default of [`crate::UefiVariables::open`]): `svsm-uefi-auth` decides every
/// time-based authenticated write of PK, KEK, db, dbx, dbt and dbr per UEFI 2.10 §8.2.2 — PKCS#7 over name,
/// vendor GUID, attributes, timestamp and value; PK signs PK and KEK, KEK or PK signs db/dbx; timestamps
/// strictly increasing except for APPEND_WRITE, which merges signature lists without duplicates; an empty
/// signed value deletes.
///
/// An authorised write is stored with [`AuthDecision::Write`]/[`AuthDecision::Delete`], which bypass
/// `virtfw-varstore`'s setup-mode-only rule for these variables on purpose: the signature has been checked
/// here, which is what that rule stands in for. Anything refused gets the crate's precise status
/// (SECURITY_VIOLATION for a bad or missing signature, a replayed timestamp or an untrusted signer;
/// INVALID_PARAMETER for wrong attributes or a value that is not a signature list) and nothing is stored. An
/// authorised append that adds nothing answers SUCCESS without a write. Other variables go to
/// `virtfw-varstore` unchanged ([`AuthDecision::Default`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifiedSecureBoot;

/// The key databases as `svsm-uefi-auth` reads them, from the service's durable variables.
struct KeyDatabasesView<'a>(&'a dyn VariableLookup);

impl svsm_uefi_auth::KeyDatabases for KeyDatabasesView<'_> {
    fn stored(
        &self,
        variable: svsm_uefi_auth::SecureBootVariable,
    ) -> Option<svsm_uefi_auth::StoredVariable<'_>> {
        let current = self.0.current(variable.name(), &Guid(variable.guid().0))?;
        Some(svsm_uefi_auth::StoredVariable {
            data: current.data,
            // Keys installed without a timestamp (enrolment presets, imports) count as the epoch.
            timestamp: current.timestamp.map(svsm_uefi_auth::EfiTime::from_wire).unwrap_or_default(),
        })
    }
}

impl AuthenticatedWritePolicy for VerifiedSecureBoot {
    fn check(&mut self, lookup: &dyn VariableLookup, write: &AuthenticatedWrite<'_>) -> AuthDecision {
        let name: Vec<u16> = write.name.encode_utf16().collect();
        let guid = svsm_uefi_auth::Guid(write.vendor.0);
        let Some(variable) = svsm_uefi_auth::SecureBootVariable::classify(&name, &guid) else {
            return AuthDecision::Default;
        };
        let request = svsm_uefi_auth::SetVariableRequest {
            name: &name,
            guid,
            attributes: write.attributes,
            data: write.data,
        };
        match svsm_uefi_auth::authorise(&KeyDatabasesView(lookup), &request) {
            Ok(svsm_uefi_auth::Decision::Store { data, timestamp }) => {
                tracing::info!(
                    variable = variable.name(),
                    bytes = data.len(),
                    "authenticated write verified"
                );
                AuthDecision::Write { data, timestamp: timestamp.to_wire() }
            }
            Ok(svsm_uefi_auth::Decision::Delete) => {
                tracing::info!(variable = variable.name(), "authenticated delete verified");
                AuthDecision::Delete
            }
            Ok(svsm_uefi_auth::Decision::Unchanged) => AuthDecision::Refuse(crate::mm::status::SUCCESS),
            Err(e) => {
                tracing::warn!(variable = variable.name(), error = %e, "authenticated write refused");
                AuthDecision::Refuse(e.efi_status())
            }
        }
    }
}
