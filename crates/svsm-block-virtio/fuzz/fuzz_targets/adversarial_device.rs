//! The real virtio-drivers driver, through VirtioBlk and the bounce HAL, against a device model whose every
//! decision (configuration lies, status bytes, used-ring ids and lengths, duplicates, index jumps, stalls)
//! comes from the fuzz input. `svsm_block_virtio::fuzzing::run` panics on any outcome the device's behaviour
//! does not call for.
#![no_main]

use std::ffi::c_char;

use libfuzzer_sys::fuzz_target;
use svsm_block_virtio::BouncePlatform;
use svsm_block_virtio::host::HostTestPlatform;

/// LeakSanitizer suppressions, read by the sanitizer runtime at start-up.
///
/// One known, bounded leak is expected: virtio-drivers keeps a request's INDIRECT descriptor table in a
/// `Box::leak` until the request is popped, and VirtioBlk deliberately never pops a request it abandoned
/// (wrong used-ring id, timeout), because the device may still own it. Everything else stays checked.
#[unsafe(no_mangle)]
pub extern "C" fn __lsan_default_suppressions() -> *const c_char {
    c"leak:virtio_drivers::queue::VirtQueue\n".as_ptr()
}

fuzz_target!(|data: &[u8]| {
    svsm_block_virtio::fuzzing::run_bytes(data);
    // SAFETY: libFuzzer runs inputs one at a time on this thread and `run_bytes` dropped every device it
    // made, so nothing uses the pool now; this returns the bounce pages abandoned requests left behind.
    unsafe { HostTestPlatform::pool().reclaim_all() };
});
