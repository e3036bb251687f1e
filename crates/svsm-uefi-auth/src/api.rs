//! The contract with the variable service: what a write asks, what the service must tell us about the stored
//! key databases, and what it must do with our answer.

use alloc::vec::Vec;

use crate::guid::{EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, Guid};
use crate::wire::EfiTime;

/// `EFI_VARIABLE_NON_VOLATILE`.
pub const ATTR_NON_VOLATILE: u32 = 0x01;
/// `EFI_VARIABLE_BOOTSERVICE_ACCESS`.
pub const ATTR_BOOTSERVICE_ACCESS: u32 = 0x02;
/// `EFI_VARIABLE_RUNTIME_ACCESS`.
pub const ATTR_RUNTIME_ACCESS: u32 = 0x04;
/// `EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS` (count-based, deprecated).
pub const ATTR_AUTHENTICATED_WRITE_ACCESS: u32 = 0x10;
/// `EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS`.
pub const ATTR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS: u32 = 0x20;
/// `EFI_VARIABLE_APPEND_WRITE`.
pub const ATTR_APPEND_WRITE: u32 = 0x40;
/// The attributes every Secure Boot key database carries (NV|BS|RT|TIME_BASED_AUTH = 0x27).
pub const KEY_DATABASE_ATTRIBUTES: u32 = ATTR_NON_VOLATILE
    | ATTR_BOOTSERVICE_ACCESS
    | ATTR_RUNTIME_ACCESS
    | ATTR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS;

/// The variables whose writes this crate decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecureBootVariable {
    /// `PK` (global GUID): the platform key; present = user mode.
    Pk,
    /// `KEK` (global GUID): key exchange keys.
    Kek,
    /// `db` (image security GUID): allowed signatures.
    Db,
    /// `dbx`: forbidden signatures.
    Dbx,
    /// `dbt`: timestamping authorities.
    Dbt,
    /// `dbr`: OS recovery signers.
    Dbr,
}

impl SecureBootVariable {
    /// Every variable, PK first.
    pub const ALL: [SecureBootVariable; 6] = [Self::Pk, Self::Kek, Self::Db, Self::Dbx, Self::Dbt, Self::Dbr];

    /// The variable `name` (UCS-2, no terminating NUL) under `guid` names, if it is one of these.
    pub fn classify(name: &[u16], guid: &Guid) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.guid() == *guid && v.name().encode_utf16().eq(name.iter().copied()))
    }

    /// The variable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pk => "PK",
            Self::Kek => "KEK",
            Self::Db => "db",
            Self::Dbx => "dbx",
            Self::Dbt => "dbt",
            Self::Dbr => "dbr",
        }
    }

    /// The vendor GUID.
    pub fn guid(self) -> Guid {
        match self {
            Self::Pk | Self::Kek => EFI_GLOBAL_VARIABLE,
            _ => EFI_IMAGE_SECURITY_DATABASE,
        }
    }
}

/// A SetVariable call as the guest made it.
#[derive(Debug, Clone, Copy)]
pub struct SetVariableRequest<'a> {
    /// VariableName in UCS-2, without the terminating NUL.
    pub name: &'a [u16],
    /// VendorGuid.
    pub guid: Guid,
    /// Attributes, exactly as passed.
    pub attributes: u32,
    /// Data: the `EFI_VARIABLE_AUTHENTICATION_2` descriptor followed by the new value.
    pub data: &'a [u8],
}

/// A stored key database as the variable service holds it.
#[derive(Debug, Clone, Copy)]
pub struct StoredVariable<'a> {
    /// The value (signature lists).
    pub data: &'a [u8],
    /// The timestamp stored with it (all zero for keys enrolled without one).
    pub timestamp: EfiTime,
}

/// What the variable service must tell the authoriser: the current value and timestamp of the key databases.
/// Setup mode is "no PK".
pub trait KeyDatabases {
    /// The stored variable, or `None` when it does not exist.
    fn stored(&self, variable: SecureBootVariable) -> Option<StoredVariable<'_>>;
}

/// What the variable service must do with an authorised write. Anything else (an `Err` from
/// [`crate::authorise`]) must leave the store untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Replace the variable's value with `data` (for an append, the merged value) and keep `timestamp` with it,
    /// attributes [`KEY_DATABASE_ATTRIBUTES`] (APPEND_WRITE is an operation, not an attribute to store).
    Store {
        /// The complete new value.
        data: Vec<u8>,
        /// The timestamp to persist (for an append, the later of the stored and the new one).
        timestamp: EfiTime,
    },
    /// Delete the variable (a correctly signed write with an empty value). Deleting PK returns the platform
    /// to setup mode.
    Delete,
    /// Nothing to change: an append of nothing new to a variable that does not exist.
    Unchanged,
}
