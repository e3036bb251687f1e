//! Helpers shared by the integration tests.
#![allow(dead_code)]

use svsm_block::MemDisk;
use svsm_store::{FormatParams, LedgerMode, MemLedger, OpenOptions, SeededRandom, Store, StoreKey};

pub const KEY: [u8; 32] = [7; 32];

pub fn key() -> StoreKey {
    StoreKey::from_bytes(KEY)
}

pub fn opts(seed: u64) -> OpenOptions {
    OpenOptions::new(Box::new(SeededRandom::new(seed)))
}

/// A formatted, enrolled volume of `blocks` 4 KiB blocks.
pub fn fresh(mode: LedgerMode, blocks: u64, seed: u64) -> (Store<MemDisk, MemLedger>, MemLedger) {
    let disk = MemDisk::new(4096, blocks).unwrap();
    let mut dev = disk.clone();
    let f = Store::<_, MemLedger>::format(
        &mut dev,
        &key(),
        FormatParams::new(mode, Box::new(SeededRandom::new(seed))),
    )
    .unwrap();
    let ledger = MemLedger::new();
    let mut o = opts(seed + 1);
    o.enroll = true;
    let store = Store::open(dev, &key(), ledger.clone(), o).unwrap();
    assert_eq!(ledger.record(&f.volume_id), Some(f.record));
    (store, ledger)
}

/// Reopens a device image with the given ledger.
pub fn reopen(
    dev: MemDisk,
    ledger: &MemLedger,
    seed: u64,
) -> Result<Store<MemDisk, MemLedger>, svsm_store::StoreError> {
    Store::open(dev, &key(), ledger.clone(), opts(seed))
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
