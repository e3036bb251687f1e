//! Why a verification failed; each variant names the check that did not hold.

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A certificate did not parse.
    #[error("{which} certificate is not valid DER X.509: {detail}")]
    CertificateParse {
        /// ARK, ASK or VCEK.
        which: &'static str,
        /// Parser message.
        detail: String,
    },
    /// A certificate is not signed by its issuer's key under AMD's profile (RSASSA-PSS SHA-384).
    #[error("{which} certificate signature does not verify under its issuer's key ({detail})")]
    CertificateSignature {
        /// ARK, ASK or VCEK.
        which: &'static str,
        /// What failed.
        detail: String,
    },
    /// The chain's names do not link (issuer of one != subject of the next).
    #[error("{which} certificate's issuer is not the subject of its signer")]
    ChainNameMismatch {
        /// ASK or VCEK.
        which: &'static str,
    },
    /// The chain's ARK is not the trust anchor given.
    #[error("the chain's ARK is not the trusted ARK")]
    UntrustedRoot,
    /// The VCEK lacks a required extension or it is malformed.
    #[error("VCEK extension {oid} missing or malformed")]
    VcekExtension {
        /// OID of the extension.
        oid: &'static str,
    },
    /// The VCEK's key is not an ECDSA P-384 key.
    #[error("VCEK public key is not ECDSA P-384")]
    VcekKey,
    /// The report is not 1184 bytes or does not parse.
    #[error("attestation report is malformed: {0}")]
    ReportFormat(String),
    /// The report's signature algorithm is not ECDSA P-384 with SHA-384.
    #[error("report signature algorithm {0} is not ECDSA P-384 SHA-384 (1)")]
    SignatureAlgorithm(u32),
    /// The report's signature does not verify under the VCEK.
    #[error("report signature does not verify under the VCEK")]
    ReportSignature,
    /// The report's reported TCB differs from the TCB the VCEK was issued for.
    #[error("reported TCB {report:?} differs from the VCEK's TCB {vcek:?}")]
    TcbMismatch {
        /// (bl, tee, snp, ucode) from the report.
        report: [u8; 4],
        /// (bl, tee, snp, ucode) from the VCEK.
        vcek: [u8; 4],
    },
    /// The report's CHIP_ID differs from the VCEK's hwID.
    #[error("report CHIP_ID differs from the VCEK hwID")]
    ChipIdMismatch,
    /// The nonce is not 64 bytes.
    #[error("nonce must be 64 bytes, got {0}")]
    NonceSize(usize),
    /// REPORT_DATA is not SHA-512(nonce || manifest) (or the selector binding).
    #[error("REPORT_DATA does not bind this nonce and manifest")]
    ReportDataMismatch,
    /// The manifest does not parse.
    #[error("services manifest is malformed: {0}")]
    Manifest(String),
    /// The vTPM manifest is not a well-formed TPMT_PUBLIC.
    #[error("vTPM manifest is not a TPMT_PUBLIC: {0}")]
    EkPublic(String),
    /// The report's VMPL differs from the one required.
    #[error("report VMPL {actual} differs from the required {expected}")]
    Vmpl {
        /// Required.
        expected: u32,
        /// In the report.
        actual: u32,
    },
    /// The guest was launched with DEBUG allowed: the host can read and write its memory.
    #[error("guest policy allows DEBUG ({policy:#x}): the host can read its memory; refused")]
    DebugGuest {
        /// The report's GUEST_POLICY.
        policy: u64,
    },
    /// The guest policy has flags the verifier policy does not allow.
    #[error("guest policy {policy:#x} has flags {disallowed:#x} that the verifier policy does not allow")]
    GuestPolicy {
        /// The report's GUEST_POLICY.
        policy: u64,
        /// The offending bits.
        disallowed: u64,
    },
    /// The reported TCB is below the minimum.
    #[error("reported TCB {report:?} is below the required minimum {minimum:?} (bl, tee, snp, ucode)")]
    TcbBelowMinimum {
        /// (bl, tee, snp, ucode) from the report.
        report: [u8; 4],
        /// The minimum.
        minimum: [u8; 4],
    },
    /// MEASUREMENT is not the expected launch digest.
    #[error("launch MEASUREMENT differs from the expected one")]
    MeasurementMismatch,
    /// HOST_DATA is not the expected value.
    #[error("HOST_DATA differs from the expected value")]
    HostDataMismatch,
    /// A certificate is outside its validity period at the check time.
    #[error("{which} certificate is not valid at the check time: {detail}")]
    CertificateValidity {
        /// ARK, ASK or VCEK.
        which: &'static str,
        /// Not yet valid or expired, with the dates.
        detail: String,
    },
    /// A certificate's BasicConstraints / KeyUsage do not fit its place in the chain.
    #[error("{which} certificate constraints do not fit its role: {detail}")]
    CaConstraints {
        /// ARK, ASK or VCEK.
        which: &'static str,
        /// What is wrong.
        detail: &'static str,
    },
    /// A CRL given in the policy is malformed, not signed by the ARK or ASK, or not current.
    #[error("CRL rejected: {0}")]
    Crl(String),
    /// A certificate of the chain is listed in a CRL.
    #[error("{which} certificate is revoked by the issuer's CRL")]
    Revoked {
        /// ASK or VCEK.
        which: &'static str,
    },
}
