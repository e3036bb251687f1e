//! virtio-blk for the SVSM block layer: the real `virtio-drivers` 0.13 driver behind
//! [`svsm_block::BlockDevice`], with a HAL fit for an SEV-SNP guest.
//!
//! * [`VirtioBlk`] (in [`blk`]): geometry from the device (512-byte sectors, or the device's `blk_size` when it
//!   offers `VIRTIO_BLK_F_BLK_SIZE`), read-only from `VIRTIO_BLK_F_RO`, flush through the driver,
//!   `WriteMode::Durable` = write + flush (virtio-blk has no FUA), requests of up to 1 MiB in one descriptor,
//!   bounded polling, and a precise [`svsm_block::BlockError`] for every way the device can fail or lie.
//! * [`SevBounceHal`] (in [`hal`]): `share` copies through host-shared bounce pages, `unshare` copies
//!   device-writable buffers back; the device never gets a pointer into private memory.
//! * [`BouncePool`] (in [`pool`]): the host-shared pages, converted once through a [`PageStateChange`]
//!   (PVALIDATE + GHCB page-state change on SNP; [`host::NoopPageState`] on a host).
//! * [`BoundedTransport`] (in [`transport`]): bounds the driver's config-generation retry loop.
//!
//! # Upstream limitations (virtio-drivers 0.13), and what we do about them
//! * `VirtIOBlk::flush` and `device_id` have no non-blocking form and spin on the used ring **without a
//!   bound**: a host that never completes a flush hangs the caller. This is denial of service, which the host
//!   can always cause, but it is not a bounded error. Reads and writes avoid it by using `*_nb` with our own
//!   bounded poll ([`VirtioBlkConfig::poll_limit`]).
//! * The driver reads the used-ring id as `id as u16`: an id of `token + k * 65536` is accepted as `token`. The
//!   data path is unaffected (the request really was that one), so we accept it too.
//! * The used-ring `len` is discarded by `VirtIOBlk`, so a wrong length cannot be detected through its API.
//!   It cannot cause harm here: bounce buffers are copied back whole and were filled with
//!   [`hal::POISON`] before the device saw them, so unwritten bytes are never stale or private data.
//! * For flush, the driver folds IOERR and undefined status bytes into one `Error::IoError`; for reads and
//!   writes we read the status byte ourselves and report undefined ones as `DeviceMisbehaved`.
//! * `Hal::share` cannot fail; on bounce-pool exhaustion [`SevBounceHal`] hands the device an address
//!   outside guest RAM and counts it ([`BounceHal::failed_shares`]); the request is then failed with
//!   `NoMemory` and the handle poisoned (a blocking flush in that state may not return).
//! * `Transport::read_consistent` retries forever; [`BoundedTransport`] replaces it with a bounded loop.
//! * A request abandoned after a ring violation (`WrongToken`) or a timeout keeps its driver-side INDIRECT
//!   table allocation (`Box::leak` until a `pop_used` that never comes: 48 bytes of private heap) and its bounce
//!   pages. This is the price of never completing a request the device may still own; it is bounded by one
//!   request per poisoned device. (The fuzz target therefore suppresses exactly that leak in LeakSanitizer and
//!   reclaims the test pool between inputs.)
//!
//! No panic of the driver was reached by the adversarial campaign or the fuzzer: every hostile behaviour
//! above ends in `Ok` with the data the device wrote, or in a precise error.
//!
//! # Tests
//! `cargo test -p svsm-block-virtio` runs the shared conformance suite (MemDisk- and FileDisk-backed model,
//! with and without INDIRECT/EVENT_IDX), targeted error tests, and 2,000 seeded adversarial runs
//! (`fuzzing::run`, feature `fuzzing`); `SVSM_LONG_TESTS=1` runs 40,000. The fuzz target lives in
//! `crates/svsm-block-virtio/fuzz` (`cargo +nightly fuzz run adversarial_device`, or `make fuzz`).
//!
//! virtio-drivers' `MmioTransport` is not exercised on the host (its registers have side effects that plain
//! memory cannot model); everything above the `Transport` trait is, against the `svsm-virtio-model` device,
//! and against QEMU's real `virtio-blk-device` on virtio-mmio through svsm-qtest's qtest transport (with the
//! bounce pool in guest RAM shared with QEMU: `crates/svsm-qtest/tests/virtio_blk.rs`).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod blk;
pub mod error;
pub mod hal;
pub mod host;
pub mod pool;
pub mod transport;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use api::{BounceHal, BouncePlatform, PageStateChange};
pub use blk::{VirtioBlk, VirtioBlkConfig};
pub use error::{PageStateError, PoolError};
pub use hal::SevBounceHal;
pub use pool::{BouncePool, SharedRegion};
pub use transport::BoundedTransport;
