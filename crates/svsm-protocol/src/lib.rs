//! The SVSM calls a guest makes, as a library: wire types, the calling area, guest-memory copy-in/copy-out,
//! and a dispatcher for the core, attestation and vTPM protocols.
//!
//! A guest reaches the SVSM only through calls (RAX = `(protocol << 32) | call`, parameters in RCX/RDX/R8/R9)
//! and buffers in its own memory, and the Linux (`tpm_svsm`, `sev-guest` configfs-tsm) and EDK2 drivers
//! already exist, so every byte and every result code here follows what those peers do, including their
//! retry contracts. Everything a guest supplies is untrusted: it is bounds-checked, copied in once, and
//! results are copied out; no Rust reference into guest memory exists.
//!
//! * [`api`]: [`GuestMemory`] and the platform services ([`VtpmService`], [`SnpPlatform`], ...).
//! * [`wire`]: every guest-memory structure with compile-time layout asserts.
//! * [`Svsm`] ([`dispatch`]): decodes RAX and runs [`core_protocol`], [`attest`] and [`vtpm`] calls.
//! * [`registry`]: [`ProtocolHandler`], protocols served outside this crate (UEFI variables), registered
//!   with [`Svsm::register_protocol`] without changing `Svsm::new`.
//! * [`manifest`], [`guid`]: the services manifest, GUIDs. TPM structures (templates, CreatePrimary, the
//!   TPMT_PUBLIC codec) are `svsm_vtpm::marshal`'s, the one TPM codec of the workspace.
//! * With `doubles`: [`model`], the page-state (RMP) and vCPU models a host-side SVSM runs against (test
//!   doubles of SNP hardware; never in the no_std kernel build).
//! * With `doubles`: [`doubles`], test doubles for the vTPM and the SNP firmware.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod api;
pub mod attest;
pub mod core_protocol;
pub mod dispatch;
pub mod error;
pub mod guest;
pub mod guid;
pub mod manifest;
pub mod memory;
#[cfg(feature = "doubles")]
pub mod model;
pub mod registry;
pub mod vtpm;
pub mod wire;

#[cfg(feature = "doubles")]
pub mod doubles;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use api::{
    CertificateRequest, GuestMemory, PageSize, PageStatePlatform, PvalidateFailure, SnpPlatform,
    SnpReportResponse, VcpuPlatform, VcpuRequest, VtpmService,
};
pub use dispatch::{Registers, Svsm, SvsmConfig, call_rax};
pub use error::{GuestMemoryError, PlatformError, SvsmError, VtpmError};
pub use guid::Guid;
pub use memory::VecGuestMemory;
pub use registry::{CallContext, ProtocolHandler};

/// Size of an SNP ATTESTATION_REPORT (versions 2 to 5).
pub const SNP_REPORT_SIZE: usize = 0x4A0;
