//! **Test doubles** for running the real HAL on a host: a page-state change that does nothing, and a
//! platform whose bounce pool is ordinary heap memory.
//!
//! On a host there is no encryption, so "making pages shared" has nothing to do; [`NoopPageState`] only
//! counts what it was asked to convert so tests can check that the pool was converted before use. The
//! [`HostTestPlatform`] places its pool at a fake guest-physical base ([`HOST_POOL_GPA`]) far from its virtual
//! address, so a HAL that forgot to translate would hand a device model an address outside guest RAM.

use core::ptr::NonNull;

use virtio_drivers::PhysAddr;

use crate::api::PageStateChange;
use crate::error::PageStateError;

#[cfg(feature = "host")]
pub use platform::{HOST_POOL_BYTES, HOST_POOL_GPA, HostTestPlatform};

/// A page-state change for hosts, where every page is already accessible: converts nothing, counts calls.
#[derive(Debug, Default)]
pub struct NoopPageState {
    shared_pages: usize,
    private_pages: usize,
}

impl NoopPageState {
    /// Pages `make_shared` was asked to convert.
    pub fn shared_pages(&self) -> usize {
        self.shared_pages
    }

    /// Pages `make_private` was asked to convert.
    pub fn private_pages(&self) -> usize {
        self.private_pages
    }
}

impl PageStateChange for NoopPageState {
    unsafe fn make_shared(
        &mut self,
        _v: NonNull<u8>,
        _p: PhysAddr,
        pages: usize,
    ) -> Result<(), PageStateError> {
        self.shared_pages += pages;
        Ok(())
    }

    unsafe fn make_private(
        &mut self,
        _v: NonNull<u8>,
        _p: PhysAddr,
        pages: usize,
    ) -> Result<(), PageStateError> {
        self.private_pages += pages;
        Ok(())
    }
}

#[cfg(feature = "host")]
mod platform {
    use alloc::alloc::{Layout, alloc_zeroed};
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicU8, Ordering};

    use virtio_drivers::{PAGE_SIZE, PhysAddr};

    use super::NoopPageState;
    use crate::api::BouncePlatform;
    use crate::error::PoolError;
    use crate::pool::{BouncePool, SharedRegion};

    /// Guest-physical base of the host-test pool.
    pub const HOST_POOL_GPA: PhysAddr = 0x40_0000_0000;
    /// Size of the host-test pool. Address space mostly: the heap commits only pages that are touched.
    /// Sized for concurrent tests moving 1 MiB requests plus what long adversarial campaigns leave behind
    /// (each poisoned device keeps its abandoned request's bounce pages; about 0.7 pages per seeded run).
    pub const HOST_POOL_BYTES: usize = 256 << 20;

    static HOST_POOL: BouncePool = BouncePool::new();
    static HOST_POOL_STATE: AtomicU8 = AtomicU8::new(0);
    const UNINIT: u8 = 0;
    const BUSY: u8 = 1;
    const READY: u8 = 2;
    const FAILED: u8 = 3;

    /// Test double platform: a [`HOST_POOL_BYTES`] heap region at guest-physical [`HOST_POOL_GPA`], converted with
    /// [`NoopPageState`] on first use.
    #[derive(Debug)]
    pub struct HostTestPlatform;

    impl HostTestPlatform {
        /// Installs the pool if nobody has yet. Safe to call from several threads.
        pub fn init() -> Result<(), PoolError> {
            loop {
                match HOST_POOL_STATE.compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(READY) => return Ok(()),
                    Err(FAILED) => return Err(PoolError::NoMemory(HOST_POOL_BYTES)),
                    Err(_) => core::hint::spin_loop(),
                }
            }
            let result = Self::install();
            HOST_POOL_STATE.store(if result.is_ok() { READY } else { FAILED }, Ordering::Release);
            result
        }

        fn install() -> Result<(), PoolError> {
            let layout =
                Layout::from_size_align(HOST_POOL_BYTES, PAGE_SIZE).map_err(|_| PoolError::BadRegion)?;
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { alloc_zeroed(layout) };
            let vaddr = NonNull::new(raw).ok_or(PoolError::NoMemory(HOST_POOL_BYTES))?;
            // SAFETY: a fresh allocation we never free (the pool lives for the rest of the program) and hand
            // over entirely to the pool.
            let region = unsafe {
                SharedRegion::convert(
                    vaddr,
                    HOST_POOL_GPA,
                    HOST_POOL_BYTES / PAGE_SIZE,
                    &mut NoopPageState::default(),
                )
            }?;
            HOST_POOL.install(region)
        }
    }

    impl BouncePlatform for HostTestPlatform {
        fn pool() -> &'static BouncePool {
            // A failed install leaves the pool empty: every allocation then fails, which the HAL reports.
            let _ = Self::init();
            &HOST_POOL
        }

        unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
            // Only the PCI transport maps BARs, and there is no PCI device on a host test. The Hal contract
            // allows rejecting invalid regions by panicking; every region is invalid here.
            panic!("HostTestPlatform has no MMIO: cannot map {size} bytes at {paddr:#x}")
        }
    }
}
