//! The nonce budget counts every block sealed under the volume key, including those of transactions that
//! never committed, so the random-nonce bound holds whatever the caller does.

mod common;

use common::{bytes, fresh, reopen};
use svsm_store::LedgerMode;

#[test]
fn seals_of_abandoned_transactions_are_counted() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 256, 51);
    let start = s.stats().seal_count;
    // Ten abandoned transactions, each sealing 3 data blocks and their index node.
    for i in 0..10u64 {
        let mut tx = s.begin();
        tx.put(0x1_0000, &bytes(i, 3 * 4096)).unwrap();
        drop(tx);
    }
    let mut tx = s.begin();
    tx.put(0x1_0001, b"small").unwrap();
    tx.commit().unwrap();
    let after = s.stats().seal_count;
    // 10 x (3 data + 1 index) abandoned, then 1 data block + 1 table leaf committed.
    assert_eq!(after - start, 42, "seals of abandoned transactions are missing from the count");
    // The count is durable with the commit.
    let (dev, _) = s.into_parts();
    assert_eq!(reopen(dev, &ledger, 52).unwrap().stats().seal_count, after);
}
