//! Replies the relay made up or altered are refused as "unavailable", never taken as an answer.

mod common;
use common::*;
use svsm_ledger::LedgerKey;
use svsm_ledger::wire::{Outcome, REPLY_LEN, seal_reply};
use svsm_store::Ledger as _;

#[test]
fn every_single_bit_flip_of_a_reply_is_refused() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    for bit in 0..REPLY_LEN * 8 {
        rig.tamper_next(move |_, mut r| {
            r[bit / 8] ^= 1 << (bit % 8);
            Ok(r)
        });
        let got = rig.client.read(&VOLUME);
        assert!(got.is_err(), "bit {bit} flipped and the reply was accepted: {got:?}");
    }
    assert_eq!(rig.client.read(&VOLUME).unwrap(), Some(record(1)));
}

#[test]
fn a_reply_sealed_under_another_key_is_forged() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    // The host answers a read itself, claiming an older record, with a key it made up.
    rig.tamper_next(|req, _| {
        Ok(seal_reply(Some(&LedgerKey::from_bytes([1; 32])), req, Outcome::Current(None), 5).to_vec())
    });
    assert_unavailable(rig.client.read(&VOLUME), "forged");
    // ... or with no MAC at all.
    rig.tamper_next(|req, _| Ok(seal_reply(None, req, Outcome::Current(Some(record(0))), 5).to_vec()));
    assert_unavailable(rig.client.read(&VOLUME), "forged");
}

#[test]
fn a_forged_conflict_or_success_on_compare_and_set_is_unavailable() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    let fake = LedgerKey::from_bytes([2; 32]);
    let fake2 = fake.clone();
    // A fake "applied" must not let the store believe a commit is anchored...
    rig.tamper_next(move |req, _| Ok(seal_reply(Some(&fake), req, Outcome::Applied, 9).to_vec()));
    assert_unavailable(rig.client.compare_and_set(&VOLUME, Some(&record(1)), &record(2)), "forged");
    // (the genuine request did reach the service: read-back shows what really happened)
    assert_eq!(rig.client.read(&VOLUME).unwrap(), Some(record(2)));
    // ... and a fake "conflict" must not make it give up on a volume.
    rig.tamper_next(move |req, _| {
        Ok(seal_reply(Some(&fake2), req, Outcome::Conflict(Some(record(7))), 9).to_vec())
    });
    assert_unavailable(rig.client.compare_and_set(&VOLUME, Some(&record(2)), &record(3)), "forged");
}

#[test]
fn an_unauthenticated_service_error_is_only_unavailable() {
    let mut rig = rig();
    rig.tamper_next(|req, _| {
        Ok(seal_reply(None, req, Outcome::Error(svsm_ledger::ServiceErrorCode::Backend), 1).to_vec())
    });
    assert_unavailable(rig.client.read(&VOLUME), "unauthenticated");
}
