//! `svsm-host` as a library: the command implementations, the host state model and the vTPM servers, so
//! integration tests, benchmarks and fuzz targets use the same code as the binary (`src/main.rs`).

pub mod cli;
pub mod kbs;
pub mod ledger;
pub mod sockets;
pub mod state;
pub mod uefi;
pub mod vtpm;
pub mod window;
