//! Result codes a guest sees in RAX, and the errors behind them.
//!
//! The guest only ever learns a 32-bit result code, but *why* a call failed matters to whoever debugs a guest
//! driver, so every failure inside the SVSM carries a precise [`SvsmError`] (logged via `tracing`) that maps
//! onto exactly one wire code. The mapping is deliberate: Linux treats `INVALID_PARAMETER` from the attestation
//! protocol as "a buffer was too small, resize and retry", so errors that are not about sizes must never use it
//! when a guest could mistake them for that (see [`SvsmError::SelectorInvalid`]).

/// `SVSM_SUCCESS`.
pub const SVSM_SUCCESS: u32 = 0x0000_0000;
/// `SVSM_ERR_INCOMPLETE`: Linux retries the call (we never return it).
pub const SVSM_ERR_INCOMPLETE: u32 = 0x8000_0000;
/// `SVSM_ERR_UNSUPPORTED_PROTOCOL`.
pub const SVSM_ERR_UNSUPPORTED_PROTOCOL: u32 = 0x8000_0001;
/// `SVSM_ERR_UNSUPPORTED_CALL`.
pub const SVSM_ERR_UNSUPPORTED_CALL: u32 = 0x8000_0002;
/// `SVSM_ERR_INVALID_ADDRESS`.
pub const SVSM_ERR_INVALID_ADDRESS: u32 = 0x8000_0003;
/// `SVSM_ERR_INVALID_FORMAT`.
pub const SVSM_ERR_INVALID_FORMAT: u32 = 0x8000_0004;
/// `SVSM_ERR_INVALID_PARAMETER`.
pub const SVSM_ERR_INVALID_PARAMETER: u32 = 0x8000_0005;
/// `SVSM_ERR_INVALID_REQUEST`.
pub const SVSM_ERR_INVALID_REQUEST: u32 = 0x8000_0006;
/// `SVSM_ERR_BUSY`: Linux retries the call (we never return it).
pub const SVSM_ERR_BUSY: u32 = 0x8000_0007;
/// `SVSM_ERR_PROTOCOL_BASE`: protocol-specific codes are this plus a protocol-defined number.
pub const SVSM_ERR_PROTOCOL_BASE: u32 = 0x8000_1000;

/// Core protocol: PVALIDATE hardware `FAIL_INPUT` (1).
pub const SVSM_PVALIDATE_FAIL_INPUT: u32 = SVSM_ERR_PROTOCOL_BASE + 1;
/// Core protocol: PVALIDATE hardware `FAIL_SIZEMISMATCH` (6); Linux then retries the 2M entry as 512 x 4K.
pub const SVSM_PVALIDATE_FAIL_SIZEMISMATCH: u32 = SVSM_ERR_PROTOCOL_BASE + 6;
/// Core protocol: PVALIDATE left the page state unchanged (CF=1) and the entry did not ask to ignore that.
/// The number 0x10 is what the SVSM specification assigns (UNVERIFIED against document 58019).
pub const SVSM_PVALIDATE_FAIL_UNCHANGED: u32 = SVSM_ERR_PROTOCOL_BASE + 0x10;
/// Attestation protocol: the SNP report request to the platform failed (spec 0x8000_1000).
pub const SVSM_ATTEST_REPORT_FAILED: u32 = SVSM_ERR_PROTOCOL_BASE;
/// Attestation protocol (selector extension): the selector is malformed or names an unknown kind.
pub const SVSM_ATTEST_SELECTOR_INVALID: u32 = SVSM_ERR_PROTOCOL_BASE + 1;
/// Attestation protocol (selector extension): base for a TPM response code (`+ rc`, for rc <= 0xFFF).
pub const SVSM_ATTEST_TPM_RC_BASE: u32 = SVSM_ERR_PROTOCOL_BASE + 0x100;

/// Why a guest-memory access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuestMemoryError {
    /// The range is not (entirely) guest memory the SVSM may touch on the guest's behalf.
    #[error("guest range {gpa:#x}+{len:#x} is not accessible guest memory")]
    OutOfRange {
        /// Start of the range.
        gpa: u64,
        /// Length of the range.
        len: u64,
    },
}

/// Why an SVSM call failed; each variant maps to exactly one wire result code ([`SvsmError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvsmError {
    /// RAX named a protocol this SVSM does not implement.
    #[error("protocol {0} is not supported")]
    UnsupportedProtocol(u32),
    /// RAX named a call the protocol does not implement.
    #[error("call {call} of protocol {protocol} is not supported")]
    UnsupportedCall {
        /// Protocol number.
        protocol: u32,
        /// Call number.
        call: u32,
    },
    /// ATTEST_SINGLE_SERVICE named a service GUID this SVSM does not offer. Answered like COCONUT, with
    /// UNSUPPORTED_PROTOCOL (the spec text says INVALID_PARAMETER, which Linux reads as "resize and retry").
    #[error("no attestable service with GUID {0}")]
    UnknownService(crate::guid::Guid),
    /// A guest physical address is not guest memory, overlaps SVSM memory, or two regions overlap.
    #[error("invalid guest address {gpa:#x}: {reason}")]
    InvalidAddress {
        /// The offending address.
        gpa: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A parameter is out of range, misaligned, a reserved field is non-zero, or a buffer is too small.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// The request cannot be serviced in the current state (e.g. the vTPM is not available).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// PVALIDATE failed with this hardware return code (0x8000_1000 + rc).
    #[error("PVALIDATE failed with hardware code {0:#x}")]
    Pvalidate(u32),
    /// The platform could not produce an SNP attestation report.
    #[error("SNP report request failed: {0}")]
    ReportFailed(&'static str),
    /// The attestation selector is malformed or of an unknown kind (never INVALID_PARAMETER: Linux would retry).
    #[error("attestation selector invalid: {0}")]
    SelectorInvalid(&'static str),
    /// The TPM answered the selector's command with this response code.
    #[error("TPM returned response code {0:#x}")]
    TpmResponse(u32),
}

impl SvsmError {
    /// The result code the guest sees in RAX.
    pub fn code(&self) -> u32 {
        match self {
            SvsmError::UnsupportedProtocol(_) => SVSM_ERR_UNSUPPORTED_PROTOCOL,
            SvsmError::UnknownService(_) => SVSM_ERR_UNSUPPORTED_PROTOCOL,
            SvsmError::UnsupportedCall { .. } => SVSM_ERR_UNSUPPORTED_CALL,
            SvsmError::InvalidAddress { .. } => SVSM_ERR_INVALID_ADDRESS,
            SvsmError::InvalidParameter(_) => SVSM_ERR_INVALID_PARAMETER,
            SvsmError::InvalidRequest(_) => SVSM_ERR_INVALID_REQUEST,
            // Hardware codes are small; anything else is reported as FAIL_INPUT rather than wrapping.
            SvsmError::Pvalidate(rc) if *rc <= 0xFF => SVSM_ERR_PROTOCOL_BASE + rc,
            SvsmError::Pvalidate(_) => SVSM_PVALIDATE_FAIL_INPUT,
            SvsmError::ReportFailed(_) => SVSM_ATTEST_REPORT_FAILED,
            SvsmError::SelectorInvalid(_) => SVSM_ATTEST_SELECTOR_INVALID,
            // Only 12-bit TPM codes fit below 0x8000_2100; anything wider becomes "selector invalid".
            SvsmError::TpmResponse(rc) if *rc <= 0xFFF => SVSM_ATTEST_TPM_RC_BASE + rc,
            SvsmError::TpmResponse(_) => SVSM_ATTEST_SELECTOR_INVALID,
        }
    }

    /// Shorthand for a guest range that is not accessible.
    pub(crate) fn from_mem(err: GuestMemoryError) -> Self {
        match err {
            GuestMemoryError::OutOfRange { gpa, .. } => {
                SvsmError::InvalidAddress { gpa, reason: "not accessible guest memory" }
            }
        }
    }
}

impl From<GuestMemoryError> for SvsmError {
    fn from(err: GuestMemoryError) -> Self {
        SvsmError::from_mem(err)
    }
}

/// Why a vTPM service could not run a command (TPM-level errors travel inside the TPM response instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VtpmError {
    /// The vTPM is not powered on / not manufactured yet.
    #[error("the vTPM is not available")]
    NotAvailable,
    /// The command is larger than the vTPM accepts.
    #[error("TPM command of {0} bytes is too large")]
    CommandTooLarge(usize),
    /// The engine failed internally.
    #[error("vTPM engine failure: {0}")]
    Engine(&'static str),
}

/// Why the SNP platform could not produce a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The certificate table does not fit in the capacity offered; this many bytes are needed.
    #[error("certificate table needs {needed} bytes")]
    CertificatesTooLarge {
        /// Bytes needed for the whole table (a multiple of 4 KiB on real hosts).
        needed: u32,
    },
    /// The firmware or host rejected the request.
    #[error("SNP report request failed: {0}")]
    RequestFailed(&'static str),
}
