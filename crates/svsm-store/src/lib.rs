//! The SVSM secure store: an encrypted, authenticated, crash-safe, rollback-detecting object store on a
//! block device the untrusted host provides.
//!
//! * Objects are byte strings under fixed 64-bit ids ([`ids`]), changed in atomic transactions
//!   ([`Store::begin`] → [`Transaction::put`] / [`Transaction::delete`] → [`Transaction::commit`]).
//! * Every block is AES-256-GCM sealed under a fresh random nonce; each parent holds its children's nonce
//!   and tag, so the tags form a Merkle tree under a MAC'd superblock. Copy-on-write plus A/B superblocks make
//!   a commit atomic with a single flush.
//! * A [`Ledger`] outside the host's reach pins the current generation, so an old image is refused.
//!
//! `docs/store-format.md` is the normative format specification; [`mod@format`] mirrors it in code.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
mod bitmap;
pub mod clock;
pub mod crypto;
pub mod error;
pub mod format;
pub mod fuzzing;
pub mod ids;
pub mod ledger;
pub mod rng;
mod store;
mod tree;

pub use api::{Clock, Ledger, LedgerMode, LedgerRecord, RandomSource, VolumeId};
pub use clock::ManualClock;
#[cfg(feature = "std")]
pub use clock::MonotonicClock;
pub use crypto::{StoreKey, superblock_hash};
pub use error::{FeatureKind, LedgerError, RandomError, StoreError, Structure};
pub use ledger::Detached;
#[cfg(feature = "std")]
pub use ledger::{FileLedger, MemLedger, MemLedgerFault};
pub use rng::SeededRandom;
#[cfg(feature = "std")]
pub use rng::{OsRandom, PooledOsRandom};
pub use store::{
    FormatParams, Formatted, HeaderInfo, OpenOptions, OpenReport, Store, StoreStats, Transaction,
    read_headers,
};
