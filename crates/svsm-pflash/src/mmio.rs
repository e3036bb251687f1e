//! [`FlashMmio`] over a real memory-mapped window, for use inside an SVSM.

use crate::api::FlashMmio;

/// A flash window mapped into the SVSM's address space, accessed with volatile loads and stores so every
/// command write and status read reaches the device in program order.
///
/// Accesses outside the window or misaligned for their size are dropped (writes) or read as all-ones
/// (reads), never performed: the driver never issues them, and this keeps a driver bug from touching memory
/// that is not the device.
#[derive(Debug)]
pub struct VolatileMmio {
    base: *mut u8,
    len: u64,
}

impl VolatileMmio {
    /// Wraps the window `[base, base + len)`.
    ///
    /// # Safety
    ///
    /// `base` must be the start of a mapping of the flash device's MMIO window of at least `len` bytes,
    /// mapped uncached (or write-through with the device's ordering guarantees) and host-shared as the
    /// platform requires, valid for volatile reads and writes of 1, 2 and 4 bytes for as long as this value
    /// lives, and not accessed through any other path meanwhile. `base` must be at least 4-byte aligned.
    pub unsafe fn new(base: *mut u8, len: u64) -> Self {
        Self { base, len }
    }

    /// The address of `offset` if an access of `size` bytes there stays inside the window and is aligned.
    fn at(&self, offset: u64, size: u64) -> Option<*mut u8> {
        let end = offset.checked_add(size)?;
        if end > self.len || !offset.is_multiple_of(size) {
            return None;
        }
        let offset = usize::try_from(offset).ok()?;
        // wrapping_add: computing the address is safe; it is only dereferenced after the checks above.
        Some(self.base.wrapping_add(offset))
    }
}

macro_rules! volatile_access {
    ($read:ident, $write:ident, $ty:ty) => {
        fn $read(&mut self, offset: u64) -> $ty {
            match self.at(offset, core::mem::size_of::<$ty>() as u64) {
                // SAFETY: `at` checked that the access lies inside the window and is aligned for the type;
                // `new`'s contract makes the whole window valid for volatile reads.
                Some(p) => unsafe { core::ptr::read_volatile(p.cast::<$ty>()) },
                None => <$ty>::MAX,
            }
        }
        fn $write(&mut self, offset: u64, value: $ty) {
            if let Some(p) = self.at(offset, core::mem::size_of::<$ty>() as u64) {
                // SAFETY: as for the read: inside the window, aligned, valid for volatile writes per `new`.
                unsafe { core::ptr::write_volatile(p.cast::<$ty>(), value) }
            }
        }
    };
}

impl FlashMmio for VolatileMmio {
    fn window_len(&self) -> u64 {
        self.len
    }
    volatile_access!(read8, write8, u8);
    volatile_access!(read16, write16, u16);
    volatile_access!(read32, write32, u32);
}
