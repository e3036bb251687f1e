//! The ledger service dies with a compare-and-set in flight: once after etcd applied it (the answer never
//! reaches the VM) and once before the request reached it. Either way the store reads back through a restarted
//! service and decides correctly: adopts the commit that the ledger holds, discards the one it does not.

mod common;
use common::ledger::*;
use std::sync::{Arc, Mutex};
use svsm_block::MemDisk;
use svsm_ledger::tcp::TcpTransport;
use svsm_ledger::{ServiceLedger, Transport, TransportError};
use svsm_store::{FormatParams, LedgerMode, OpenOptions, OsRandom, Store, StoreError, StoreKey};

const OBJECT: u64 = 0x1_0000;

/// When the host relay kills the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Never,
    /// After the service answered the next compare-and-set (so etcd applied it), before the VM sees the answer.
    AfterApplying,
    /// Before the next compare-and-set reaches the service.
    BeforeSending,
}

/// The host's relay: forwards to the current service address and kills the service when told to.
#[derive(Debug)]
struct Relay {
    inner: Option<(String, TcpTransport)>,
    service: Arc<Mutex<Service>>,
    kill: Arc<Mutex<Kill>>,
}

impl Transport for Relay {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        // Relay to wherever the service runs now (a restarted one listens elsewhere).
        let addr = self.service.lock().unwrap().addr.clone();
        if self.inner.as_ref().is_none_or(|(a, _)| *a != addr) {
            self.inner = Some((addr.clone(), TcpTransport::new(addr, std::time::Duration::from_secs(10))));
        }
        let inner = &mut self.inner.as_mut().unwrap().1;
        let is_cas = request.get(4) == Some(&2);
        let kill = *self.kill.lock().unwrap();
        if is_cas && kill == Kill::BeforeSending {
            *self.kill.lock().unwrap() = Kill::Never;
            self.service.lock().unwrap().kill();
            return inner.exchange(request); // the service is gone: connection reset / refused
        }
        let reply = inner.exchange(request)?;
        if is_cas && kill == Kill::AfterApplying {
            *self.kill.lock().unwrap() = Kill::Never;
            self.service.lock().unwrap().kill();
            return Err(TransportError::Io("service died before its answer was relayed".into()));
        }
        Ok(reply)
    }
}

fn stored(store: &mut Store<MemDisk, ServiceLedger<Relay, OsRandom>>) -> Vec<u8> {
    store.get(OBJECT).unwrap().unwrap().to_vec()
}

#[test]
fn a_service_killed_mid_compare_and_set_is_settled_by_read_back() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (vm, key) = enrol(&cluster, dir.path(), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    let service = Arc::new(Mutex::new(Service::start(&cluster, dir.path(), "svc1")));
    let kill = Arc::new(Mutex::new(Kill::Never));
    let relay = Relay { inner: None, service: service.clone(), kill: kill.clone() };
    let store_key = StoreKey::from_bytes([4; 32]);
    let mut dev = MemDisk::new(4096, 128).unwrap();
    Store::<_, ServiceLedger<Relay, OsRandom>>::format(
        &mut dev,
        &store_key,
        FormatParams::new(LedgerMode::Strict, Box::new(OsRandom)),
    )
    .unwrap();
    let mut o = OpenOptions::new(Box::new(OsRandom));
    o.enroll = true;
    let mut store =
        Store::open(dev, &store_key, ServiceLedger::new(vm, key.clone(), relay, OsRandom), o).unwrap();
    let mut tx = store.begin();
    tx.put(OBJECT, b"one").unwrap();
    assert_eq!(tx.commit().unwrap(), 2);

    for (n, (mode, value, adopted)) in
        [(Kill::AfterApplying, &b"two"[..], true), (Kill::BeforeSending, &b"three"[..], false)]
            .into_iter()
            .enumerate()
    {
        let before = store.generation();
        let before_value = stored(&mut store);
        *kill.lock().unwrap() = mode;
        let mut tx = store.begin();
        tx.put(OBJECT, value).unwrap();
        match tx.commit() {
            Err(StoreError::Ledger(svsm_store::LedgerError::Unavailable(_))) => {}
            other => panic!("{mode:?}: expected an unknown outcome, got {other:?}"),
        }
        // Until the ledger answers, the store decides nothing.
        assert!(
            matches!(store.sync_ledger(), Err(StoreError::Ledger(_))),
            "{mode:?}: read-back with no service"
        );
        // The operator restarts the service (a new instance, new port); the host relays to it.
        let fresh = Service::start(&cluster, dir.path(), &format!("svc{}", n + 2));
        *service.lock().unwrap() = fresh;
        store.sync_ledger().unwrap();
        if adopted {
            assert_eq!(store.generation(), before + 1, "{mode:?}: the applied commit was not adopted");
            assert_eq!(stored(&mut store), value);
        } else {
            assert_eq!(store.generation(), before, "{mode:?}: a commit the ledger never saw was adopted");
            assert_eq!(stored(&mut store), before_value);
        }
        // And the store carries on.
        let mut tx = store.begin();
        tx.put(OBJECT, b"after").unwrap();
        tx.commit().unwrap();
    }
    let generation = store.generation();
    let dev = store.close().unwrap();
    let addr = service.lock().unwrap().addr.clone();
    let mut reopened =
        Store::open(dev, &store_key, client(&addr, vm, &key), OpenOptions::new(Box::new(OsRandom))).unwrap();
    assert_eq!(reopened.generation(), generation);
    assert_eq!(reopened.get(OBJECT).unwrap().unwrap().as_slice(), b"after");
}
