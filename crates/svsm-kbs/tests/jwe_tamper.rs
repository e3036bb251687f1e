//! Every alteration of a resource JWE ends in a precise error, never in a secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::SeedableRng;
use serde_json::Value;
use svsm_kbs::JweError;
use svsm_kbs::jwe::{Curve, TeeKey};

fn fixture() -> (TeeKey, Value) {
    let path = format!("{}/tests/vectors/jwcrypto-P-384.json", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let d = URL_SAFE_NO_PAD.decode(v["key"]["d"].as_str().unwrap()).unwrap();
    (TeeKey::from_scalar(Curve::P384, &d).unwrap(), v["jwe"].clone())
}

fn flip(jwe: &Value, member: &str, byte: usize) -> Vec<u8> {
    let mut jwe = jwe.clone();
    let mut raw = URL_SAFE_NO_PAD.decode(jwe[member].as_str().unwrap()).unwrap();
    let i = byte.min(raw.len() - 1);
    raw[i] ^= 0x01;
    jwe[member] = Value::String(URL_SAFE_NO_PAD.encode(raw));
    serde_json::to_vec(&jwe).unwrap()
}

fn with_header(jwe: &Value, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut jwe = jwe.clone();
    let mut h: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwe["protected"].as_str().unwrap()).unwrap()).unwrap();
    edit(&mut h);
    jwe["protected"] = Value::String(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()));
    serde_json::to_vec(&jwe).unwrap()
}

#[test]
fn untouched_fixture_decrypts() {
    let (key, jwe) = fixture();
    assert!(key.decrypt(&serde_json::to_vec(&jwe).unwrap()).is_ok());
}

#[test]
fn ciphertext_tag_and_iv_flips_fail_authentication() {
    let (key, jwe) = fixture();
    for (member, byte) in [("ciphertext", 0), ("ciphertext", 31), ("tag", 0), ("tag", 15), ("iv", 3)] {
        assert_eq!(
            key.decrypt(&flip(&jwe, member, byte)).unwrap_err(),
            JweError::Decrypt,
            "{member}[{byte}]"
        );
    }
}

#[test]
fn wrapped_key_flip_fails_unwrap() {
    let (key, jwe) = fixture();
    for byte in [0, 20, 39] {
        assert_eq!(key.decrypt(&flip(&jwe, "encrypted_key", byte)).unwrap_err(), JweError::Unwrap);
    }
}

#[test]
fn jwe_for_another_key_fails_unwrap() {
    // A replayed JWE from an earlier attempt, or another VM's resource: made for a different key.
    let (_, jwe) = fixture();
    let other = TeeKey::generate(Curve::P384, &mut rand_chacha::ChaCha20Rng::seed_from_u64(5));
    assert_eq!(other.decrypt(&serde_json::to_vec(&jwe).unwrap()).unwrap_err(), JweError::Unwrap);
}

#[test]
fn epk_changes_are_rejected() {
    let (key, jwe) = fixture();
    let moved = with_header(&jwe, |h| {
        let mut x = URL_SAFE_NO_PAD.decode(h["epk"]["x"].as_str().unwrap()).unwrap();
        x[47] ^= 1;
        h["epk"]["x"] = Value::String(URL_SAFE_NO_PAD.encode(x));
    });
    assert!(matches!(key.decrypt(&moved).unwrap_err(), JweError::Epk(_) | JweError::Unwrap));
    let p256 = with_header(&jwe, |h| h["epk"]["crv"] = "P-256".into());
    assert!(matches!(key.decrypt(&p256).unwrap_err(), JweError::Epk(_)));
    let gone = with_header(&jwe, |h| {
        h.as_object_mut().unwrap().remove("epk");
    });
    assert!(matches!(key.decrypt(&gone).unwrap_err(), JweError::Epk(_)));
}

#[test]
fn protected_header_bytes_are_the_aad() {
    // The same header members serialised differently: a decoder that re-serialises the header would accept it.
    let (key, jwe) = fixture();
    let mut reordered = jwe.clone();
    let h: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwe["protected"].as_str().unwrap()).unwrap()).unwrap();
    reordered["protected"] = Value::String(URL_SAFE_NO_PAD.encode(serde_json::to_vec_pretty(&h).unwrap()));
    let reordered = serde_json::to_vec(&reordered).unwrap();
    assert_eq!(key.decrypt(&reordered).unwrap_err(), JweError::Decrypt);
    let extra = with_header(&jwe, |h| h["kid"] = "x".into());
    assert_eq!(key.decrypt(&extra).unwrap_err(), JweError::Decrypt);
}

#[test]
fn other_algorithms_and_malformed_members_are_refused() {
    let (key, jwe) = fixture();
    assert!(matches!(
        key.decrypt(&with_header(&jwe, |h| h["alg"] = "RSA-OAEP-256".into())),
        Err(JweError::Alg(_))
    ));
    assert!(matches!(
        key.decrypt(&with_header(&jwe, |h| h["enc"] = "A128GCM".into())),
        Err(JweError::Enc(_))
    ));
    let mut short_iv = jwe.clone();
    short_iv["iv"] = Value::String(URL_SAFE_NO_PAD.encode([0u8; 8]));
    assert!(matches!(key.decrypt(&serde_json::to_vec(&short_iv).unwrap()), Err(JweError::Format(_))));
    let mut bad_b64 = jwe.clone();
    bad_b64["tag"] = Value::String("!!".into());
    assert!(matches!(key.decrypt(&serde_json::to_vec(&bad_b64).unwrap()), Err(JweError::Format(_))));
    let mut missing = jwe.clone();
    missing.as_object_mut().unwrap().remove("ciphertext");
    assert!(matches!(key.decrypt(&serde_json::to_vec(&missing).unwrap()), Err(JweError::Format(_))));
    assert!(matches!(key.decrypt(b"not json"), Err(JweError::Format(_))));
    assert!(matches!(key.decrypt(b"[]"), Err(JweError::Format(_))));
}
