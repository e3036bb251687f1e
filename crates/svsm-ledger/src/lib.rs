//! The freshness-ledger protocol: how an SVSM reads and compare-and-sets its volumes' ledger records at a
//! ledger service, through a host that relays the bytes but can neither forge nor replay an answer.
//!
//! - [`wire`]: the two fixed-size messages, their MACs and the checks a reply must pass (spec:
//!   `docs/ledger-protocol.md`);
//! - [`client::ServiceLedger`]: the store's [`svsm_store::Ledger`] trait on top, with the trusted time;
//! - [`frame`]: the byte-channel framing; [`tcp`] (with `std`): a TCP transport.
//!
//! `no_std` + `alloc` and synchronous: the service side's async runtime lives in `svsm-host`.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod api;
pub mod client;
pub mod error;
pub mod frame;
#[cfg(feature = "std")]
pub mod tcp;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use api::Transport;
pub use client::{ExchangeError, ServiceLedger};
pub use error::{ReplyError, RequestError, TransportError};
pub use wire::{LedgerKey, Outcome, Reply, Request, RequestKind, ServiceErrorCode, VmId};
