//! Trusted time: kept from authentic replies only, never going back.

mod common;
use common::*;
use svsm_store::Ledger as _;

#[test]
fn the_trusted_time_advances_and_an_older_clock_is_refused() {
    let mut rig = rig();
    assert_eq!(rig.client.trusted_time_ms(), None);
    rig.client.compare_and_set(&VOLUME, None, &record(1)).unwrap();
    let t1 = rig.client.trusted_time_ms().unwrap();
    rig.client.read(&VOLUME).unwrap();
    let t2 = rig.client.trusted_time_ms().unwrap();
    assert!(t2 > t1);
    // The service's clock is set back (a restored service, a host playing with NTP): refused, time kept.
    *rig.service.clock_ms.lock().unwrap() = t1 - 100;
    assert_unavailable(rig.client.read(&VOLUME), "older than the trusted time");
    assert_eq!(rig.client.trusted_time_ms(), Some(t2));
    *rig.service.clock_ms.lock().unwrap() = t2 + 1000;
    rig.client.read(&VOLUME).unwrap();
    assert_eq!(rig.client.trusted_time_ms(), Some(t2 + 1001));
}

#[test]
fn a_forged_reply_does_not_move_the_trusted_time() {
    let mut rig = rig();
    rig.client.read(&VOLUME).unwrap();
    let t = rig.client.trusted_time_ms();
    rig.tamper_next(|_, mut r| {
        r[150] ^= 0x80; // inside service_time_ms (offset 144..152)
        Ok(r)
    });
    assert!(rig.client.read(&VOLUME).is_err());
    assert_eq!(rig.client.trusted_time_ms(), t);
}

#[test]
fn a_starting_trusted_time_refuses_older_replies_from_the_first_exchange() {
    let rig = rig();
    let mut client = rig.client.with_trusted_time_ms(u64::MAX / 2);
    assert_unavailable(client.read(&VOLUME), "older than the trusted time");
}
