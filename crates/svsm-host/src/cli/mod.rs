//! One module per command group.

pub mod attest;
pub mod disk;
pub mod harness;
pub mod igvm;
pub mod kbs;
pub mod ledger;
pub mod serve;
pub mod store;
pub mod tpm;
pub mod uefi;
