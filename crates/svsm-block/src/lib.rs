//! One block-storage interface for every device an SVSM persists to.
//!
//! The host provides all storage a confidential VM has, so this layer promises only transport: geometry,
//! reads, writes with a stated durability, and a flush barrier, with an error for each way a transfer can
//! fail. Confidentiality, integrity and freshness are the secure store's job (`svsm-store`), built on top.
//!
//! * [`api`]: the [`BlockDevice`] trait and [`DeviceInfo`] request validation shared by all backends.
//! * [`MemDisk`] (RAM) and, with `std`, [`FileDisk`] (a host file, `flush` = `fdatasync`).
//! * With `fault`, [`fault::FaultDisk`]: a wrapper that models a volatile write cache, power cuts, injected
//!   errors and a host replaying old block versions, for crash and tamper campaigns.
//! * With `conformance`, [`conformance`]: the one test suite every backend must pass.
//!
//! Other backends live in their own crates: virtio-blk (`svsm-block-virtio`), PFlash (`svsm-pflash`).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod error;
mod mem;
#[cfg(feature = "fault")]
mod rng;

#[cfg(feature = "fault")]
pub mod fault;

#[cfg(feature = "std")]
mod file;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use api::{BlockDevice, DeviceInfo, MIN_BLOCK_SIZE, WriteMode};
pub use error::{BlockError, IoCause, IoOp};
#[cfg(feature = "std")]
pub use file::{FileDisk, FileDiskError};
pub use mem::MemDisk;
