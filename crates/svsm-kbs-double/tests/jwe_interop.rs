//! The double's JWE (written from the RFCs) decrypts with an independent implementation (Python jwcrypto),
//! so the double cannot agree with svsm-kbs on a private misreading of RFC 7516/7518.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kbs_types::TeePubKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;

fn jwcrypto_decrypt(private_jwk: &serde_json::Value, jwe: &[u8]) -> Vec<u8> {
    let script = format!("{}/tests/jwcrypto_decrypt.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(private_jwk.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (apt-get install python3-jwcrypto)");
    child.stdin.take().unwrap().write_all(jwe).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jwcrypto refused the double's JWE: {out:?}");
    out.stdout
}

#[test]
fn jwcrypto_decrypts_the_doubles_p256_and_p384_jwes() {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let plaintext = b"released by the svsm-kbs-double: 32+ bytes of secret".to_vec();
    let p256 = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let p384 = p384::SecretKey::random(&mut rand::rngs::OsRng);
    let keys = [
        (
            "P-256",
            p256.public_key().to_encoded_point(false).as_bytes().to_vec(),
            p256.to_bytes().to_vec(),
            32,
        ),
        (
            "P-384",
            {
                use p384::elliptic_curve::sec1::ToEncodedPoint as _;
                p384.public_key().to_encoded_point(false).as_bytes().to_vec()
            },
            p384.to_bytes().to_vec(),
            48,
        ),
    ];
    for (crv, point, d, n) in keys {
        let (x, y) = (b64(&point[1..1 + n]), b64(&point[1 + n..]));
        let public =
            TeePubKey::EC { crv: crv.into(), alg: "ECDH-ES+A256KW".into(), x: x.clone(), y: y.clone() };
        let jwe = svsm_kbs_double::encrypt::encrypt_to(&public, &plaintext, &mut rand::rngs::OsRng).unwrap();
        let private = serde_json::json!({"kty": "EC", "crv": crv, "x": x, "y": y, "d": b64(&d)});
        let got = jwcrypto_decrypt(&private, &svsm_kbs_double::encrypt::to_json(&jwe));
        assert_eq!(got, plaintext, "{crv}");
    }
}
