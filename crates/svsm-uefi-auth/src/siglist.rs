//! `EFI_SIGNATURE_LIST` sequences (UEFI 2.10 §32.4.1): the values of PK, KEK, db, dbx, dbt and dbr. Parsing,
//! the per-variable format rules, and the duplicate-free merge an APPEND_WRITE performs.

use alloc::vec::Vec;
use der::Decode;
use x509_cert::Certificate;
use zerocopy::FromBytes;

use crate::api::SecureBootVariable;
use crate::error::SignatureListError;
use crate::guid::*;
use crate::wire::{SIGNATURE_LIST_HEADER_SIZE, SIGNATURE_OWNER_SIZE, SignatureListHeader};

/// One `EFI_SIGNATURE_LIST`, borrowed from the value it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureList<'a> {
    /// Offset of the list within the value (for error messages).
    pub offset: usize,
    /// `SignatureType`.
    pub signature_type: Guid,
    /// The type-specific header (empty for every defined type).
    pub header: &'a [u8],
    /// `SignatureSize`: bytes per entry, owner GUID included.
    pub signature_size: u32,
    /// The entries.
    pub entries: Vec<SignatureEntry<'a>>,
}

/// One `EFI_SIGNATURE_DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureEntry<'a> {
    /// `SignatureOwner`.
    pub owner: Guid,
    /// `SignatureData` (a certificate, a digest...).
    pub data: &'a [u8],
    /// The whole entry (owner then data), as compared when an append removes duplicates.
    pub raw: &'a [u8],
}

/// Splits a value into its signature lists, checking only the sizes: each list fits the value, its entries
/// fill it exactly, each entry holds at least its owner GUID. An empty value is an empty sequence.
pub fn parse(value: &[u8]) -> Result<Vec<SignatureList<'_>>, SignatureListError> {
    let mut lists = Vec::new();
    let mut offset = 0usize;
    while offset < value.len() {
        let rest = &value[offset..];
        let (header, _) = SignatureListHeader::ref_from_prefix(rest)
            .map_err(|_| SignatureListError::TruncatedHeader { offset, remaining: rest.len() })?;
        let list_size = header.signature_list_size.get();
        let signature_type = Guid(header.signature_type);
        let header_size = header.signature_header_size.get();
        let signature_size = header.signature_size.get();
        let list_len = usize::try_from(list_size).unwrap_or(usize::MAX);
        if list_len < SIGNATURE_LIST_HEADER_SIZE || list_len > rest.len() {
            return Err(SignatureListError::ListSize { offset, list_size, remaining: rest.len() });
        }
        let after_header = list_len - SIGNATURE_LIST_HEADER_SIZE;
        let header_len = usize::try_from(header_size).unwrap_or(usize::MAX);
        if header_len > after_header {
            return Err(SignatureListError::HeaderSize { offset, header_size });
        }
        let sig_len = usize::try_from(signature_size).unwrap_or(usize::MAX);
        if sig_len < SIGNATURE_OWNER_SIZE {
            return Err(SignatureListError::SignatureSize { offset, signature_type, signature_size });
        }
        let body_start = SIGNATURE_LIST_HEADER_SIZE + header_len;
        let body = &rest[body_start..list_len];
        if !body.len().is_multiple_of(sig_len) {
            return Err(SignatureListError::NotAMultiple { offset, body: body.len(), signature_size });
        }
        let entries = body
            .chunks_exact(sig_len)
            .map(|raw| {
                let mut owner = [0u8; 16];
                owner.copy_from_slice(&raw[..SIGNATURE_OWNER_SIZE]);
                SignatureEntry { owner: Guid(owner), data: &raw[SIGNATURE_OWNER_SIZE..], raw }
            })
            .collect();
        lists.push(SignatureList {
            offset,
            signature_type,
            header: &rest[SIGNATURE_LIST_HEADER_SIZE..body_start],
            signature_size,
            entries,
        });
        offset += list_len;
    }
    Ok(lists)
}

/// The data size (after the owner GUID) a defined signature type requires; `None` for variable-size X.509
/// certificates; `Err` for an undefined type.
fn defined_data_size(signature_type: &Guid) -> Result<Option<usize>, ()> {
    Ok(Some(match *signature_type {
        t if t == EFI_CERT_X509 => return Ok(None),
        t if t == EFI_CERT_SHA256 => 32,
        t if t == EFI_CERT_RSA2048 || t == EFI_CERT_RSA2048_SHA256 || t == EFI_CERT_RSA2048_SHA1 => 256,
        t if t == EFI_CERT_SHA1 => 20,
        t if t == EFI_CERT_SHA224 => 28,
        t if t == EFI_CERT_SHA384 => 48,
        t if t == EFI_CERT_SHA512 => 64,
        t if t == EFI_CERT_X509_SHA256 => 48,
        t if t == EFI_CERT_X509_SHA384 => 64,
        t if t == EFI_CERT_X509_SHA512 => 80,
        _ => return Err(()),
    }))
}

/// Parses `value` and applies the format rules for `variable`: every list of a defined type, with no header
/// and the defined entry size; every X.509 entry a DER certificate with an RSA key; KEK holding only X.509 and
/// RSA-2048 entries; PK exactly one X.509 certificate.
pub fn parse_for(
    variable: SecureBootVariable,
    value: &[u8],
) -> Result<Vec<SignatureList<'_>>, SignatureListError> {
    let lists = parse(value)?;
    let mut count = 0usize;
    for list in &lists {
        let signature_type = list.signature_type;
        let data_size = defined_data_size(&signature_type)
            .map_err(|()| SignatureListError::SignatureType { signature_type })?;
        if !list.header.is_empty() {
            return Err(SignatureListError::HeaderSize {
                offset: list.offset,
                header_size: list.header.len() as u32,
            });
        }
        let entry_data = list.signature_size as usize - SIGNATURE_OWNER_SIZE;
        if data_size.is_some_and(|n| n != entry_data) || entry_data == 0 {
            return Err(SignatureListError::SignatureSize {
                offset: list.offset,
                signature_type,
                signature_size: list.signature_size,
            });
        }
        let allowed = match variable {
            SecureBootVariable::Pk => signature_type == EFI_CERT_X509,
            SecureBootVariable::Kek => signature_type == EFI_CERT_X509 || signature_type == EFI_CERT_RSA2048,
            _ => true,
        };
        if !allowed {
            return Err(SignatureListError::SignatureType { signature_type });
        }
        if signature_type == EFI_CERT_X509 {
            for entry in &list.entries {
                let ok = Certificate::from_der(entry.data)
                    .ok()
                    .and_then(|c| crate::pkcs7::rsa_key(&c).ok())
                    .is_some();
                if !ok {
                    return Err(SignatureListError::Certificate { offset: list.offset });
                }
            }
        }
        count += list.entries.len();
    }
    if variable == SecureBootVariable::Pk && count != 1 {
        return Err(SignatureListError::PkCount { count });
    }
    Ok(lists)
}

/// The X.509 certificates among `lists` (the keys a PK or KEK value offers as signers). Entries that do not
/// parse are skipped: they cannot authorise anything.
pub fn certificates(lists: &[SignatureList<'_>]) -> Vec<Certificate> {
    lists
        .iter()
        .filter(|l| l.signature_type == EFI_CERT_X509)
        .flat_map(|l| l.entries.iter())
        .filter_map(|e| Certificate::from_der(e.data).ok())
        .collect()
}

/// The value after appending `new` to `existing` (§8.2 SetVariable, APPEND_WRITE on a signature database):
/// `existing` unchanged, followed by the lists of `new` without the entries (same type, same size, same
/// owner and data) already present in `existing` or earlier in `new`; lists left empty are dropped.
pub fn merge_append(
    existing: &[SignatureList<'_>],
    existing_bytes: &[u8],
    new: &[SignatureList<'_>],
) -> Vec<u8> {
    let mut out = existing_bytes.to_vec();
    let mut added: Vec<(Guid, u32, &[u8])> = Vec::new();
    let present = |ty: &Guid, size: u32, raw: &[u8], added: &[(Guid, u32, &[u8])]| {
        existing.iter().any(|l| {
            l.signature_type == *ty && l.signature_size == size && l.entries.iter().any(|e| e.raw == raw)
        }) || added.iter().any(|(t, s, r)| t == ty && *s == size && *r == raw)
    };
    for list in new {
        let mut kept: Vec<&[u8]> = Vec::new();
        for entry in &list.entries {
            if !present(&list.signature_type, list.signature_size, entry.raw, &added) {
                added.push((list.signature_type, list.signature_size, entry.raw));
                kept.push(entry.raw);
            }
        }
        if kept.is_empty() {
            continue;
        }
        let size = SIGNATURE_LIST_HEADER_SIZE + list.header.len() + kept.len() * list.signature_size as usize;
        out.extend_from_slice(list.signature_type.as_bytes());
        out.extend_from_slice(&(size as u32).to_le_bytes());
        out.extend_from_slice(&(list.header.len() as u32).to_le_bytes());
        out.extend_from_slice(&list.signature_size.to_le_bytes());
        out.extend_from_slice(list.header);
        for raw in kept {
            out.extend_from_slice(raw);
        }
    }
    out
}

/// Test helpers: build signature lists by hand.
#[cfg(any(test, feature = "testing"))]
pub mod build {
    use super::*;

    /// One list of `signature_type` holding `entries` (owner, data), all of the same data size.
    pub fn list(signature_type: &Guid, entries: &[(Guid, &[u8])]) -> Vec<u8> {
        let data_len = entries.first().map_or(0, |e| e.1.len());
        let sig = SIGNATURE_OWNER_SIZE + data_len;
        let mut v = Vec::new();
        v.extend_from_slice(signature_type.as_bytes());
        v.extend_from_slice(&((SIGNATURE_LIST_HEADER_SIZE + sig * entries.len()) as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(sig as u32).to_le_bytes());
        for (owner, data) in entries {
            v.extend_from_slice(owner.as_bytes());
            v.extend_from_slice(data);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::build::list;
    use super::*;

    const OWNER: Guid = Guid([0x11; 16]);

    #[test]
    fn parses_and_validates_hash_lists() {
        let mut v = list(&EFI_CERT_SHA256, &[(OWNER, &[1; 32]), (OWNER, &[2; 32])]);
        v.extend(list(&EFI_CERT_SHA256, &[(OWNER, &[3; 32])]));
        let lists = parse_for(SecureBootVariable::Dbx, &v).unwrap();
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[0].entries.len(), 2);
        assert_eq!(lists[1].offset, 28 + 96);
        assert_eq!(lists[1].entries[0].data, &[3; 32]);
    }

    #[test]
    fn refuses_bad_sizes_and_types() {
        let good = list(&EFI_CERT_SHA256, &[(OWNER, &[1; 32])]);
        let mut truncated = good.clone();
        truncated.pop();
        assert!(matches!(parse(&truncated), Err(SignatureListError::ListSize { offset: 0, .. })));
        assert!(matches!(parse(&good[..27]), Err(SignatureListError::TruncatedHeader { .. })));
        let wrong_size = list(&EFI_CERT_SHA256, &[(OWNER, &[1; 31])]);
        assert!(matches!(
            parse_for(SecureBootVariable::Db, &wrong_size),
            Err(SignatureListError::SignatureSize { .. })
        ));
        let unknown = list(&Guid([9; 16]), &[(OWNER, &[1; 32])]);
        assert!(matches!(
            parse_for(SecureBootVariable::Db, &unknown),
            Err(SignatureListError::SignatureType { .. })
        ));
        assert!(matches!(
            parse_for(SecureBootVariable::Kek, &good),
            Err(SignatureListError::SignatureType { .. })
        ));
        let mut not_multiple = good.clone();
        not_multiple[24..28].copy_from_slice(&40u32.to_le_bytes());
        assert!(matches!(parse(&not_multiple), Err(SignatureListError::NotAMultiple { .. })));
        let mut tiny_sig = good.clone();
        tiny_sig[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(parse(&tiny_sig), Err(SignatureListError::SignatureSize { .. })));
        let bad_cert = list(&EFI_CERT_X509, &[(OWNER, &[0x30, 0x00])]);
        assert!(matches!(
            parse_for(SecureBootVariable::Db, &bad_cert),
            Err(SignatureListError::Certificate { .. })
        ));
        assert!(matches!(
            parse_for(SecureBootVariable::Pk, &[]),
            Err(SignatureListError::PkCount { count: 0 })
        ));
    }

    #[test]
    fn append_drops_entries_already_present() {
        let existing = list(&EFI_CERT_SHA256, &[(OWNER, &[1; 32]), (OWNER, &[2; 32])]);
        let mut new = list(&EFI_CERT_SHA256, &[(OWNER, &[2; 32]), (OWNER, &[3; 32]), (OWNER, &[3; 32])]);
        new.extend(list(&EFI_CERT_SHA256, &[(OWNER, &[1; 32])]));
        let merged = merge_append(&parse(&existing).unwrap(), &existing, &parse(&new).unwrap());
        let lists = parse(&merged).unwrap();
        assert_eq!(lists.len(), 2, "the all-duplicate list is dropped");
        assert_eq!(&merged[..existing.len()], &existing[..]);
        assert_eq!(lists[1].entries.len(), 1);
        assert_eq!(lists[1].entries[0].data, &[3; 32]);
        // Another owner makes another EFI_SIGNATURE_DATA.
        let other = list(&EFI_CERT_SHA256, &[(Guid([0x22; 16]), &[1; 32])]);
        let merged = merge_append(&parse(&existing).unwrap(), &existing, &parse(&other).unwrap());
        assert_eq!(merged.len(), existing.len() + other.len());
    }
}
