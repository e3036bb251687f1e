//! An authentic reply about one volume, substituted for a reply about another, is refused.

mod common;
use common::*;
use svsm_store::Ledger as _;

#[test]
fn a_reply_about_another_volume_is_refused() {
    let mut rig = rig();
    rig.client.compare_and_set(&VOLUME, None, &record(5)).unwrap();
    rig.client.compare_and_set(&OTHER_VOLUME, None, &record(1)).unwrap();
    // The host keeps the other volume's read reply and the request for it, and sends that request in place of
    // the next one about VOLUME: the service answers genuinely, about the wrong volume.
    assert_eq!(rig.client.read(&OTHER_VOLUME).unwrap(), Some(record(1)));
    let (other_request, _) = rig.log.lock().unwrap().last().unwrap().clone();
    let service = rig.service.clone();
    rig.tamper_next(move |_, _| Ok(service.answer(&other_request)));
    // (it also answers an older nonce, which is the check that fires first)
    assert_unavailable(rig.client.read(&VOLUME), "ledger service: authentic reply");
    assert_eq!(rig.client.read(&VOLUME).unwrap(), Some(record(5)));
}

#[test]
fn an_authentic_reply_with_this_nonce_about_another_volume_is_refused() {
    // Only a key holder can make this (a confused service): an answer to this very nonce, about another volume.
    let mut rig = rig();
    rig.client.compare_and_set(&OTHER_VOLUME, None, &record(1)).unwrap();
    rig.tamper_next(|req, _| {
        let mut other = req.to_vec();
        other[24..40].copy_from_slice(&OTHER_VOLUME.0);
        Ok(svsm_ledger::wire::seal_reply(
            Some(&key()),
            &other,
            svsm_ledger::Outcome::Current(Some(record(1))),
            1 << 40,
        )
        .to_vec())
    });
    assert_unavailable(rig.client.read(&VOLUME), "cross-volume");
    assert_eq!(rig.client.read(&VOLUME).unwrap(), None);
}

#[test]
fn another_vms_authentic_reply_is_refused() {
    // Two VMs enrolled at one service, each with its own key: VM B's replies mean nothing to VM A.
    let mut rig = rig();
    let other = svsm_ledger::testing::MemService::new(
        svsm_ledger::VmId([0x99; 16]),
        svsm_ledger::LedgerKey::from_bytes([0x55; 32]),
    );
    let mut b = svsm_ledger::ServiceLedger::new(
        other.vm,
        svsm_ledger::LedgerKey::from_bytes([0x55; 32]),
        svsm_ledger::testing::TamperTransport::new(other.clone()),
        svsm_store::SeededRandom::new(1),
    );
    b.compare_and_set(&VOLUME, None, &record(9)).unwrap();
    let b_reply = b.transport_mut().log.lock().unwrap().last().unwrap().1.clone();
    rig.tamper_next(move |_, _| Ok(b_reply.clone()));
    assert_unavailable(rig.client.compare_and_set(&VOLUME, None, &record(1)), "forged");
}
