//! Public areas: TPMT_PUBLIC ([`PublicArea`]), TPMS_NV_PUBLIC ([`NvPublic`]) and the CreatePrimary
//! response that carries one.

use alloc::vec::Vec;

use super::*;
use crate::error::MarshalError;

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
