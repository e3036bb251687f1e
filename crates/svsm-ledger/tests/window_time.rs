//! A window-mode store over the service ledger measures its window on the service's authenticated time,
//! carried forward by the local clock, and exposes that time (for the vTPM's clock and policy).

mod common;
use common::*;
use svsm_block::MemDisk;
use svsm_store::{FormatParams, LedgerMode, ManualClock, OpenOptions, SeededRandom, Store, StoreKey};

fn client_for(rig: &Rig) -> Client {
    let t = svsm_ledger::testing::TamperTransport::new(rig.service.clone());
    svsm_ledger::ServiceLedger::new(VM, key(), t, SeededRandom::new(99))
}

#[test]
fn the_window_runs_on_trusted_time_and_the_time_is_exposed() {
    let rig = rig();
    *rig.service.clock_ms.lock().unwrap() = 1_700_000_000_000;
    let mut dev = MemDisk::new(4096, 256).unwrap();
    let key = StoreKey::from_bytes([1; 32]);
    let params = FormatParams::new(LedgerMode::Window { seconds: 10 }, Box::new(SeededRandom::new(3)));
    Store::<_, Client>::format(&mut dev, &key, params).unwrap();
    let local = ManualClock::new(5);
    let mut opts = OpenOptions::new(Box::new(SeededRandom::new(4)));
    opts.enroll = true;
    opts.clock = Some(Box::new(local.clone()));
    let mut store = Store::open(dev, &key, client_for(&rig), opts).unwrap();
    let volume = store.volume_id();
    // Open (enrolment, then the boot commit) talked to the service: its time is now the store's.
    let t0 = store.trusted_time_ms().expect("the service stamps every reply");
    assert!(t0 > 1_700_000_000_000, "{t0}");
    assert_eq!(store.window_clock_ms(), Some(t0), "the window clock is not on trusted time");
    local.advance(4_000);
    assert_eq!(store.window_clock_ms(), Some(t0 + 4_000), "not carried forward by the local clock");
    let mut tx = store.begin();
    tx.put(0x1_0000, b"inside").unwrap();
    tx.commit().unwrap();
    assert_ne!(rig.service.record(&volume), Some(store.ledger_record()), "advanced inside the window");
    // The service's clock moves on by a minute; the local clock by the rest of the window.
    *rig.service.clock_ms.lock().unwrap() += 60_000;
    local.advance(6_000);
    let mut tx = store.begin();
    tx.put(0x1_0000, b"due").unwrap();
    tx.commit().unwrap();
    assert_eq!(rig.service.record(&volume), Some(store.ledger_record()), "a due commit did not advance");
    let t1 = store.trusted_time_ms().unwrap();
    assert!(t1 >= t0 + 60_000, "trusted time not refreshed by the advance: {t0} -> {t1}");
    assert_eq!(store.window_clock_ms(), Some(t1), "the window clock did not re-anchor to the new reply");
}
