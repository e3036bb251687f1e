//! Test helpers: an in-process service over a `MemLedger` (a double of the etcd service, for protocol tests
//! only; the service tests run the real one on a real etcd cluster) and a transport the test can tamper with.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use std::sync::{Arc, Mutex};

use svsm_store::{Ledger as _, LedgerError, MemLedger, VolumeId};

use crate::api::Transport;
use crate::error::TransportError;
use crate::wire::{LedgerKey, Outcome, Request, RequestKind, ServiceErrorCode, VmId, seal_reply};

/// Answers requests the way the service does, with records in a `MemLedger` and a settable clock.
#[derive(Debug, Clone)]
pub struct MemService {
    /// Records.
    pub ledger: MemLedger,
    /// The one enrolled VM and its key.
    pub vm: VmId,
    key: LedgerKey,
    /// The clock the next reply carries.
    pub clock_ms: Arc<Mutex<u64>>,
}

impl MemService {
    /// A service with one enrolled VM.
    pub fn new(vm: VmId, key: LedgerKey) -> Self {
        MemService { ledger: MemLedger::new(), vm, key, clock_ms: Arc::new(Mutex::new(1_000)) }
    }

    /// The reply the service sends to `bytes`.
    pub fn answer(&self, bytes: &[u8]) -> Vec<u8> {
        let now = {
            let mut c = self.clock_ms.lock().unwrap_or_else(|p| p.into_inner());
            *c += 1;
            *c
        };
        let err = |code| seal_reply(None, bytes, Outcome::Error(code), now).to_vec();
        match Request::claimed_vm(bytes) {
            Ok(vm) if vm == self.vm => {}
            Ok(_) => return err(ServiceErrorCode::UnknownVm),
            Err(e) => return err(e.into()),
        }
        let req = match Request::open(bytes, &self.key) {
            Ok(r) => r,
            Err(e) => return err(e.into()),
        };
        let mut ledger = self.ledger.clone();
        let outcome = match req.kind {
            RequestKind::Read => match ledger.read(&req.volume) {
                Ok(r) => Outcome::Current(r),
                Err(_) => Outcome::Error(ServiceErrorCode::Backend),
            },
            RequestKind::CompareAndSet { expected, new } => {
                match ledger.compare_and_set(&req.volume, expected.as_ref(), &new) {
                    Ok(()) => Outcome::Applied,
                    Err(LedgerError::Conflict { current }) => Outcome::Conflict(current),
                    Err(_) => Outcome::Error(ServiceErrorCode::Backend),
                }
            }
        };
        seal_reply(Some(&self.key), bytes, outcome, now).to_vec()
    }

    /// The record of `volume` (bypassing the protocol).
    pub fn record(&self, volume: &VolumeId) -> Option<svsm_store::LedgerRecord> {
        self.ledger.record(volume)
    }
}

/// What a [`TamperTransport`] does to the next reply.
pub type Tamper = alloc::boxed::Box<dyn FnMut(&[u8], Vec<u8>) -> Result<Vec<u8>, TransportError> + Send>;

/// Every (request, genuine reply) exchanged, in order.
pub type ExchangeLog = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

/// A transport to a [`MemService`] that records every exchange and lets the test rewrite replies (the
/// relaying host's powers).
#[derive(Default)]
pub struct TamperTransport {
    service: Option<MemService>,
    /// Every (request, genuine reply) so far.
    pub log: ExchangeLog,
    /// One-shot tampering functions applied to the next replies, in order.
    pub tamper: Arc<Mutex<VecDeque<Tamper>>>,
}

impl core::fmt::Debug for TamperTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TamperTransport").finish_non_exhaustive()
    }
}

impl TamperTransport {
    /// A transport to `service`.
    pub fn new(service: MemService) -> Self {
        TamperTransport { service: Some(service), ..Default::default() }
    }
}

impl Transport for TamperTransport {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let service = self.service.as_ref().ok_or(TransportError::Io("no service".into()))?;
        let reply = service.answer(request);
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push((request.to_vec(), reply.clone()));
        let next = self.tamper.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        match next {
            Some(mut f) => f(request, reply),
            None => Ok(reply),
        }
    }
}
