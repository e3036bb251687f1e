//! Tamper and rollback campaigns: a hostile host edits the image between runs. Every change to a live
//! structure must end in an error on open or read; a change anywhere must never produce wrong data or a
//! panic; restoring any older image must be detected as a rollback.
//!
//! CI: >= 10,000 single-bit flips over every block type, all block swaps among a sample, every older version of
//! every block, every truncation, cross-volume splices. `SVSM_LONG_TESTS=1` flips 100,000 bits.

mod common;

use std::collections::BTreeMap;

use common::*;
use svsm_block::MemDisk;
use svsm_block::fault::SeededRng;
use svsm_store::{
    FormatParams, Ledger, LedgerMode, MemLedger, SeededRandom, Store, StoreError, Structure, ids,
};

type Model = BTreeMap<u64, Vec<u8>>;

struct Volume {
    images: Vec<MemDisk>,
    model: Model,
    ledger: MemLedger,
    usage: Vec<(u64, Structure)>,
    generation: u64,
}

/// Builds a volume through several generations with objects of every depth and a two-level object table.
fn build(mode: LedgerMode, seed: u64) -> Volume {
    let mut disk = MemDisk::new(4096, 256).unwrap();
    let f = Store::<_, MemLedger>::format(
        &mut disk,
        &key(),
        FormatParams::new(mode, Box::new(SeededRandom::new(seed))),
    )
    .unwrap();
    let mut ledger = MemLedger::new();
    ledger.compare_and_set(&f.volume_id, None, &f.record).unwrap();
    let mut images = vec![disk.clone()];
    let mut model = Model::new();
    let mut s = Store::open(disk, &key(), ledger.clone(), opts(seed)).unwrap();
    let steps: Vec<Vec<(u64, usize)>> = vec![
        vec![(ids::VTPM_PERMANENT, 20_000), (ids::VTPM_VOLATILE, 100)],
        vec![(ids::UEFI_VARSTORE, 90 * 4096 + 5)],
        (0..60u64).map(|i| (0x1_0000 + i, (i as usize * 37) % 300)).collect(),
        vec![(ids::VTPM_PERMANENT, 21_000), (ids::KEY_PROTECTORS.start().to_owned(), 64)],
    ];
    for (n, step) in steps.iter().enumerate() {
        let mut tx = s.begin();
        for &(id, len) in step {
            let v = bytes(id ^ (n as u64) << 32, len);
            tx.put(id, &v).unwrap();
            model.insert(id, v);
        }
        tx.commit().unwrap();
        let (d, l) = s.into_parts();
        images.push(d.clone());
        s = Store::open(d, &key(), l, opts(seed + n as u64 + 1)).unwrap();
    }
    let usage = s.block_usage().unwrap();
    let generation = s.generation();
    let d = s.close().unwrap();
    assert_eq!(images.last().unwrap().image(), d.image());
    Volume { images, model, ledger, usage, generation }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Error,
    Correct,
}

/// Opens a tampered image against the ledger and reads everything. Panics on wrong data.
fn check(v: &Volume, img: MemDisk, what: &str) -> Outcome {
    let mut s = match Store::open(img, &key(), v.ledger.clone(), opts(99)) {
        Ok(s) => s,
        Err(_) => return Outcome::Error,
    };
    let listed: Vec<(u64, u64)> = s.objects().collect();
    let want: Vec<(u64, u64)> = v.model.iter().map(|(k, b)| (*k, b.len() as u64)).collect();
    assert_eq!(listed, want, "{what}: WRONG object table accepted");
    assert_eq!(s.generation(), v.generation, "{what}: opened a different generation");
    let mut failed = false;
    for (id, want) in &v.model {
        match s.get(*id) {
            Ok(Some(got)) => assert_eq!(got.as_slice(), want.as_slice(), "{what}: WRONG DATA for {id:#x}"),
            Ok(None) => panic!("{what}: object {id:#x} vanished"),
            Err(e) => {
                assert!(matches!(e, StoreError::Corrupt { .. }), "{what}: unexpected error {e}");
                failed = true;
            }
        }
    }
    if failed { Outcome::Error } else { Outcome::Correct }
}

fn kind_name(s: &Structure) -> &'static str {
    match s {
        Structure::Superblock { .. } => "superblock",
        Structure::TableNode { level: 0 } => "table leaf",
        Structure::TableNode { .. } => "table interior",
        Structure::IndexNode { .. } => "index node",
        Structure::DataBlock { .. } => "data block",
    }
}

fn live_blocks(v: &Volume) -> Vec<(u64, Structure)> {
    let current_slot = v.generation % 2;
    v.usage
        .iter()
        .filter(|(a, s)| !matches!(s, Structure::Superblock { .. }) || *a == current_slot)
        .copied()
        .collect()
}

#[test]
fn single_bit_flips_in_every_block_type_are_detected() {
    let mut total = 0u64;
    for mode in [LedgerMode::Strict, LedgerMode::BootEpoch] {
        let v = build(mode, 5);
        let live = live_blocks(&v);
        let mut by_kind: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (a, s) in &live {
            by_kind.entry(kind_name(s)).or_default().push(*a);
        }
        assert_eq!(by_kind.len(), 5, "every block type present: {:?}", by_kind.keys().collect::<Vec<_>>());
        let newest = v.images.last().unwrap();
        let flips = if std::env::var_os("SVSM_LONG_TESTS").is_some() { 100_000 } else { 6_000 };
        let mut rng = SeededRng::new(77);
        let kinds: Vec<&str> = by_kind.keys().copied().collect();
        let mut detected: BTreeMap<&str, u64> = BTreeMap::new();
        for i in 0..flips {
            // Round-robin over block types so each gets its share; within the superblock bias towards the
            // structure bytes (the rest of the block must be zero and is checked too).
            let kind = kinds[i % kinds.len()];
            let blocks = &by_kind[kind];
            let addr = blocks[rng.below(blocks.len() as u64) as usize];
            let byte = if kind == "superblock" && rng.chance(3, 4) {
                rng.below(svsm_store::format::SUPERBLOCK_LEN as u64)
            } else {
                rng.below(4096)
            };
            let bit = rng.below(8);
            let mut img = newest.clone();
            img.image_mut()[(addr * 4096 + byte) as usize] ^= 1 << bit;
            let what = format!("{mode:?} flip block {addr} ({kind}) byte {byte} bit {bit}");
            assert_eq!(check(&v, img, &what), Outcome::Error, "{what}: tampering NOT detected");
            *detected.entry(kind).or_default() += 1;
            total += 1;
        }
        eprintln!("{mode:?}: detected flips per block type: {detected:?}");
        // Flips in free blocks and the older superblock slot may go unnoticed but must never change data.
        let used: Vec<u64> = live.iter().map(|(a, _)| *a).collect();
        for i in 0..500u64 {
            let addr = rng.below(256);
            if used.contains(&addr) {
                continue;
            }
            let mut img = newest.clone();
            img.image_mut()[(addr * 4096 + rng.below(4096)) as usize] ^= 1 << (i % 8);
            check(&v, img, &format!("flip in dead block {addr}"));
        }
    }
    assert!(total >= 10_000, "only {total} flips detected");
}

#[test]
fn block_swaps_and_replays_of_older_versions_are_detected() {
    let v = build(LedgerMode::Strict, 6);
    let live = live_blocks(&v);
    let newest = v.images.last().unwrap();
    let block = |img: &MemDisk, a: u64| img.image()[(a * 4096) as usize..((a + 1) * 4096) as usize].to_vec();
    // Swaps: every pair among up to 40 live blocks of mixed types.
    let sample: Vec<u64> = live.iter().step_by((live.len() / 40).max(1)).map(|(a, _)| *a).collect();
    let mut swaps = 0;
    for (i, &a) in sample.iter().enumerate() {
        for &b in &sample[i + 1..] {
            let (ba, bb) = (block(newest, a), block(newest, b));
            if ba == bb {
                continue;
            }
            let mut img = newest.clone();
            img.image_mut()[(a * 4096) as usize..((a + 1) * 4096) as usize].copy_from_slice(&bb);
            img.image_mut()[(b * 4096) as usize..((b + 1) * 4096) as usize].copy_from_slice(&ba);
            assert_eq!(check(&v, img, &format!("swap {a} <-> {b}")), Outcome::Error, "swap {a} <-> {b}");
            swaps += 1;
        }
    }
    // Replays: every older version of every block (live or not) put back.
    let mut replays = 0;
    for old in &v.images[..v.images.len() - 1] {
        for addr in 0..256u64 {
            let (o, n) = (block(old, addr), block(newest, addr));
            if o == n {
                continue;
            }
            let mut img = newest.clone();
            img.image_mut()[(addr * 4096) as usize..((addr + 1) * 4096) as usize].copy_from_slice(&o);
            let live_here = live.iter().any(|(a, _)| *a == addr);
            let r = check(&v, img, &format!("replay block {addr}"));
            if live_here {
                assert_eq!(r, Outcome::Error, "replay of an older version of live block {addr} not detected");
            }
            replays += 1;
        }
    }
    eprintln!("swaps {swaps}, replays {replays}");
    assert!(swaps > 500 && replays > 100);
}

#[test]
fn truncation_and_cross_volume_splices_are_detected() {
    let v = build(LedgerMode::Strict, 7);
    let newest = v.images.last().unwrap();
    for blocks in 0..256usize {
        let img = MemDisk::from_image(4096, newest.image()[..blocks * 4096].to_vec()).unwrap();
        assert_eq!(check(&v, img, &format!("truncated to {blocks}")), Outcome::Error);
    }
    // Another volume under the same key: its blocks are valid ciphertext, just not of this volume.
    let other = build(LedgerMode::Strict, 8);
    let theirs = other.images.last().unwrap();
    for (addr, s) in live_blocks(&v) {
        let mut img = newest.clone();
        let r = (addr * 4096) as usize..((addr + 1) * 4096) as usize;
        if img.image()[r.clone()] == theirs.image()[r.clone()] {
            continue;
        }
        img.image_mut()[r.clone()].copy_from_slice(&theirs.image()[r]);
        assert_eq!(check(&v, img, &format!("splice block {addr} ({s})")), Outcome::Error);
    }
}

#[test]
fn restoring_any_older_image_is_a_rollback() {
    for mode in [LedgerMode::Strict, LedgerMode::BootEpoch] {
        let v = build(mode, 9);
        for (g, img) in v.images.iter().enumerate() {
            let r = Store::open(img.clone(), &key(), v.ledger.clone(), opts(1));
            if g + 1 == v.images.len() {
                assert_eq!(r.unwrap().generation(), v.generation);
                continue;
            }
            let err = r.unwrap_err();
            assert_eq!(
                err,
                StoreError::Rollback { found: g as u64 + 1, expected: v.generation },
                "{mode:?} image {g}"
            );
        }
        // Mixed images: superblock slots from one image, the rest from another.
        for a in &v.images {
            for b in &v.images {
                let mut img = b.clone();
                img.image_mut()[..8192].copy_from_slice(&a.image()[..8192]);
                let what = format!("{mode:?} mixed slots");
                match Store::open(img, &key(), v.ledger.clone(), opts(1)) {
                    Err(_) => {}
                    Ok(mut s) => {
                        assert_eq!(s.generation(), v.generation, "{what}");
                        for (id, want) in &v.model {
                            if let Ok(Some(got)) = s.get(*id) {
                                assert_eq!(got.as_slice(), want.as_slice(), "{what}");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The hostile-host mode of `FaultDisk`: every durable version of every block is recorded while the volume is
/// built, then each older version is put back in turn. A replayed live block must always be detected.
#[test]
fn fault_disk_replays_of_every_recorded_block_version_are_detected() {
    use svsm_block::fault::{FaultConfig, FaultDisk};
    let mut disk = MemDisk::new(4096, 64).unwrap();
    let f = Store::<_, MemLedger>::format(
        &mut disk,
        &key(),
        FormatParams::new(LedgerMode::Strict, Box::new(SeededRandom::new(31))),
    )
    .unwrap();
    let mut ledger = MemLedger::new();
    ledger.compare_and_set(&f.volume_id, None, &f.record).unwrap();
    let mut cfg = FaultConfig::new(31);
    cfg.record_history = true;
    let mut fd = FaultDisk::new(disk, cfg).unwrap();
    let mut model = Model::new();
    {
        let mut s = Store::open(&mut fd, &key(), ledger.clone(), opts(1)).unwrap();
        for g in 0..30u64 {
            let mut tx = s.begin();
            for id in [ids::VTPM_PERMANENT, ids::VTPM_VOLATILE, 0x1_0000 + g % 3] {
                let v = bytes(id * 31 + g, 3000 + (g as usize * 1500) % 9000);
                tx.put(id, &v).unwrap();
                model.insert(id, v);
            }
            tx.commit().unwrap();
        }
    }
    let live: Vec<u64> = {
        let mut s = Store::open(&mut fd, &key(), ledger.clone(), opts(2)).unwrap();
        let current_slot = s.generation() % 2;
        s.block_usage()
            .unwrap()
            .into_iter()
            .filter(|(a, st)| !matches!(st, Structure::Superblock { .. }) || *a == current_slot)
            .map(|(a, _)| a)
            .collect()
    };
    let blocks: Vec<u64> = fd.history_blocks().collect();
    let mut replays = 0;
    for lba in blocks {
        let versions = fd.history_len(lba);
        for v in 0..versions.saturating_sub(1) {
            assert!(fd.replay_block(lba, v).unwrap());
            let outcome = match Store::open(&mut fd, &key(), ledger.clone(), opts(3)) {
                Err(_) => Outcome::Error,
                Ok(mut s) => {
                    let mut failed = false;
                    for (id, want) in &model {
                        match s.get(*id) {
                            Ok(Some(got)) => {
                                assert_eq!(got.as_slice(), want.as_slice(), "WRONG DATA after replay")
                            }
                            Ok(None) => panic!("object vanished after replaying block {lba}"),
                            Err(_) => failed = true,
                        }
                    }
                    if failed { Outcome::Error } else { Outcome::Correct }
                }
            };
            let same = fd.history_len(lba) > 0 && {
                let mut cur = vec![0u8; 4096];
                svsm_block::BlockDevice::read_blocks(fd.inner_mut(), lba, &mut cur).unwrap();
                let mut newest = vec![0u8; 4096];
                fd.replay_block(lba, versions - 1).unwrap();
                svsm_block::BlockDevice::read_blocks(fd.inner_mut(), lba, &mut newest).unwrap();
                cur == newest
            };
            if live.contains(&lba) && !same {
                assert_eq!(outcome, Outcome::Error, "replayed version {v} of live block {lba} not detected");
            }
            replays += 1;
        }
    }
    eprintln!("FaultDisk replays: {replays}");
    assert!(replays > 50, "only {replays} replays");
}
