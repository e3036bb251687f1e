//! Offsets in the SNP ATTESTATION_REPORT that the signer and verifier work on directly.
//!
//! The report itself is the `sev` crate's `AttestationReport`; these offsets are the parts that must be
//! handled as raw bytes (the signed range and the signature encoding), checked in tests against the crate's
//! encoding.

/// Size of the report.
pub const REPORT_SIZE: usize = 0x4A0;
/// Offset of GUEST_POLICY (8 bytes, little-endian).
pub const POLICY_OFFSET: usize = 0x08;
/// Offset of REPORT_DATA (64 bytes).
pub const REPORT_DATA_OFFSET: usize = 0x50;
/// Bytes covered by the signature: `[0, 0x2A0)`.
pub const SIGNED_LEN: usize = 0x2A0;
/// Offset of the signature's R (72 bytes, little-endian, zero-padded).
pub const SIGNATURE_R_OFFSET: usize = 0x2A0;
/// Offset of the signature's S (72 bytes, little-endian, zero-padded).
pub const SIGNATURE_S_OFFSET: usize = 0x2E8;
/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

const _: () = assert!(SIGNATURE_S_OFFSET == SIGNATURE_R_OFFSET + 72);
const _: () = assert!(SIGNATURE_S_OFFSET + 72 <= REPORT_SIZE);
const _: () = assert!(svsm_protocol::SNP_REPORT_SIZE == REPORT_SIZE);
