//! Boot-epoch mode must refuse a fork: an image whose newer generations do not descend from the ledger's record.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{bytes, fresh, key, opts, reopen};
use svsm_block::{BlockDevice, BlockError, DeviceInfo, MemDisk, WriteMode};
use svsm_store::{LedgerMode, MemLedger, Store, StoreError};

const ID: u64 = 0x1_0000;

/// The host's view of a running VM's disk: it can copy the image at any moment without the guest knowing.
#[derive(Debug, Clone)]
struct HostDisk(Rc<RefCell<MemDisk>>);

impl HostDisk {
    fn snapshot(&self) -> MemDisk {
        self.0.borrow().clone()
    }
}

impl BlockDevice for HostDisk {
    fn info(&self) -> DeviceInfo {
        self.0.borrow().info()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.0.borrow_mut().read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: WriteMode) -> Result<(), BlockError> {
        self.0.borrow_mut().write_blocks(lba, buf, mode)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.0.borrow_mut().flush()
    }
}

fn commit<D: BlockDevice>(s: &mut Store<D, MemLedger>, data: &[u8]) -> u64 {
    let mut tx = s.begin();
    tx.put(ID, data).unwrap();
    tx.commit().unwrap()
}

/// Run 1 opens at L and commits to L+9; the host copies the image at L+3 and kills the VM. Run 2 gets the
/// L+3 copy (accepted: it descends from L), commits twice and closes cleanly (ledger L+5'). Run 3 gets run 1's
/// L+9 image: 9 > 5, but it does not descend from (L+5', H), and must not silently replace run 2's closed work.
#[test]
fn image_from_an_earlier_run_is_refused_after_a_later_run_closed() {
    let (s, ledger) = fresh(LedgerMode::BootEpoch, 128, 21);
    let (dev, _) = s.into_parts();
    let vol = reopen(dev.clone(), &ledger, 20).unwrap().volume_id();

    // Run 1, on a disk the host watches.
    let host = HostDisk(Rc::new(RefCell::new(dev)));
    let mut s = Store::open(host.clone(), &key(), ledger.clone(), opts(22)).unwrap();
    let l = s.generation();
    assert_eq!(ledger.record(&vol).unwrap().generation, l);
    let mut at_l3 = None;
    for i in 1..=9u64 {
        assert_eq!(commit(&mut s, &bytes(i, 300)), l + i);
        if i == 3 {
            at_l3 = Some(host.snapshot());
        }
    }
    drop(s); // killed: no close
    let run1_image = host.snapshot();

    // Run 2 on the L+3 copy.
    let mut s = reopen(at_l3.unwrap(), &ledger, 23).unwrap();
    assert_eq!(s.generation(), l + 3);
    assert_eq!(s.get(ID).unwrap().unwrap().as_slice(), bytes(3, 300).as_slice());
    commit(&mut s, b"run 2, first");
    commit(&mut s, b"run 2, closed");
    let run2_image = s.close().unwrap();
    assert_eq!(ledger.record(&vol).unwrap().generation, l + 5);

    // Run 3 on run 1's L+9 image.
    match reopen(run1_image, &ledger, 25) {
        Err(StoreError::Forked { .. } | StoreError::Rollback { .. }) => {}
        Err(e) => panic!("expected Forked or Rollback, got {e}"),
        Ok(s) => panic!("fork accepted at generation {}: run 2's closed work replaced", s.generation()),
    }
    assert_eq!(ledger.record(&vol).unwrap().generation, l + 5, "a refused open must not move the ledger");
    // Run 2's image is still the one accepted.
    let mut s = reopen(run2_image, &ledger, 26).unwrap();
    assert_eq!(s.generation(), l + 5);
    assert_eq!(s.get(ID).unwrap().unwrap().as_slice(), b"run 2, closed");
}

/// What boot-epoch still accepts (the documented window): newer generations of the run the ledger last
/// anchored, after a crash (no close), and the ledger's own generation.
#[test]
fn descendants_of_the_ledger_record_are_still_accepted() {
    let (s, ledger) = fresh(LedgerMode::BootEpoch, 128, 41);
    let (dev, _) = s.into_parts();
    let mut s = reopen(dev, &ledger, 42).unwrap();
    let l = s.generation();
    for i in 1..=4u64 {
        commit(&mut s, &bytes(i, 5000));
    }
    let (dev, _) = s.into_parts(); // crash
    let mut s = reopen(dev, &ledger, 43).unwrap();
    assert_eq!(s.generation(), l + 4);
    assert_eq!(s.open_report().ledger_was, Some(l));
    // A second crash-and-reopen cycle chains from the record that open set.
    commit(&mut s, b"x");
    let (dev, _) = s.into_parts();
    let mut s = reopen(dev, &ledger, 44).unwrap();
    assert_eq!(s.generation(), l + 5);
    assert_eq!(s.get(ID).unwrap().unwrap().as_slice(), b"x");
}
