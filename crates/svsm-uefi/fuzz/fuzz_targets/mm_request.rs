//! SVSM_UEFI_MM_REQUEST from guest registers and guest memory through the dispatcher to the store.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    svsm_uefi::fuzzing::mm_request(data);
});
