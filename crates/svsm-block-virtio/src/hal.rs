//! `SevBounceHal`: a virtio-drivers HAL for a confidential guest, where the device (the host) must never see
//! private memory.
//!
//! * `dma_alloc` (virtqueue rings) hands out zeroed pages from the platform's pool of host-shared pages.
//! * `share` copies the driver's buffer into freshly allocated shared pages (device-readable buffers) or
//!   fills them with [`POISON`] (device-writable buffers, so nothing stale or private is exposed, and a status
//!   byte the device never wrote reads back as an undefined status), and gives the device only their address.
//! * `unshare` copies device-writable bounce buffers back into the driver's buffer and frees the pages.
//!
//! Shared memory is only touched through volatile word copies: the host may change it at any moment, so no
//! Rust reference into it ever exists and every byte is read exactly once per copy.

use core::marker::PhantomData;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use crate::api::{BounceHal, BouncePlatform};

/// Fill byte of device-writable bounce buffers before the device writes them.
pub const POISON: u8 = 0xFF;

/// What `share` gives the device when no bounce memory is left: page-aligned, above any guest-physical
/// address (52 bits at most), so a device cannot reach memory through it.
pub const SHARE_FAILED: PhysAddr = !(PAGE_SIZE as u64 - 1);

/// The bounce-buffer HAL over platform `P`. Never instantiated: `Hal` functions are static.
#[derive(Debug)]
pub struct SevBounceHal<P: BouncePlatform>(PhantomData<P>);

fn pages_for(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE).max(1)
}

/// Copies private bytes into shared memory.
///
/// # Safety
///
/// `dst` must be 8-byte aligned, valid for `src.len()` bytes of writes, and not overlap `src`.
unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    let mut words = src.chunks_exact(8);
    for (i, w) in words.by_ref().enumerate() {
        let word = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let at = dst.wrapping_add(i * 8).cast::<u64>();
        // SAFETY: (i + 1) * 8 <= src.len(), so `at` is in bounds of `dst`, and 8-byte aligned.
        unsafe { at.write_volatile(word) };
    }
    let tail = src.len() - words.remainder().len();
    for (i, b) in words.remainder().iter().enumerate() {
        let at = dst.wrapping_add(tail + i);
        // SAFETY: tail + i < src.len(), in bounds of `dst`.
        unsafe { at.write_volatile(*b) };
    }
}

/// Copies shared memory into private bytes.
///
/// # Safety
///
/// `src` must be 8-byte aligned, valid for `dst.len()` bytes of reads, and not overlap `dst`.
unsafe fn copy_from_shared(dst: &mut [u8], src: *const u8) {
    let len = dst.len();
    let mut words = dst.chunks_exact_mut(8);
    for (i, w) in words.by_ref().enumerate() {
        let at = src.wrapping_add(i * 8).cast::<u64>();
        // SAFETY: (i + 1) * 8 <= dst.len(), so `at` is in bounds of `src`, and 8-byte aligned.
        let word = unsafe { at.read_volatile() };
        w.copy_from_slice(&word.to_ne_bytes());
    }
    let rest = words.into_remainder();
    let tail = len - rest.len();
    for (i, b) in rest.iter_mut().enumerate() {
        let at = src.wrapping_add(tail + i);
        // SAFETY: tail + i < dst.len(), in bounds of `src`.
        *b = unsafe { at.read_volatile() };
    }
}

/// Fills `len` bytes of shared memory with `byte`.
///
/// # Safety
///
/// `dst` must be 8-byte aligned and valid for `len` bytes of writes.
unsafe fn fill_shared(dst: *mut u8, byte: u8, len: usize) {
    let w = u64::from_ne_bytes([byte; 8]);
    for i in 0..len / 8 {
        let at = dst.wrapping_add(i * 8).cast::<u64>();
        // SAFETY: (i + 1) * 8 <= len and `dst` is aligned.
        unsafe { at.write_volatile(w) };
    }
    for i in len / 8 * 8..len {
        let at = dst.wrapping_add(i);
        // SAFETY: i < len.
        unsafe { at.write_volatile(byte) };
    }
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned pool pages that nothing else owns until `dma_dealloc`
// returns them (the pool's bitmap guarantees exclusivity); `share` never exposes the caller's buffer, only
// separate pool pages, and `unshare` only writes the caller's buffer within its length.
unsafe impl<P: BouncePlatform> Hal for SevBounceHal<P> {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match P::pool().alloc(pages) {
            Some((paddr, vaddr)) => {
                // SAFETY: the pool just gave us `pages` exclusive, page-aligned pages at `vaddr`.
                unsafe { fill_shared(vaddr.as_ptr(), 0, pages * PAGE_SIZE) };
                (paddr, vaddr)
            }
            // virtio-drivers turns a zero physical address into Error::DmaError.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        match P::pool().free(paddr, pages) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // SAFETY: the caller upholds the same contract we pass on.
        unsafe { P::mmio_phys_to_virt(paddr, size) }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        let pages = pages_for(len);
        let Some((paddr, bounce)) = P::pool().alloc(pages) else {
            P::pool().record_failed_share();
            return SHARE_FAILED;
        };
        match direction {
            BufferDirection::DriverToDevice | BufferDirection::Both => {
                // SAFETY: the caller guarantees `buffer` is valid and not accessed by anyone else during this
                // call, so a shared slice of it is sound for the call's duration.
                let src = unsafe { buffer.as_ref() };
                // SAFETY: `bounce` is `pages` exclusive page-aligned pages (>= len bytes) from the pool,
                // disjoint from `buffer`.
                unsafe { copy_to_shared(bounce.as_ptr(), src) };
                // The rest of the last page is not zeroed: the host can read whole shared pages anyway, and
                // anything left there came from earlier bounce copies, which it has already seen.
            }
            BufferDirection::DeviceToDriver => {
                // SAFETY: as above; the first `len` bytes of the allocation (all the device may write and all
                // `unshare` copies back) are ours to fill.
                unsafe { fill_shared(bounce.as_ptr(), POISON, len) };
            }
        }
        paddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        if paddr == SHARE_FAILED {
            return;
        }
        let len = buffer.len();
        let pages = pages_for(len);
        let Some(bounce) = P::pool().virt(paddr, len) else {
            // Not ours: never copy from an address we did not hand out.
            P::pool().record_failed_share();
            return;
        };
        if matches!(direction, BufferDirection::DeviceToDriver | BufferDirection::Both) {
            let mut buffer = buffer;
            // SAFETY: the caller guarantees `buffer` is valid and not accessed by anyone else during this call
            // (virtio-drivers passes device-writable buffers that came from `&mut [u8]`).
            let dst = unsafe { buffer.as_mut() };
            // SAFETY: `bounce` is the pool allocation `share` made for this buffer (same length, so the same
            // page count), page aligned and disjoint from `buffer`.
            unsafe { copy_from_shared(dst, bounce.as_ptr()) };
        }
        if P::pool().free(paddr, pages).is_err() {
            P::pool().record_failed_share();
        }
    }
}

// SAFETY: `share` copies into separate pool pages and hands the device only their address; the caller's
// buffer is never exposed.
unsafe impl<P: BouncePlatform> BounceHal for SevBounceHal<P> {
    fn failed_shares() -> u64 {
        P::pool().failed_shares()
    }
}
