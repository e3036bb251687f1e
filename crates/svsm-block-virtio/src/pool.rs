//! A pool of host-shared pages, converted once, carved into page-granular DMA and bounce buffers.
//!
//! Converting pages on SEV-SNP costs a `PVALIDATE` per page plus a hypervisor exit, so doing it per request
//! (as a one-page-per-request design must) dominates small I/O. The pool converts its region once when it is
//! installed and then hands out physically contiguous runs of pages of any length, so one virtio descriptor
//! can carry a whole multi-page request (upstream COCONUT-SVSM is limited to one page per request).
//!
//! Allocation is first-fit over a bitmap, behind a spin lock (no_std, and `Hal` functions are static so the
//! pool must be a `static`).

use alloc::vec;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use virtio_drivers::{PAGE_SIZE, PhysAddr};

use crate::api::PageStateChange;
use crate::error::PoolError;

/// A page-aligned region that has been made host-shared, ready to be installed in a [`BouncePool`].
#[derive(Debug)]
pub struct SharedRegion {
    vaddr: NonNull<u8>,
    paddr: PhysAddr,
    pages: usize,
}

impl SharedRegion {
    /// Converts `pages` pages at `vaddr` (guest-physical `paddr`) to shared with `pst` and wraps them.
    ///
    /// # Safety
    ///
    /// The pages must be owned by the caller for the rest of the program (a pool is never torn down), valid
    /// for reads and writes, and not referenced by anything else.
    pub unsafe fn convert(
        vaddr: NonNull<u8>,
        paddr: PhysAddr,
        pages: usize,
        pst: &mut impl PageStateChange,
    ) -> Result<Self, PoolError> {
        let bytes = pages.checked_mul(PAGE_SIZE).ok_or(PoolError::BadRegion)?;
        let aligned =
            (vaddr.as_ptr() as usize).is_multiple_of(PAGE_SIZE) && paddr.is_multiple_of(PAGE_SIZE as u64);
        if pages == 0 || !aligned || paddr.checked_add(bytes as u64).is_none() {
            return Err(PoolError::BadRegion);
        }
        // SAFETY: the caller hands us exclusive, page-aligned ownership of the region (checked alignment above).
        unsafe { pst.make_shared(vaddr, paddr, pages)? };
        Ok(SharedRegion { vaddr, paddr, pages })
    }
}

#[derive(Debug)]
struct PoolState {
    vbase: NonNull<u8>,
    pbase: PhysAddr,
    pages: usize,
    /// One bit per page, set = in use.
    used: Vec<u64>,
    free: usize,
}

impl PoolState {
    fn is_used(&self, page: usize) -> bool {
        self.used[page / 64] & (1 << (page % 64)) != 0
    }

    fn set(&mut self, start: usize, pages: usize, used: bool) {
        for p in start..start + pages {
            if used {
                self.used[p / 64] |= 1 << (p % 64);
            } else {
                self.used[p / 64] &= !(1 << (p % 64));
            }
        }
    }

    fn alloc(&mut self, pages: usize) -> Option<usize> {
        if pages == 0 || pages > self.free {
            return None;
        }
        let mut run = 0;
        let mut p = 0;
        while p < self.pages {
            if self.used[p / 64] == u64::MAX && p.is_multiple_of(64) {
                run = 0;
                p += 64;
                continue;
            }
            if self.is_used(p) {
                run = 0;
            } else {
                run += 1;
                if run == pages {
                    let start = p + 1 - pages;
                    self.set(start, pages, true);
                    self.free -= pages;
                    return Some(start);
                }
            }
            p += 1;
        }
        None
    }

    /// The page index of `paddr` if `paddr..paddr + pages` lies in the pool.
    fn page_of(&self, paddr: PhysAddr, pages: usize) -> Option<usize> {
        let off = paddr.checked_sub(self.pbase)?;
        if !off.is_multiple_of(PAGE_SIZE as u64) {
            return None;
        }
        let page = usize::try_from(off / PAGE_SIZE as u64).ok()?;
        (page.checked_add(pages)? <= self.pages).then_some(page)
    }
}

/// A free of pages that are not an allocated run of this pool (a bookkeeping bug, never device input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAllocated {
    /// Guest-physical address given.
    pub paddr: PhysAddr,
    /// Pages given.
    pub pages: usize,
}

/// The pool. Create it as a `static` with [`BouncePool::new`] and [`BouncePool::install`] a region once.
#[derive(Debug)]
pub struct BouncePool {
    lock: AtomicBool,
    state: UnsafeCell<Option<PoolState>>,
    failed_shares: AtomicU64,
}

// SAFETY: `state` is only accessed while `lock` is held (see `with`), and the region pointers it holds refer
// to memory the pool owns for the rest of the program, so the pool may be shared between threads.
unsafe impl Sync for BouncePool {}
// SAFETY: as above; nothing in the pool is tied to a thread.
unsafe impl Send for BouncePool {}

/// Unlocks the pool when dropped.
struct Guard<'a>(&'a AtomicBool);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Default for BouncePool {
    fn default() -> Self {
        Self::new()
    }
}

impl BouncePool {
    /// An empty pool; every allocation fails until a region is installed.
    pub const fn new() -> Self {
        BouncePool {
            lock: AtomicBool::new(false),
            state: UnsafeCell::new(None),
            failed_shares: AtomicU64::new(0),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Option<PoolState>) -> R) -> R {
        while self.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        let _guard = Guard(&self.lock);
        // SAFETY: we hold the lock, so this is the only live reference to the state; it ends before the guard
        // releases the lock (the guard is dropped after `f` returns).
        let state = unsafe { &mut *self.state.get() };
        f(state)
    }

    /// Installs the shared region the pool hands out.
    pub fn install(&self, region: SharedRegion) -> Result<(), PoolError> {
        self.with(|state| {
            if state.is_some() {
                return Err(PoolError::AlreadyInstalled);
            }
            *state = Some(PoolState {
                vbase: region.vaddr,
                pbase: region.paddr,
                pages: region.pages,
                used: vec![0; region.pages.div_ceil(64)],
                free: region.pages,
            });
            // Pages past the end of the last bitmap word are never free.
            if let Some(s) = state.as_mut() {
                let total = s.used.len() * 64;
                for p in s.pages..total {
                    s.used[p / 64] |= 1 << (p % 64);
                }
            }
            Ok(())
        })
    }

    /// Whether a region is installed.
    pub fn is_installed(&self) -> bool {
        self.with(|s| s.is_some())
    }

    /// Allocates `pages` contiguous pages; returns their guest-physical and virtual addresses.
    pub fn alloc(&self, pages: usize) -> Option<(PhysAddr, NonNull<u8>)> {
        self.with(|state| {
            let s = state.as_mut()?;
            let page = s.alloc(pages)?;
            let offset = page * PAGE_SIZE;
            // In bounds: page + pages <= s.pages, and the region is s.pages pages long.
            let vaddr = NonNull::new(s.vbase.as_ptr().wrapping_add(offset))?;
            Some((s.pbase + offset as u64, vaddr))
        })
    }

    /// Returns `pages` pages at `paddr` to the pool. Fails (changing nothing) unless they are all allocated
    /// pages of this pool.
    pub fn free(&self, paddr: PhysAddr, pages: usize) -> Result<(), NotAllocated> {
        self.with(|state| {
            let s = state.as_mut().ok_or(NotAllocated { paddr, pages })?;
            let page = s.page_of(paddr, pages).ok_or(NotAllocated { paddr, pages })?;
            if pages == 0 || !(page..page + pages).all(|p| s.is_used(p)) {
                return Err(NotAllocated { paddr, pages });
            }
            s.set(page, pages, false);
            s.free += pages;
            Ok(())
        })
    }

    /// The virtual address of allocated pool memory `paddr..paddr + len`, if it is pool memory.
    pub fn virt(&self, paddr: PhysAddr, len: usize) -> Option<NonNull<u8>> {
        self.with(|state| {
            let s = state.as_ref()?;
            let page = s.page_of(paddr, len.div_ceil(PAGE_SIZE).max(1))?;
            NonNull::new(s.vbase.as_ptr().wrapping_add(page * PAGE_SIZE))
        })
    }

    /// The installed region as (guest-physical base, virtual base, bytes), e.g. to tell a device model which
    /// memory the host may access.
    pub fn region(&self) -> Option<(PhysAddr, NonNull<u8>, usize)> {
        self.with(|state| state.as_ref().map(|s| (s.pbase, s.vbase, s.pages * PAGE_SIZE)))
    }

    /// Marks every page free again, reclaiming what abandoned (poisoned) requests left allocated.
    ///
    /// # Safety
    ///
    /// Nothing allocated from the pool may still be in use: no driver, queue or in-flight share alive. Meant
    /// for single-threaded harnesses between independent runs (the fuzz target).
    pub unsafe fn reclaim_all(&self) {
        self.with(|state| {
            if let Some(s) = state.as_mut() {
                let pages = s.pages;
                s.set(0, pages, false);
                s.free = pages;
            }
        })
    }

    /// Records a `share` that could not be served (see [`crate::BounceHal::failed_shares`]).
    pub fn record_failed_share(&self) {
        self.failed_shares.fetch_add(1, Ordering::SeqCst);
    }

    /// Monotonic count of failed shares from this pool.
    pub fn failed_shares(&self) -> u64 {
        self.failed_shares.load(Ordering::SeqCst)
    }

    /// Pages currently free.
    pub fn free_pages(&self) -> usize {
        self.with(|state| state.as_ref().map_or(0, |s| s.free))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::NoopPageState;

    fn pool_of(pages: usize) -> (BouncePool, Vec<u8>) {
        let mut mem = vec![0u8; (pages + 1) * PAGE_SIZE];
        let start = mem.as_mut_ptr().align_offset(PAGE_SIZE);
        let vaddr = NonNull::new(mem[start..].as_mut_ptr()).unwrap();
        let pool = BouncePool::new();
        let mut pst = NoopPageState::default();
        // SAFETY: `mem` outlives the pool in each test, and nothing else touches it.
        let region = unsafe { SharedRegion::convert(vaddr, 0x4000_0000, pages, &mut pst) }.unwrap();
        assert_eq!(pst.shared_pages(), pages);
        pool.install(region).unwrap();
        (pool, mem)
    }

    #[test]
    fn contiguous_runs_first_fit_and_refused_double_free() {
        let (pool, _mem) = pool_of(70);
        let (a, _) = pool.alloc(3).unwrap();
        let (b, _) = pool.alloc(65).unwrap();
        assert_eq!(a, 0x4000_0000);
        assert_eq!(b, 0x4000_0000 + 3 * PAGE_SIZE as u64);
        assert_eq!(pool.free_pages(), 2);
        assert!(pool.alloc(3).is_none(), "only 2 pages left");
        pool.free(a, 3).unwrap();
        assert!(pool.free(a, 3).is_err(), "double free");
        assert!(pool.free(b + 1, 1).is_err(), "unaligned");
        assert!(pool.free(0x1000, 1).is_err(), "outside");
        assert!(pool.alloc(4).is_none(), "no run of 4 pages (holes of 3 and 2)");
        let (c, _) = pool.alloc(2).unwrap();
        assert_eq!(c, 0x4000_0000, "first fit reuses the freed hole");
        assert!(pool.virt(c, 2 * PAGE_SIZE).is_some());
        assert!(pool.virt(0x4000_0000 + 69 * PAGE_SIZE as u64, 2 * PAGE_SIZE).is_none(), "runs past the end");
        assert!(pool.install(SharedRegion { vaddr: NonNull::dangling(), paddr: 0, pages: 1 }).is_err());
    }

    #[test]
    fn an_empty_pool_allocates_nothing() {
        let pool = BouncePool::new();
        assert!(pool.alloc(1).is_none());
        assert!(pool.free(0, 1).is_err());
        assert!(pool.region().is_none());
    }
}
