//! Fuzzing entry point for the verifier on hostile evidence (also run by the unit tests).

use std::sync::{Arc, OnceLock};

use rand::SeedableRng;

use crate::chain::SimulatedRoots;
use crate::simulated::{SimulatedSnp, SimulatedSnpConfig};
use crate::verify::{Evidence, endorsement_key, verify_attestation};

fn platform() -> &'static (Arc<SimulatedRoots>, SimulatedSnp) {
    static P: OnceLock<(Arc<SimulatedRoots>, SimulatedSnp)> = OnceLock::new();
    P.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let roots =
            Arc::new(SimulatedRoots::generate("Milan", &mut rng).unwrap_or_else(|e| panic!("roots: {e}")));
        let snp = SimulatedSnp::new(roots.clone(), SimulatedSnpConfig::default(), &mut rng)
            .unwrap_or_else(|e| panic!("platform: {e}"));
        (roots, snp)
    })
}

/// Verifies arbitrary bytes as evidence (report | nonce | manifest split by the first two bytes) under a
/// valid simulated chain, and parses the tail as an EK manifest and a DER certificate. Must never panic and
/// must never accept: the fuzzer cannot forge a P-384 signature.
pub fn verify(data: &[u8]) {
    let (roots, snp) = platform();
    let split = usize::from(data.first().copied().unwrap_or(0)) * 8;
    let rest = data.get(1..).unwrap_or_default();
    let report_len = split.min(rest.len());
    let (report, tail) = rest.split_at(report_len);
    let (nonce, manifest) = tail.split_at(tail.len().min(64));
    // Also try a full-size report so the parser and signature check are reached.
    let mut full = vec![0u8; crate::report::REPORT_SIZE];
    for (d, s) in full.iter_mut().zip(rest.iter()) {
        *d = *s;
    }
    for r in [report, &full[..]] {
        let ev = Evidence {
            report: r,
            manifest,
            nonce,
            selector: None,
            trusted_ark: &roots.ark,
            ark: &roots.ark,
            ask: &roots.ask,
            vcek: snp.vcek(),
            required_vmpl: None,
        };
        assert!(verify_attestation(&ev).is_err(), "fuzzer forged an accepted attestation");
    }
    let _ = endorsement_key(manifest);
    let _ = crate::chain::parse_certificate("fuzz", data);
}
