//! SNP attestation of SVSM services, for hosts with and without SEV-SNP.
//!
//! * [`chain`]: AMD's certificate profile (ARK -> ASK -> VCEK, RSA-4096 RSASSA-PSS SHA-384, VCEK ECDSA P-384
//!   key with the KDS TCB / hwID extensions): generating a simulated chain, and verifying any chain (AMD's
//!   real one or ours) against a trust anchor.
//! * [`simulated`]: [`SimulatedSnp`], an [`svsm_protocol::SnpPlatform`] that issues real-layout reports
//!   (version 3, 1184 bytes, via the `sev` crate's types) signed by a simulated VCEK.
//! * [`policy`]: [`VerifierPolicy`], what a relying party requires (VMPL, guest policy, TCB, measurement,
//!   HOST_DATA, certificate time, CRLs), secure by default.
//! * [`verify`]: the verifier: chain, signature, TCB, REPORT_DATA binding to nonce and manifest, the services
//!   manifest, and the vTPM EK public key and Name.
//!
//! A simulated report proves nothing about hardware: it verifies only against the simulated ARK, which a
//! relying party must never accept as a trust anchor in production.

pub mod chain;
pub mod error;
pub mod fuzzing;
pub mod policy;
pub mod report;
pub mod simulated;
pub mod verify;

pub use error::VerifyError;
pub use policy::{CheckTime, VerifierPolicy};
pub use simulated::{SimulatedSnp, SimulatedSnpConfig};
pub use verify::{Evidence, Verified, verify_attestation};
