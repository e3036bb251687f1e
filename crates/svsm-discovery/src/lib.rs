//! How an SVSM finds the virtio-mmio devices the host gave it.
//!
//! The host describes its devices in one of two blobs, both untrusted input:
//!
//! * [`hardware_info`]: QEMU's fw_cfg file `etc/hardware-info`, a list of `{type, size}` records; type
//!   [`hardware_info::TYPE_VIRTIO_MMIO`] carries one MMIO base address.
//! * [`fdt`]: a flattened device tree (DTB), as passed in an IGVM parameter, whose nodes with
//!   `compatible = "virtio,mmio"` give `reg` (address, size) and an optional `plane`.
//!
//! Both are pure, bounds-checked parsers over a byte slice: every offset and length is checked before use,
//! work is linear in the blob's size, and every malformation is a precise [`DiscoveryError`], never a panic.
//! Both implement [`DeviceSource`] so the caller does not care which one the platform used.
//!
//! [`fw_cfg`] fetches `etc/hardware-info` from QEMU's fw_cfg device (selector/data port I/O, or DMA through a
//! platform transport) and hands it to the first parser. It is checked against QEMU's real fw_cfg device by
//! `crates/svsm-qtest/tests/fw_cfg.rs`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod error;
pub mod fdt;
pub mod fuzzing;
pub mod fw_cfg;
pub mod hardware_info;

pub use api::{DeviceSource, VirtioMmioDevice};
pub use error::DiscoveryError;
pub use fdt::{Fdt, virtio_mmio_from_fdt};
pub use hardware_info::{HardwareInfo, virtio_mmio_from_hardware_info};
