//! The device access the driver needs: byte, half-word and word reads and writes at an offset into the
//! flash window.
//!
//! Flash is driven by writing command bytes to addresses inside its window and reading back data, status
//! or query bytes from the same addresses, so the whole device interface is six accesses. Keeping it a trait
//! lets an SVSM map it to volatile MMIO ([`crate::VolatileMmio`]) and tests map it to the device model.

/// Access to one flash window. Reads take `&mut self` because on a flash device a read is not pure: what it
/// returns depends on the command state the previous writes set up.
///
/// Contract: the driver only accesses offsets `< window_len()`, aligned to the access size. An
/// implementation handed anything else (a driver bug) must not touch memory outside the window.
pub trait FlashMmio {
    /// Bytes of the mapped window. The driver refuses any geometry that does not fit inside it.
    fn window_len(&self) -> u64;
    /// One byte at `offset`.
    fn read8(&mut self, offset: u64) -> u8;
    /// Two bytes (little-endian) at `offset`.
    fn read16(&mut self, offset: u64) -> u16;
    /// Four bytes (little-endian) at `offset`.
    fn read32(&mut self, offset: u64) -> u32;
    /// Writes one byte at `offset`.
    fn write8(&mut self, offset: u64, value: u8);
    /// Writes two bytes (little-endian) at `offset`.
    fn write16(&mut self, offset: u64, value: u16);
    /// Writes four bytes (little-endian) at `offset`.
    fn write32(&mut self, offset: u64, value: u32);
}

impl<M: FlashMmio + ?Sized> FlashMmio for &mut M {
    fn window_len(&self) -> u64 {
        (**self).window_len()
    }
    fn read8(&mut self, offset: u64) -> u8 {
        (**self).read8(offset)
    }
    fn read16(&mut self, offset: u64) -> u16 {
        (**self).read16(offset)
    }
    fn read32(&mut self, offset: u64) -> u32 {
        (**self).read32(offset)
    }
    fn write8(&mut self, offset: u64, value: u8) {
        (**self).write8(offset, value)
    }
    fn write16(&mut self, offset: u64, value: u16) {
        (**self).write16(offset, value)
    }
    fn write32(&mut self, offset: u64, value: u32) {
        (**self).write32(offset, value)
    }
}

/// Width of the flash data bus: the size of one command, status, query or program access.
///
/// QEMU's x86 machines map their pflash as an 8-bit device (`width=1`); other boards use 16 or 32 bits. The
/// driver supports one chip spanning the whole bus (no interleaved chips).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BusWidth {
    /// 8-bit bus.
    X8,
    /// 16-bit bus.
    X16,
    /// 32-bit bus.
    X32,
}

impl BusWidth {
    /// Bytes per access.
    pub const fn bytes(self) -> u32 {
        match self {
            BusWidth::X8 => 1,
            BusWidth::X16 => 2,
            BusWidth::X32 => 4,
        }
    }

    /// The width for a byte count, if it is one.
    pub const fn from_bytes(bytes: u32) -> Option<Self> {
        match bytes {
            1 => Some(BusWidth::X8),
            2 => Some(BusWidth::X16),
            4 => Some(BusWidth::X32),
            _ => None,
        }
    }

    /// One bus-wide read, zero-extended.
    pub fn read<M: FlashMmio + ?Sized>(self, mmio: &mut M, offset: u64) -> u32 {
        match self {
            BusWidth::X8 => u32::from(mmio.read8(offset)),
            BusWidth::X16 => u32::from(mmio.read16(offset)),
            BusWidth::X32 => mmio.read32(offset),
        }
    }

    /// One bus-wide write of the low `bytes()` bytes of `value`.
    pub fn write<M: FlashMmio + ?Sized>(self, mmio: &mut M, offset: u64, value: u32) {
        match self {
            BusWidth::X8 => mmio.write8(offset, value as u8),
            BusWidth::X16 => mmio.write16(offset, value as u16),
            BusWidth::X32 => mmio.write32(offset, value),
        }
    }

    /// The little-endian bus word at the start of `bytes` (which holds at least `self.bytes()` bytes).
    pub fn word(self, bytes: &[u8]) -> u32 {
        let mut w = [0u8; 4];
        for (dst, src) in w.iter_mut().zip(bytes.iter().take(self.bytes() as usize)) {
            *dst = *src;
        }
        u32::from_le_bytes(w)
    }
}
