//! The exact window rule: a commit made T or more after the ledger last moved waits for the ledger; one made
//! sooner does not; open and clean close advance it; a due commit whose ledger is down fails.

mod common;

use common::{key, opts};
use svsm_block::MemDisk;
use svsm_store::{
    FormatParams, LedgerMode, ManualClock, MemLedger, MemLedgerFault, SeededRandom, Store, StoreError,
};

const ID: u64 = 0x1_0000;

fn window_volume(seconds: u32) -> (MemDisk, MemLedger, ManualClock, Store<MemDisk, MemLedger>) {
    let mut dev = MemDisk::new(4096, 64).unwrap();
    Store::<_, MemLedger>::format(
        &mut dev,
        &key(),
        FormatParams::new(LedgerMode::Window { seconds }, Box::new(SeededRandom::new(5))),
    )
    .unwrap();
    let ledger = MemLedger::new();
    let clock = ManualClock::new(0);
    let mut o = opts(6);
    o.enroll = true;
    o.clock = Some(Box::new(clock.clone()));
    let s = Store::open(dev.clone(), &key(), ledger.clone(), o).unwrap();
    (dev, ledger, clock, s)
}

fn commit(s: &mut Store<MemDisk, MemLedger>, v: &[u8]) -> Result<u64, StoreError> {
    let mut tx = s.begin();
    tx.put(ID, v)?;
    tx.commit()
}

#[test]
fn a_commit_advances_the_ledger_exactly_when_the_window_has_run_out() {
    let (_, ledger, clock, mut s) = window_volume(10);
    assert_eq!(s.ledger_mode(), LedgerMode::Window { seconds: 10 });
    let vol = s.volume_id();
    let base = ledger.record(&vol).unwrap().generation;
    clock.advance(9_999);
    let g = commit(&mut s, b"a").unwrap();
    assert_eq!(ledger.record(&vol).unwrap().generation, base, "advanced before T");
    assert_eq!(s.window_status(), Some((9_999, true)));
    clock.advance(1);
    let g2 = commit(&mut s, b"b").unwrap();
    assert_eq!(g2, g + 1);
    assert_eq!(ledger.record(&vol), Some(s.ledger_record()), "a commit at T did not advance the ledger");
    assert_eq!(s.window_status(), Some((0, false)));
    // The window restarts at the advance.
    clock.advance(5_000);
    commit(&mut s, b"c").unwrap();
    assert_eq!(ledger.record(&vol).unwrap().generation, g2);
    // An idle volume: advance_if_due protects the last commit once T has passed, not before.
    assert!(!s.advance_if_due().unwrap());
    clock.advance(5_000);
    assert!(s.advance_if_due().unwrap());
    assert_eq!(ledger.record(&vol), Some(s.ledger_record()));
    assert!(!s.advance_if_due().unwrap(), "nothing left to protect");
}

#[test]
fn a_due_commit_fails_when_the_ledger_is_down_and_one_not_due_does_not() {
    let (_, ledger, clock, mut s) = window_volume(3);
    ledger.set_fault(MemLedgerFault::Down);
    commit(&mut s, b"inside the window").unwrap();
    clock.advance(3_000);
    let err = commit(&mut s, b"due").unwrap_err();
    assert!(matches!(err, StoreError::Ledger(_)), "{err}");
    ledger.set_fault(MemLedgerFault::None);
    assert_eq!(s.get(ID).unwrap().unwrap().as_slice(), b"inside the window");
    commit(&mut s, b"due, ledger back").unwrap();
    assert_eq!(ledger.record(&s.volume_id()), Some(s.ledger_record()));
}

#[test]
fn open_and_close_advance_the_ledger_and_a_window_of_zero_is_refused() {
    let (_, ledger, clock, mut s) = window_volume(60);
    let vol = s.volume_id();
    commit(&mut s, b"1").unwrap();
    commit(&mut s, b"2").unwrap();
    let rec = s.ledger_record();
    assert_ne!(ledger.record(&vol), Some(rec));
    let dev = s.close().unwrap();
    assert_eq!(ledger.record(&vol), Some(rec), "clean close did not advance the ledger");
    let mut o = opts(9);
    o.clock = Some(Box::new(clock.clone()));
    let s = Store::open(dev, &key(), ledger.clone(), o).unwrap();
    assert_eq!(s.ledger_mode(), LedgerMode::Window { seconds: 60 });

    let mut dev = MemDisk::new(4096, 64).unwrap();
    let r = Store::<_, MemLedger>::format(
        &mut dev,
        &key(),
        FormatParams::new(LedgerMode::Window { seconds: 0 }, Box::new(SeededRandom::new(5))),
    );
    assert!(matches!(r, Err(StoreError::InvalidParams(_))), "{r:?}");
}
