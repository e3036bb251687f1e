//! QEMU's `pflash_cfi01` on q35, reached through qtest, as a [`FlashMmio`] for the svsm-pflash driver.
//!
//! `-machine q35 -drive if=pflash,format=raw,file=F` maps the image as an 8-bit (`width=1`) CFI flash with
//! 4 KiB sectors ending at 4 GiB (hw/i386/pc_sysfw.c); QEMU's x86 machines offer no other width. Every
//! access is one qtest `readb`/`writeb` (or w/l for wider accesses), so the flash sees exactly the bus
//! cycles the driver issues.

use std::sync::Arc;

use svsm_pflash::FlashMmio;

use crate::machine::Qtest;

/// Where a q35 pflash image of `bytes` bytes (unit 0) is mapped.
pub const fn q35_flash_base(bytes: u64) -> u64 {
    (1 << 32) - bytes
}

/// A flash window through qtest. Accesses outside the window or misaligned are not performed (reads are
/// all-ones), as [`svsm_pflash::VolatileMmio`] does; a failed qtest command reads as all-ones and is counted.
#[derive(Debug)]
pub struct QtestFlash {
    qtest: Arc<Qtest>,
    base: u64,
    len: u64,
    failures: u64,
}

impl QtestFlash {
    /// The window `[base, base + len)` of `qtest`'s machine.
    pub fn new(qtest: &Arc<Qtest>, base: u64, len: u64) -> Self {
        QtestFlash { qtest: qtest.clone(), base, len, failures: 0 }
    }

    /// Accesses that failed because qtest did.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    fn at(&self, offset: u64, size: u64) -> Option<u64> {
        let end = offset.checked_add(size)?;
        (end <= self.len && offset.is_multiple_of(size)).then_some(self.base + offset)
    }

    fn read(&mut self, offset: u64, size: u64) -> u32 {
        let Some(addr) = self.at(offset, size) else { return u32::MAX };
        let r = match size {
            1 => self.qtest.readb(addr).map(u32::from),
            2 => self.qtest.readw(addr).map(u32::from),
            _ => self.qtest.readl(addr),
        };
        r.unwrap_or_else(|_| {
            self.failures += 1;
            u32::MAX
        })
    }

    fn write(&mut self, offset: u64, size: u64, v: u32) {
        let Some(addr) = self.at(offset, size) else { return };
        let r = match size {
            1 => self.qtest.writeb(addr, v as u8),
            2 => self.qtest.writew(addr, v as u16),
            _ => self.qtest.writel(addr, v),
        };
        if r.is_err() {
            self.failures += 1;
        }
    }
}

impl FlashMmio for QtestFlash {
    fn window_len(&self) -> u64 {
        self.len
    }
    fn read8(&mut self, offset: u64) -> u8 {
        self.read(offset, 1) as u8
    }
    fn read16(&mut self, offset: u64) -> u16 {
        self.read(offset, 2) as u16
    }
    fn read32(&mut self, offset: u64) -> u32 {
        self.read(offset, 4)
    }
    fn write8(&mut self, offset: u64, value: u8) {
        self.write(offset, 1, u32::from(value))
    }
    fn write16(&mut self, offset: u64, value: u16) {
        self.write(offset, 2, u32::from(value))
    }
    fn write32(&mut self, offset: u64, value: u32) {
        self.write(offset, 4, value)
    }
}
