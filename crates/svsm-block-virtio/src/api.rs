//! The platform contracts the virtio-blk backend is built on.
//!
//! `virtio_drivers::Hal` is a trait of *static* functions (no `self`), so everything a HAL needs (the pool of
//! host-shared pages, address translation) must be reachable from a type. [`BouncePlatform`] is that type-level
//! hook. [`PageStateChange`] is the one step that differs between an SEV-SNP guest and a host test: turning
//! private pages into pages the host may read and write.

use core::ptr::NonNull;

use virtio_drivers::{Hal, PhysAddr};

use crate::error::PageStateError;
use crate::pool::BouncePool;

/// Converts guest pages between private (encrypted, inaccessible to the host) and shared.
///
/// On SEV-SNP, `make_shared` is: `PVALIDATE` the pages to *unvalidated*, then a page-state change request to
/// the hypervisor through the GHCB (private -> shared), then map them as unencrypted (C-bit clear).
/// `make_private` is the reverse, ending with `PVALIDATE` to *validated*. The host can refuse either step,
/// which is why both are fallible. On a host test machine there is nothing to convert: see
/// [`crate::host::NoopPageState`].
pub trait PageStateChange {
    /// Makes `pages` pages at `vaddr` (guest-physical `paddr`) shared with the host. Their contents are lost.
    ///
    /// # Safety
    ///
    /// The pages must be owned by the caller, page aligned, and not referenced by anything that relies on
    /// their contents or their confidentiality.
    unsafe fn make_shared(
        &mut self,
        vaddr: NonNull<u8>,
        paddr: PhysAddr,
        pages: usize,
    ) -> Result<(), PageStateError>;

    /// Makes the pages private again. Their contents are lost.
    ///
    /// # Safety
    ///
    /// As for `make_shared`; additionally no device may still be using the pages.
    unsafe fn make_private(
        &mut self,
        vaddr: NonNull<u8>,
        paddr: PhysAddr,
        pages: usize,
    ) -> Result<(), PageStateError>;
}

/// A platform's pool of host-shared pages, reachable from a type because `Hal` has no `self`.
pub trait BouncePlatform: 'static {
    /// The pool every ring and bounce buffer of [`crate::SevBounceHal`] is carved from. Its pages were made
    /// shared once, when the pool was installed, so the per-request path never changes page state.
    fn pool() -> &'static BouncePool;

    /// Maps a device MMIO range (PCI BARs); only the PCI transport calls this.
    ///
    /// # Safety
    ///
    /// As `virtio_drivers::Hal::mmio_phys_to_virt`: `paddr..paddr + size` must be a real MMIO region.
    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8>;
}

/// A HAL whose `share` never gives the device access to the caller's buffer: it copies through separate
/// host-shared memory.
///
/// [`crate::VirtioBlk`] relies on this to abandon a request the device never completes: the driver's buffers
/// can be freed at once because the device only ever saw bounce copies.
///
/// # Safety
///
/// Implementors must guarantee that after `share(buffer, _)` returns, the device cannot read or write
/// `buffer` itself (only a copy), so that `buffer` may be reused or freed without calling `unshare`.
pub unsafe trait BounceHal: Hal {
    /// A monotonic count of `share` calls that could not get bounce memory (per pool, so devices on other
    /// pools do not disturb the count). `share` cannot return an error
    /// (the upstream trait gives it none), so it hands the device an address outside guest RAM and counts the
    /// failure here; [`crate::VirtioBlk`] compares the count around each request and fails it.
    fn failed_shares() -> u64;
}
