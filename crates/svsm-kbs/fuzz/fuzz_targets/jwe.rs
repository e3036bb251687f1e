//! The JWE decoder on arbitrary bytes, and on a valid JWE's members replaced by fuzzed text: never a
//! panic, never a secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_kbs::jwe::{Curve, TeeKey};

const VALID: &str = r#"{"protected":"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZHQ00iLCJlcGsiOnsiY3J2IjoiUC0zODQiLCJrdHkiOiJFQyIsIngiOiJEVk5HS3ZyMGFlOXlGeTFPaVNwVTluelB0cjk4WTA3SzkxNHk4alZmRmJuMGxSUm1wQXFYbjlqcHFDcHFiVlIwIiwieSI6ImkyblNiZXY1enZfSFNfeG5nal9qRlhMb2UzdnZuZVd5Nl9mYnpBUEsyNHhDa082ZUpPaC12bjRCcHJLMDc0ckIifX0","encrypted_key":"t1lTbZlkRTG94bChWk5EcsyR0xrL1cJ7-dLTaTUOD6DLHtOXCZGcIg","iv":"KzSd1CpjpUSpLWz9","ciphertext":"hkRSMLJynAx8x5pcbYdBVYXuvyUsyyzn0dyYQlBTj10","tag":"Q7Bi5hmgcZvTWCyKXXBlDA"}"#;

fuzz_target!(|data: &[u8]| {
    let key = TeeKey::from_scalar(Curve::P384, &[7u8; 48]).unwrap();
    assert!(key.decrypt(data).is_err());
    if let (Some((&which, rest)), Ok(mut v)) = (data.split_first(), serde_json::from_str::<serde_json::Value>(VALID)) {
        let member = ["protected", "encrypted_key", "iv", "ciphertext", "tag", "aad"][(which % 6) as usize];
        v[member] = serde_json::Value::String(String::from_utf8_lossy(rest).into_owned());
        let _ = key.decrypt(&serde_json::to_vec(&v).unwrap());
    }
});
