//! EFI GUIDs in their wire form (the mixed-endian byte order EFI stores them in), and the GUIDs this crate needs.

use core::fmt;

/// An EFI GUID as its 16 wire bytes: `Data1` (u32), `Data2` and `Data3` (u16) little-endian, then the 8 bytes of
/// `Data4` as they are. Comparing the bytes compares the GUIDs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written `d1-d2-d3-d4[0..2]-d4[2..8]` in the spec's text form.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6],
            d4[7],
        ])
    }

    /// The wire bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

/// `EFI_GLOBAL_VARIABLE`: the vendor GUID of PK and KEK.
pub const EFI_GLOBAL_VARIABLE: Guid =
    Guid::new(0x8be4df61, 0x93ca, 0x11d2, [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c]);
/// `EFI_IMAGE_SECURITY_DATABASE_GUID`: the vendor GUID of db, dbx, dbt and dbr.
pub const EFI_IMAGE_SECURITY_DATABASE: Guid =
    Guid::new(0xd719b2cb, 0x3d3a, 0x4596, [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f]);
/// `EFI_CERT_TYPE_PKCS7_GUID`: the only `CertType` a time-based authenticated write may carry.
pub const EFI_CERT_TYPE_PKCS7: Guid =
    Guid::new(0x4aafd29d, 0x68df, 0x49ee, [0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7]);

/// `EFI_CERT_SHA256_GUID`: a signature-list entry that is a SHA-256 digest (32 bytes).
pub const EFI_CERT_SHA256: Guid =
    Guid::new(0xc1c41626, 0x504c, 0x4092, [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28]);
/// `EFI_CERT_RSA2048_GUID`: an RSA-2048 modulus (256 bytes).
pub const EFI_CERT_RSA2048: Guid =
    Guid::new(0x3c5766e8, 0x269c, 0x4e34, [0xaa, 0x14, 0xed, 0x77, 0x6e, 0x85, 0xb3, 0xb6]);
/// `EFI_CERT_RSA2048_SHA256_GUID`: an RSA-2048 signature of a SHA-256 digest (256 bytes).
pub const EFI_CERT_RSA2048_SHA256: Guid =
    Guid::new(0xe2b36190, 0x879b, 0x4a3d, [0xad, 0x8d, 0xf2, 0xe7, 0xbb, 0xa3, 0x27, 0x84]);
/// `EFI_CERT_SHA1_GUID`: a SHA-1 digest (20 bytes).
pub const EFI_CERT_SHA1: Guid =
    Guid::new(0x826ca512, 0xcf10, 0x4ac9, [0xb1, 0x87, 0xbe, 0x01, 0x49, 0x66, 0x31, 0xbd]);
/// `EFI_CERT_RSA2048_SHA1_GUID`: an RSA-2048 signature of a SHA-1 digest (256 bytes).
pub const EFI_CERT_RSA2048_SHA1: Guid =
    Guid::new(0x67f8444f, 0x8743, 0x48f1, [0xa3, 0x28, 0x1e, 0xaa, 0xb8, 0x73, 0x60, 0x80]);
/// `EFI_CERT_X509_GUID`: a DER X.509 certificate (any size).
pub const EFI_CERT_X509: Guid =
    Guid::new(0xa5c059a1, 0x94e4, 0x4aa7, [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72]);
/// `EFI_CERT_SHA224_GUID` (28 bytes).
pub const EFI_CERT_SHA224: Guid =
    Guid::new(0x0b6e5233, 0xa65c, 0x44c9, [0x94, 0x07, 0xd9, 0xab, 0x83, 0xbf, 0xc8, 0xbd]);
/// `EFI_CERT_SHA384_GUID` (48 bytes).
pub const EFI_CERT_SHA384: Guid =
    Guid::new(0xff3e5307, 0x9fd0, 0x48c9, [0x85, 0xf1, 0x8a, 0xd5, 0x6c, 0x70, 0x1e, 0x01]);
/// `EFI_CERT_SHA512_GUID` (64 bytes).
pub const EFI_CERT_SHA512: Guid =
    Guid::new(0x093e0fae, 0xa6c4, 0x4f50, [0x9f, 0x1b, 0xd4, 0x1e, 0x2b, 0x89, 0xc1, 0x9a]);
/// `EFI_CERT_X509_SHA256_GUID`: a certificate's TBS SHA-256 and a revocation time (32 + 16 bytes).
pub const EFI_CERT_X509_SHA256: Guid =
    Guid::new(0x3bd2a492, 0x96c0, 0x4079, [0xb4, 0x20, 0xfc, 0xf9, 0x8e, 0xf1, 0x03, 0xed]);
/// `EFI_CERT_X509_SHA384_GUID` (48 + 16 bytes).
pub const EFI_CERT_X509_SHA384: Guid =
    Guid::new(0x7076876e, 0x80c2, 0x4ee6, [0xaa, 0xd2, 0x28, 0xb3, 0x49, 0xa6, 0x86, 0x5b]);
/// `EFI_CERT_X509_SHA512_GUID` (64 + 16 bytes).
pub const EFI_CERT_X509_SHA512: Guid =
    Guid::new(0x446dbf63, 0x2502, 0x4cda, [0xbc, 0xfa, 0x24, 0x65, 0xd2, 0xb0, 0xfe, 0x9d]);

#[cfg(test)]
mod tests {
    use super::*;
    extern crate alloc;
    use alloc::format;

    #[test]
    fn text_form_round_trips_the_mixed_endian_bytes() {
        assert_eq!(format!("{EFI_GLOBAL_VARIABLE}"), "8be4df61-93ca-11d2-aa0d-00e098032b8c");
        assert_eq!(EFI_GLOBAL_VARIABLE.0[..4], [0x61, 0xdf, 0xe4, 0x8b]);
        assert_eq!(format!("{EFI_CERT_TYPE_PKCS7}"), "4aafd29d-68df-49ee-8aa9-347d375665a7");
    }
}
