//! The REPORT_DATA binding current Trustee checks (reference: `svsm-protocols.md` section 5.3/5.6): SHA-384
//! over the canonical JSON of `{"additional-evidence", "nonce", "tee-pubkey"}`, zero-padded to 64 bytes.
//!
//! Trustee re-serialises the key into its fixed members (`kty`, `crv`, `alg`, `x`, `y`) before hashing, so the
//! key is hashed here from the same `kbs_types::TeePubKey` the Attestation carries, never from a wider JWK.

use alloc::string::{String, ToString};

use kbs_types::TeePubKey;
use serde_json::Value;
use sha2::{Digest, Sha384};

/// Canonical JSON (RFC 8785 for the values KBS messages hold): object members sorted by key at every level,
/// no whitespace. Written out here rather than relying on `serde_json::Map`'s order, which the
/// `preserve_order` feature (enabled by any crate in a build) would change.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: alloc::vec::Vec<(&String, &Value)> = map.iter().collect();
            // RFC 8785 sorts by UTF-16 code units; for the ASCII keys of KBS messages that is byte order.
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The runtime-data object Trustee hashes.
pub fn runtime_data_value(nonce: &str, tee_pubkey: &TeePubKey, additional_evidence: &str) -> Value {
    let key = serde_json::to_value(tee_pubkey).unwrap_or(Value::Null);
    let mut map = serde_json::Map::new();
    map.insert("additional-evidence".into(), Value::String(additional_evidence.into()));
    map.insert("nonce".into(), Value::String(nonce.into()));
    map.insert("tee-pubkey".into(), key);
    Value::Object(map)
}

/// REPORT_DATA for SNP: SHA-384 of the canonical runtime data, then 16 zero bytes.
pub fn snp_report_data(nonce: &str, tee_pubkey: &TeePubKey, additional_evidence: &str) -> [u8; 64] {
    let canon = canonical_json(&runtime_data_value(nonce, tee_pubkey, additional_evidence));
    let digest = Sha384::digest(canon.as_bytes());
    let mut out = [0u8; 64];
    out[..48].copy_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn attestation_service_vector() {
        // Trustee attestation-service test vector (reference section 5.3), members given out of order.
        let v: Value = serde_json::from_str(r#"{"c":{"d":"e"},"b":1,"a":"test"}"#).unwrap();
        let canon = canonical_json(&v);
        assert_eq!(canon, r#"{"a":"test","b":1,"c":{"d":"e"}}"#);
        assert_eq!(
            hex::encode(Sha384::digest(canon.as_bytes())),
            "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c4597480a186427c813ca941da78870c3"
        );
    }

    #[test]
    fn key_hashed_with_fixed_members_and_padded() {
        let key = TeePubKey::EC {
            crv: "P-384".into(),
            alg: "ECDH-ES+A256KW".into(),
            x: "AA".to_string(),
            y: "BB".to_string(),
        };
        let canon = canonical_json(&runtime_data_value("N", &key, ""));
        assert_eq!(
            canon,
            r#"{"additional-evidence":"","nonce":"N","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-384","kty":"EC","x":"AA","y":"BB"}}"#
        );
        let rd = snp_report_data("N", &key, "");
        assert_eq!(&rd[..48], Sha384::digest(canon.as_bytes()).as_slice());
        assert_eq!(rd[48..], [0u8; 16]);
        assert_ne!(rd, snp_report_data("M", &key, ""));
    }
}
