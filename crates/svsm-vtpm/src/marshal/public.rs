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

/// A TPMT_SYM_DEF_OBJECT that is not TPM_ALG_NULL: (algorithm, key bits, mode).
pub type SymDef = (u16, u16, u16);

/// A signing, encryption or key-derivation scheme of a public area (TPMT_RSA_SCHEME, TPMT_ECC_SCHEME,
/// TPMT_KEYEDHASH_SCHEME, TPMT_KDF_SCHEME): the algorithm and the details its union arm carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TPM_ALG_NULL: no scheme (the key can be used with any allowed scheme).
    Null,
    /// A scheme whose details are one hash algorithm (TPMS_SCHEME_HASH: RSASSA, RSAPSS, OAEP, ECDSA, ECDH,
    /// ECSCHNORR, SM2, HMAC, and the KDFs).
    Hash {
        /// The scheme algorithm.
        alg: u16,
        /// Its hashAlg.
        hash: u16,
    },
    /// RSAES-PKCS1-v1_5 (TPMS_ENC_SCHEME_RSAES: no details).
    Rsaes,
    /// ECDAA (TPMS_SCHEME_ECDAA: hash algorithm and commit count).
    Ecdaa {
        /// hashAlg.
        hash: u16,
        /// count.
        count: u16,
    },
    /// XOR obfuscation of a keyed-hash object (TPMS_SCHEME_XOR: hash algorithm and KDF).
    Xor {
        /// hashAlg.
        hash: u16,
        /// kdf.
        kdf: u16,
    },
}

/// Which scheme union a scheme is read from: the same algorithm id carries different details in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemeUnion {
    Rsa,
    Ecc,
    KeyedHash,
    Kdf,
}

impl Scheme {
    fn put(self, out: &mut Vec<u8>) {
        let mut words = |ws: &[u16]| ws.iter().for_each(|w| out.extend_from_slice(&w.to_be_bytes()));
        match self {
            Scheme::Null => words(&[alg::NULL]),
            Scheme::Hash { alg, hash } => words(&[alg, hash]),
            Scheme::Rsaes => words(&[alg::RSAES]),
            Scheme::Ecdaa { hash, count } => words(&[alg::ECDAA, hash, count]),
            Scheme::Xor { hash, kdf } => words(&[alg::XOR, hash, kdf]),
        }
    }

    fn read(r: &mut Reader<'_>, union: SchemeUnion) -> Result<Self, MarshalError> {
        Ok(match (r.u16()?, union) {
            (alg::NULL, _) => Scheme::Null,
            (alg::RSAES, SchemeUnion::Rsa) => Scheme::Rsaes,
            (alg::ECDAA, SchemeUnion::Ecc) => Scheme::Ecdaa { hash: r.u16()?, count: r.u16()? },
            (alg::XOR, SchemeUnion::KeyedHash) => Scheme::Xor { hash: r.u16()?, kdf: r.u16()? },
            (alg, _) => Scheme::Hash { alg, hash: r.u16()? },
        })
    }

    /// The scheme's algorithm id (TPM_ALG_NULL for [`Scheme::Null`]).
    pub fn alg(self) -> u16 {
        match self {
            Scheme::Null => alg::NULL,
            Scheme::Hash { alg, .. } => alg,
            Scheme::Rsaes => alg::RSAES,
            Scheme::Ecdaa { .. } => alg::ECDAA,
            Scheme::Xor { .. } => alg::XOR,
        }
    }
}

/// Key-type-specific parameters and unique field of a public area (TPMU_PUBLIC_PARMS and TPMU_PUBLIC_ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key: symmetric, scheme, key bits, exponent (0 = 65537), modulus (unique).
    Rsa {
        /// Symmetric algorithm of a storage/EK key, or `None` for TPM_ALG_NULL.
        symmetric: Option<SymDef>,
        /// The key's scheme.
        scheme: Scheme,
        /// Key size in bits.
        key_bits: u16,
        /// Public exponent, 0 meaning the default 65537.
        exponent: u32,
        /// The modulus (or, in a template, the unique seed bytes).
        modulus: Vec<u8>,
    },
    /// An ECC key: symmetric, scheme, curve, KDF, point (unique).
    Ecc {
        /// Symmetric algorithm, or `None` for TPM_ALG_NULL.
        symmetric: Option<SymDef>,
        /// The key's scheme.
        scheme: Scheme,
        /// TPM_ECC_CURVE.
        curve: u16,
        /// The key-derivation scheme.
        kdf: Scheme,
        /// X coordinate.
        x: Vec<u8>,
        /// Y coordinate.
        y: Vec<u8>,
    },
    /// A keyed-hash object (HMAC key or sealed data): scheme and the `unique` digest.
    KeyedHash {
        /// The scheme.
        scheme: Scheme,
        /// `unique`.
        unique: Vec<u8>,
    },
    /// A symmetric-cipher object: its algorithm and the `unique` digest.
    SymCipher {
        /// The symmetric algorithm (TPM_ALG_NULL is `None`, which a TPM refuses for this type).
        symmetric: Option<SymDef>,
        /// `unique`.
        unique: Vec<u8>,
    },
}

impl PublicKey {
    /// The TPMI_ALG_PUBLIC of this key type.
    pub fn object_type(&self) -> u16 {
        match self {
            PublicKey::Rsa { .. } => alg::RSA,
            PublicKey::Ecc { .. } => alg::ECC,
            PublicKey::KeyedHash { .. } => alg::KEYEDHASH,
            PublicKey::SymCipher { .. } => alg::SYMCIPHER,
        }
    }
}

/// A TPMT_PUBLIC: one definition for the vTPM that manufactures and certifies keys and for the verifier
/// that reads them back out of attestation evidence. [`parse`](Self::parse) accepts every object type and
/// scheme the TPM 2.0 structures define, and [`marshal`](Self::marshal) gives back the exact bytes parsed.
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

fn put_symmetric(out: &mut Vec<u8>, sym: Option<SymDef>) {
    match sym {
        Some((a, bits, mode)) => {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&bits.to_be_bytes());
            out.extend_from_slice(&mode.to_be_bytes());
        }
        None => out.extend_from_slice(&alg::NULL.to_be_bytes()),
    }
}

fn read_symmetric(r: &mut Reader<'_>) -> Result<Option<SymDef>, MarshalError> {
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
        out.extend_from_slice(&self.key.object_type().to_be_bytes());
        out.extend_from_slice(&self.name_alg.to_be_bytes());
        out.extend_from_slice(&self.attributes.to_be_bytes());
        put_tpm2b(&mut out, &self.auth_policy)?;
        match &self.key {
            PublicKey::Rsa { symmetric, scheme, key_bits, exponent, modulus } => {
                put_symmetric(&mut out, *symmetric);
                scheme.put(&mut out);
                out.extend_from_slice(&key_bits.to_be_bytes());
                out.extend_from_slice(&exponent.to_be_bytes());
                put_tpm2b(&mut out, modulus)?;
            }
            PublicKey::Ecc { symmetric, scheme, curve, kdf, x, y } => {
                put_symmetric(&mut out, *symmetric);
                scheme.put(&mut out);
                out.extend_from_slice(&curve.to_be_bytes());
                kdf.put(&mut out);
                put_tpm2b(&mut out, x)?;
                put_tpm2b(&mut out, y)?;
            }
            PublicKey::KeyedHash { scheme, unique } => {
                scheme.put(&mut out);
                put_tpm2b(&mut out, unique)?;
            }
            PublicKey::SymCipher { symmetric, unique } => {
                put_symmetric(&mut out, *symmetric);
                put_tpm2b(&mut out, unique)?;
            }
        }
        Ok(out)
    }

    /// Parses one marshalled TPMT_PUBLIC that must span `buf` exactly. Untrusted input: a short buffer is
    /// [`MarshalError::Truncated`], an unknown object type [`MarshalError::UnknownObjectType`], bytes after
    /// the structure [`MarshalError::TrailingBytes`].
    pub fn parse(buf: &[u8]) -> Result<Self, MarshalError> {
        let mut r = Reader::new(buf);
        let ty = r.u16()?;
        let name_alg = r.u16()?;
        let attributes = r.u32()?;
        let auth_policy = r.tpm2b()?.to_vec();
        let key = match ty {
            alg::RSA => PublicKey::Rsa {
                symmetric: read_symmetric(&mut r)?,
                scheme: Scheme::read(&mut r, SchemeUnion::Rsa)?,
                key_bits: r.u16()?,
                exponent: r.u32()?,
                modulus: r.tpm2b()?.to_vec(),
            },
            alg::ECC => PublicKey::Ecc {
                symmetric: read_symmetric(&mut r)?,
                scheme: Scheme::read(&mut r, SchemeUnion::Ecc)?,
                curve: r.u16()?,
                kdf: Scheme::read(&mut r, SchemeUnion::Kdf)?,
                x: r.tpm2b()?.to_vec(),
                y: r.tpm2b()?.to_vec(),
            },
            alg::KEYEDHASH => PublicKey::KeyedHash {
                scheme: Scheme::read(&mut r, SchemeUnion::KeyedHash)?,
                unique: r.tpm2b()?.to_vec(),
            },
            alg::SYMCIPHER => {
                PublicKey::SymCipher { symmetric: read_symmetric(&mut r)?, unique: r.tpm2b()?.to_vec() }
            }
            other => return Err(MarshalError::UnknownObjectType(other)),
        };
        if r.remaining() != 0 {
            return Err(MarshalError::TrailingBytes(r.remaining()));
        }
        Ok(PublicArea { name_alg, attributes, auth_policy, key })
    }
}

/// An object's Name: nameAlg (u16 BE) || H_nameAlg(marshalled TPMT_PUBLIC); `None` for a nameAlg other than
/// SHA-256, SHA-384 or SHA-512.
pub fn object_name(name_alg: u16, tpmt_public: &[u8]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256, Sha384, Sha512};
    let mut name = Vec::with_capacity(66);
    name.extend_from_slice(&name_alg.to_be_bytes());
    match name_alg {
        alg::SHA256 => name.extend_from_slice(&Sha256::digest(tpmt_public)),
        alg::SHA384 => name.extend_from_slice(&Sha384::digest(tpmt_public)),
        alg::SHA512 => name.extend_from_slice(&Sha512::digest(tpmt_public)),
        _ => return None,
    }
    Some(name)
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
