//! Services manifest, certificate table and TPM structure parsers on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_protocol::fuzzing::parse_tables(data));
