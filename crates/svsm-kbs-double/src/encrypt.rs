//! The double's JWE producer, written from RFC 7516 / RFC 7518 (sections 4.6, 5.3) and NIST SP 800-56A
//! (Concat KDF) independently of `svsm-kbs`'s decoder, and serialised the way Trustee serialises it
//! (`kbs_types::Response`, protected header `{"alg","enc","epk":{"crv","kty","x","y"}}`).

use aes_gcm::aead::{AeadInOut, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kbs_types::{ProtectedHeader, Response, TeePubKey};
use rand::RngCore;
use serde_json::{Map, json};
use sha2::{Digest, Sha256};

/// Concat KDF (SP 800-56A 5.8.1) with SHA-256 for a 256-bit key: one round, `H(u32be(1) || Z || OtherInfo)`,
/// `OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo` with empty party info.
fn kek(z: &[u8]) -> [u8; 32] {
    let alg = b"ECDH-ES+A256KW";
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((alg.len() as u32).to_be_bytes());
    h.update(alg);
    h.update(0u32.to_be_bytes());
    h.update(0u32.to_be_bytes());
    h.update(256u32.to_be_bytes());
    h.finalize().into()
}

fn coord(s: &str, n: usize) -> Result<Vec<u8>, String> {
    let v = URL_SAFE_NO_PAD.decode(s).map_err(|e| format!("tee-pubkey coordinate: {e}"))?;
    if v.len() != n {
        return Err(format!("tee-pubkey coordinate is {} bytes, expected {n}", v.len()));
    }
    Ok(v)
}

/// Encrypts `plaintext` to the attested `tee-pubkey` (EC P-256 or P-384, `ECDH-ES+A256KW`).
pub fn encrypt_to(
    tee_pubkey: &TeePubKey,
    plaintext: &[u8],
    rng: &mut (impl rand::CryptoRng + RngCore),
) -> Result<Response, String> {
    let TeePubKey::EC { crv, alg, x, y } = tee_pubkey else {
        return Err("only EC tee keys are supported by the double".into());
    };
    if alg != "ECDH-ES+A256KW" {
        return Err(format!("unsupported tee-pubkey alg {alg}"));
    }
    let (z, epk_x, epk_y) = match crv.as_str() {
        "P-256" => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let mut sec1 = vec![4];
            sec1.extend(coord(x, 32)?);
            sec1.extend(coord(y, 32)?);
            let peer =
                p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| "tee-pubkey is not a P-256 point")?;
            let eph = p256::ecdh::EphemeralSecret::random(rng);
            let z = eph.diffie_hellman(&peer).raw_secret_bytes().to_vec();
            let p = eph.public_key().to_encoded_point(false);
            (z, p.x().unwrap().to_vec(), p.y().unwrap().to_vec())
        }
        "P-384" => {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            let mut sec1 = vec![4];
            sec1.extend(coord(x, 48)?);
            sec1.extend(coord(y, 48)?);
            let peer =
                p384::PublicKey::from_sec1_bytes(&sec1).map_err(|_| "tee-pubkey is not a P-384 point")?;
            let eph = p384::ecdh::EphemeralSecret::random(rng);
            let z = eph.diffie_hellman(&peer).raw_secret_bytes().to_vec();
            let p = eph.public_key().to_encoded_point(false);
            (z, p.x().unwrap().to_vec(), p.y().unwrap().to_vec())
        }
        other => return Err(format!("unsupported curve {other}")),
    };
    let kek = kek(&z);
    let mut cek = [0u8; 32];
    rng.fill_bytes(&mut cek);
    let kw = aes_kw::KwAes256::new_from_slice(&kek).map_err(|e| e.to_string())?;
    let mut encrypted_key = vec![0u8; 40];
    kw.wrap_key(&cek, &mut encrypted_key).map_err(|e| e.to_string())?;

    let epk = json!({"crv": crv, "kty": "EC", "x": URL_SAFE_NO_PAD.encode(epk_x), "y": URL_SAFE_NO_PAD.encode(epk_y)});
    let mut other_fields = Map::new();
    other_fields.insert("epk".into(), epk);
    let protected = ProtectedHeader { alg: "ECDH-ES+A256KW".into(), enc: "A256GCM".into(), other_fields };
    let aad = protected.generate_aad().map_err(|e| e.to_string())?;
    let mut iv = [0u8; 12];
    rng.fill_bytes(&mut iv);
    let gcm = aes_gcm::Aes256Gcm::new(&cek.into());
    let mut ciphertext = plaintext.to_vec();
    let tag = gcm
        .encrypt_inout_detached(&iv.into(), &aad, ciphertext.as_mut_slice().into())
        .map_err(|_| "AES-GCM encryption failed".to_string())?;
    Ok(Response { protected, encrypted_key, aad: None, iv: iv.to_vec(), ciphertext, tag: tag.to_vec() })
}

/// The Response as the KBS sends it.
pub fn to_json(r: &Response) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_default()
}
