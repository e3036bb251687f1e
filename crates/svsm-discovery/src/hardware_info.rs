//! QEMU's fw_cfg file `etc/hardware-info`.
//!
//! The file is a concatenation of records, each a 16-byte little-endian header `{type: u64, size: u64}`
//! followed by `size` payload bytes. Type [`TYPE_VIRTIO_MMIO`] (0x1000) announces one virtio-mmio device; its
//! payload is `{mmio_address: u64}`. Other types (QEMU also uses the file for EDK2's host-bridge records) are
//! skipped by their size, so newer QEMUs can add types without breaking us. The blob is host-controlled, so
//! every size is checked against what is left before anything is sliced.

use alloc::vec::Vec;

use crate::api::{DeviceSource, VIRTIO_MMIO_WINDOW, VirtioMmioDevice};
use crate::error::DiscoveryError;

/// Record type of a virtio-mmio device whose payload is its MMIO base address.
pub const TYPE_VIRTIO_MMIO: u64 = 0x1000;

/// Length of a record header on the wire.
pub const RECORD_HEADER_LEN: usize = 16;

/// The on-wire record header (both fields little-endian). Only its layout is used; parsing reads the bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RecordHeader {
    /// Record type.
    pub hw_type: [u8; 8],
    /// Payload length in bytes.
    pub size: [u8; 8],
}

const _: () = assert!(core::mem::size_of::<RecordHeader>() == RECORD_HEADER_LEN);
const _: () = assert!(core::mem::offset_of!(RecordHeader, hw_type) == 0);
const _: () = assert!(core::mem::offset_of!(RecordHeader, size) == 8);

/// The virtio-mmio payload on the wire.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VirtioMmioPayload {
    /// Little-endian base address.
    pub mmio_address: [u8; 8],
}

const _: () = assert!(core::mem::size_of::<VirtioMmioPayload>() == 8);

/// One record of the file, borrowed from the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record header in the blob.
    pub offset: usize,
    /// Record type.
    pub hw_type: u64,
    /// The payload (exactly `size` bytes).
    pub payload: &'a [u8],
}

/// An `etc/hardware-info` blob. Construction does no work; iteration validates record by record.
#[derive(Debug, Clone, Copy)]
pub struct HardwareInfo<'a> {
    blob: &'a [u8],
}

impl<'a> HardwareInfo<'a> {
    /// Wraps the file contents as read from fw_cfg.
    pub fn new(blob: &'a [u8]) -> Self {
        Self { blob }
    }

    /// The records in file order. The iterator yields one error and then stops, because after a bad size
    /// nothing that follows can be located.
    pub fn records(&self) -> Records<'a> {
        Records { blob: self.blob, offset: 0, failed: false }
    }
}

/// Iterator over the records of a [`HardwareInfo`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    blob: &'a [u8],
    offset: usize,
    failed: bool,
}

fn le_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, DiscoveryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.blob.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        match parse_record(rest, self.offset) {
            Ok((record, consumed)) => {
                // consumed <= rest.len(), so the offset stays within the blob.
                self.offset += consumed;
                Some(Ok(record))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Parses the record at the start of `rest` (at blob offset `offset`); returns it and the bytes it occupies.
fn parse_record(rest: &[u8], offset: usize) -> Result<(Record<'_>, usize), DiscoveryError> {
    let truncated = DiscoveryError::HwInfoTruncatedHeader { offset, remaining: rest.len() };
    let (header, after) = rest.split_at_checked(RECORD_HEADER_LEN).ok_or(truncated.clone())?;
    let hw_type = le_u64(header).ok_or(truncated.clone())?;
    let size = le_u64(header.get(8..).ok_or(truncated.clone())?).ok_or(truncated)?;
    let past_end = DiscoveryError::HwInfoPayloadPastEnd { offset, size, remaining: after.len() };
    let len = usize::try_from(size).map_err(|_| past_end.clone())?;
    let payload = after.get(..len).ok_or(past_end)?;
    Ok((Record { offset, hw_type, payload }, RECORD_HEADER_LEN + len))
}

impl DeviceSource for HardwareInfo<'_> {
    fn virtio_mmio_devices(&self) -> Result<Vec<VirtioMmioDevice>, DiscoveryError> {
        let mut devices = Vec::new();
        for record in self.records() {
            let record = record?;
            if record.hw_type != TYPE_VIRTIO_MMIO {
                continue;
            }
            let size = record.payload.len() as u64;
            let address = match record.payload.len() {
                8 => le_u64(record.payload),
                _ => None,
            }
            .ok_or(DiscoveryError::HwInfoVirtioPayloadSize { offset: record.offset, size })?;
            if address.checked_add(VIRTIO_MMIO_WINDOW).is_none() {
                return Err(DiscoveryError::WindowOverflow { address, size: VIRTIO_MMIO_WINDOW });
            }
            devices.push(VirtioMmioDevice { address, size: None, plane: None, name: None });
        }
        Ok(devices)
    }
}

/// The virtio-mmio devices an `etc/hardware-info` blob announces.
pub fn virtio_mmio_from_hardware_info(blob: &[u8]) -> Result<Vec<VirtioMmioDevice>, DiscoveryError> {
    HardwareInfo::new(blob).virtio_mmio_devices()
}

/// Encodes records in the wire format: the inverse of parsing, for tests and for tools that build blobs.
pub fn encode_records<'r>(records: impl IntoIterator<Item = (u64, &'r [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (hw_type, payload) in records {
        out.extend_from_slice(&hw_type.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}
