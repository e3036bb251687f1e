//! The SVSM side: [`ServiceLedger`] puts the protocol behind the store's `Ledger` trait.

use alloc::format;

use svsm_store::{Ledger, LedgerError, LedgerRecord, RandomSource, VolumeId};

use crate::api::Transport;
use crate::error::ReplyError;
use crate::wire::{LedgerKey, Outcome, Request, RequestKind, VmId, open_reply};

/// Why an exchange gave no trustworthy answer (each becomes `LedgerError::Unavailable`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// No fresh nonce could be drawn.
    #[error("no randomness for a nonce: {0}")]
    Random(svsm_store::RandomError),
    /// The channel failed.
    #[error(transparent)]
    Transport(#[from] crate::error::TransportError),
    /// The reply was refused.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// A ledger held by the ledger service, reached over a [`Transport`] through the host.
///
/// Every exchange carries a fresh 32-byte nonce; a reply counts only if it verifies under the VM's ledger
/// key and binds that nonce, the volume and the exact request. Anything else (a forged, replayed, truncated
/// or cross-volume reply, a lost connection) is `Unavailable`, the trait's "outcome unknown", on which the
/// store reads the record back before deciding. A conflict is reported only from an authentic reply.
///
/// Each reply also carries the service's clock; the latest one is kept as the trusted time
/// ([`ServiceLedger::trusted_time_ms`]) and a reply older than it is refused.
#[derive(Debug)]
pub struct ServiceLedger<T, R> {
    vm: VmId,
    key: LedgerKey,
    transport: T,
    rng: R,
    trusted_time_ms: Option<u64>,
}

impl<T: Transport, R: RandomSource> ServiceLedger<T, R> {
    /// A client for VM `vm` with its ledger key.
    pub fn new(vm: VmId, key: LedgerKey, transport: T, rng: R) -> Self {
        ServiceLedger { vm, key, transport, rng, trusted_time_ms: None }
    }

    /// Starts from a trusted time already known (e.g. kept across a reboot in the store), so replies older
    /// than it are refused from the first exchange on.
    pub fn with_trusted_time_ms(mut self, t: u64) -> Self {
        self.trusted_time_ms = Some(t);
        self
    }

    /// The latest service time seen in an authentic, fresh reply (ms since the Unix epoch); never goes back.
    /// For the vTPM's clock and for policy ("not after").
    pub fn trusted_time_ms(&self) -> Option<u64> {
        self.trusted_time_ms
    }

    /// The transport (tests: to inject faults between exchanges).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// One authenticated exchange.
    pub fn exchange(&mut self, volume: &VolumeId, kind: RequestKind) -> Result<Outcome, ExchangeError> {
        let mut nonce = [0u8; 32];
        self.rng.fill(&mut nonce).map_err(ExchangeError::Random)?;
        let request = Request { vm: self.vm, volume: *volume, nonce, kind };
        let bytes = request.seal(&self.key);
        let reply_bytes = self.transport.exchange(&bytes)?;
        let reply = open_reply(&reply_bytes, &self.key, &request, &bytes)?;
        if let Some(latest) = self.trusted_time_ms
            && reply.service_time_ms < latest
        {
            return Err(ReplyError::ClockWentBack { found: reply.service_time_ms, latest }.into());
        }
        self.trusted_time_ms = Some(reply.service_time_ms);
        Ok(reply.outcome)
    }
}

fn unavailable(volume: &VolumeId, e: ExchangeError) -> LedgerError {
    tracing::warn!(volume = %volume, error = %e, "ledger service exchange gave no trusted answer");
    LedgerError::Unavailable(format!("ledger service: {e}"))
}

fn unexpected(what: Outcome) -> LedgerError {
    // open_reply already refuses statuses that do not fit the request; this is unreachable in practice.
    LedgerError::Unavailable(format!("ledger service: unexpected answer {what:?}"))
}

impl<T: Transport, R: RandomSource> Ledger for ServiceLedger<T, R> {
    fn read(&mut self, volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError> {
        match self.exchange(volume, RequestKind::Read) {
            Ok(Outcome::Current(r)) => Ok(r),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(unavailable(volume, e)),
        }
    }

    fn compare_and_set(
        &mut self,
        volume: &VolumeId,
        expected: Option<&LedgerRecord>,
        new: &LedgerRecord,
    ) -> Result<(), LedgerError> {
        let kind = RequestKind::CompareAndSet { expected: expected.copied(), new: *new };
        match self.exchange(volume, kind) {
            Ok(Outcome::Applied) => Ok(()),
            Ok(Outcome::Conflict(current)) => Err(LedgerError::Conflict { current }),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(unavailable(volume, e)),
        }
    }

    fn trusted_time_ms(&self) -> Option<u64> {
        self.trusted_time_ms
    }
}
