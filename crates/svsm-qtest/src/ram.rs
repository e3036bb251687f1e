//! Guest RAM shared between QEMU and the test process, and the bounce platform carved from it.
//!
//! Every QEMU this process starts gets the same RAM: a sparse file on tmpfs, mapped by QEMU through
//! `-object memory-backend-file,share=on,...` + `-machine memory-backend=...` and by us with `MAP_SHARED`.
//! Guest-physical address `gpa` is file offset `gpa` (microvm and q35 put RAM below 4 GiB at 0), so a DMA
//! buffer we allocate at `gpa` is exactly where QEMU's virtio device reads and writes.
//!
//! Why one RAM for all machines: `virtio_drivers::Hal` is static, so [`QtestPlatform`]'s bounce pool must be
//! a `static`, installed once. Machines that run at the same time (parallel tests) or one after another (the
//! crash campaign's fresh QEMUs) therefore share one pool, and the pool hands each driver disjoint pages, so
//! no two devices ever see each other's rings or buffers. No guest code runs under qtest, so nothing but
//! the devices we drive touches this memory.
//!
//! The file is unlinked as soon as it is created; QEMU opens it through `/proc/<our pid>/fd/<fd>`, so nothing
//! is left behind however the test process ends.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::OnceLock;

use svsm_block_virtio::host::NoopPageState;
use svsm_block_virtio::{BouncePlatform, BouncePool, SharedRegion};
use virtio_drivers::{PAGE_SIZE, PhysAddr};

use crate::error::QtestError;

/// Bytes of guest RAM every machine gets.
pub const RAM_BYTES: u64 = 256 << 20;
/// Guest-physical start of the bounce pool: above the legacy BIOS area and anything firmware could place in
/// low memory, page aligned.
pub const POOL_GPA: u64 = 16 << 20;
/// Guest-physical scratch area below the pool, for tests that place their own structures (fw_cfg DMA).
pub const SCRATCH_GPA: u64 = 8 << 20;
/// Bytes of the scratch area.
pub const SCRATCH_BYTES: u64 = 4 << 20;

/// The shared guest RAM mapping.
#[derive(Debug)]
pub struct GuestRam {
    file: File,
    base: NonNull<u8>,
}

// SAFETY: the mapping lives for the rest of the process (never unmapped) and is only accessed through
// volatile copies (or by the bounce pool, which has its own lock), so sharing the pointer between threads
// is sound.
unsafe impl Send for GuestRam {}
// SAFETY: as above.
unsafe impl Sync for GuestRam {}

static RAM: OnceLock<Result<GuestRam, String>> = OnceLock::new();

impl GuestRam {
    /// The process's guest RAM, created and mapped on first use.
    pub fn global() -> Result<&'static GuestRam, QtestError> {
        RAM.get_or_init(|| Self::create().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| QtestError::io("creating the shared guest RAM", std::io::Error::other(e.clone())))
    }

    fn create() -> Result<GuestRam, QtestError> {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let file = tempfile::tempfile_in(&dir)
            .map_err(|e| QtestError::io(format!("creating a guest RAM file in {}", dir.display()), e))?;
        file.set_len(RAM_BYTES).map_err(|e| QtestError::io("sizing the guest RAM file", e))?;
        let len = usize::try_from(RAM_BYTES).map_err(|_| QtestError::OutsideRam {
            gpa: 0,
            len: 0,
            ram_bytes: RAM_BYTES,
        })?;
        // SAFETY: a fresh shared mapping of a file we own, at an address the kernel chooses; nothing else in
        // this process aliases it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(QtestError::io("mapping the guest RAM file", std::io::Error::last_os_error()));
        }
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| QtestError::io("mapping the guest RAM file", std::io::Error::other("null")))?;
        Ok(GuestRam { file, base })
    }

    /// The path QEMU opens for `mem-path=`.
    pub fn qemu_path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
    }

    /// Bytes of RAM.
    pub fn len(&self) -> u64 {
        RAM_BYTES
    }

    /// Always false: the RAM is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn at(&self, gpa: u64, len: usize) -> Result<*mut u8, QtestError> {
        let outside = || QtestError::OutsideRam { gpa, len, ram_bytes: RAM_BYTES };
        let end = gpa.checked_add(len as u64).ok_or_else(outside)?;
        if end > RAM_BYTES {
            return Err(outside());
        }
        // In bounds: checked above, and RAM_BYTES fits in usize (checked at mapping).
        Ok(self.base.as_ptr().wrapping_add(gpa as usize))
    }

    /// Copies guest RAM at `gpa` into `out` (volatile: QEMU may write it concurrently).
    pub fn read(&self, gpa: u64, out: &mut [u8]) -> Result<(), QtestError> {
        let p = self.at(gpa, out.len())?;
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `p..p + out.len()` lies inside the live mapping (checked by `at`); volatile byte reads
            // never form a reference into memory another process changes.
            *b = unsafe { p.wrapping_add(i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `data` into guest RAM at `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), QtestError> {
        let p = self.at(gpa, data.len())?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { p.wrapping_add(i).write_volatile(*b) };
        }
        Ok(())
    }
}

static POOL: BouncePool = BouncePool::new();
static POOL_INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// The bounce platform of devices behind QEMU: its pool is guest RAM `POOL_GPA..RAM_BYTES`, at the real
/// guest-physical addresses QEMU's devices use. The page-state change is the host no-op
/// ([`NoopPageState`]): there is no encryption under qtest.
#[derive(Debug)]
pub struct QtestPlatform;

impl QtestPlatform {
    /// Installs the pool over the shared RAM (idempotent).
    pub fn init() -> Result<(), QtestError> {
        POOL_INIT
            .get_or_init(|| {
                let ram = GuestRam::global().map_err(|e| e.to_string())?;
                let vaddr = NonNull::new(ram.base.as_ptr().wrapping_add(POOL_GPA as usize))
                    .ok_or("null RAM mapping")?;
                let pages = ((RAM_BYTES - POOL_GPA) / PAGE_SIZE as u64) as usize;
                // SAFETY: the pool owns `POOL_GPA..RAM_BYTES` of the mapping for the rest of the process; only
                // the pool hands it out, and the mapping is never unmapped.
                let region =
                    unsafe { SharedRegion::convert(vaddr, POOL_GPA, pages, &mut NoopPageState::default()) }
                        .map_err(|e| e.to_string())?;
                POOL.install(region).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| QtestError::io("installing the qtest bounce pool", std::io::Error::other(e)))
    }
}

impl BouncePlatform for QtestPlatform {
    fn pool() -> &'static BouncePool {
        // A failed install leaves the pool empty: every allocation then fails, which the HAL reports.
        let _ = Self::init();
        &POOL
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // Only the PCI transport maps BARs; MMIO under qtest goes through the socket, never through memory.
        panic!("QtestPlatform maps no MMIO into the test process: cannot map {size} bytes at {paddr:#x}")
    }
}
