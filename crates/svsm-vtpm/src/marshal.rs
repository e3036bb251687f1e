//! Typed TPM 2.0 command builders and response readers.
//!
//! TPM 2.0 wire format is big-endian. A command is `tag u16 | size u32 | code u32 | handles | [auth area] |
//! parameters`; a response is `tag u16 | size u32 | rc u32 | handles | [parameterSize u32] | parameters |
//! [auth area]`. The builders here produce exactly that from named parts, and [`Reader`] takes it apart with
//! bounds checks, so no code elsewhere indexes into TPM bytes by hand.

use alloc::vec::Vec;

use crate::error::MarshalError;

/// Size of a TPM command/response header (tag, size, code/rc).
pub const HEADER_SIZE: usize = 10;

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
    /// NV access not available (NV off).
    pub const NV_UNAVAILABLE: u32 = 0x923;
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

/// Builds one TPM 2.0 command from its parts.
#[derive(Debug, Clone)]
pub struct CommandBuilder {
    code: u32,
    handles: Vec<u32>,
    auth: Option<Vec<u8>>,
    params: Vec<u8>,
}

impl CommandBuilder {
    /// A command with the given code and nothing else yet.
    pub fn new(code: u32) -> Self {
        CommandBuilder { code, handles: Vec::new(), auth: None, params: Vec::new() }
    }

    /// Appends a handle to the handle area.
    pub fn handle(mut self, handle: u32) -> Self {
        self.handles.push(handle);
        self
    }

    /// Adds one password session (TPM_RS_PW) with `password` to the authorization area. Call once per
    /// handle that needs authorization, in handle order.
    pub fn password_auth(mut self, password: &[u8]) -> Self {
        let area = self.auth.get_or_insert_with(Vec::new);
        area.extend_from_slice(&rh::PASSWORD_SESSION.to_be_bytes());
        area.extend_from_slice(&0u16.to_be_bytes()); // nonceCaller: empty
        area.push(0); // sessionAttributes
        put_tpm2b_unchecked(area, password);
        self
    }

    /// Appends a u8 parameter.
    pub fn u8(mut self, v: u8) -> Self {
        self.params.push(v);
        self
    }

    /// Appends a u16 parameter.
    pub fn u16(mut self, v: u16) -> Self {
        self.params.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a u32 parameter.
    pub fn u32(mut self, v: u32) -> Self {
        self.params.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw, already-marshalled parameter bytes.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.params.extend_from_slice(v);
        self
    }

    /// Appends a TPM2B (u16 size + bytes).
    pub fn tpm2b(mut self, v: &[u8]) -> Result<Self, MarshalError> {
        put_tpm2b(&mut self.params, v)?;
        Ok(self)
    }

    /// The marshalled command.
    pub fn build(self) -> Result<Vec<u8>, MarshalError> {
        let mut out = Vec::with_capacity(HEADER_SIZE + 4 * self.handles.len() + self.params.len() + 32);
        let tag = if self.auth.is_some() { st::SESSIONS } else { st::NO_SESSIONS };
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // size, patched below
        out.extend_from_slice(&self.code.to_be_bytes());
        for h in &self.handles {
            out.extend_from_slice(&h.to_be_bytes());
        }
        if let Some(auth) = &self.auth {
            let len = u32::try_from(auth.len()).map_err(|_| MarshalError::TooLarge)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(auth);
        }
        out.extend_from_slice(&self.params);
        let size = u32::try_from(out.len()).map_err(|_| MarshalError::TooLarge)?;
        out[2..6].copy_from_slice(&size.to_be_bytes());
        Ok(out)
    }
}

/// Appends a TPM2B, failing if `v` is longer than a u16 size can say.
pub fn put_tpm2b(out: &mut Vec<u8>, v: &[u8]) -> Result<(), MarshalError> {
    let len = u16::try_from(v.len()).map_err(|_| MarshalError::TooLarge)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(v);
    Ok(())
}

/// Appends a TPM2B whose length the caller guarantees fits (short constant data).
fn put_tpm2b_unchecked(out: &mut Vec<u8>, v: &[u8]) {
    let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(v.get(..usize::from(len)).unwrap_or(v));
}

/// A bounds-checked big-endian reader over TPM bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], MarshalError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(MarshalError::Truncated { offset: self.pos, needed: n, available: self.remaining() })?;
        let out = self.buf.get(self.pos..end).ok_or(MarshalError::Truncated {
            offset: self.pos,
            needed: n,
            available: self.remaining(),
        })?;
        self.pos = end;
        Ok(out)
    }

    /// Reads a u8.
    pub fn u8(&mut self) -> Result<u8, MarshalError> {
        let b = self.take(1)?;
        Ok(b.first().copied().unwrap_or(0))
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, MarshalError> {
        let b = self.take(2)?;
        let mut a = [0u8; 2];
        a.copy_from_slice(b);
        Ok(u16::from_be_bytes(a))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, MarshalError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_be_bytes(a))
    }

    /// Reads a TPM2B (u16 size + bytes) and returns its contents.
    pub fn tpm2b(&mut self) -> Result<&'a [u8], MarshalError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }
}

/// A TPM command header, parsed and checked against the buffer it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHeader {
    /// TPM_ST tag.
    pub tag: u16,
    /// Size from the header (equals the buffer length).
    pub size: u32,
    /// TPM_CC command code.
    pub code: u32,
}

impl CommandHeader {
    /// Parses the header of a complete command buffer and checks the size field.
    pub fn parse(cmd: &[u8]) -> Result<Self, MarshalError> {
        let mut r = Reader::new(cmd);
        let tag = r.u16()?;
        let size = r.u32()?;
        let code = r.u32()?;
        if usize::try_from(size).ok() != Some(cmd.len()) {
            return Err(MarshalError::SizeMismatch { header: size, actual: cmd.len() });
        }
        Ok(CommandHeader { tag, size, code })
    }
}

/// A successful TPM response split into handles, parameters and the authorization area.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    /// Handles returned (e.g. the object handle of CreatePrimary).
    pub handles: Vec<u32>,
    /// The parameter area.
    pub params: &'a [u8],
}

impl<'a> Response<'a> {
    /// Parses a response expected to carry `handle_count` handles. A non-zero response code is an error.
    pub fn parse(resp: &'a [u8], handle_count: usize) -> Result<Self, MarshalError> {
        let mut r = Reader::new(resp);
        let tag = r.u16()?;
        let size = r.u32()?;
        let code = r.u32()?;
        if usize::try_from(size).ok() != Some(resp.len()) {
            return Err(MarshalError::SizeMismatch { header: size, actual: resp.len() });
        }
        if code != rc::SUCCESS {
            return Err(MarshalError::ResponseCode(code));
        }
        let mut handles = Vec::with_capacity(handle_count);
        for _ in 0..handle_count {
            handles.push(r.u32()?);
        }
        let params = match tag {
            st::NO_SESSIONS => r.rest(),
            st::SESSIONS => {
                let n = r.u32()?;
                r.take(usize::try_from(n).map_err(|_| MarshalError::TooLarge)?)?
            }
            other => return Err(MarshalError::BadTag(other)),
        };
        Ok(Response { handles, params })
    }
}

/// The response code of a response buffer (without validating the rest).
pub fn response_code(resp: &[u8]) -> Result<u32, MarshalError> {
    let mut r = Reader::new(resp);
    r.take(6)?;
    r.u32()
}

/// A minimal error response (`tag NO_SESSIONS, size 10, rc`), as a TPM sends for a rejected command.
pub fn error_response(code: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_SIZE);
    v.extend_from_slice(&st::NO_SESSIONS.to_be_bytes());
    v.extend_from_slice(&(HEADER_SIZE as u32).to_be_bytes());
    v.extend_from_slice(&code.to_be_bytes());
    v
}

// ---- Public areas (TPMT_PUBLIC) ----

/// Object attribute bits (TPMA_OBJECT) used by the templates here.
pub mod object_attr {
    /// fixedTPM.
    pub const FIXED_TPM: u32 = 1 << 1;
    /// fixedParent.
    pub const FIXED_PARENT: u32 = 1 << 4;
    /// sensitiveDataOrigin.
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    /// userWithAuth.
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    /// adminWithPolicy.
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    /// restricted.
    pub const RESTRICTED: u32 = 1 << 16;
    /// decrypt.
    pub const DECRYPT: u32 = 1 << 17;
}

/// Key-type-specific parameters and unique field of a public area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key: symmetric (alg, bits, mode), key bits, exponent (0 = 65537), modulus (unique).
    Rsa {
        /// Symmetric algorithm for a storage/EK key (alg, key bits, mode), or `None` for TPM_ALG_NULL.
        symmetric: Option<(u16, u16, u16)>,
        /// Key size in bits.
        key_bits: u16,
        /// Public exponent, 0 meaning the default 65537.
        exponent: u32,
        /// The modulus (or, in a template, the unique seed bytes).
        modulus: Vec<u8>,
    },
    /// An ECC key: symmetric, curve, point (unique).
    Ecc {
        /// Symmetric algorithm (alg, key bits, mode), or `None` for TPM_ALG_NULL.
        symmetric: Option<(u16, u16, u16)>,
        /// TPM_ECC_CURVE.
        curve: u16,
        /// X coordinate.
        x: Vec<u8>,
        /// Y coordinate.
        y: Vec<u8>,
    },
}

/// A TPMT_PUBLIC with the fields the vTPM needs (RSA and ECC keys with NULL schemes and KDFs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicArea {
    /// nameAlg.
    pub name_alg: u16,
    /// objectAttributes (TPMA_OBJECT).
    pub attributes: u32,
    /// authPolicy digest.
    pub auth_policy: Vec<u8>,
    /// Type-specific parameters and unique field.
    pub key: PublicKey,
}

fn put_symmetric(out: &mut Vec<u8>, sym: Option<(u16, u16, u16)>) {
    match sym {
        Some((a, bits, mode)) => {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&bits.to_be_bytes());
            out.extend_from_slice(&mode.to_be_bytes());
        }
        None => out.extend_from_slice(&alg::NULL.to_be_bytes()),
    }
}

fn read_symmetric(r: &mut Reader<'_>) -> Result<Option<(u16, u16, u16)>, MarshalError> {
    let a = r.u16()?;
    if a == alg::NULL {
        return Ok(None);
    }
    Ok(Some((a, r.u16()?, r.u16()?)))
}

impl PublicArea {
    /// Marshals the TPMT_PUBLIC (without the TPM2B size prefix).
    pub fn marshal(&self) -> Result<Vec<u8>, MarshalError> {
        let mut out = Vec::with_capacity(360);
        let ty = match self.key {
            PublicKey::Rsa { .. } => alg::RSA,
            PublicKey::Ecc { .. } => alg::ECC,
        };
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&self.name_alg.to_be_bytes());
        out.extend_from_slice(&self.attributes.to_be_bytes());
        put_tpm2b(&mut out, &self.auth_policy)?;
        match &self.key {
            PublicKey::Rsa { symmetric, key_bits, exponent, modulus } => {
                put_symmetric(&mut out, *symmetric);
                out.extend_from_slice(&alg::NULL.to_be_bytes()); // scheme
                out.extend_from_slice(&key_bits.to_be_bytes());
                out.extend_from_slice(&exponent.to_be_bytes());
                put_tpm2b(&mut out, modulus)?;
            }
            PublicKey::Ecc { symmetric, curve, x, y } => {
                put_symmetric(&mut out, *symmetric);
                out.extend_from_slice(&alg::NULL.to_be_bytes()); // scheme
                out.extend_from_slice(&curve.to_be_bytes());
                out.extend_from_slice(&alg::NULL.to_be_bytes()); // kdf
                put_tpm2b(&mut out, x)?;
                put_tpm2b(&mut out, y)?;
            }
        }
        Ok(out)
    }

    /// Parses a TPMT_PUBLIC (RSA or ECC with NULL scheme and KDF); the whole buffer must be consumed.
    pub fn parse(buf: &[u8]) -> Result<Self, MarshalError> {
        let mut r = Reader::new(buf);
        let ty = r.u16()?;
        let name_alg = r.u16()?;
        let attributes = r.u32()?;
        let auth_policy = r.tpm2b()?.to_vec();
        let key = match ty {
            alg::RSA => {
                let symmetric = read_symmetric(&mut r)?;
                if r.u16()? != alg::NULL {
                    return Err(MarshalError::Unsupported("RSA scheme other than NULL"));
                }
                let key_bits = r.u16()?;
                let exponent = r.u32()?;
                let modulus = r.tpm2b()?.to_vec();
                PublicKey::Rsa { symmetric, key_bits, exponent, modulus }
            }
            alg::ECC => {
                let symmetric = read_symmetric(&mut r)?;
                if r.u16()? != alg::NULL {
                    return Err(MarshalError::Unsupported("ECC scheme other than NULL"));
                }
                let curve = r.u16()?;
                if r.u16()? != alg::NULL {
                    return Err(MarshalError::Unsupported("ECC KDF other than NULL"));
                }
                let x = r.tpm2b()?.to_vec();
                let y = r.tpm2b()?.to_vec();
                PublicKey::Ecc { symmetric, curve, x, y }
            }
            _ => return Err(MarshalError::Unsupported("public area type other than RSA or ECC")),
        };
        if r.remaining() != 0 {
            return Err(MarshalError::Unsupported("trailing bytes after TPMT_PUBLIC"));
        }
        Ok(PublicArea { name_alg, attributes, auth_policy, key })
    }
}

// ---- NV public areas ----

/// NV index attribute bits (TPMA_NV) used here.
pub mod nv_attr {
    /// PPWRITE: platform authorization may write.
    pub const PPWRITE: u32 = 1 << 0;
    /// OWNERWRITE.
    pub const OWNERWRITE: u32 = 1 << 1;
    /// AUTHWRITE.
    pub const AUTHWRITE: u32 = 1 << 2;
    /// PPREAD.
    pub const PPREAD: u32 = 1 << 16;
    /// OWNERREAD.
    pub const OWNERREAD: u32 = 1 << 17;
    /// AUTHREAD.
    pub const AUTHREAD: u32 = 1 << 18;
    /// NO_DA: exempt from dictionary-attack protection.
    pub const NO_DA: u32 = 1 << 25;
    /// WRITTEN (set by the TPM after the first write).
    pub const WRITTEN: u32 = 1 << 29;
    /// PLATFORMCREATE: defined with platform authorization, owner cannot delete it.
    pub const PLATFORMCREATE: u32 = 1 << 30;
}

/// A TPMS_NV_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvPublic {
    /// The NV index handle.
    pub index: u32,
    /// nameAlg.
    pub name_alg: u16,
    /// TPMA_NV attributes.
    pub attributes: u32,
    /// authPolicy.
    pub auth_policy: Vec<u8>,
    /// Data size.
    pub data_size: u16,
}

impl NvPublic {
    /// Marshals the TPMS_NV_PUBLIC (without the TPM2B size prefix).
    pub fn marshal(&self) -> Result<Vec<u8>, MarshalError> {
        let mut out = Vec::with_capacity(14 + self.auth_policy.len());
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.name_alg.to_be_bytes());
        out.extend_from_slice(&self.attributes.to_be_bytes());
        put_tpm2b(&mut out, &self.auth_policy)?;
        out.extend_from_slice(&self.data_size.to_be_bytes());
        Ok(out)
    }

    /// Parses a TPMS_NV_PUBLIC.
    pub fn parse(buf: &[u8]) -> Result<Self, MarshalError> {
        let mut r = Reader::new(buf);
        Ok(NvPublic {
            index: r.u32()?,
            name_alg: r.u16()?,
            attributes: r.u32()?,
            auth_policy: r.tpm2b()?.to_vec(),
            data_size: r.u16()?,
        })
    }
}

// ---- Commands ----

/// Builders for the commands the vTPM issues itself (manufacturing, info, benchmarks).
pub mod cmd {
    use super::*;

    /// TPM2_Startup(su).
    pub fn startup(su: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::STARTUP).u16(su).build()
    }

    /// TPM2_Shutdown(su).
    pub fn shutdown(su: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::SHUTDOWN).u16(su).build()
    }

    /// TPM2_GetRandom(bytes).
    pub fn get_random(bytes: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::GET_RANDOM).u16(bytes).build()
    }

    /// TPM2_CreatePrimary under `hierarchy` (empty hierarchy password) with `template`, no sensitive data,
    /// no outside info, no PCR selection.
    pub fn create_primary(hierarchy: u32, template: &PublicArea) -> Result<Vec<u8>, MarshalError> {
        let public = template.marshal()?;
        // TPM2B_SENSITIVE_CREATE { size 4, TPM2B userAuth (empty), TPM2B data (empty) }
        let sensitive = [0u8, 4, 0, 0, 0, 0];
        CommandBuilder::new(cc::CREATE_PRIMARY)
            .handle(hierarchy)
            .password_auth(&[])
            .bytes(&sensitive)
            .tpm2b(&public)?
            .tpm2b(&[])? // outsideInfo
            .u32(0) // TPML_PCR_SELECTION count
            .build()
    }

    /// TPM2_FlushContext(handle).
    pub fn flush_context(handle: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::FLUSH_CONTEXT).u32(handle).build()
    }

    /// TPM2_EvictControl(auth = `auth_hierarchy`, object) to `persistent`.
    pub fn evict_control(auth_hierarchy: u32, object: u32, persistent: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::EVICT_CONTROL)
            .handle(auth_hierarchy)
            .handle(object)
            .password_auth(&[])
            .u32(persistent)
            .build()
    }

    /// TPM2_NV_DefineSpace(auth = `auth_hierarchy`, empty index auth, `public`).
    pub fn nv_define_space(auth_hierarchy: u32, public: &NvPublic) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_DEFINE_SPACE)
            .handle(auth_hierarchy)
            .password_auth(&[])
            .tpm2b(&[])?
            .tpm2b(&public.marshal()?)?
            .build()
    }

    /// TPM2_NV_Write(auth, index, data, offset).
    pub fn nv_write(auth: u32, index: u32, data: &[u8], offset: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_WRITE)
            .handle(auth)
            .handle(index)
            .password_auth(&[])
            .tpm2b(data)?
            .u16(offset)
            .build()
    }

    /// TPM2_NV_Read(auth, index, size, offset).
    pub fn nv_read(auth: u32, index: u32, size: u16, offset: u16) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_READ)
            .handle(auth)
            .handle(index)
            .password_auth(&[])
            .u16(size)
            .u16(offset)
            .build()
    }

    /// TPM2_NV_ReadPublic(index).
    pub fn nv_read_public(index: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::NV_READ_PUBLIC).handle(index).build()
    }

    /// TPM2_ReadPublic(object).
    pub fn read_public(object: u32) -> Result<Vec<u8>, MarshalError> {
        CommandBuilder::new(cc::READ_PUBLIC).handle(object).build()
    }
}

/// The parts of a CreatePrimary response the vTPM uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPrimary {
    /// The transient handle of the new object.
    pub handle: u32,
    /// Its public area.
    pub public: PublicArea,
    /// Its marshalled public area, exactly as the TPM returned it.
    pub public_bytes: Vec<u8>,
    /// Its Name (nameAlg || H(public)).
    pub name: Vec<u8>,
}

impl CreatedPrimary {
    /// Parses a CreatePrimary response.
    pub fn parse(resp: &[u8]) -> Result<Self, MarshalError> {
        let r = Response::parse(resp, 1)?;
        let handle = r.handles.first().copied().ok_or(MarshalError::Unsupported("no handle"))?;
        let mut p = Reader::new(r.params);
        let public_bytes = p.tpm2b()?.to_vec();
        let public = PublicArea::parse(&public_bytes)?;
        p.tpm2b()?; // creationData
        p.tpm2b()?; // creationHash
        p.u16()?; // creationTicket.tag
        p.u32()?; // creationTicket.hierarchy
        p.tpm2b()?; // creationTicket.digest
        let name = p.tpm2b()?.to_vec();
        Ok(CreatedPrimary { handle, public, public_bytes, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_random_matches_the_reference_bytes() {
        let c = cmd::get_random(8).unwrap();
        assert_eq!(c, [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8]);
    }

    #[test]
    fn nv_write_matches_the_reference_layout() {
        let data = [0xAAu8; 64];
        let c = cmd::nv_write(rh::OWNER, 0x0150_0016, &data, 0).unwrap();
        let h = CommandHeader::parse(&c).unwrap();
        assert_eq!((h.tag, h.code, h.size as usize), (st::SESSIONS, cc::NV_WRITE, c.len()));
        let mut r = Reader::new(&c[10..]);
        assert_eq!(r.u32().unwrap(), rh::OWNER);
        assert_eq!(r.u32().unwrap(), 0x0150_0016);
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.take(9).unwrap(), [0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
        assert_eq!(r.tpm2b().unwrap(), &data[..]);
        assert_eq!(r.u16().unwrap(), 0);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn public_area_round_trips() {
        for t in [crate::manufacture::ek_template_rsa2048(), crate::manufacture::ek_template_ecc_p256()] {
            let bytes = t.marshal().unwrap();
            assert_eq!(PublicArea::parse(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn reader_reports_truncation_instead_of_panicking() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert!(matches!(r.tpm2b(), Err(MarshalError::Truncated { .. })));
        assert!(Response::parse(&[0x80, 1, 0, 0, 0, 9, 0, 0, 0], 0).is_err());
        assert_eq!(
            Response::parse(&error_response(rc::FAILURE), 0).unwrap_err(),
            MarshalError::ResponseCode(0x101)
        );
    }
}
