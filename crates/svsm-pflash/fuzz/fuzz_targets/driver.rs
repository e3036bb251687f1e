//! The flash driver against a device whose answers (or faults) come from the fuzz input; see
//! `svsm_pflash::fuzzing::drive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_pflash::fuzzing::drive(data));
