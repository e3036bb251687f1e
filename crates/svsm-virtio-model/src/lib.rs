//! **Test double**: a virtio-blk *device* model, for testing the real `virtio-drivers` driver on a host.
//!
//! There is no virtio device on a development machine, and virtio-drivers exports none of its fakes, so
//! this crate provides the device side of the protocol, implemented byte for byte from the virtio 1.2
//! specification (split virtqueues, section 2.7; block device, section 5.2): descriptor chains, INDIRECT
//! descriptor tables, EVENT_IDX notification suppression, the `{type, reserved, sector}` request header,
//! IN / OUT / FLUSH / GET_ID, the status byte and the `{id, len}` used ring with release ordering.
//! It plugs into the driver as a `virtio_drivers::transport::Transport` and stores data in any
//! [`svsm_block::BlockDevice`] (a `MemDisk` or a `FileDisk`).
//!
//! Two properties make it useful beyond a happy-path fake:
//! * **Guest RAM is an arena** ([`GuestMemory`]): the device can only touch registered regions; a driver
//!   that hands it any other address gets a recorded [`ModelError`] (and a device that stops, as
//!   `DEVICE_NEEDS_RESET`), never undefined behaviour.
//! * **It can be hostile** ([`Adversary`], from a seed or fuzz bytes): garbage and spurious status bytes,
//!   missing status, used-ring ids that were never submitted or alias modulo 2^16, bogus used lengths,
//!   duplicate completions, `used.idx` jumps, stalled requests, and configuration that lies or changes between
//!   reads (capacity, `blk_size`, config generation), queues that are "in use" or too small. Every decision is
//!   logged as an [`Event`] so a test knows what outcome each request deserved.
//!
//! Not modelled: MMIO or PCI register side effects (the transport is the trait itself), interrupts beyond
//! the ISR flag, multiple queues, packed rings, discard and write-zeroes.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod adversary;
mod device;
pub mod error;
mod memory;
pub mod wire;

pub use adversary::{Action, Choices, ConfigAttack, Event};
pub use device::{Adversary, ModelHandle, ModelOptions, VirtioBlkModel};
pub use error::ModelError;
pub use memory::GuestMemory;
