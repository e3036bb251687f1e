//! A device backed by a host file: development, tooling (`svsm-host store ...`) and the native platform.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::api::{BlockDevice, DeviceInfo, WriteMode};
use crate::error::{BlockError, IoCause, IoOp};

/// A block device stored in a regular file (or a block special file).
///
/// `flush` is `fdatasync(2)`: the file's data and the metadata needed to read it back are on stable storage
/// when it returns. `WriteMode::Durable` is `pwrite` followed by `fdatasync`.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    path: PathBuf,
    info: DeviceInfo,
}

/// Why a file could not be opened as a device.
#[derive(Debug, thiserror::Error)]
pub enum FileDiskError {
    /// The file could not be opened, created or measured.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file size is not a whole number of blocks, so it is not an image of this geometry.
    #[error(
        "{}: size {size} bytes is not a whole number of {block_size}-byte blocks; \
         is this the right image, and the right block size?", path.display()
    )]
    PartialBlock {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The block size asked for.
        block_size: u32,
    },
    /// The requested geometry is invalid.
    #[error("{}: {source}", path.display())]
    Geometry {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BlockError,
    },
}

impl FileDisk {
    /// Opens an existing image. Refuses files whose size is not a whole number of `block_size` blocks.
    pub fn open(path: impl AsRef<Path>, block_size: u32, read_only: bool) -> Result<Self, FileDiskError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| FileDiskError::Io { path: path.clone(), source };
        let file = OpenOptions::new().read(true).write(!read_only).open(&path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        Self::from_file(file, path, size, block_size, read_only)
    }

    /// Creates a new zero-filled image of `num_blocks` blocks. Fails if the file exists: nothing is ever
    /// overwritten implicitly.
    pub fn create(path: impl AsRef<Path>, block_size: u32, num_blocks: u64) -> Result<Self, FileDiskError> {
        let path = path.as_ref().to_path_buf();
        let info = DeviceInfo::new(block_size, num_blocks, false)
            .map_err(|source| FileDiskError::Geometry { path: path.clone(), source })?;
        let io_err = |source| FileDiskError::Io { path: path.clone(), source };
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_err)?;
        file.set_len(info.capacity_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        if let Some(dir) = path.parent() {
            // Make the new directory entry durable too, so a created volume survives a power cut.
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        }
        Ok(Self { file, path, info })
    }

    fn from_file(
        file: File,
        path: PathBuf,
        size: u64,
        block_size: u32,
        read_only: bool,
    ) -> Result<Self, FileDiskError> {
        let probe = DeviceInfo::new(block_size, 0, read_only)
            .map_err(|source| FileDiskError::Geometry { path: path.clone(), source })?;
        if !size.is_multiple_of(u64::from(probe.block_size)) {
            return Err(FileDiskError::PartialBlock { path, size, block_size });
        }
        let info = DeviceInfo::new(block_size, size / u64::from(block_size), read_only)
            .map_err(|source| FileDiskError::Geometry { path: path.clone(), source })?;
        Ok(Self { file, path, info })
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn map_err(op: IoOp, lba: u64, err: io::Error) -> BlockError {
        match err.raw_os_error() {
            Some(errno) => BlockError::os(op, lba, errno),
            // A short read means the file shrank underneath us: the host changed the device's size.
            None if err.kind() == io::ErrorKind::UnexpectedEof => {
                BlockError::DeviceMisbehaved { op, detail: "the image file shrank while open" }
            }
            None => {
                BlockError::Io { op, lba, cause: IoCause::DeviceStatus { status: 0, meaning: "I/O error" } }
            }
        }
    }
}

impl BlockDevice for FileDisk {
    fn info(&self) -> DeviceInfo {
        self.info
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check_transfer(lba, buf.len())?;
        let offset = lba * u64::from(self.info.block_size);
        self.file.read_exact_at(buf, offset).map_err(|e| Self::map_err(IoOp::Read, lba, e))
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError> {
        self.info.check_write(lba, buf.len())?;
        let offset = lba * u64::from(self.info.block_size);
        self.file.write_all_at(buf, offset).map_err(|e| Self::map_err(IoOp::Write, lba, e))?;
        if mode == WriteMode::Durable {
            self.file.sync_data().map_err(|e| Self::map_err(IoOp::Write, lba, e))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        if self.info.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| Self::map_err(IoOp::Flush, 0, e))
    }
}
