//! The real virtio-drivers driver, through VirtioBlk and the bounce HAL, against a device model whose every
//! decision (configuration lies, status bytes, used-ring ids and lengths, duplicates, index jumps, stalls)
//! comes from the fuzz input. `svsm_block_virtio::fuzzing::run` panics on any outcome the device's behaviour
//! does not call for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_block_virtio::BouncePlatform;
use svsm_block_virtio::host::HostTestPlatform;

fuzz_target!(|data: &[u8]| {
    svsm_block_virtio::fuzzing::run_bytes(data);
    // SAFETY: libFuzzer runs inputs one at a time on this thread and `run_bytes` dropped every device it
    // made, so nothing uses the pool now; this returns the bounce pages abandoned requests left behind.
    unsafe { HostTestPlatform::pool().reclaim_all() };
});
