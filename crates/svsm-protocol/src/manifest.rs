//! The services manifest (SVSM_ATTEST_SERVICES output) and the GHCB certificate table: both are GUID
//! tables of `{guid, offset, size}` entries pointing into the same blob. Building is for the SVSM; parsing is
//! for verifiers and guest tools, and treats every byte as hostile.

use alloc::vec::Vec;

use crate::guid::{Guid, SERVICES_MANIFEST_GUID};
use crate::wire::GuidTableEntry;

/// Size of the services-manifest header.
pub const MANIFEST_HEADER_SIZE: usize = 24;
/// Size of one GUID table entry.
pub const ENTRY_SIZE: usize = 24;

/// Why a manifest or certificate table is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Shorter than its header or entry table.
    #[error("truncated")]
    Truncated,
    /// The header GUID is not the services-manifest GUID.
    #[error("header GUID is not the services-manifest GUID")]
    WrongGuid,
    /// The header's total size disagrees with the blob length.
    #[error("total size field {field} but blob is {actual} bytes")]
    SizeMismatch {
        /// Value in the header.
        field: u32,
        /// Actual length.
        actual: usize,
    },
    /// An entry points outside the blob or into the header/entry table.
    #[error("entry {0} points outside the data area")]
    EntryOutOfBounds(usize),
    /// Two entries name the same GUID.
    #[error("entry {0} repeats a GUID")]
    DuplicateGuid(usize),
    /// A table would exceed u32 sizes.
    #[error("too large")]
    TooLarge,
}

/// Builds a services manifest: header, one entry per service (in the given order), then the blobs.
pub fn build_services_manifest(services: &[(Guid, &[u8])]) -> Result<Vec<u8>, ManifestError> {
    let table_len = services
        .len()
        .checked_mul(ENTRY_SIZE)
        .and_then(|t| t.checked_add(MANIFEST_HEADER_SIZE))
        .ok_or(ManifestError::TooLarge)?;
    let total = services
        .iter()
        .try_fold(table_len, |acc, (_, blob)| acc.checked_add(blob.len()))
        .ok_or(ManifestError::TooLarge)?;
    let total32 = u32::try_from(total).map_err(|_| ManifestError::TooLarge)?;
    let count = u32::try_from(services.len()).map_err(|_| ManifestError::TooLarge)?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(SERVICES_MANIFEST_GUID.as_bytes());
    out.extend_from_slice(&total32.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let mut offset = table_len;
    for (guid, blob) in services {
        let entry = GuidTableEntry {
            guid: guid.0,
            offset: u32::try_from(offset).map_err(|_| ManifestError::TooLarge)?,
            size: u32::try_from(blob.len()).map_err(|_| ManifestError::TooLarge)?,
        };
        out.extend_from_slice(&entry.encode());
        offset = offset.checked_add(blob.len()).ok_or(ManifestError::TooLarge)?;
    }
    for (_, blob) in services {
        out.extend_from_slice(blob);
    }
    Ok(out)
}

/// One service of a parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestService<'a> {
    /// Service GUID.
    pub guid: Guid,
    /// The service's manifest bytes.
    pub data: &'a [u8],
}

fn entry_at(bytes: &[u8], off: usize) -> Option<GuidTableEntry> {
    let b: &[u8; 24] = bytes.get(off..off.checked_add(ENTRY_SIZE)?)?.try_into().ok()?;
    Some(GuidTableEntry::decode(b))
}

/// Parses a services manifest strictly: right GUID, total size equal to the blob length, every entry inside
/// the data area after the table, no duplicate GUIDs.
pub fn parse_services_manifest(bytes: &[u8]) -> Result<Vec<ManifestService<'_>>, ManifestError> {
    let guid: [u8; 16] =
        bytes.get(..16).ok_or(ManifestError::Truncated)?.try_into().map_err(|_| ManifestError::Truncated)?;
    if Guid(guid) != SERVICES_MANIFEST_GUID {
        return Err(ManifestError::WrongGuid);
    }
    let word = |o: usize| -> Result<u32, ManifestError> {
        let s: [u8; 4] = bytes
            .get(o..o + 4)
            .ok_or(ManifestError::Truncated)?
            .try_into()
            .map_err(|_| ManifestError::Truncated)?;
        Ok(u32::from_le_bytes(s))
    };
    let total = word(16)?;
    let count = word(20)?;
    if usize::try_from(total).ok() != Some(bytes.len()) {
        return Err(ManifestError::SizeMismatch { field: total, actual: bytes.len() });
    }
    let count = usize::try_from(count).map_err(|_| ManifestError::Truncated)?;
    let table_end = count
        .checked_mul(ENTRY_SIZE)
        .and_then(|t| t.checked_add(MANIFEST_HEADER_SIZE))
        .filter(|end| *end <= bytes.len())
        .ok_or(ManifestError::Truncated)?;
    let mut services: Vec<ManifestService<'_>> = Vec::with_capacity(count);
    for i in 0..count {
        let e = entry_at(bytes, MANIFEST_HEADER_SIZE + i * ENTRY_SIZE).ok_or(ManifestError::Truncated)?;
        let start = usize::try_from(e.offset).map_err(|_| ManifestError::EntryOutOfBounds(i))?;
        let len = usize::try_from(e.size).map_err(|_| ManifestError::EntryOutOfBounds(i))?;
        let end = start.checked_add(len).ok_or(ManifestError::EntryOutOfBounds(i))?;
        if (len > 0 && start < table_end) || end > bytes.len() {
            return Err(ManifestError::EntryOutOfBounds(i));
        }
        if services.iter().any(|s| s.guid.0 == e.guid) {
            return Err(ManifestError::DuplicateGuid(i));
        }
        let data = bytes.get(start..end).ok_or(ManifestError::EntryOutOfBounds(i))?;
        services.push(ManifestService { guid: Guid(e.guid), data });
    }
    Ok(services)
}

/// Builds a GHCB certificate table: entries, an all-zero terminator entry, then the certificates.
pub fn build_certificate_table(certs: &[(Guid, &[u8])]) -> Result<Vec<u8>, ManifestError> {
    let table_len =
        certs.len().checked_add(1).and_then(|n| n.checked_mul(ENTRY_SIZE)).ok_or(ManifestError::TooLarge)?;
    let mut out = Vec::new();
    let mut offset = table_len;
    for (guid, der) in certs {
        let e = GuidTableEntry {
            guid: guid.0,
            offset: u32::try_from(offset).map_err(|_| ManifestError::TooLarge)?,
            size: u32::try_from(der.len()).map_err(|_| ManifestError::TooLarge)?,
        };
        out.extend_from_slice(&e.encode());
        offset = offset.checked_add(der.len()).ok_or(ManifestError::TooLarge)?;
    }
    out.extend_from_slice(&[0u8; ENTRY_SIZE]);
    for (_, der) in certs {
        out.extend_from_slice(der);
    }
    Ok(out)
}

/// Whether a certificate table carries no entries (first 24 bytes zero; COCONUT then reports no certificates).
pub fn certificate_table_is_empty(table: &[u8]) -> bool {
    table.get(..ENTRY_SIZE).is_none_or(|first| first.iter().all(|b| *b == 0))
}

/// Parses a GHCB certificate table up to its zero terminator; entries must point inside the blob.
pub fn parse_certificate_table(bytes: &[u8]) -> Result<Vec<ManifestService<'_>>, ManifestError> {
    let mut out: Vec<ManifestService<'_>> = Vec::new();
    let mut i = 0usize;
    loop {
        let off = i.checked_mul(ENTRY_SIZE).ok_or(ManifestError::Truncated)?;
        let e = entry_at(bytes, off).ok_or(ManifestError::Truncated)?;
        if e.guid == [0; 16] && e.offset == 0 && e.size == 0 {
            return Ok(out);
        }
        let start = usize::try_from(e.offset).map_err(|_| ManifestError::EntryOutOfBounds(i))?;
        let end = start
            .checked_add(usize::try_from(e.size).map_err(|_| ManifestError::EntryOutOfBounds(i))?)
            .ok_or(ManifestError::EntryOutOfBounds(i))?;
        let data = bytes.get(start..end).ok_or(ManifestError::EntryOutOfBounds(i))?;
        if out.iter().any(|s| s.guid.0 == e.guid) {
            return Err(ManifestError::DuplicateGuid(i));
        }
        out.push(ManifestService { guid: Guid(e.guid), data });
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::{CERT_TABLE_ARK_GUID, CERT_TABLE_VCEK_GUID, VTPM_SERVICE_GUID};

    #[test]
    fn manifest_layout_matches_reference() {
        let other = Guid::parse("a4453a59-9e1b-4787-a033-1986d6adbe55").expect("guid");
        let m = build_services_manifest(&[(VTPM_SERVICE_GUID, b"abc"), (other, b"")]).expect("builds");
        assert_eq!(m.len(), 24 + 48 + 3);
        assert_eq!(&m[..16], SERVICES_MANIFEST_GUID.as_bytes());
        assert_eq!(u32::from_le_bytes(m[16..20].try_into().expect("4")), 75);
        assert_eq!(u32::from_le_bytes(m[20..24].try_into().expect("4")), 2);
        assert_eq!(&m[24..40], VTPM_SERVICE_GUID.as_bytes());
        assert_eq!(u32::from_le_bytes(m[40..44].try_into().expect("4")), 72);
        assert_eq!(u32::from_le_bytes(m[44..48].try_into().expect("4")), 3);
        assert_eq!(&m[72..], b"abc");
        let parsed = parse_services_manifest(&m).expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].data, b"abc");
        assert_eq!(parsed[1].guid, other);
        assert!(parsed[1].data.is_empty());
    }

    #[test]
    fn hostile_manifests_are_rejected() {
        let m = build_services_manifest(&[(VTPM_SERVICE_GUID, b"abcd")]).expect("builds");
        for cut in 0..m.len() {
            assert!(parse_services_manifest(&m[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = m.clone();
        bad[0] ^= 1;
        assert_eq!(parse_services_manifest(&bad), Err(ManifestError::WrongGuid));
        let mut bad = m.clone();
        bad[44] = 5; // size past end
        assert_eq!(parse_services_manifest(&bad), Err(ManifestError::EntryOutOfBounds(0)));
        let mut bad = m.clone();
        bad[40] = 0; // offset into the header
        assert_eq!(parse_services_manifest(&bad), Err(ManifestError::EntryOutOfBounds(0)));
        let mut bad = m;
        bad[20] = 0xff; // absurd count
        assert_eq!(parse_services_manifest(&bad), Err(ManifestError::Truncated));
        let dup =
            build_services_manifest(&[(VTPM_SERVICE_GUID, b"a"), (VTPM_SERVICE_GUID, b"b")]).expect("b");
        assert_eq!(parse_services_manifest(&dup), Err(ManifestError::DuplicateGuid(1)));
    }

    #[test]
    fn certificate_table_round_trip() {
        let t = build_certificate_table(&[(CERT_TABLE_VCEK_GUID, b"vcek"), (CERT_TABLE_ARK_GUID, b"ark!")])
            .expect("builds");
        assert!(!certificate_table_is_empty(&t));
        let p = parse_certificate_table(&t).expect("parses");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].data, b"vcek");
        assert_eq!(p[1].data, b"ark!");
        let empty = build_certificate_table(&[]).expect("builds");
        assert!(certificate_table_is_empty(&empty));
        assert_eq!(parse_certificate_table(&empty).expect("parses").len(), 0);
        assert!(parse_certificate_table(&t[..30]).is_err());
    }
}
