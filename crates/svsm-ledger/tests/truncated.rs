//! Replies cut short or padded in transit are refused.

mod common;
use common::*;
use svsm_store::Ledger as _;

#[test]
fn every_truncation_and_padding_of_a_reply_is_refused() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    let len = rig.last_reply().len();
    for cut in 0..len {
        rig.tamper_next(move |_, r| Ok(r[..cut].to_vec()));
        assert_unavailable(rig.client.read(&VOLUME), "truncated");
    }
    for extra in [1usize, 7, 184] {
        rig.tamper_next(move |_, mut r| {
            r.extend(std::iter::repeat_n(0, extra));
            Ok(r)
        });
        assert_unavailable(rig.client.read(&VOLUME), "truncated");
    }
    assert_eq!(rig.client.read(&VOLUME).unwrap(), Some(record(1)));
}

#[test]
fn a_lost_connection_is_unavailable_and_read_back_decides() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    rig.tamper_next(|_, _| Err(svsm_ledger::TransportError::Io("connection reset".into())));
    assert_unavailable(rig.client.compare_and_set(&VOLUME, Some(&record(1)), &record(2)), "connection reset");
    assert_eq!(rig.client.read(&VOLUME).unwrap(), Some(record(2)), "the request took effect");
}
