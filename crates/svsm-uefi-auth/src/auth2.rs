//! Splitting a time-based authenticated SetVariable buffer into its descriptor, PKCS#7 data and new value, and
//! building the bytes the signature covers (UEFI 2.10 §8.2.2).

use alloc::vec::Vec;
use zerocopy::FromBytes;

use crate::error::AuthError;
use crate::guid::{EFI_CERT_TYPE_PKCS7, Guid};
use crate::wire::{
    EfiTime, VariableAuthentication2, WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_EFI_GUID,
    WIN_CERTIFICATE_UEFI_GUID_SIZE,
};

/// A SetVariable data buffer split at the `EFI_VARIABLE_AUTHENTICATION_2` descriptor's boundaries. Only the
/// structure is checked here; the signature is checked by [`crate::pkcs7`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedData<'a> {
    /// The descriptor's TimeStamp.
    pub timestamp: EfiTime,
    /// The raw TimeStamp bytes, exactly as signed.
    pub timestamp_bytes: [u8; 16],
    /// `CertData`: DER PKCS#7 SignedData (bare, or wrapped in a ContentInfo).
    pub pkcs7: &'a [u8],
    /// The new variable value that follows the descriptor (empty for a delete or an empty append).
    pub payload: &'a [u8],
}

impl<'a> AuthenticatedData<'a> {
    /// Splits `data`. Errors are all `EFI_SECURITY_VIOLATION` class: a descriptor that is not what §8.2.2
    /// defines cannot authenticate anything.
    pub fn parse(data: &'a [u8]) -> Result<Self, AuthError> {
        let (descriptor, rest) = VariableAuthentication2::ref_from_prefix(data)
            .map_err(|_| AuthError::DescriptorTruncated { len: data.len() })?;
        let cert = &descriptor.auth_info;
        let length = cert.length.get();
        // `rest` starts at CertData; the certificate (header included) starts 24 bytes earlier.
        let available = rest.len() + WIN_CERTIFICATE_UEFI_GUID_SIZE;
        let cert_len =
            usize::try_from(length).map_err(|_| AuthError::CertificateLength { length, available })?;
        if cert_len < WIN_CERTIFICATE_UEFI_GUID_SIZE || cert_len > available {
            return Err(AuthError::CertificateLength { length, available });
        }
        if cert.revision.get() != WIN_CERT_REVISION_2_0 {
            return Err(AuthError::CertificateRevision(cert.revision.get()));
        }
        if cert.certificate_type.get() != WIN_CERT_TYPE_EFI_GUID {
            return Err(AuthError::CertificateType(cert.certificate_type.get()));
        }
        if Guid(cert.cert_type) != EFI_CERT_TYPE_PKCS7 {
            return Err(AuthError::CertType(Guid(cert.cert_type)));
        }
        let (pkcs7, payload) = rest.split_at(cert_len - WIN_CERTIFICATE_UEFI_GUID_SIZE);
        Ok(AuthenticatedData {
            timestamp: descriptor.time_stamp,
            timestamp_bytes: descriptor.time_stamp.to_wire(),
            pkcs7,
            payload,
        })
    }
}

/// The serialisation the PKCS#7 signature covers: VariableName (UCS-2 little-endian, no terminating NUL),
/// VendorGuid, Attributes (u32 little-endian, exactly as passed to SetVariable, APPEND_WRITE included),
/// TimeStamp, then the new value.
pub fn signed_bytes(
    name: &[u16],
    guid: &Guid,
    attributes: u32,
    timestamp: &[u8; 16],
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() * 2 + 16 + 4 + 16 + payload.len());
    for unit in name {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out.extend_from_slice(guid.as_bytes());
    out.extend_from_slice(&attributes.to_le_bytes());
    out.extend_from_slice(timestamp);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn descriptor(
        length: u32,
        revision: u16,
        kind: u16,
        cert_type: &Guid,
        cert_data: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let mut v = EfiTime::new(2026, 12, 2, 0, 0, 1).to_wire().to_vec();
        v.extend_from_slice(&length.to_le_bytes());
        v.extend_from_slice(&revision.to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(cert_type.as_bytes());
        v.extend_from_slice(cert_data);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn splits_at_dw_length() {
        let d = descriptor(24 + 3, 0x0200, 0x0ef1, &EFI_CERT_TYPE_PKCS7, &[1, 2, 3], &[9, 9]);
        let a = AuthenticatedData::parse(&d).unwrap();
        assert_eq!(a.pkcs7, &[1, 2, 3]);
        assert_eq!(a.payload, &[9, 9]);
        assert_eq!(a.timestamp, EfiTime::new(2026, 12, 2, 0, 0, 1));
    }

    #[test]
    fn refuses_each_malformed_field() {
        let p7 = EFI_CERT_TYPE_PKCS7;
        assert_eq!(AuthenticatedData::parse(&[0u8; 39]), Err(AuthError::DescriptorTruncated { len: 39 }));
        let too_long = descriptor(24 + 4, 0x0200, 0x0ef1, &p7, &[1, 2, 3], &[]);
        assert!(matches!(
            AuthenticatedData::parse(&too_long),
            Err(AuthError::CertificateLength { length: 28, .. })
        ));
        let too_short = descriptor(23, 0x0200, 0x0ef1, &p7, &[], &[]);
        assert!(matches!(AuthenticatedData::parse(&too_short), Err(AuthError::CertificateLength { .. })));
        let huge = descriptor(u32::MAX, 0x0200, 0x0ef1, &p7, &[], &[]);
        assert!(matches!(AuthenticatedData::parse(&huge), Err(AuthError::CertificateLength { .. })));
        let rev = descriptor(24, 0x0100, 0x0ef1, &p7, &[], &[]);
        assert_eq!(AuthenticatedData::parse(&rev), Err(AuthError::CertificateRevision(0x0100)));
        let kind = descriptor(24, 0x0200, 0x0002, &p7, &[], &[]);
        assert_eq!(AuthenticatedData::parse(&kind), Err(AuthError::CertificateType(2)));
        let other = Guid([7; 16]);
        let ct = descriptor(24, 0x0200, 0x0ef1, &other, &[], &[]);
        assert_eq!(AuthenticatedData::parse(&ct), Err(AuthError::CertType(other)));
    }

    #[test]
    fn signed_bytes_follow_the_spec_order() {
        let g = Guid([0xab; 16]);
        let b = signed_bytes(&[u16::from(b'd'), u16::from(b'b')], &g, 0x27, &[5; 16], &[1, 2]);
        let mut want = vec![b'd', 0, b'b', 0];
        want.extend_from_slice(&[0xab; 16]);
        want.extend_from_slice(&[0x27, 0, 0, 0]);
        want.extend_from_slice(&[5; 16]);
        want.extend_from_slice(&[1, 2]);
        assert_eq!(b, want);
    }
}
