//! **DEVELOPMENT ONLY**: evidence for Trustee's `sample` TEE, so the whole path (proxy, binding, JWE, key
//! use) can be exercised against an unmodified Trustee KBS on a host without SEV-SNP.
//!
//! Sample evidence proves nothing: anyone can produce it. Trustee's sample verifier (`deps/verifier/src/
//! sample`) reads `{"svn": "<string>", "report_data": "<standard base64>"}` and checks only that
//! `report_data` is the expected runtime-data digest: for `sample` that is the SHA-384 of the canonical
//! `{"additional-evidence","nonce","tee-pubkey"}` JSON itself, 48 bytes, **not** zero-padded to 64 as for
//! SNP. Trustee's default resource policy denies sample evidence; the KBS needs a policy that allows it.

use alloc::string::String;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::api::EvidenceProvider;

/// Sample-TEE evidence with a given `svn` (development only, see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SampleEvidence {
    /// The `svn` claim the sample verifier passes on to the policy.
    pub svn: String,
}

impl EvidenceProvider for SampleEvidence {
    fn tee(&self) -> kbs_types::Tee {
        kbs_types::Tee::Sample
    }

    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Value, String> {
        // The client hands every platform the SNP form (digest || 0^16); the sample TEE takes the digest.
        let mut map = serde_json::Map::new();
        map.insert("svn".into(), Value::String(self.svn.clone()));
        map.insert("report_data".into(), Value::String(STANDARD.encode(&report_data[..48])));
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_is_the_unpadded_digest_in_standard_base64() {
        let mut rd = [0u8; 64];
        rd[..48].copy_from_slice(&[0xAB; 48]);
        let ev = SampleEvidence { svn: "1".into() }.evidence(&rd).unwrap();
        assert_eq!(ev["svn"], "1");
        let decoded = STANDARD.decode(ev["report_data"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, [0xAB; 48]);
        assert_eq!(SampleEvidence::default().tee(), kbs_types::Tee::Sample);
    }
}
