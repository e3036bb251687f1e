//! The store on top of the service ledger: commits anchored at the service, a forged acknowledgement never
//! taken as one, the lost answer settled by read-back, and rollback refused at open.

mod common;
use common::*;
use svsm_block::MemDisk;
use svsm_store::{
    FormatParams, LedgerError, LedgerMode, OpenOptions, SeededRandom, Store, StoreError, StoreKey,
};

const OBJECT: u64 = 0x1_0000;

fn store_key() -> StoreKey {
    StoreKey::from_bytes([1; 32])
}

fn fresh(rig: &Rig) -> Store<MemDisk, Client> {
    let mut dev = MemDisk::new(4096, 512).unwrap();
    let params = FormatParams::new(LedgerMode::Strict, Box::new(SeededRandom::new(3)));
    Store::<_, Client>::format(&mut dev, &store_key(), params).unwrap();
    let mut opts = OpenOptions::new(Box::new(SeededRandom::new(4)));
    opts.enroll = true;
    Store::open(dev, &store_key(), client_for(rig), opts).unwrap()
}

#[test]
fn a_forged_acknowledgement_is_settled_by_read_back_and_rollback_is_refused() {
    let rig = rig();
    let mut store = fresh(&rig);
    let volume = store.volume_id();
    for g in 2..=4u64 {
        let mut tx = store.begin();
        tx.put(OBJECT, &g.to_le_bytes()).unwrap();
        assert_eq!(tx.commit().unwrap(), g);
        assert_eq!(rig.service.record(&volume).unwrap().generation, g, "commit not anchored at the service");
    }
    // Keep a copy of the device at generation 4 to roll back to later.
    let old_image = store.close().unwrap();
    let mut store = Store::open(
        old_image.clone(),
        &store_key(),
        client_for(&rig),
        OpenOptions::new(Box::new(SeededRandom::new(5))),
    )
    .unwrap();
    // The host swallows the genuine "applied" for generation 5 and answers with a forgery.
    rig.tamper_next(|req, _| {
        let fake = svsm_ledger::LedgerKey::from_bytes([0; 32]);
        Ok(svsm_ledger::wire::seal_reply(Some(&fake), req, svsm_ledger::Outcome::Applied, u64::MAX).to_vec())
    });
    let mut tx = store.begin();
    tx.put(OBJECT, b"five").unwrap();
    match tx.commit() {
        Err(StoreError::Ledger(LedgerError::Unavailable(msg))) => assert!(msg.contains("forged"), "{msg}"),
        other => panic!("a forged acknowledgement was accepted: {other:?}"),
    }
    // Read-back: the service did apply it, so generation 5 is the one.
    store.sync_ledger().unwrap();
    assert_eq!(store.generation(), 5);
    assert_eq!(store.get(OBJECT).unwrap().unwrap().as_slice(), b"five");
    drop(store);
    // The host presents the generation-4 image again: refused, naming both generations.
    let err = Store::open(
        old_image,
        &store_key(),
        client_for(&rig),
        OpenOptions::new(Box::new(SeededRandom::new(6))),
    )
    .map(|_| ())
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Rollback { .. }), "{err:?}");
    assert!(msg.contains('4') && msg.contains('5'), "{msg}");
}

/// A fresh client to the rig's service (what a reboot gives the SVSM), with tampering shared.
fn client_for(rig: &Rig) -> Client {
    let mut t = svsm_ledger::testing::TamperTransport::new(rig.service.clone());
    t.log = rig.log.clone();
    t.tamper = rig.tamper.clone();
    svsm_ledger::ServiceLedger::new(VM, key(), t, SeededRandom::new(99))
}
