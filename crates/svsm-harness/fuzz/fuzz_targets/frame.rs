//! Register frames from an untrusted socket peer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_harness::fuzzing::frame(data));
