//! Device-tree parsing of arbitrary bytes; see `svsm_discovery::fuzzing::fdt`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_discovery::fuzzing::fdt(data));
