//! Guest memory in a file shared with the guest process.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt as _};
use std::path::Path;

use svsm_protocol::{GuestMemory, GuestMemoryError};

/// Guest physical memory `[0, size)` stored in a file. Every access is a positioned read or write (the
/// kernel copies), so no Rust reference to memory the guest can change ever exists and each access is one
/// fetch; a guest that maps the same file `MAP_SHARED` sees the same bytes.
#[derive(Debug)]
pub struct FileGuestMemory {
    file: File,
    size: u64,
}

impl FileGuestMemory {
    /// Creates (or truncates) the file at `path` with `size` zero bytes, mode 0600. A symbolic link at
    /// `path` is an error (`O_NOFOLLOW`): truncating through a planted link would destroy its target.
    pub fn create(path: &Path, size: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        file.set_len(size)?;
        Ok(FileGuestMemory { file, size })
    }

    /// Opens an existing memory file (not through a symbolic link); its length is the memory size.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(FileGuestMemory { file, size })
    }

    /// Memory size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn check(&self, gpa: u64, len: usize) -> Result<(), GuestMemoryError> {
        let err = GuestMemoryError::OutOfRange { gpa, len: len as u64 };
        let end = gpa.checked_add(len as u64).ok_or(err)?;
        if end > self.size { Err(err) } else { Ok(()) }
    }
}

impl GuestMemory for FileGuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        self.check(gpa, buf.len())?;
        self.file
            .read_exact_at(buf, gpa)
            .map_err(|_| GuestMemoryError::OutOfRange { gpa, len: buf.len() as u64 })
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError> {
        self.check(gpa, data.len())?;
        self.file
            .write_all_at(data, gpa)
            .map_err(|_| GuestMemoryError::OutOfRange { gpa, len: data.len() as u64 })
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|end| end <= self.size)
    }
}
