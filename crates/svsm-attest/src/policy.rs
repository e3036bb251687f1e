//! What a relying party requires of an attested guest beyond a valid signature: [`VerifierPolicy`].
//!
//! Facts carried over from AMD's SEV-SNP ABI specification (56860), GUEST_POLICY: bits 7:0 ABI_MINOR, 15:8
//! ABI_MAJOR, 16 SMT allowed, 17 reserved (must be 1), 18 MIGRATE_MA allowed, 19 DEBUG allowed, 20 single
//! socket required, 21 CXL allowed, 22 AES-256-XTS required, 23 RAPL disabled, 24 ciphertext hiding, 25 page
//! swap disabled. A guest launched with DEBUG allowed can have its memory read and written by the host through
//! SNP_DBG_DECRYPT/ENCRYPT, so its evidence proves nothing about confidentiality.

use std::time::SystemTime;

use crate::chain::Tcb;

/// GUEST_POLICY bit 16: SMT allowed.
pub const POLICY_SMT: u64 = 1 << 16;
/// GUEST_POLICY bit 17: reserved, set to 1 by every launch.
pub const POLICY_RESERVED_1: u64 = 1 << 17;
/// GUEST_POLICY bit 18: migration agent allowed (the migration agent can read the guest's state).
pub const POLICY_MIGRATE_MA: u64 = 1 << 18;
/// GUEST_POLICY bit 19: debugging allowed (the host can decrypt and modify guest memory).
pub const POLICY_DEBUG: u64 = 1 << 19;
/// GUEST_POLICY bit 20: single socket required.
pub const POLICY_SINGLE_SOCKET: u64 = 1 << 20;
/// GUEST_POLICY bit 21: CXL memory may be populated.
pub const POLICY_CXL_ALLOW: u64 = 1 << 21;
/// GUEST_POLICY bit 22: AES-256-XTS memory encryption required.
pub const POLICY_MEM_AES_256_XTS: u64 = 1 << 22;
/// GUEST_POLICY bit 23: RAPL disabled.
pub const POLICY_RAPL_DIS: u64 = 1 << 23;
/// GUEST_POLICY bit 24: ciphertext hiding required.
pub const POLICY_CIPHERTEXT_HIDING: u64 = 1 << 24;
/// GUEST_POLICY bit 25: page swap commands disabled.
pub const POLICY_PAGE_SWAP_DISABLE: u64 = 1 << 25;
/// The ABI version bits (7:0 minor, 15:8 major): a minimum, not flags; never subject to the allowed mask.
pub const POLICY_ABI_MASK: u64 = 0xFFFF;

/// Policy flags [`VerifierPolicy::default`] accepts: everything that only *restricts* the guest or the host,
/// and SMT. Refused by default: DEBUG (host can read memory), MIGRATE_MA (a migration agent can export the
/// guest), CXL_ALLOW (memory outside the SoC), and every bit the ABI reserves.
pub const DEFAULT_ALLOWED_POLICY_BITS: u64 = POLICY_SMT
    | POLICY_RESERVED_1
    | POLICY_SINGLE_SOCKET
    | POLICY_MEM_AES_256_XTS
    | POLICY_RAPL_DIS
    | POLICY_CIPHERTEXT_HIDING
    | POLICY_PAGE_SWAP_DISABLE;

/// The instant certificate validity and CRL freshness are judged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckTime {
    /// The system clock at verification (the default).
    #[default]
    Now,
    /// A fixed instant (re-verifying archived evidence as of when it was produced; tests).
    At(SystemTime),
}

impl CheckTime {
    /// The instant as seconds since the Unix epoch (0 for instants before it).
    pub fn unix_seconds(self) -> u64 {
        let t = match self {
            CheckTime::Now => SystemTime::now(),
            CheckTime::At(t) => t,
        };
        t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// What the verifier requires, beyond the chain to the trust anchor, the report signature and the
/// REPORT_DATA binding (which are never optional).
///
/// `Default` is the secure choice for every field: VMPL 0, no DEBUG or MIGRATE_MA guests, certificates checked
/// against the system clock. It cannot know a minimum TCB, measurement or HOST_DATA for you: a production
/// relying party sets `minimum_tcb` (AMD's security bulletins name the fixed SPLs), `expected_measurement`
/// (from the IGVM/OVMF launch digest) and, if the host supplies one, `expected_host_data`, and passes AMD's
/// CRL in `crls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierPolicy {
    /// The VMPL the report must have been requested at (the SVSM runs at VMPL0; a report from a lower
    /// privilege level was requested by code the SVSM does not vouch for).
    pub required_vmpl: u32,
    /// GUEST_POLICY flag bits (16..63) that may be set; a report with any other flag set is refused. The
    /// ABI bits (15:0) are not flags and are not masked.
    pub allowed_policy_bits: u64,
    /// Every component of the reported TCB must be at least this (bootloader, TEE, SNP firmware, microcode).
    pub minimum_tcb: Tcb,
    /// If set, the launch MEASUREMENT must equal it.
    pub expected_measurement: Option<[u8; 48]>,
    /// If set, HOST_DATA must equal it.
    pub expected_host_data: Option<[u8; 32]>,
    /// When the ARK, ASK and VCEK must be valid (notBefore <= t <= notAfter) and CRLs current.
    pub time: CheckTime,
    /// AMD CRLs (DER `CertificateList`, as the KDS serves them). Each must be signed by the ARK or the ASK
    /// and be current; a listed ASK (ARK-issued CRL) or VCEK (ASK-issued CRL) serial is refused.
    pub crls: Vec<Vec<u8>>,
}

impl Default for VerifierPolicy {
    fn default() -> Self {
        VerifierPolicy {
            required_vmpl: 0,
            allowed_policy_bits: DEFAULT_ALLOWED_POLICY_BITS,
            minimum_tcb: Tcb::default(),
            expected_measurement: None,
            expected_host_data: None,
            time: CheckTime::Now,
            crls: Vec::new(),
        }
    }
}
