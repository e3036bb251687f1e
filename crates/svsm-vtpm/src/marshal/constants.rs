//! TPM 2.0 constants (structure tags, command and response codes, handles, algorithms, startup types):
//! the one set the workspace uses.

/// Structure tags (TPM_ST).
pub mod st {
    /// A command or response without an authorization area.
    pub const NO_SESSIONS: u16 = 0x8001;
    /// A command or response with an authorization area.
    pub const SESSIONS: u16 = 0x8002;
    /// TPM 1.2 request tag, seen when firmware probes for a TPM 1.2.
    pub const TPM12_RQU_COMMAND: u16 = 0x00C1;
    /// TPM 1.2 response tag.
    pub const TPM12_RSP_COMMAND: u16 = 0x00C4;
}

/// Command codes (TPM_CC) this code builds or inspects.
pub mod cc {
    /// TPM2_NV_UndefineSpace.
    pub const NV_UNDEFINE_SPACE: u32 = 0x0122;
    /// TPM2_ChangeEPS (a new endorsement primary seed, so a new EK).
    pub const CHANGE_EPS: u32 = 0x0124;
    /// TPM2_EvictControl.
    pub const EVICT_CONTROL: u32 = 0x0120;
    /// TPM2_NV_DefineSpace.
    pub const NV_DEFINE_SPACE: u32 = 0x012A;
    /// TPM2_CreatePrimary.
    pub const CREATE_PRIMARY: u32 = 0x0131;
    /// TPM2_NV_Write.
    pub const NV_WRITE: u32 = 0x0137;
    /// TPM2_SelfTest.
    pub const SELF_TEST: u32 = 0x0143;
    /// TPM2_Startup.
    pub const STARTUP: u32 = 0x0144;
    /// TPM2_Shutdown.
    pub const SHUTDOWN: u32 = 0x0145;
    /// TPM2_NV_Read.
    pub const NV_READ: u32 = 0x014E;
    /// TPM2_FlushContext.
    pub const FLUSH_CONTEXT: u32 = 0x0165;
    /// TPM2_NV_ReadPublic.
    pub const NV_READ_PUBLIC: u32 = 0x0169;
    /// TPM2_ReadPublic.
    pub const READ_PUBLIC: u32 = 0x0173;
    /// TPM2_GetCapability.
    pub const GET_CAPABILITY: u32 = 0x017A;
    /// TPM2_GetRandom.
    pub const GET_RANDOM: u32 = 0x017B;
    /// TPM2_ReadClock.
    pub const READ_CLOCK: u32 = 0x0181;
}

/// Response codes (TPM_RC) the vTPM itself produces or checks.
pub mod rc {
    /// Success.
    pub const SUCCESS: u32 = 0x000;
    /// TPM not initialised by TPM2_Startup, or already initialised.
    pub const INITIALIZE: u32 = 0x100;
    /// Commands not being accepted because of a TPM failure.
    pub const FAILURE: u32 = 0x101;
    /// Command code not supported.
    pub const COMMAND_CODE: u32 = 0x143;
    /// Command size inconsistent with the bytes sent.
    pub const COMMAND_SIZE: u32 = 0x142;
    /// The structure is too short (format-zero).
    pub const INSUFFICIENT: u32 = 0x09A;
    /// A value out of range (format-zero, no parameter number).
    pub const VALUE: u32 = 0x084;
    /// Key size not supported.
    pub const KEY_SIZE: u32 = 0x087;
    /// Curve not supported.
    pub const CURVE: u32 = 0x0A6;
    /// Hierarchy not enabled or not valid for the operation.
    pub const HIERARCHY: u32 = 0x085;
    /// TPM_RC_HANDLE for handle 1 (TPM_RC_HANDLE 0x08B | TPM_RC_1 0x100).
    pub const HANDLE_P1: u32 = 0x18B;
    /// No transient object slot free.
    pub const OBJECT_MEMORY: u32 = 0x902;
    /// TPM_RC_HANDLE (format 1, no parameter number): a handle that refers to nothing.
    pub const HANDLE: u32 = 0x08B;
    /// The NV index already exists.
    pub const NV_DEFINED: u32 = 0x14C;
    /// An NV access beyond the index's size.
    pub const NV_RANGE: u32 = 0x146;
    /// The locality does not allow the operation (as the real engine reports a refused established-flag
    /// reset).
    pub const LOCALITY: u32 = 0x907;
    /// Bad structure tag.
    pub const TAG: u32 = 0x01E;
    /// A response (or value) does not fit (TPM_RC_SIZE).
    pub const SIZE: u32 = 0x095;
    /// NV access not available (NV off).
    pub const NV_UNAVAILABLE: u32 = 0x923;
    /// An authorization area is missing (TPM_RC_AUTH_MISSING).
    pub const AUTH_MISSING: u32 = 0x125;
    /// The command was canceled.
    pub const CANCELED: u32 = 0x909;
}

/// Permanent handles (TPM_RH) and the password session handle.
pub mod rh {
    /// Owner hierarchy.
    pub const OWNER: u32 = 0x4000_0001;
    /// The null hierarchy.
    pub const NULL: u32 = 0x4000_0007;
    /// The password authorization session (TPM_RS_PW).
    pub const PASSWORD_SESSION: u32 = 0x4000_0009;
    /// Lockout authority.
    pub const LOCKOUT: u32 = 0x4000_000A;
    /// Endorsement hierarchy.
    pub const ENDORSEMENT: u32 = 0x4000_000B;
    /// Platform hierarchy.
    pub const PLATFORM: u32 = 0x4000_000C;
}

/// Algorithm identifiers (TPM_ALG).
pub mod alg {
    /// RSA.
    pub const RSA: u16 = 0x0001;
    /// SHA-256.
    pub const SHA256: u16 = 0x000B;
    /// SHA-384.
    pub const SHA384: u16 = 0x000C;
    /// SHA-512.
    pub const SHA512: u16 = 0x000D;
    /// Keyed hash object.
    pub const KEYEDHASH: u16 = 0x0008;
    /// XOR (keyed-hash scheme with a KDF).
    pub const XOR: u16 = 0x000A;
    /// RSAES-PKCS1-v1_5 (its scheme details are empty).
    pub const RSAES: u16 = 0x0015;
    /// ECDAA (its scheme details carry a count).
    pub const ECDAA: u16 = 0x001A;
    /// Symmetric-cipher object.
    pub const SYMCIPHER: u16 = 0x0025;
    /// The null algorithm.
    pub const NULL: u16 = 0x0010;
    /// ECC.
    pub const ECC: u16 = 0x0023;
    /// AES.
    pub const AES: u16 = 0x0006;
    /// CFB mode.
    pub const CFB: u16 = 0x0043;
}

/// TPM2_Startup / TPM2_Shutdown types (TPM_SU).
pub mod su {
    /// Reset / clear.
    pub const CLEAR: u16 = 0x0000;
    /// Save / restore state.
    pub const STATE: u16 = 0x0001;
}
