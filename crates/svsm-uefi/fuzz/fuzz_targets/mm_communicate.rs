//! One MM message body for each routed GUID, straight into the service.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_uefi::fuzzing::communicate(data));
