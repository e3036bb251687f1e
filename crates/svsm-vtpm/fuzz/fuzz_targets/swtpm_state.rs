//! Fuzz target: a thin wrapper over `svsm_vtpm::fuzzing::swtpm_state_file` (also run by the crate's unit tests).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_vtpm::fuzzing::swtpm_state_file(data));
