//! Arbitrary bytes as a device image: open, read every object, verify, commit. Must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    svsm_store::fuzzing::open_and_read(data);
});
