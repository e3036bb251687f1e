//! A strict-mode commit campaign through the ledger service while one etcd member (the leader) is killed and
//! later restarted: the campaign continues on the other two; no acknowledged commit is lost and no rollback is
//! accepted.

mod common;
use common::ledger::*;
use std::time::{Duration, Instant};
use svsm_block::MemDisk;
use svsm_store::{FormatParams, LedgerMode, OpenOptions, OsRandom, Store, StoreError, StoreKey};

const OBJECT: u64 = 0x1_0000;

/// Commits `value`; on an unknown outcome reads back until the ledger decides. Returns whether it was
/// acknowledged (adopted).
fn commit(store: &mut Store<MemDisk, Client>, value: u64) -> bool {
    let before = store.generation();
    let mut tx = store.begin();
    tx.put(OBJECT, &value.to_le_bytes()).unwrap();
    match tx.commit() {
        Ok(_) => true,
        Err(StoreError::Ledger(_)) => {
            let t0 = Instant::now();
            loop {
                match store.sync_ledger() {
                    Ok(()) => return store.generation() > before,
                    Err(StoreError::Ledger(_)) if t0.elapsed() < Duration::from_secs(60) => {
                        std::thread::sleep(Duration::from_millis(200))
                    }
                    Err(e) => panic!("read-back failed: {e}"),
                }
            }
        }
        Err(e) => panic!("commit of {value} failed: {e}"),
    }
}

fn stored(store: &mut Store<MemDisk, Client>) -> u64 {
    u64::from_le_bytes(store.get(OBJECT).unwrap().unwrap().as_slice().try_into().unwrap())
}

#[test]
fn the_campaign_continues_with_one_member_down_and_loses_nothing() {
    let mut cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (vm, key) = enrol(&cluster, dir.path(), "00112233445566778899aabbccddeeff");
    let svc = Service::start(&cluster, dir.path(), "svc");
    let store_key = StoreKey::from_bytes([3; 32]);
    let mut dev = MemDisk::new(4096, 256).unwrap();
    Store::<_, Client>::format(
        &mut dev,
        &store_key,
        FormatParams::new(LedgerMode::Strict, Box::new(OsRandom)),
    )
    .unwrap();
    let mut o = OpenOptions::new(Box::new(OsRandom));
    o.enroll = true;
    let mut store = Store::open(dev, &store_key, client(&svc.addr, vm, &key), o).unwrap();

    let mut acked = None;
    let mut killed = None;
    let mut snapshot = None;
    let mut during_outage = 0;
    for i in 1..=90u64 {
        if i == 30 {
            let leader = cluster.leader();
            cluster.kill_member(leader);
            killed = Some(leader);
        }
        if i == 60 {
            cluster.start_member(killed.unwrap());
        }
        if i == 20 {
            // Keep the image as of here (close and reopen: a reboot) to present it again at the end.
            let dev = store.close().unwrap();
            snapshot = Some(dev.clone());
            store = Store::open(
                dev,
                &store_key,
                client(&svc.addr, vm, &key),
                OpenOptions::new(Box::new(OsRandom)),
            )
            .unwrap();
        }
        if commit(&mut store, i) {
            acked = Some(i);
            if (30..60).contains(&i) {
                during_outage += 1;
            }
        }
        assert_eq!(Some(stored(&mut store)), acked, "commit {i}");
    }
    eprintln!(
        "killed member m{} (the leader) at commit 30, restarted at 60; {during_outage}/30 commits acknowledged meanwhile",
        killed.unwrap() + 1
    );
    assert!(during_outage >= 25, "only {during_outage} of 30 commits were acknowledged with a member down");
    cluster.wait_healthy(Duration::from_secs(60));
    let generation = store.generation();
    let dev = store.close().unwrap();
    // Reopen (a reboot) with a new client: the last acknowledged commit is there.
    let mut store =
        Store::open(dev, &store_key, client(&svc.addr, vm, &key), OpenOptions::new(Box::new(OsRandom)))
            .unwrap();
    assert_eq!(store.generation(), generation);
    assert_eq!(Some(stored(&mut store)), acked);
    drop(store);
    // The image from commit 20, presented again: refused.
    let err = Store::open(
        snapshot.unwrap(),
        &store_key,
        client(&svc.addr, vm, &key),
        OpenOptions::new(Box::new(OsRandom)),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, StoreError::Rollback { .. }), "{err}");
}
