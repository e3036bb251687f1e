//! The guest-RAM arena: the only memory the model device may touch.
//!
//! A real device reaches guest memory through the hypervisor, which refuses addresses outside guest RAM (and,
//! under SEV-SNP, can only usefully read pages the guest made shared). The model mirrors that: every address a
//! driver hands it is translated through this registry, and an address or length that falls outside a
//! registered region is a [`ModelError`], never a wild pointer access. A driver bug (a pointer into private
//! memory, a stale or truncated length) therefore shows up as a recorded model error.

use core::ptr::NonNull;

use crate::error::ModelError;

#[derive(Debug, Clone, Copy)]
struct Region {
    gpa: u64,
    host: NonNull<u8>,
    len: usize,
}

/// Regions of "guest physical" memory the device may access, each backed by host memory.
#[derive(Debug, Default)]
pub struct GuestMemory {
    regions: Vec<Region>,
}

impl GuestMemory {
    /// An empty arena: every access fails until regions are registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `len` bytes of host memory at `host` as guest-physical `gpa..gpa + len`.
    ///
    /// # Safety
    ///
    /// `host..host + len` must stay valid for reads and writes for as long as this arena (or a model holding
    /// it) lives, and nothing may hold a Rust reference into it while the model runs (the driver side must use
    /// raw pointers or copies, as a DMA-capable driver has to anyway).
    pub unsafe fn add_region(&mut self, gpa: u64, host: NonNull<u8>, len: usize) -> Result<(), ModelError> {
        let end = gpa.checked_add(len as u64).ok_or(ModelError::RegionOverflow { gpa, len })?;
        if self.regions.iter().any(|r| gpa < r.gpa + r.len as u64 && r.gpa < end) {
            return Err(ModelError::RegionOverlap { gpa, len });
        }
        self.regions.push(Region { gpa, host, len });
        Ok(())
    }

    /// Translates a whole guest range to a host pointer, or explains why the device may not touch it.
    fn translate(&self, gpa: u64, len: usize) -> Result<*mut u8, ModelError> {
        let end = gpa.checked_add(len as u64).ok_or(ModelError::OutsideGuestRam { gpa, len })?;
        for r in &self.regions {
            let r_end = r.gpa + r.len as u64;
            if gpa >= r.gpa && end <= r_end {
                let offset = (gpa - r.gpa) as usize;
                // Stays inside the registered allocation: offset + len <= r.len.
                return Ok(r.host.as_ptr().wrapping_add(offset));
            }
        }
        Err(ModelError::OutsideGuestRam { gpa, len })
    }

    /// Checks that the device may touch `gpa..gpa + len`, without touching it.
    pub fn check(&self, gpa: u64, len: usize) -> Result<(), ModelError> {
        self.translate(gpa, len).map(|_| ())
    }

    /// Copies guest memory into `out`.
    pub fn read(&self, gpa: u64, out: &mut [u8]) -> Result<(), ModelError> {
        if out.is_empty() {
            return Ok(());
        }
        let src = self.translate(gpa, out.len())?;
        // SAFETY: `translate` proved gpa..gpa+len lies inside one registered region, which `add_region`'s
        // contract keeps valid for reads; `out` is a distinct Rust allocation, so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` into guest memory.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), ModelError> {
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.translate(gpa, data.len())?;
        // SAFETY: as in `read`: the destination lies inside a registered region valid for writes, and `data`
        // is a separate Rust allocation.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Reads a little-endian u16 ring field with a volatile access (the driver updates it through atomics).
    pub fn read_u16(&self, gpa: u64) -> Result<u16, ModelError> {
        let p = self.translate(gpa, 2)?;
        if !(p as usize).is_multiple_of(2) {
            return Err(ModelError::Misaligned { gpa, align: 2 });
        }
        // SAFETY: two bytes inside a registered region, alignment checked just above.
        Ok(u16::from_le(unsafe { core::ptr::read_volatile(p.cast::<u16>()) }))
    }

    /// Writes a little-endian u16 ring field with a volatile access.
    pub fn write_u16(&self, gpa: u64, value: u16) -> Result<(), ModelError> {
        let p = self.translate(gpa, 2)?;
        if !(p as usize).is_multiple_of(2) {
            return Err(ModelError::Misaligned { gpa, align: 2 });
        }
        // SAFETY: two bytes inside a registered region, alignment checked just above.
        unsafe { core::ptr::write_volatile(p.cast::<u16>(), value.to_le()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_everything_outside_the_regions() {
        let mut backing = vec![0u8; 64];
        let mut mem = GuestMemory::new();
        let host = NonNull::new(backing.as_mut_ptr()).unwrap();
        // SAFETY: `backing` outlives `mem` in this test and is only touched through `mem`.
        unsafe { mem.add_region(0x1000, host, 64).unwrap() };
        mem.write(0x1000, &[1, 2, 3]).unwrap();
        let mut out = [0u8; 3];
        mem.read(0x1000, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3]);
        assert!(mem.write(0x1000 + 62, &[0; 3]).is_err(), "straddles the end");
        assert!(mem.read(0xFFF, &mut out).is_err(), "starts before");
        assert!(mem.read(u64::MAX - 1, &mut out).is_err(), "wraps");
        assert!(mem.read_u16(0x1001).is_err(), "misaligned ring field");
        // SAFETY: as above; the overlapping registration is refused before it is stored.
        assert!(unsafe { mem.add_region(0x1020, host, 8) }.is_err());
        drop(mem);
        assert_eq!(&backing[..3], &[1, 2, 3]);
    }
}
