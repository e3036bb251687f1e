//! CFI parallel NOR flash, as QEMU's `pflash_cfi01` emulates it, used as an SVSM block device.
//!
//! * [`api`]: [`FlashMmio`], the six register accesses the driver needs, so the same driver runs on real
//!   MMIO in an SVSM ([`VolatileMmio`]) and on the device model in tests.
//! * [`Pflash`]: the driver. It discovers the geometry by CFI query, and exposes the flash as a
//!   [`svsm_block::BlockDevice`] whose block is one *erase block*.
//! * [`status`]: the status register and how each error bit maps to a [`svsm_block::BlockError`].
//! * With feature `model`, `model::PflashModel`: a test double of the device with real flash semantics and
//!   fault injection (power cuts mid-program and mid-erase, write protection, error bits, a stuck or hostile
//!   device), and `fuzzing`, the entry point of the cargo-fuzz target.
//!
//! Tests: `cargo test -p svsm-pflash` runs the conformance suite, the semantics, error and power-cut tests,
//! and seeded hostile/fault campaigns; `SVSM_LONG_TESTS=1` makes the campaigns 20 times longer. Fuzzing:
//! `cd crates/svsm-pflash/fuzz && cargo +nightly fuzz run driver`.
//!
//! # Why one block is one erase block
//!
//! NOR flash can only clear bits when programming; setting a bit back to 1 needs an erase, and an erase
//! always covers a whole erase block. If blocks were smaller than erase blocks, rewriting one block would
//! mean erasing its neighbours too and programming their old contents back, and a power cut between that
//! erase and that re-program would destroy data the caller never asked to touch. With block = erase block,
//! a write only ever erases and programs the blocks it was given: a power cut during it can leave *the block
//! being written* as garbage (partly erased, partly programmed), but never any other block. That is exactly
//! the [`svsm_block::BlockDevice`] contract for a failed write, and what the store's copy-on-write design
//! relies on.
//!
//! # Why flush is a no-op
//!
//! The device has no write cache. A program or erase is complete when the status register reports ready;
//! the driver polls for that before `write_blocks` returns, then reads the data back to verify it. So every
//! write that returned is already on the medium, `flush` has nothing to do, and
//! [`svsm_block::WriteMode::Durable`] costs nothing extra. (Whether the *host* persists its backing file is
//! outside the guest's control for every device; the store's rollback protection covers that.)
#![no_std]

extern crate alloc;

pub mod api;
mod cfi;
mod driver;
pub mod error;
mod mmio;
pub mod status;

#[cfg(feature = "model")]
pub mod fuzzing;
#[cfg(feature = "model")]
pub mod model;

pub use api::{BusWidth, FlashMmio};
pub use cfi::Geometry;
pub use driver::{DEFAULT_POLL_LIMIT, Pflash, PflashConfig};
pub use error::ProbeError;
pub use mmio::VolatileMmio;
