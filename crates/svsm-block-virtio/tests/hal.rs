//! SevBounceHal on its own: what the device sees, what comes back, and what happens to the pages.

use std::ptr::NonNull;

use svsm_block_virtio::hal::POISON;
use svsm_block_virtio::host::{HOST_POOL_BYTES, HOST_POOL_GPA, HostTestPlatform};
use svsm_block_virtio::{BouncePlatform, SevBounceHal};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

type H = SevBounceHal<HostTestPlatform>;

fn in_pool(paddr: u64, len: usize) -> bool {
    paddr >= HOST_POOL_GPA && paddr + len as u64 <= HOST_POOL_GPA + HOST_POOL_BYTES as u64
}

/// Reads what the device would read at `paddr` (the pool's virtual mapping of it).
fn device_view(paddr: u64, len: usize) -> Vec<u8> {
    let v = HostTestPlatform::pool().virt(paddr, len).expect("pool address");
    let mut out = vec![0u8; len];
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: `v..v + len` is allocated pool memory (checked by `virt`); read bytewise, volatile, as a
        // device would.
        *b = unsafe { v.as_ptr().wrapping_add(i).read_volatile() };
    }
    out
}

fn device_write(paddr: u64, data: &[u8]) {
    let v = HostTestPlatform::pool().virt(paddr, data.len()).expect("pool address");
    for (i, b) in data.iter().enumerate() {
        // SAFETY: as in `device_view`.
        unsafe { v.as_ptr().wrapping_add(i).write_volatile(*b) };
    }
}

#[test]
fn share_copies_out_and_unshare_copies_back_for_any_length_and_alignment() {
    for len in [1usize, 2, 7, 8, 9, 16, 511, 4095, 4096, 4097, 3 * PAGE_SIZE + 5] {
        for offset in [0usize, 1, 3, 8] {
            let mut backing: Vec<u8> = (0..len + offset).map(|i| (i * 13 + len) as u8).collect();
            let original = backing.clone();
            let buf = NonNull::from(&mut backing[offset..]);
            let free_before = HostTestPlatform::pool().free_pages();

            // SAFETY: `buf` is valid, non-empty and used by nobody else during the call.
            let p = unsafe { H::share(buf, BufferDirection::DriverToDevice) };
            assert!(in_pool(p, len), "len {len}: device got {p:#x}, outside the shared pool");
            assert_ne!(p, buf.cast::<u8>().as_ptr() as u64, "the device must never get the private address");
            assert_eq!(device_view(p, len), &original[offset..], "len {len} offset {offset}: bounce copy");
            // SAFETY: `p` came from `share` of this very buffer.
            unsafe { H::unshare(p, buf, BufferDirection::DriverToDevice) };
            assert_eq!(backing, original, "a device-readable buffer must not be written back");

            // SAFETY: as above.
            let q = unsafe { H::share(buf, BufferDirection::DeviceToDriver) };
            assert_eq!(device_view(q, len), vec![POISON; len], "device-writable bounce starts poisoned");
            let reply: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            device_write(q, &reply);
            // SAFETY: `q` came from `share` of this very buffer.
            unsafe { H::unshare(q, buf, BufferDirection::DeviceToDriver) };
            assert_eq!(&backing[offset..], &reply[..], "len {len} offset {offset}: copy back");
            assert_eq!(&backing[..offset], &original[..offset], "bytes before the buffer untouched");
            // Another test may allocate concurrently, so only check that our pages came back.
            assert!(HostTestPlatform::pool().free_pages() + 8 >= free_before);
        }
    }
}

#[test]
fn dma_alloc_gives_zeroed_page_aligned_pool_pages() {
    let (p, v) = H::dma_alloc(3, BufferDirection::Both);
    assert!(in_pool(p, 3 * PAGE_SIZE));
    assert_eq!(v.as_ptr() as usize % PAGE_SIZE, 0);
    device_write(p, &[9; 64]);
    // SAFETY: returned by dma_alloc above with the same page count.
    assert_eq!(unsafe { H::dma_dealloc(p, v, 3) }, 0);
    // (Double frees are refused by the pool; that is tested on a private pool in pool.rs, since here another
    // test could already own the pages again.)
    let (p2, _) = H::dma_alloc(3, BufferDirection::Both);
    assert_eq!(device_view(p2, 3 * PAGE_SIZE), vec![0; 3 * PAGE_SIZE], "reused pages are zeroed");
    // SAFETY: returned by dma_alloc above.
    assert_eq!(unsafe { H::dma_dealloc(p2, NonNull::dangling(), 3) }, 0);
}
