//! `etc/hardware-info` parsing of arbitrary bytes; see `svsm_discovery::fuzzing::hardware_info`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_discovery::fuzzing::hardware_info(data));
