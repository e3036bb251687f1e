//! JWEs produced by an independent implementation (Python jwcrypto) decrypt to the right plaintext.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::SeedableRng;
use serde_json::Value;
use svsm_kbs::jwe::{Curve, TeeKey};

fn vector(crv: &str) -> Value {
    let path = format!("{}/tests/vectors/jwcrypto-{crv}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key_of(v: &Value, curve: Curve) -> TeeKey {
    let d = URL_SAFE_NO_PAD.decode(v["key"]["d"].as_str().unwrap()).unwrap();
    let key = TeeKey::from_scalar(curve, &d).unwrap();
    let kbs_types::TeePubKey::EC { x, y, crv, alg } = key.public_jwk() else { panic!("EC key expected") };
    // Our public JWK agrees with jwcrypto's for the same private scalar.
    assert_eq!(
        (x.as_str(), y.as_str(), crv.as_str()),
        (v["key"]["x"].as_str().unwrap(), v["key"]["y"].as_str().unwrap(), v["key"]["crv"].as_str().unwrap())
    );
    assert_eq!(alg, "ECDH-ES+A256KW");
    key
}

#[test]
fn stored_jwcrypto_vectors_decrypt() {
    for (crv, curve) in [("P-256", Curve::P256), ("P-384", Curve::P384)] {
        let v = vector(crv);
        let key = key_of(&v, curve);
        let jwe = serde_json::to_vec(&v["jwe"]).unwrap();
        let plain = key.decrypt(&jwe).unwrap();
        assert_eq!(plain.as_slice(), v["plaintext"].as_str().unwrap().as_bytes(), "{crv}");
    }
}

#[test]
fn live_jwcrypto_encrypts_to_a_fresh_key() {
    // Needs Debian's python3-jwcrypto (in the Makefile's APT_PACKAGES).
    let script = format!("{}/tests/jwcrypto_encrypt.py", env!("CARGO_MANIFEST_DIR"));
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    for curve in [Curve::P256, Curve::P384] {
        let key = TeeKey::generate(curve, &mut rng);
        let jwk = serde_json::to_string(&key.public_jwk()).unwrap();
        let secret: Vec<u8> = (0..64u8).collect();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&jwk)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run /usr/bin/python3 (apt-get install python3-jwcrypto)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&secret).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "jwcrypto failed (apt-get install python3-jwcrypto): {out:?}");
        assert_eq!(key.decrypt(&out.stdout).unwrap().as_slice(), secret.as_slice(), "{curve:?}");
    }
}
