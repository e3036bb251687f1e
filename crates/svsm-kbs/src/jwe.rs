//! The attempt's ephemeral key and the resource JWE: flattened JSON, `ECDH-ES+A256KW` + `A256GCM`
//! (RFC 7516 / RFC 7518 sections 4.6 and 5.3), as Trustee produces it.
//!
//! Decryption: `Z = ECDH(tee_priv, epk)`; `KEK = ConcatKDF-SHA256(Z, AlgorithmID = "ECDH-ES+A256KW",
//! PartyUInfo = apu, PartyVInfo = apv, SuppPubInfo = 256)`; `CEK = AES-KW-unwrap(KEK, encrypted_key)`;
//! plaintext = AES-256-GCM(CEK, iv, AAD, ciphertext, tag) with AAD the protected member *as received*
//! (plus `.` and the `aad` member when present, RFC 7516 section 5.2 step 14), never a re-serialisation.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kbs_types::TeePubKey;
use rand_core::CryptoRngCore;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::JweError;

/// The JWE key management algorithm (the only one accepted).
pub const ALG: &str = "ECDH-ES+A256KW";
/// The JWE content encryption (the only one accepted).
pub const ENC: &str = "A256GCM";

/// Curve of the attempt's ephemeral key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384 (the default: the same strength as the report's SHA-384 binding).
    P384,
}

impl Curve {
    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// The ephemeral key of one release attempt. Generated per attempt so a JWE made for an earlier attempt or
/// another VM cannot be unwrapped; the private scalar is zeroized on drop (RustCrypto `SecretKey`).
pub enum TeeKey {
    /// P-256.
    P256(p256::SecretKey),
    /// P-384.
    P384(p384::SecretKey),
}

impl core::fmt::Debug for TeeKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TeeKey({})", self.curve().name())
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(what: &str, s: &str) -> Result<Vec<u8>, JweError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|e| JweError::Format(alloc::format!("{what}: {e}")))
}

impl TeeKey {
    /// A fresh key.
    pub fn generate(curve: Curve, rng: &mut impl CryptoRngCore) -> TeeKey {
        match curve {
            Curve::P256 => TeeKey::P256(p256::SecretKey::random(rng)),
            Curve::P384 => TeeKey::P384(p384::SecretKey::random(rng)),
        }
    }

    /// A key from its big-endian private scalar (test vectors).
    pub fn from_scalar(curve: Curve, d: &[u8]) -> Option<TeeKey> {
        match curve {
            Curve::P256 => p256::SecretKey::from_slice(d).ok().map(TeeKey::P256),
            Curve::P384 => p384::SecretKey::from_slice(d).ok().map(TeeKey::P384),
        }
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        match self {
            TeeKey::P256(_) => Curve::P256,
            TeeKey::P384(_) => Curve::P384,
        }
    }

    /// The public key as the Attestation's `tee-pubkey` (exactly the members Trustee hashes).
    pub fn public_jwk(&self) -> TeePubKey {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = match self {
            TeeKey::P256(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
            TeeKey::P384(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
        };
        let n = self.curve().coordinate_len();
        TeePubKey::EC {
            crv: self.curve().name().into(),
            alg: ALG.into(),
            x: b64(&point[1..1 + n]),
            y: b64(&point[1 + n..1 + 2 * n]),
        }
    }

    fn agree(&self, x: &[u8], y: &[u8]) -> Result<Zeroizing<Vec<u8>>, JweError> {
        let n = self.curve().coordinate_len();
        if x.len() != n || y.len() != n {
            return Err(JweError::Epk(alloc::format!("coordinates are not {n} bytes")));
        }
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        let bad_point = || JweError::Epk("not a point on the curve".into());
        Ok(match self {
            TeeKey::P256(k) => {
                let epk = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| bad_point())?;
                let z = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), epk.as_affine());
                Zeroizing::new(z.raw_secret_bytes().to_vec())
            }
            TeeKey::P384(k) => {
                let epk = p384::PublicKey::from_sec1_bytes(&sec1).map_err(|_| bad_point())?;
                let z = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), epk.as_affine());
                Zeroizing::new(z.raw_secret_bytes().to_vec())
            }
        })
    }

    /// Decrypts a resource JWE (flattened JSON) made for this key.
    pub fn decrypt(&self, jwe_json: &[u8]) -> Result<Zeroizing<Vec<u8>>, JweError> {
        let raw: Value = serde_json::from_slice(jwe_json).map_err(|e| JweError::Format(e.to_string()))?;
        let protected_b64 = raw
            .get("protected")
            .and_then(Value::as_str)
            .ok_or_else(|| JweError::Format("no protected member".into()))?
            .to_string();
        let jwe: kbs_types::Response =
            serde_json::from_value(raw).map_err(|e| JweError::Format(e.to_string()))?;
        let header = &jwe.protected;
        if header.alg != ALG {
            return Err(JweError::Alg(header.alg.clone()));
        }
        if header.enc != ENC {
            return Err(JweError::Enc(header.enc.clone()));
        }
        let epk = header.other_fields.get("epk").ok_or_else(|| JweError::Epk("missing".into()))?;
        let member = |name: &str| {
            epk.get(name).and_then(Value::as_str).ok_or_else(|| JweError::Epk(alloc::format!("no {name}")))
        };
        if member("kty")? != "EC" {
            return Err(JweError::Epk("kty is not EC".into()));
        }
        if member("crv")? != self.curve().name() {
            return Err(JweError::Epk(alloc::format!("crv is not {}", self.curve().name())));
        }
        let z = self.agree(&unb64("epk.x", member("x")?)?, &unb64("epk.y", member("y")?)?)?;

        let party = |name: &str| -> Result<Vec<u8>, JweError> {
            match header.other_fields.get(name) {
                None => Ok(Vec::new()),
                Some(Value::String(s)) => unb64(name, s),
                Some(_) => Err(JweError::Format(alloc::format!("{name} is not a string"))),
            }
        };
        let kek = concat_kdf_kek(&z, &party("apu")?, &party("apv")?)?;

        if jwe.encrypted_key.len() != 40 {
            return Err(JweError::Format(alloc::format!(
                "encrypted_key is {} bytes, a wrapped A256GCM key is 40",
                jwe.encrypted_key.len()
            )));
        }
        let kw = aes_kw::KwAes256::new_from_slice(kek.as_slice()).map_err(|_| JweError::Unwrap)?;
        let mut cek = Zeroizing::new([0u8; 32]);
        kw.unwrap_key(&jwe.encrypted_key, cek.as_mut_slice()).map_err(|_| JweError::Unwrap)?;

        let iv: [u8; 12] =
            jwe.iv.as_slice().try_into().map_err(|_| {
                JweError::Format(alloc::format!("iv is {} bytes, A256GCM uses 12", jwe.iv.len()))
            })?;
        let tag: [u8; 16] = jwe.tag.as_slice().try_into().map_err(|_| {
            JweError::Format(alloc::format!("tag is {} bytes, A256GCM uses 16", jwe.tag.len()))
        })?;
        let mut aad = protected_b64.into_bytes();
        if let Some(extra) = &jwe.aad {
            // kbs-types keeps the `aad` member's text as is: it is already BASE64URL(JWE AAD).
            aad.push(b'.');
            aad.extend_from_slice(extra);
        }
        let gcm = Aes256Gcm::new(&(*cek).into());
        let mut plain = Zeroizing::new(jwe.ciphertext);
        gcm.decrypt_inout_detached(&Nonce::from(iv), &aad, plain.as_mut_slice().into(), &Tag::from(tag))
            .map_err(|_| JweError::Decrypt)?;
        Ok(plain)
    }
}

/// The Concat KDF `OtherInfo` for `ECDH-ES+A256KW` (RFC 7518 section 4.6.2).
pub fn concat_kdf_other_info(apu: &[u8], apv: &[u8]) -> Vec<u8> {
    let mut info = Vec::new();
    for field in [ALG.as_bytes(), apu, apv] {
        info.extend_from_slice(&(field.len() as u32).to_be_bytes());
        info.extend_from_slice(field);
    }
    info.extend_from_slice(&256u32.to_be_bytes());
    info
}

/// The key-wrapping key from the ECDH shared secret.
pub fn concat_kdf_kek(z: &[u8], apu: &[u8], apv: &[u8]) -> Result<Zeroizing<[u8; 32]>, JweError> {
    let mut kek = Zeroizing::new([0u8; 32]);
    concat_kdf::derive_key_into::<sha2::Sha256>(z, &concat_kdf_other_info(apu, apv), kek.as_mut_slice())
        .map_err(|_| JweError::Unwrap)?;
    Ok(kek)
}
