//! The few TPM 2.0 structures the SVSM itself marshals: the EK templates, TPM2_CreatePrimary on the
//! endorsement hierarchy (for the attestation manifest), TPM2_FlushContext, TPM2_GetRandom, and a TPMT_PUBLIC
//! parser used to validate selector templates and by verifiers to extract keys and compute Names.
//!
//! TPM structures are big-endian. Every parser here consumes untrusted bytes with checked reads and reports
//! the first malformation; none panics.

use alloc::vec::Vec;

use sha2::{Digest, Sha256, Sha384, Sha512};

// The TPM constants are svsm-vtpm's (`svsm_vtpm::marshal`), the one set in the workspace; these are their
// names in this crate's API.
use svsm_vtpm::MarshalError;
use svsm_vtpm::marshal::{Reader, alg, cc, cmd, rc, rh, st};

/// TPM_ST_NO_SESSIONS.
pub const TPM_ST_NO_SESSIONS: u16 = st::NO_SESSIONS;
/// TPM_ST_SESSIONS.
pub const TPM_ST_SESSIONS: u16 = st::SESSIONS;
/// TPM_CC_CreatePrimary.
pub const TPM_CC_CREATE_PRIMARY: u32 = cc::CREATE_PRIMARY;
/// TPM_CC_FlushContext.
pub const TPM_CC_FLUSH_CONTEXT: u32 = cc::FLUSH_CONTEXT;
/// TPM_CC_GetRandom.
pub const TPM_CC_GET_RANDOM: u32 = cc::GET_RANDOM;
/// TPM_CC_Startup.
pub const TPM_CC_STARTUP: u32 = cc::STARTUP;
/// TPM_RH_ENDORSEMENT.
pub const TPM_RH_ENDORSEMENT: u32 = rh::ENDORSEMENT;
/// TPM_RS_PW (password session).
pub const TPM_RS_PW: u32 = rh::PASSWORD_SESSION;
/// TPM_ALG_RSA.
pub const TPM_ALG_RSA: u16 = alg::RSA;
/// TPM_ALG_KEYEDHASH.
pub const TPM_ALG_KEYEDHASH: u16 = alg::KEYEDHASH;
/// TPM_ALG_SHA256.
pub const TPM_ALG_SHA256: u16 = alg::SHA256;
/// TPM_ALG_SHA384.
pub const TPM_ALG_SHA384: u16 = alg::SHA384;
/// TPM_ALG_SHA512.
pub const TPM_ALG_SHA512: u16 = alg::SHA512;
/// TPM_ALG_NULL.
pub const TPM_ALG_NULL: u16 = alg::NULL;
/// TPM_ALG_RSAES (its scheme details are empty).
pub const TPM_ALG_RSAES: u16 = alg::RSAES;
/// TPM_ALG_ECDAA (its scheme details carry a count).
pub const TPM_ALG_ECDAA: u16 = alg::ECDAA;
/// TPM_ALG_ECC.
pub const TPM_ALG_ECC: u16 = alg::ECC;
/// TPM_ALG_SYMCIPHER.
pub const TPM_ALG_SYMCIPHER: u16 = alg::SYMCIPHER;
/// TPM_ALG_XOR (keyed-hash scheme with a KDF).
pub const TPM_ALG_XOR: u16 = alg::XOR;
/// TPM_ALG_AES.
pub const TPM_ALG_AES: u16 = alg::AES;
/// TPM_ALG_CFB.
pub const TPM_ALG_CFB: u16 = alg::CFB;
/// TPM_RC_SUCCESS.
pub const TPM_RC_SUCCESS: u32 = rc::SUCCESS;

/// PolicyA-SHA256 of the EK Credential Profile (PolicySecret(TPM_RH_ENDORSEMENT)), from the vTPM crate.
pub use svsm_vtpm::manufacture::POLICY_A_SHA256;

/// objectAttributes of the low-range EK templates: fixedTPM | fixedParent | sensitiveDataOrigin |
/// adminWithPolicy | restricted | decrypt.
pub const EK_LOW_ATTRIBUTES: u32 = svsm_vtpm::manufacture::EK_ATTRIBUTES;

/// The TCG EK Credential Profile default template L-1 (RSA-2048), as a marshalled TPMT_PUBLIC (314 bytes).
///
/// One source of truth: this is the template the vTPM manufactures its EK from (`svsm_vtpm::manufacture`),
/// so the EK a guest attests through the services manifest is the EK `svsm-host tpm info` reports.
pub fn ek_rsa2048_template() -> Vec<u8> {
    marshalled(svsm_vtpm::manufacture::ek_template_rsa2048())
}

/// The TCG default template L-2 (ECC NIST P-256), from the same source as [`ek_rsa2048_template`].
pub fn ek_ecc_p256_template() -> Vec<u8> {
    marshalled(svsm_vtpm::manufacture::ek_template_ecc_p256())
}

/// A TCG EK Credential Profile template this stack manufactures and attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EkProfile {
    /// Low-range template L-1: RSA-2048, SHA-256, PolicyA.
    L1Rsa2048,
    /// Low-range template L-2: ECC NIST P-256, SHA-256, PolicyA.
    L2EccP256,
}

impl EkProfile {
    /// Every profile template supported (the vTPM manufactures exactly these; no high-range templates).
    pub const ALL: [EkProfile; 2] = [EkProfile::L1Rsa2048, EkProfile::L2EccP256];

    /// The marshalled template (TPMT_PUBLIC with the profile's all-zero unique).
    pub fn template(self) -> Vec<u8> {
        match self {
            EkProfile::L1Rsa2048 => ek_rsa2048_template(),
            EkProfile::L2EccP256 => ek_ecc_p256_template(),
        }
    }

    /// The profile's name, e.g. "TCG EK template L-1 (RSA-2048)".
    pub fn label(self) -> &'static str {
        match self {
            EkProfile::L1Rsa2048 => "TCG EK template L-1 (RSA-2048)",
            EkProfile::L2EccP256 => "TCG EK template L-2 (ECC NIST P-256)",
        }
    }

    /// Which profile template `created` (a TPMT_PUBLIC that CreatePrimary returned) was made from: every
    /// byte must equal the template's except the `unique` field, which holds the created key. `None` for
    /// anything else (other attributes, an authPolicy other than PolicyA, other parameters): such a key is
    /// not an EK, whatever hierarchy it was created on.
    pub fn of_created(created: &[u8]) -> Option<EkProfile> {
        let parsed = parse_tpmt_public(created).ok()?;
        let (profile, mut area) = match &parsed.key {
            PublicKey::Rsa { .. } => (EkProfile::L1Rsa2048, svsm_vtpm::manufacture::ek_template_rsa2048()),
            PublicKey::Ecc { .. } => (EkProfile::L2EccP256, svsm_vtpm::manufacture::ek_template_ecc_p256()),
            PublicKey::Other { .. } => return None,
        };
        match (&mut area.key, parsed.key) {
            (svsm_vtpm::marshal::PublicKey::Rsa { modulus, .. }, PublicKey::Rsa { modulus: m, .. }) => {
                *modulus = m;
            }
            (svsm_vtpm::marshal::PublicKey::Ecc { x, y, .. }, PublicKey::Ecc { x: px, y: py, .. }) => {
                *x = px;
                *y = py;
            }
            _ => return None,
        }
        (area.marshal().ok()? == created).then_some(profile)
    }
}

/// The profile templates are constants well inside every TPM2B limit, so marshalling cannot fail (the tests
/// below pin their exact bytes); an empty template would only make CreatePrimary fail, never panic.
fn marshalled(area: svsm_vtpm::marshal::PublicArea) -> Vec<u8> {
    area.marshal().unwrap_or_default()
}

/// Builds TPM2_CreatePrimary(TPM_RH_ENDORSEMENT, empty sensitive, `template`, no outside info, no PCRs) with
/// an empty password session (continueSession set). Returns `None` if the template cannot be framed (longer
/// than a TPM2B allows).
pub fn create_primary_command(template: &[u8]) -> Option<Vec<u8>> {
    cmd::create_primary_from(rh::ENDORSEMENT, template, SESSION_CONTINUE).ok()
}

/// TPMA_SESSION continueSession.
const SESSION_CONTINUE: u8 = 0x01;

/// Builds TPM2_FlushContext(handle).
pub fn flush_context_command(handle: u32) -> Vec<u8> {
    // A fixed 14-byte command: building it cannot fail.
    cmd::flush_context(handle).unwrap_or_default()
}

/// Builds TPM2_GetRandom(bytes_requested).
pub fn get_random_command(bytes_requested: u16) -> Vec<u8> {
    // A fixed 12-byte command: building it cannot fail.
    cmd::get_random(bytes_requested).unwrap_or_default()
}

/// Why a TPM response could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TpmResponseError {
    /// The response is shorter than its structure requires or its size field disagrees with its length.
    #[error("malformed TPM response")]
    Malformed,
    /// The TPM returned this non-zero response code.
    #[error("TPM response code {0:#x}")]
    ResponseCode(u32),
}

/// A TPM response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    /// TPM_ST_*.
    pub tag: u16,
    /// Size field.
    pub size: u32,
    /// Response code.
    pub rc: u32,
}

/// Parses and checks a response header: size must equal the response length.
pub fn parse_response_header(resp: &[u8]) -> Result<ResponseHeader, TpmResponseError> {
    let mut r = Reader::new(resp);
    let tag = r.u16().map_err(|_| TpmResponseError::Malformed)?;
    let size = r.u32().map_err(|_| TpmResponseError::Malformed)?;
    let rc = r.u32().map_err(|_| TpmResponseError::Malformed)?;
    if usize::try_from(size).ok() != Some(resp.len()) {
        return Err(TpmResponseError::Malformed);
    }
    Ok(ResponseHeader { tag, size, rc })
}

/// What a successful TPM2_CreatePrimary returned that the SVSM needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPrimary {
    /// Transient handle of the loaded object (flush it when done).
    pub handle: u32,
    /// The marshalled TPMT_PUBLIC of the object (no TPM2B size prefix).
    pub public: Vec<u8>,
}

/// Parses a TPM2_CreatePrimary response: header(10) | handle(4) | parameterSize(4) | TPM2B_PUBLIC | ...
pub fn parse_create_primary_response(resp: &[u8]) -> Result<CreatedPrimary, TpmResponseError> {
    let header = parse_response_header(resp)?;
    if header.rc != TPM_RC_SUCCESS {
        return Err(TpmResponseError::ResponseCode(header.rc));
    }
    if header.tag != TPM_ST_SESSIONS {
        return Err(TpmResponseError::Malformed);
    }
    let mut r = Reader::new(resp);
    r.take(10).map_err(|_| TpmResponseError::Malformed)?;
    let handle = r.u32().map_err(|_| TpmResponseError::Malformed)?;
    let param_size = r.u32().map_err(|_| TpmResponseError::Malformed)?;
    if usize::try_from(param_size).map_or(true, |p| p > r.remaining()) {
        return Err(TpmResponseError::Malformed);
    }
    let public = r.tpm2b().map_err(|_| TpmResponseError::Malformed)?;
    if public.is_empty() {
        return Err(TpmResponseError::Malformed);
    }
    Ok(CreatedPrimary { handle, public: public.to_vec() })
}

/// Parses a TPM2_GetRandom response and returns the random bytes.
pub fn parse_get_random_response(resp: &[u8]) -> Result<Vec<u8>, TpmResponseError> {
    let header = parse_response_header(resp)?;
    if header.rc != TPM_RC_SUCCESS {
        return Err(TpmResponseError::ResponseCode(header.rc));
    }
    let mut r = Reader::new(resp);
    r.take(10).map_err(|_| TpmResponseError::Malformed)?;
    let bytes = r.tpm2b().map_err(|_| TpmResponseError::Malformed)?;
    if r.remaining() != 0 {
        return Err(TpmResponseError::Malformed);
    }
    Ok(bytes.to_vec())
}

/// Algorithm-specific part of a TPMT_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: key size, exponent (0 = 65537), modulus (`unique`).
    Rsa {
        /// keyBits.
        key_bits: u16,
        /// exponent as marshalled (0 means 65537).
        exponent: u32,
        /// Modulus, big-endian.
        modulus: Vec<u8>,
    },
    /// ECC: curve and the public point (`unique`).
    Ecc {
        /// TPM_ECC_CURVE.
        curve: u16,
        /// x coordinate.
        x: Vec<u8>,
        /// y coordinate.
        y: Vec<u8>,
    },
    /// Keyed hash or symmetric object: the `unique` digest.
    Other {
        /// `unique` bytes.
        unique: Vec<u8>,
    },
}

/// A parsed TPMT_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmtPublic {
    /// TPMI_ALG_PUBLIC.
    pub object_type: u16,
    /// nameAlg.
    pub name_alg: u16,
    /// objectAttributes.
    pub object_attributes: u32,
    /// authPolicy digest.
    pub auth_policy: Vec<u8>,
    /// Symmetric algorithm of a storage key (TPM_ALG_NULL if none).
    pub symmetric_alg: u16,
    /// Scheme algorithm (TPM_ALG_NULL if none).
    pub scheme: u16,
    /// Key material.
    pub key: PublicKey,
}

/// Why a TPMT_PUBLIC did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublicParseError {
    /// The bytes end before the structure does.
    #[error("TPMT_PUBLIC is truncated")]
    Truncated,
    /// Bytes remain after the structure.
    #[error("{0} bytes follow the TPMT_PUBLIC")]
    TrailingBytes(usize),
    /// The object type is not one of RSA, ECC, KEYEDHASH, SYMCIPHER.
    #[error("unknown object type {0:#06x}")]
    UnknownType(u16),
}

fn sym_def_object(r: &mut Reader<'_>) -> Result<u16, MarshalError> {
    let alg = r.u16()?;
    if alg != TPM_ALG_NULL {
        r.u16()?; // keyBits
        r.u16()?; // mode
    }
    Ok(alg)
}

/// Parses one marshalled TPMT_PUBLIC that must span `bytes` exactly.
pub fn parse_tpmt_public(bytes: &[u8]) -> Result<TpmtPublic, PublicParseError> {
    use PublicParseError::Truncated;
    let mut r = Reader::new(bytes);
    let object_type = r.u16().map_err(|_| Truncated)?;
    let name_alg = r.u16().map_err(|_| Truncated)?;
    let object_attributes = r.u32().map_err(|_| Truncated)?;
    let auth_policy = r.tpm2b().map_err(|_| Truncated)?.to_vec();
    let (symmetric_alg, scheme, key) = match object_type {
        TPM_ALG_RSA => {
            let sym = sym_def_object(&mut r).map_err(|_| Truncated)?;
            let scheme = r.u16().map_err(|_| Truncated)?;
            if scheme != TPM_ALG_NULL && scheme != TPM_ALG_RSAES {
                r.u16().map_err(|_| Truncated)?; // hashAlg
            }
            let key_bits = r.u16().map_err(|_| Truncated)?;
            let exponent = r.u32().map_err(|_| Truncated)?;
            let modulus = r.tpm2b().map_err(|_| Truncated)?.to_vec();
            (sym, scheme, PublicKey::Rsa { key_bits, exponent, modulus })
        }
        TPM_ALG_ECC => {
            let sym = sym_def_object(&mut r).map_err(|_| Truncated)?;
            let scheme = r.u16().map_err(|_| Truncated)?;
            if scheme != TPM_ALG_NULL {
                r.u16().map_err(|_| Truncated)?; // hashAlg
                if scheme == TPM_ALG_ECDAA {
                    r.u16().map_err(|_| Truncated)?; // count
                }
            }
            let curve = r.u16().map_err(|_| Truncated)?;
            let kdf = r.u16().map_err(|_| Truncated)?;
            if kdf != TPM_ALG_NULL {
                r.u16().map_err(|_| Truncated)?;
            }
            let x = r.tpm2b().map_err(|_| Truncated)?.to_vec();
            let y = r.tpm2b().map_err(|_| Truncated)?.to_vec();
            (sym, scheme, PublicKey::Ecc { curve, x, y })
        }
        TPM_ALG_KEYEDHASH => {
            let scheme = r.u16().map_err(|_| Truncated)?;
            if scheme != TPM_ALG_NULL {
                r.u16().map_err(|_| Truncated)?; // hashAlg
                if scheme == TPM_ALG_XOR {
                    r.u16().map_err(|_| Truncated)?; // kdf
                }
            }
            let unique = r.tpm2b().map_err(|_| Truncated)?.to_vec();
            (TPM_ALG_NULL, scheme, PublicKey::Other { unique })
        }
        TPM_ALG_SYMCIPHER => {
            let sym = sym_def_object(&mut r).map_err(|_| Truncated)?;
            let unique = r.tpm2b().map_err(|_| Truncated)?.to_vec();
            (sym, TPM_ALG_NULL, PublicKey::Other { unique })
        }
        other => return Err(PublicParseError::UnknownType(other)),
    };
    if r.remaining() != 0 {
        return Err(PublicParseError::TrailingBytes(r.remaining()));
    }
    Ok(TpmtPublic { object_type, name_alg, object_attributes, auth_policy, symmetric_alg, scheme, key })
}

/// The object's Name: nameAlg (u16 BE) || H_nameAlg(marshalled TPMT_PUBLIC); `None` for an unsupported nameAlg.
pub fn object_name(name_alg: u16, tpmt_public: &[u8]) -> Option<Vec<u8>> {
    let mut name = Vec::with_capacity(66);
    name.extend_from_slice(&name_alg.to_be_bytes());
    match name_alg {
        TPM_ALG_SHA256 => name.extend_from_slice(&Sha256::digest(tpmt_public)),
        TPM_ALG_SHA384 => name.extend_from_slice(&Sha384::digest(tpmt_public)),
        TPM_ALG_SHA512 => name.extend_from_slice(&Sha512::digest(tpmt_public)),
        _ => return None,
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l1_template_is_314_bytes_with_the_profile_fields() {
        let t = ek_rsa2048_template();
        assert_eq!(t.len(), 314);
        assert_eq!(&t[..8], &[0x00, 0x01, 0x00, 0x0B, 0x00, 0x03, 0x00, 0xB2]);
        let p = parse_tpmt_public(&t).expect("template parses");
        assert_eq!(p.object_type, TPM_ALG_RSA);
        assert_eq!(p.auth_policy, POLICY_A_SHA256);
        assert_eq!(p.symmetric_alg, TPM_ALG_AES);
        match p.key {
            PublicKey::Rsa { key_bits, exponent, modulus } => {
                assert_eq!((key_bits, exponent, modulus.len()), (2048, 0, 256));
                assert!(modulus.iter().all(|b| *b == 0));
            }
            other => panic!("not RSA: {other:?}"),
        }
        let e = parse_tpmt_public(&ek_ecc_p256_template()).expect("ecc template parses");
        assert!(matches!(e.key, PublicKey::Ecc { curve: 3, .. }));
    }

    #[test]
    fn create_primary_command_matches_reference_framing() {
        let t = ek_rsa2048_template();
        let c = create_primary_command(&t).expect("frames");
        assert_eq!(c.len(), 10 + 4 + 4 + 9 + 6 + 2 + 314 + 6);
        assert_eq!(u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize, c.len());
        assert_eq!(
            &c[6..33],
            &[
                0x00, 0x00, 0x01, 0x31, 0x40, 0x00, 0x00, 0x0B, 0x00, 0x00, 0x00, 0x09, 0x40, 0x00, 0x00,
                0x09, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00
            ]
        );
        assert_eq!(&c[33..35], &[0x01, 0x3A]);
        assert_eq!(&c[35..35 + 314], &t[..]);
        assert!(create_primary_command(&alloc::vec![0; 70000]).is_none());
    }

    #[test]
    fn small_commands_keep_their_bytes() {
        assert_eq!(
            flush_context_command(0x8000_0001),
            [0x80, 0x01, 0, 0, 0, 14, 0, 0, 0x01, 0x65, 0x80, 0, 0, 0x01]
        );
        assert_eq!(get_random_command(32), [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 32]);
    }

    #[test]
    fn malformed_publics_are_rejected_precisely() {
        let t = ek_rsa2048_template();
        for cut in 0..t.len() {
            assert_eq!(parse_tpmt_public(&t[..cut]), Err(PublicParseError::Truncated), "cut {cut}");
        }
        let mut long = t.clone();
        long.push(0);
        assert_eq!(parse_tpmt_public(&long), Err(PublicParseError::TrailingBytes(1)));
        let mut bad = t;
        bad[0] = 0x77;
        assert_eq!(parse_tpmt_public(&bad), Err(PublicParseError::UnknownType(0x7701)));
    }

    #[test]
    fn name_is_alg_then_digest() {
        let t = ek_rsa2048_template();
        let n = object_name(TPM_ALG_SHA256, &t).expect("sha256");
        assert_eq!(n.len(), 34);
        assert_eq!(&n[..2], &[0x00, 0x0B]);
        assert_eq!(&n[2..], Sha256::digest(&t).as_slice());
        assert!(object_name(0x0004, &t).is_none());
    }

    #[test]
    fn response_header_size_must_match() {
        assert_eq!(parse_response_header(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]).map(|h| h.rc), Ok(0));
        assert_eq!(
            parse_response_header(&[0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0]),
            Err(TpmResponseError::Malformed)
        );
        assert_eq!(parse_response_header(&[0x80, 0x01, 0, 0]), Err(TpmResponseError::Malformed));
        assert_eq!(
            parse_create_primary_response(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x84]),
            Err(TpmResponseError::ResponseCode(0x184))
        );
    }
}
