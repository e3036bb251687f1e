//! Shared set-up: a client talking to the in-process service double through a tampering relay.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use svsm_ledger::testing::{MemService, Tamper, TamperTransport};
use svsm_ledger::{LedgerKey, ServiceLedger, VmId};
use svsm_store::{LedgerRecord, SeededRandom, VolumeId};

pub type Client = ServiceLedger<TamperTransport, SeededRandom>;

pub struct Rig {
    pub client: Client,
    pub service: MemService,
    pub log: svsm_ledger::testing::ExchangeLog,
    pub tamper: Arc<Mutex<std::collections::VecDeque<Tamper>>>,
}

pub const VM: VmId = VmId([0x11; 16]);
pub const VOLUME: VolumeId = VolumeId([0x22; 16]);
pub const OTHER_VOLUME: VolumeId = VolumeId([0x33; 16]);

pub fn key() -> LedgerKey {
    LedgerKey::from_bytes([0x44; 32])
}

pub fn record(generation: u64) -> LedgerRecord {
    LedgerRecord { generation, superblock_hash: [generation as u8; 32] }
}

pub fn rig() -> Rig {
    let service = MemService::new(VM, key());
    let transport = TamperTransport::new(service.clone());
    let log = transport.log.clone();
    let tamper = transport.tamper.clone();
    let client = ServiceLedger::new(VM, key(), transport, SeededRandom::new(7));
    Rig { client, service, log, tamper }
}

impl Rig {
    /// Replaces the next reply with what `f` makes of (request, genuine reply).
    pub fn tamper_next(
        &self,
        f: impl FnMut(&[u8], Vec<u8>) -> Result<Vec<u8>, svsm_ledger::TransportError> + Send + 'static,
    ) {
        self.tamper.lock().unwrap().push_back(Box::new(f));
    }

    pub fn last_reply(&self) -> Vec<u8> {
        self.log.lock().unwrap().last().unwrap().1.clone()
    }
}

/// The error must be "unavailable" (outcome unknown), naming `what`.
pub fn assert_unavailable(r: Result<impl std::fmt::Debug, svsm_store::LedgerError>, what: &str) {
    match r {
        Err(svsm_store::LedgerError::Unavailable(msg)) => {
            assert!(msg.contains(what), "{msg:?} lacks {what:?}")
        }
        other => panic!("expected Unavailable({what}), got {other:?}"),
    }
}
