//! The one thing the client needs from its environment: a byte channel to the service through the host.

use alloc::vec::Vec;

use crate::error::TransportError;

/// A request/reply byte channel to the ledger service, relayed by the (untrusted) host. It carries opaque
/// messages; everything that matters is checked by the client, so a transport may lose, delay, replay or
/// alter bytes and the worst outcome is "unavailable".
pub trait Transport: core::fmt::Debug + Send {
    /// Sends one request message and returns the next reply message. An error means the outcome is unknown:
    /// the request may or may not have reached the service.
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, TransportError>;
}

impl<T: Transport + ?Sized> Transport for alloc::boxed::Box<T> {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).exchange(request)
    }
}
