//! QEMU's fw_cfg device: finding `etc/hardware-info` (or any file) in its directory and reading it.
//!
//! fw_cfg is a key/value store the host fills. A guest selects an item by writing its 16-bit key to the
//! selector and then reads the item's bytes in order from the data register, or has the device copy an item
//! into guest memory with one DMA request. Item `0x0000` holds the signature `"QEMU"`, `0x0001` the feature
//! bits, and `0x0019` the file directory: a big-endian `u32` count followed by 64-byte
//! [`FileEntry`] records `{size: be32, select: be16, reserved: u16, name: [u8; 56]}`. Files are items too,
//! read by their `select` key.
//!
//! How the bytes move is the platform's business ([`FwCfgTransport`]): [`PortFwCfg`] is the x86 port
//! interface (selector 0x510, data 0x511) over any [`PortIo`]; a DMA transport builds a [`DmaAccess`] in
//! shared memory and writes its address to port 0x514. Everything the device returns is host input: the
//! directory count is bounded, names are bounded to their field, and a file is read only up to the size the
//! caller accepts.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::api::VirtioMmioDevice;
use crate::error::DiscoveryError;
use crate::hardware_info::virtio_mmio_from_hardware_info;

/// x86 selector port (16-bit writes, little-endian).
pub const PORT_SELECTOR: u16 = 0x510;
/// x86 data port (byte reads).
pub const PORT_DATA: u16 = 0x511;
/// x86 DMA address port: big-endian 64-bit address, high half at 0x514, low half (the trigger) at 0x518.
pub const PORT_DMA: u16 = 0x514;
/// Item: the signature.
pub const KEY_SIGNATURE: u16 = 0x0000;
/// Item: feature bits (little-endian u32).
pub const KEY_FEATURES: u16 = 0x0001;
/// Item: the file directory.
pub const KEY_FILE_DIR: u16 = 0x0019;
/// What [`KEY_SIGNATURE`] reads.
pub const SIGNATURE: [u8; 4] = *b"QEMU";
/// Feature bit: the selector/data interface.
pub const FEATURE_TRADITIONAL: u32 = 1 << 0;
/// Feature bit: the DMA interface.
pub const FEATURE_DMA: u32 = 1 << 1;
/// The file QEMU (and COCONUT-SVSM's QEMU) uses to list virtio-mmio devices.
pub const HARDWARE_INFO_FILE: &str = "etc/hardware-info";
/// Largest directory accepted (QEMU's default is 32 slots, configurable to a few thousand).
pub const MAX_FILES: u32 = 4096;
/// Largest `etc/hardware-info` accepted (a record is 24 bytes; this is thousands of devices).
pub const MAX_HARDWARE_INFO: usize = 64 * 1024;
/// Bytes of a directory entry's name field.
pub const FILE_NAME_LEN: usize = 56;

/// A directory entry on the wire (big-endian fields).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FileEntry {
    /// File size in bytes, big-endian.
    pub size: [u8; 4],
    /// Item key to select, big-endian.
    pub select: [u8; 2],
    /// Reserved.
    pub reserved: [u8; 2],
    /// NUL-terminated name.
    pub name: [u8; FILE_NAME_LEN],
}

const _: () = assert!(core::mem::size_of::<FileEntry>() == 64);
const _: () = assert!(core::mem::offset_of!(FileEntry, select) == 4);
const _: () = assert!(core::mem::offset_of!(FileEntry, name) == 8);

/// A DMA request on the wire (big-endian fields), placed in memory the device can read and write.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DmaAccess {
    /// Control bits ([`DMA_CTL_READ`] ...) and, with [`DMA_CTL_SELECT`], the key in the upper 16 bits. The
    /// device clears it to 0 on success or leaves [`DMA_CTL_ERROR`] set.
    pub control: [u8; 4],
    /// Bytes to transfer.
    pub length: [u8; 4],
    /// Guest-physical address of the buffer.
    pub address: [u8; 8],
}

const _: () = assert!(core::mem::size_of::<DmaAccess>() == 16);
const _: () = assert!(core::mem::offset_of!(DmaAccess, length) == 4);
const _: () = assert!(core::mem::offset_of!(DmaAccess, address) == 8);

/// DMA control: the transfer failed.
pub const DMA_CTL_ERROR: u32 = 0x01;
/// DMA control: read from the item into memory.
pub const DMA_CTL_READ: u32 = 0x02;
/// DMA control: skip bytes.
pub const DMA_CTL_SKIP: u32 = 0x04;
/// DMA control: select the key in the upper 16 bits first.
pub const DMA_CTL_SELECT: u32 = 0x08;

impl DmaAccess {
    /// A request to select `key` and read `length` bytes from its start into `address`.
    pub fn select_read(key: u16, length: u32, address: u64) -> Self {
        let control = (u32::from(key) << 16) | DMA_CTL_SELECT | DMA_CTL_READ;
        DmaAccess {
            control: control.to_be_bytes(),
            length: length.to_be_bytes(),
            address: address.to_be_bytes(),
        }
    }

    /// The request as bytes, for copying into shared memory.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&self.control);
        out[4..8].copy_from_slice(&self.length);
        out[8..].copy_from_slice(&self.address);
        out
    }
}

/// How fw_cfg bytes reach the driver.
pub trait FwCfgTransport {
    /// Selects `key` and reads the first `out.len()` bytes of that item (reading past an item's end yields
    /// zeros on QEMU).
    fn read_item(&mut self, key: u16, out: &mut [u8]) -> Result<(), DiscoveryError>;
}

/// x86 port I/O, as the platform provides it.
pub trait PortIo {
    /// A 16-bit port write.
    fn outw(&mut self, port: u16, value: u16);
    /// A byte port read.
    fn inb(&mut self, port: u16) -> u8;
}

/// The selector/data interface over port I/O: one port read per byte.
#[derive(Debug)]
pub struct PortFwCfg<P>(pub P);

impl<P: PortIo> FwCfgTransport for PortFwCfg<P> {
    fn read_item(&mut self, key: u16, out: &mut [u8]) -> Result<(), DiscoveryError> {
        self.0.outw(PORT_SELECTOR, key);
        for b in out.iter_mut() {
            *b = self.0.inb(PORT_DATA);
        }
        Ok(())
    }
}

/// One file of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfgFile {
    /// Name (up to the first NUL; invalid UTF-8 replaced, so it is only for matching and logs).
    pub name: String,
    /// Size in bytes.
    pub size: u32,
    /// Item key.
    pub select: u16,
}

/// Parses a directory item (`count` then entries). `dir` holds what was read; entries past its end are
/// truncation, which cannot happen with a transport that reads exactly what was asked.
pub fn parse_directory(dir: &[u8]) -> Result<Vec<FwCfgFile>, DiscoveryError> {
    let count = directory_count(dir)?;
    let mut files = Vec::new();
    for i in 0..count as usize {
        let Some(e) = dir.get(4 + i * 64..4 + (i + 1) * 64) else { break };
        let name = &e[8..8 + FILE_NAME_LEN];
        let end = name.iter().position(|&b| b == 0).unwrap_or(FILE_NAME_LEN);
        files.push(FwCfgFile {
            name: String::from_utf8_lossy(&name[..end]).into_owned(),
            size: u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            select: u16::from_be_bytes([e[4], e[5]]),
        });
    }
    Ok(files)
}

fn directory_count(dir: &[u8]) -> Result<u32, DiscoveryError> {
    let count = u32::from_be_bytes(dir.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
    if count > MAX_FILES {
        return Err(DiscoveryError::FwCfgTooManyFiles { count, max: MAX_FILES });
    }
    Ok(count)
}

/// A fw_cfg device whose signature was checked.
#[derive(Debug)]
pub struct FwCfg<T> {
    transport: T,
}

impl<T: FwCfgTransport> FwCfg<T> {
    /// Checks the signature through `transport`.
    pub fn probe(mut transport: T) -> Result<Self, DiscoveryError> {
        let mut found = [0u8; 4];
        transport.read_item(KEY_SIGNATURE, &mut found)?;
        if found != SIGNATURE {
            return Err(DiscoveryError::FwCfgNoDevice { found });
        }
        Ok(FwCfg { transport })
    }

    /// The feature bits ([`FEATURE_DMA`] ...).
    pub fn features(&mut self) -> Result<u32, DiscoveryError> {
        let mut f = [0u8; 4];
        self.transport.read_item(KEY_FEATURES, &mut f)?;
        Ok(u32::from_le_bytes(f))
    }

    /// The file directory.
    pub fn files(&mut self) -> Result<Vec<FwCfgFile>, DiscoveryError> {
        let mut head = [0u8; 4];
        self.transport.read_item(KEY_FILE_DIR, &mut head)?;
        let count = directory_count(&head)?;
        // count <= MAX_FILES, so this is at most 256 KiB.
        let mut dir = vec![0u8; 4 + count as usize * 64];
        self.transport.read_item(KEY_FILE_DIR, &mut dir)?;
        // A directory that changed between the reads is judged by its second copy (bounded again).
        parse_directory(&dir)
    }

    /// The directory entry of `name`, if present.
    pub fn find(&mut self, name: &str) -> Result<Option<FwCfgFile>, DiscoveryError> {
        Ok(self.files()?.into_iter().find(|f| f.name == name))
    }

    /// The contents of file `name` (`None` if absent), refusing files larger than `max` bytes.
    pub fn read_file(&mut self, name: &str, max: usize) -> Result<Option<Vec<u8>>, DiscoveryError> {
        let Some(file) = self.find(name)? else { return Ok(None) };
        if file.size as usize > max {
            return Err(DiscoveryError::FwCfgFileTooLarge { name: file.name, size: file.size, max });
        }
        let mut out = vec![0u8; file.size as usize];
        self.transport.read_item(file.select, &mut out)?;
        Ok(Some(out))
    }

    /// The virtio-mmio devices `etc/hardware-info` announces.
    pub fn virtio_mmio_devices(&mut self) -> Result<Vec<VirtioMmioDevice>, DiscoveryError> {
        let blob = self
            .read_file(HARDWARE_INFO_FILE, MAX_HARDWARE_INFO)?
            .ok_or_else(|| DiscoveryError::FwCfgFileMissing { name: HARDWARE_INFO_FILE.into() })?;
        virtio_mmio_from_hardware_info(&blob)
    }

    /// The transport, e.g. to read statistics.
    pub fn transport(&self) -> &T {
        &self.transport
    }
}
