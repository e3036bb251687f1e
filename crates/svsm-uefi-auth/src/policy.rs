//! The authorisation rules for PK, KEK, db, dbx, dbt and dbr (UEFI 2.10 §8.2.2 and §32.3).
//!
//! | mode  | variable          | who must sign                                   |
//! |-------|-------------------|--------------------------------------------------|
//! | setup | PK                | the certificate in the new PK value (self-signed enrolment) |
//! | setup | KEK, db, dbx...   | nobody (descriptor and timestamp still checked)  |
//! | user  | PK, KEK           | the current PK                                   |
//! | user  | db, dbx, dbt, dbr | a KEK certificate or the current PK              |
//!
//! In every mode: attributes NV|BS|RT|TIME_BASED_AUTH (APPEND_WRITE allowed except on PK); a well-formed
//! descriptor; a TimeStamp with zero Pad1/Nanosecond/TimeZone/Daylight/Pad2, strictly later than the stored
//! one unless appending; a new value that is a valid signature list for the variable.

use alloc::vec::Vec;

use crate::api::*;
use crate::auth2::{AuthenticatedData, signed_bytes};
use crate::error::AuthError;
use crate::siglist;

/// Decides whether `request` may change the key database it names, and how. `Err` means: refuse with
/// [`AuthError::efi_status`], change nothing.
pub fn authorise(db: &impl KeyDatabases, request: &SetVariableRequest<'_>) -> Result<Decision, AuthError> {
    let variable =
        SecureBootVariable::classify(request.name, &request.guid).ok_or(AuthError::NotSecureBootVariable)?;
    let attributes = request.attributes;
    if attributes & ATTR_AUTHENTICATED_WRITE_ACCESS != 0 {
        return Err(AuthError::CountBasedAuthentication);
    }
    let append = attributes & ATTR_APPEND_WRITE != 0;
    if attributes & !ATTR_APPEND_WRITE != KEY_DATABASE_ATTRIBUTES
        || (append && variable == SecureBootVariable::Pk)
    {
        return Err(AuthError::Attributes { attributes });
    }

    let auth = AuthenticatedData::parse(request.data)?;
    if !auth.timestamp.is_descriptor_form() {
        return Err(AuthError::TimestampForm);
    }
    let stored = db.stored(variable);
    if let Some(current) = &stored
        && !append
        && !auth.timestamp.is_later_than(&current.timestamp)
    {
        return Err(AuthError::Replay);
    }

    let setup_mode = db.stored(SecureBootVariable::Pk).is_none();
    let signed =
        || signed_bytes(request.name, &request.guid, attributes, &auth.timestamp_bytes, auth.payload);
    let payload_lists = if auth.payload.is_empty() {
        Vec::new()
    } else {
        // Parsed before the signature check only where the anchor comes from the payload itself.
        match (setup_mode, variable) {
            (true, SecureBootVariable::Pk) => {
                siglist::parse_for(variable, auth.payload).map_err(AuthError::Payload)?
            }
            _ => Vec::new(),
        }
    };

    match (setup_mode, variable) {
        (true, SecureBootVariable::Pk) => {
            if auth.payload.is_empty() {
                return Err(AuthError::NoTrustAnchor);
            }
            let anchors = siglist::certificates(&payload_lists);
            crate::pkcs7::verify(auth.pkcs7, &signed(), &anchors)?;
        }
        (true, _) => {}
        (false, SecureBootVariable::Pk | SecureBootVariable::Kek) => {
            let anchors = anchors_of(db, &[SecureBootVariable::Pk]);
            crate::pkcs7::verify(auth.pkcs7, &signed(), &anchors)?;
        }
        (false, _) => {
            let anchors = anchors_of(db, &[SecureBootVariable::Kek, SecureBootVariable::Pk]);
            crate::pkcs7::verify(auth.pkcs7, &signed(), &anchors)?;
        }
    }

    if auth.payload.is_empty() && !append {
        return Ok(Decision::Delete);
    }
    let new_lists = siglist::parse_for(variable, auth.payload).map_err(AuthError::Payload)?;
    match (append, stored) {
        (true, Some(current)) => {
            let existing = siglist::parse(current.data).map_err(AuthError::StoredValue)?;
            Ok(Decision::Store {
                data: siglist::merge_append(&existing, current.data, &new_lists),
                timestamp: current.timestamp.later_of(auth.timestamp),
            })
        }
        (true, None) if auth.payload.is_empty() => Ok(Decision::Unchanged),
        _ => Ok(Decision::Store { data: auth.payload.to_vec(), timestamp: auth.timestamp }),
    }
}

/// The X.509 certificates held by `variables` (keys that do not parse cannot sign, so they are skipped).
fn anchors_of(db: &impl KeyDatabases, variables: &[SecureBootVariable]) -> Vec<x509_cert::Certificate> {
    variables
        .iter()
        .filter_map(|v| db.stored(*v))
        .filter_map(|s| siglist::parse(s.data).ok())
        .flat_map(|lists| siglist::certificates(&lists))
        .collect()
}
