//! Guest memory backed by a byte vector, and the copy-in helpers the protocols use.

use alloc::vec;
use alloc::vec::Vec;

use crate::api::GuestMemory;
use crate::error::{GuestMemoryError, SvsmError};

/// Guest memory as one contiguous range `[base, base + len)` held in a `Vec` (tests, fuzzing, and the host
/// harness's view of a shared mapping once copied).
#[derive(Debug, Clone)]
pub struct VecGuestMemory {
    base: u64,
    bytes: Vec<u8>,
}

impl VecGuestMemory {
    /// Zero-filled memory of `len` bytes starting at guest physical address `base`.
    pub fn new(base: u64, len: usize) -> Self {
        VecGuestMemory { base, bytes: vec![0; len] }
    }

    /// Memory with the given contents starting at `base`.
    pub fn from_bytes(base: u64, bytes: Vec<u8>) -> Self {
        VecGuestMemory { base, bytes }
    }

    /// First guest physical address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the memory is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The whole backing store (for assertions in tests).
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    fn range(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, GuestMemoryError> {
        let err = GuestMemoryError::OutOfRange { gpa, len: len as u64 };
        let start = gpa.checked_sub(self.base).ok_or(err)?;
        let start = usize::try_from(start).map_err(|_| err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.bytes.len() {
            return Err(err);
        }
        Ok(start..end)
    }
}

impl GuestMemory for VecGuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(self.bytes.get(r).ok_or(GuestMemoryError::OutOfRange { gpa, len: 0 })?);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError> {
        let r = self.range(gpa, data.len())?;
        self.bytes.get_mut(r).ok_or(GuestMemoryError::OutOfRange { gpa, len: 0 })?.copy_from_slice(data);
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        usize::try_from(len).ok().is_some_and(|len| self.range(gpa, len).is_ok())
    }
}

/// Copies a fixed-size structure in from guest memory (one fetch).
pub(crate) fn read_array<const N: usize>(mem: &dyn GuestMemory, gpa: u64) -> Result<[u8; N], SvsmError> {
    let mut buf = [0u8; N];
    mem.read(gpa, &mut buf)?;
    Ok(buf)
}

/// Copies `len` bytes in from guest memory (one fetch).
pub(crate) fn read_vec(mem: &dyn GuestMemory, gpa: u64, len: usize) -> Result<Vec<u8>, SvsmError> {
    let mut buf = vec![0u8; len];
    mem.read(gpa, &mut buf)?;
    Ok(buf)
}

/// Little-endian field access on fixed-size byte arrays (offsets are compile-time constants).
pub(crate) mod le {
    pub(crate) fn u16_at<const N: usize>(b: &[u8; N], off: usize) -> u16 {
        let mut a = [0u8; 2];
        a.copy_from_slice(&b[off..off + 2]);
        u16::from_le_bytes(a)
    }
    pub(crate) fn u32_at<const N: usize>(b: &[u8; N], off: usize) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[off..off + 4]);
        u32::from_le_bytes(a)
    }
    pub(crate) fn u64_at<const N: usize>(b: &[u8; N], off: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[off..off + 8]);
        u64::from_le_bytes(a)
    }
    pub(crate) fn put<const N: usize>(b: &mut [u8; N], off: usize, v: &[u8]) {
        b[off..off + v.len()].copy_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked_without_overflow() {
        let mut m = VecGuestMemory::new(0x1000, 0x2000);
        let mut b = [0u8; 16];
        assert!(m.read(0x1000, &mut b).is_ok());
        assert!(m.read(0x2ff0, &mut b).is_ok());
        assert!(m.read(0x2ff1, &mut b).is_err());
        assert!(m.read(0xfff, &mut b).is_err());
        assert!(m.read(u64::MAX - 4, &mut b).is_err());
        assert!(m.write(u64::MAX, &b).is_err());
        assert!(!m.contains(0x1000, u64::MAX));
        assert!(m.contains(0x1000, 0x2000));
        assert!(!m.contains(0x1000, 0x2001));
        m.write(0x1800, &[7; 4]).expect("in range");
        m.read(0x17fe, &mut b[..8]).expect("in range");
        assert_eq!(&b[..8], &[0, 0, 7, 7, 7, 7, 0, 0]);
    }
}
