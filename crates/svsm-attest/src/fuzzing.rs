//! Fuzzing entry point for the verifier on hostile evidence (also run by the unit tests).
//!
//! The certificate chain is verified once per process in real use; the fuzzer targets what follows it (the
//! report parser, signature decoding, TCB/chip/binding checks, the manifest and TPMT_PUBLIC parsers) under
//! fixed VCEK claims, so no RSA key generation or RSA verification slows every input.

use std::sync::OnceLock;

use crate::chain::VcekClaims;
use crate::simulated::SimulatedSnpConfig;
use crate::verify::{Evidence, endorsement_key, verify_report};

fn claims() -> &'static VcekClaims {
    static C: OnceLock<VcekClaims> = OnceLock::new();
    C.get_or_init(|| {
        let key =
            p384::ecdsa::SigningKey::from_slice(&[0x11; 48]).unwrap_or_else(|e| panic!("fixed key: {e}"));
        let config = SimulatedSnpConfig::default();
        VcekClaims {
            tcb: config.tcb,
            hw_id: config.chip_id.to_vec(),
            product_name: "Milan-B0".into(),
            key: *key.verifying_key(),
        }
    })
}

/// Verifies arbitrary bytes as evidence (report | nonce | manifest split by the first byte) and parses them
/// as an EK manifest and a DER certificate. Must never panic and never accept: the fuzzer cannot forge a
/// P-384 signature.
pub fn verify(data: &[u8]) {
    let split = usize::from(data.first().copied().unwrap_or(0)) * 8;
    let rest = data.get(1..).unwrap_or_default();
    let (report, tail) = rest.split_at(split.min(rest.len()));
    let (nonce, manifest) = tail.split_at(tail.len().min(64));
    // Also a full-size report so the parser and the signature check are reached.
    let mut full = vec![0u8; crate::report::REPORT_SIZE];
    for (d, s) in full.iter_mut().zip(rest.iter()) {
        *d = *s;
    }
    // Certificates are not examined by `verify_report`; any parsed certificate will do as a placeholder.
    let placeholder = placeholder_certificate();
    // Services evidence, and single-service evidence (the binding formula with the service GUID, manifest
    // version and selector taken from the input), both for every report shape.
    let mut guid = [0u8; 16];
    for (d, s) in guid.iter_mut().zip(manifest.iter()) {
        *d = *s;
    }
    let version = u32::from(data.get(2).copied().unwrap_or(0));
    let selector = manifest
        .get(..manifest.len().min(usize::from(data.get(3).copied().unwrap_or(0))))
        .unwrap_or_default();
    let requests = [None, Some((svsm_protocol::Guid(guid), version, selector))];
    for (r, request) in [report, &full[..]].into_iter().flat_map(|r| requests.iter().map(move |q| (r, *q))) {
        let ev = Evidence {
            report: r,
            manifest,
            nonce,
            selector: request,
            trusted_ark: placeholder,
            ark: placeholder,
            ask: placeholder,
            vcek: placeholder,
        };
        // The most permissive policy: the fuzzer must still never get an acceptance.
        let lax = crate::policy::VerifierPolicy {
            allowed_policy_bits: u64::MAX,
            required_vmpl: u32::from(data.get(1).copied().unwrap_or(0) & 3),
            ..Default::default()
        };
        assert!(verify_report(claims().clone(), &ev, &lax).is_err(), "fuzzer forged an accepted attestation");
    }
    let _ = endorsement_key(manifest);
    let _ = crate::chain::parse_certificate("fuzz", data);
}

fn placeholder_certificate() -> &'static x509_cert::Certificate {
    use der::Decode;
    static C: OnceLock<x509_cert::Certificate> = OnceLock::new();
    C.get_or_init(|| {
        // A minimal self-describing certificate structure built from parts, never verified.
        let der = placeholder_der();
        x509_cert::Certificate::from_der(&der).unwrap_or_else(|e| panic!("placeholder: {e}"))
    })
}

fn placeholder_der() -> Vec<u8> {
    use der::Encode;
    use std::str::FromStr;
    let name = x509_cert::name::Name::from_str("CN=placeholder").unwrap_or_else(|e| panic!("{e}"));
    let alg = spki::AlgorithmIdentifierOwned { oid: crate::chain::OID_RSASSA_PSS, parameters: None };
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned { oid: crate::chain::OID_EC_PUBLIC_KEY, parameters: None },
        subject_public_key: der::asn1::BitString::from_bytes(&[4]).unwrap_or_else(|e| panic!("{e}")),
    };
    let time = x509_cert::time::Time::UtcTime(
        der::asn1::UtcTime::from_unix_duration(std::time::Duration::from_secs(0))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let tbs = x509_cert::TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: x509_cert::serial_number::SerialNumber::new(&[1]).unwrap_or_else(|e| panic!("{e}")),
        signature: alg.clone(),
        issuer: name.clone(),
        validity: x509_cert::time::Validity { not_before: time, not_after: time },
        subject: name,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: der::asn1::BitString::from_bytes(&[0]).unwrap_or_else(|e| panic!("{e}")),
    }
    .to_der()
    .unwrap_or_else(|e| panic!("{e}"))
}
