//! **TEST DOUBLE** of a Trustee KBS, for tests and development only.
//!
//! A real Trustee's SNP verifier needs AMD-signed reports, which a host without SEV-SNP cannot produce, so the
//! tests of attested key release run against this double instead. It speaks KBS protocol 0.4.0 over HTTP on
//! loopback as observed against a running Trustee (`svsm-protocols.md` section 5.6): cookie
//! `kbs-session-id`, RFC 7807 error bodies with Trustee's error kinds and statuses, the SHA-384 canonical
//! REPORT_DATA binding, and a flattened JWE (`ECDH-ES+A256KW`, `A256GCM`) whose protected header is Trustee's
//! serialisation. It verifies simulated-SNP evidence with `svsm-attest` against a configured (simulated) ARK
//! and applies a resource policy (measurement, VMPL 0, debug off, minimum TCB) with `svsm-attest`'s
//! `VerifierPolicy`.
//!
//! Nothing in a production path depends on this crate: `svsm-host` uses it only as a dev-dependency.

pub mod encrypt;
pub mod server;

pub use server::{AdminIdentity, AdminMode, DoubleConfig, KbsDouble, Resource};
/// A resource's policy: `svsm-attest`'s verifier policy (measurement, VMPL, guest-policy bits such as DEBUG,
/// minimum TCB, HOST_DATA), applied to the attested report when the resource is requested.
pub use svsm_attest::VerifierPolicy as ResourcePolicy;
