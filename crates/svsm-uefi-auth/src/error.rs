//! Why a time-based authenticated write was refused, and the EFI status each refusal returns.

use crate::guid::Guid;

/// EFI status codes (UEFI 2.10 Appendix D) this crate returns, as the 64-bit values the MM buffer carries.
pub mod status {
    /// `EFI_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: u64 = 0x8000_0000_0000_0002;
    /// `EFI_UNSUPPORTED`.
    pub const UNSUPPORTED: u64 = 0x8000_0000_0000_0003;
    /// `EFI_VOLUME_CORRUPTED`.
    pub const VOLUME_CORRUPTED: u64 = 0x8000_0000_0000_000A;
    /// `EFI_SECURITY_VIOLATION`.
    pub const SECURITY_VIOLATION: u64 = 0x8000_0000_0000_001A;
}

/// A malformed `EFI_SIGNATURE_LIST` sequence (the value of PK, KEK, db, dbx...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureListError {
    /// Fewer than 28 bytes left where a list header should start.
    #[error("signature list at offset {offset} is truncated ({remaining} bytes left, header needs 28)")]
    TruncatedHeader {
        /// Where the list starts.
        offset: usize,
        /// Bytes left in the value.
        remaining: usize,
    },
    /// `SignatureListSize` is smaller than its header or runs past the value.
    #[error("signature list at offset {offset} claims {list_size} bytes but {remaining} remain")]
    ListSize {
        /// Where the list starts.
        offset: usize,
        /// `SignatureListSize`.
        list_size: u32,
        /// Bytes left in the value.
        remaining: usize,
    },
    /// `SignatureSize` does not fit an owner GUID, or does not match the defined size of the type.
    #[error("signature list at offset {offset} of type {signature_type} has entry size {signature_size}")]
    SignatureSize {
        /// Where the list starts.
        offset: usize,
        /// `SignatureType`.
        signature_type: Guid,
        /// `SignatureSize`.
        signature_size: u32,
    },
    /// A non-zero `SignatureHeaderSize` (no defined type has a header).
    #[error("signature list at offset {offset} has a {header_size}-byte header (defined types have none)")]
    HeaderSize {
        /// Where the list starts.
        offset: usize,
        /// `SignatureHeaderSize`.
        header_size: u32,
    },
    /// The entries do not fill the list exactly.
    #[error(
        "signature list at offset {offset}: {body} entry bytes are not a multiple of entry size {signature_size}"
    )]
    NotAMultiple {
        /// Where the list starts.
        offset: usize,
        /// Bytes after the header.
        body: usize,
        /// `SignatureSize`.
        signature_size: u32,
    },
    /// A `SignatureType` the spec does not define, or not allowed in this variable.
    #[error("signature type {signature_type} is not allowed here")]
    SignatureType {
        /// `SignatureType`.
        signature_type: Guid,
    },
    /// An `EFI_CERT_X509_GUID` entry that is not a DER certificate with an RSA public key.
    #[error("X.509 entry in the signature list at offset {offset} is not a certificate with an RSA key")]
    Certificate {
        /// Where the list starts.
        offset: usize,
    },
    /// PK holds more than one signature.
    #[error("PK must hold exactly one X.509 certificate, found {count} signatures")]
    PkCount {
        /// Signatures found.
        count: usize,
    },
}

/// Why an authenticated write was refused. [`AuthError::efi_status`] gives the status the guest sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The variable is not one of PK, KEK, db, dbx, dbt, dbr: this crate does not decide it.
    #[error("not a Secure Boot key database variable")]
    NotSecureBootVariable,
    /// `EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS` (count-based, deprecated) was requested.
    #[error("count-based authenticated writes (attribute 0x10) are not supported")]
    CountBasedAuthentication,
    /// The attributes are not NV|BS|RT|TIME_BASED_AUTHENTICATED_WRITE (plus APPEND_WRITE where allowed).
    #[error("attributes {attributes:#x} are not allowed for this variable (need 0x27, or 0x67 to append)")]
    Attributes {
        /// The attributes requested.
        attributes: u32,
    },
    /// The SetVariable data is shorter than an `EFI_VARIABLE_AUTHENTICATION_2` descriptor.
    #[error("data of {len} bytes is shorter than the EFI_VARIABLE_AUTHENTICATION_2 descriptor")]
    DescriptorTruncated {
        /// Bytes given.
        len: usize,
    },
    /// `dwLength` is smaller than the certificate header or runs past the data.
    #[error("WIN_CERTIFICATE dwLength {length} does not fit the {available} bytes after the timestamp")]
    CertificateLength {
        /// `dwLength`.
        length: u32,
        /// Bytes available after the timestamp.
        available: usize,
    },
    /// `wRevision` is not 0x0200.
    #[error("WIN_CERTIFICATE revision {0:#06x} is not 0x0200")]
    CertificateRevision(u16),
    /// `wCertificateType` is not `WIN_CERT_TYPE_EFI_GUID`.
    #[error("WIN_CERTIFICATE type {0:#06x} is not WIN_CERT_TYPE_EFI_GUID (0x0ef1)")]
    CertificateType(u16),
    /// `CertType` is not `EFI_CERT_TYPE_PKCS7_GUID`.
    #[error("CertType {0} is not EFI_CERT_TYPE_PKCS7_GUID")]
    CertType(Guid),
    /// Pad1, Nanosecond, TimeZone, Daylight or Pad2 of the TimeStamp is non-zero.
    #[error("the descriptor's TimeStamp has non-zero Pad1/Nanosecond/TimeZone/Daylight/Pad2")]
    TimestampForm,
    /// The TimeStamp is not later than the stored one (a replay or a rollback).
    #[error("the TimeStamp is not later than the variable's stored timestamp (replay)")]
    Replay,
    /// The PKCS#7 data is not DER SignedData (bare or in a ContentInfo).
    #[error("PKCS#7 data is malformed: {0}")]
    Pkcs7Malformed(&'static str),
    /// A digest algorithm other than SHA-256.
    #[error("PKCS#7 digest algorithm is not SHA-256")]
    DigestAlgorithm,
    /// A signature algorithm other than RSA PKCS#1 v1.5 (with SHA-256, -384 or -512 on certificates).
    #[error("signature algorithm is not RSA PKCS#1 v1.5 with SHA-2")]
    SignatureAlgorithm,
    /// The signer's certificate is not in the SignedData or among the trusted keys.
    #[error("the signer's certificate is not in the PKCS#7 data")]
    SignerNotFound,
    /// The signature over the serialised (name, GUID, attributes, timestamp, data) does not verify.
    #[error("the PKCS#7 signature does not verify over the variable update")]
    BadSignature,
    /// The signer's certificate does not chain to any key allowed to authorise this variable.
    #[error("the signer is not authorised for this variable (PK signs PK/KEK; KEK or PK signs db/dbx)")]
    UntrustedSigner,
    /// There is no key to check the signature against (e.g. deleting PK in setup mode).
    #[error("no trusted key can authorise this write")]
    NoTrustAnchor,
    /// The new value is not a valid signature list for this variable.
    #[error("the new value is not a valid signature list: {0}")]
    Payload(SignatureListError),
    /// The value already stored cannot be parsed, so an append cannot be merged into it.
    #[error("the stored value cannot be parsed for an append: {0}")]
    StoredValue(SignatureListError),
}

impl AuthError {
    /// The EFI status for the guest: SECURITY_VIOLATION for anything about the authentication descriptor, the
    /// signature or the timestamp; INVALID_PARAMETER for attributes and malformed new values; UNSUPPORTED for
    /// count-based writes and variables this crate does not decide; VOLUME_CORRUPTED for a stored value that no
    /// longer parses.
    pub fn efi_status(&self) -> u64 {
        use AuthError::*;
        match self {
            NotSecureBootVariable | CountBasedAuthentication => status::UNSUPPORTED,
            Attributes { .. } | Payload(_) => status::INVALID_PARAMETER,
            StoredValue(_) => status::VOLUME_CORRUPTED,
            DescriptorTruncated { .. }
            | CertificateLength { .. }
            | CertificateRevision(_)
            | CertificateType(_)
            | CertType(_)
            | TimestampForm
            | Replay
            | Pkcs7Malformed(_)
            | DigestAlgorithm
            | SignatureAlgorithm
            | SignerNotFound
            | BadSignature
            | UntrustedSigner
            | NoTrustAnchor => status::SECURITY_VIOLATION,
        }
    }
}
