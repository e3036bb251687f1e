//! The verifier on hostile reports, manifests, nonces and certificates.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_attest::fuzzing::verify(data));
