//! fw_cfg file-directory parsing of arbitrary bytes; see `svsm_discovery::fuzzing::fw_cfg_directory`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_discovery::fuzzing::fw_cfg_directory(data));
