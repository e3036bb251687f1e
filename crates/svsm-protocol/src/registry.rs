//! Protocols served by components outside this crate (UEFI variables, ...), registered with the dispatcher.
//!
//! The built-in protocols (core, attestation, vTPM) are part of [`Svsm`](crate::Svsm) itself. Any further
//! protocol implements [`ProtocolHandler`] and is added with [`Svsm::register_protocol`](crate::Svsm::register_protocol)
//! (or the builder form [`Svsm::with_protocol`](crate::Svsm::with_protocol)), so adding a protocol never changes
//! `Svsm::new`'s signature for its callers. A registered handler is reached by its protocol number in RAX, is
//! listed by QUERY_PROTOCOL with its version range, and may add one entry to the services manifest.

use alloc::vec::Vec;

use crate::api::GuestMemory;
use crate::dispatch::{Registers, SvsmConfig};
use crate::error::SvsmError;
use crate::guid::Guid;

/// What a registered handler may ask of the SVSM while it runs a call.
#[derive(Debug, Clone, Copy)]
pub struct CallContext {
    config: SvsmConfig,
}

impl CallContext {
    pub(crate) fn new(config: SvsmConfig) -> Self {
        CallContext { config }
    }

    /// Checks that `[gpa, gpa + len)` is guest memory and does not touch SVSM memory (INVALID_ADDRESS
    /// otherwise): the same check the built-in protocols apply before any copy-in.
    pub fn check_guest_range(&self, mem: &dyn GuestMemory, gpa: u64, len: u64) -> Result<(), SvsmError> {
        crate::dispatch::check_guest_range(&self.config, mem, gpa, len)
    }
}

/// One SVSM protocol implemented outside `svsm-protocol`.
pub trait ProtocolHandler: core::fmt::Debug {
    /// The protocol number (RAX bits 63..32). Numbers 0..=2 belong to the built-in protocols.
    fn protocol(&self) -> u32;
    /// Supported versions, `(min, max)`, as QUERY_PROTOCOL reports them.
    fn versions(&self) -> (u32, u32);
    /// Runs `call` with the guest's registers; on `Ok` RAX becomes SVSM_SUCCESS, on `Err` the error's code.
    /// Guest memory is reached only through `mem` (copy-in / copy-out) after `ctx.check_guest_range`.
    fn handle_call(
        &mut self,
        ctx: &CallContext,
        mem: &mut dyn GuestMemory,
        regs: &mut Registers,
        call: u32,
    ) -> Result<(), SvsmError>;
    /// The service's entry in the services manifest (GUID and body), if it has one; read at every
    /// attestation request so it reflects the current state.
    fn manifest_entry(&mut self) -> Option<(Guid, Vec<u8>)> {
        None
    }
}
