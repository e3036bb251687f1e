//! Genuine replies to earlier requests, replayed by the relay, are refused.

mod common;
use common::*;
use svsm_store::Ledger as _;

#[test]
fn an_old_authentic_reply_replayed_is_refused() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    // The read reply that says "generation 1".
    assert_eq!(rig.client.read(&VOLUME).unwrap(), Some(record(1)));
    let old_read = rig.last_reply();
    rig.client.compare_and_set(&VOLUME, Some(&record(1)), &record(2)).unwrap();
    // The host now answers the next read with the old genuine one, to make generation 1 look current.
    rig.tamper_next(move |_, _| Ok(old_read.clone()));
    assert_unavailable(rig.client.read(&VOLUME), "replayed");
    assert_eq!(rig.client.read(&VOLUME).unwrap(), Some(record(2)));
}

#[test]
fn an_old_applied_reply_cannot_acknowledge_a_new_compare_and_set() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    let applied = rig.last_reply();
    // The host drops the next request and answers with the previous "applied".
    rig.tamper_next(move |_, _| Ok(applied.clone()));
    let got = rig.client.compare_and_set(&VOLUME, Some(&record(1)), &record(2));
    assert!(got.is_err(), "a replayed acknowledgement was accepted");
}

#[test]
fn a_replayed_request_cannot_move_a_record() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    rig.client.compare_and_set(&VOLUME, Some(&record(1)), &record(2)).unwrap();
    let (first_request, _) = rig.log.lock().unwrap()[0].clone();
    let second_request = rig.log.lock().unwrap()[1].0.clone();
    rig.client.compare_and_set(&VOLUME, Some(&record(2)), &record(3)).unwrap();
    // The host replays the earlier requests straight at the service: both fail their compare.
    for req in [first_request, second_request] {
        let _ = rig.service.answer(&req);
        assert_eq!(rig.service.record(&VOLUME), Some(record(3)));
    }
}
