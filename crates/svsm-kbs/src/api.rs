//! What the key-release client needs from its surroundings: a byte channel to the host proxy and the
//! platform's attestation evidence. The SVSM kernel implements both over vsock/serial and the SNP firmware;
//! the host process over sockets and the simulated SNP platform.

use alloc::string::String;

use kbs_types::Tee;
use serde_json::Value;

use crate::error::KbsError;
use crate::frame::Frame;

/// A framed channel to the (untrusted) host proxy. One request is in flight at a time.
pub trait Channel {
    /// Sends one frame.
    fn send(&mut self, frame: &Frame) -> Result<(), KbsError>;
    /// Receives one frame, within the channel's time bound.
    fn recv(&mut self) -> Result<Frame, KbsError>;
}

/// The platform's attestation evidence for one attempt.
pub trait EvidenceProvider {
    /// The TEE this evidence is for (`snp`, or `sample` for development against a real KBS).
    fn tee(&self) -> Tee;
    /// Evidence binding `report_data` (the `primary_evidence` JSON the KBS's verifier for [`Self::tee`] reads).
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Value, String>;
}

impl<T: Channel + ?Sized> Channel for &mut T {
    fn send(&mut self, frame: &Frame) -> Result<(), KbsError> {
        (**self).send(frame)
    }
    fn recv(&mut self) -> Result<Frame, KbsError> {
        (**self).recv()
    }
}
