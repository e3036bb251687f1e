//! The SVSM dispatcher with arbitrary registers and guest memory.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_protocol::fuzzing::dispatch(data));
