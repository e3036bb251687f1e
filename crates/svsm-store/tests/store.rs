//! Functional tests of format, open, transactions, errors and ledger modes on MemDisk.

mod common;

use common::*;
use svsm_block::{BlockDevice, MemDisk};
use svsm_store::{
    FeatureKind, FormatParams, LedgerMode, MemLedger, MemLedgerFault, SeededRandom, Store, StoreError,
    StoreKey, Structure, ids,
};

#[test]
fn put_get_delete_survive_reopen() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 256, 1);
    assert_eq!(s.generation(), 1);
    let perm = bytes(1, 20_000);
    let mut tx = s.begin();
    tx.put(ids::VTPM_PERMANENT, &perm).unwrap();
    tx.put(ids::UEFI_VARSTORE, b"vars").unwrap();
    tx.put(0x1_0000, b"").unwrap();
    assert_eq!(tx.commit().unwrap(), 2);
    assert_eq!(s.get(ids::VTPM_PERMANENT).unwrap().unwrap().as_slice(), &perm[..]);
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().len(), 0);
    assert!(s.get(ids::VTPM_VOLATILE).unwrap().is_none());
    let mut tx = s.begin();
    tx.delete(ids::UEFI_VARSTORE).unwrap();
    tx.commit().unwrap();
    let dev = s.close().unwrap();
    let mut s = reopen(dev, &ledger, 9).unwrap();
    assert_eq!(s.generation(), 3);
    assert_eq!(s.get(ids::VTPM_PERMANENT).unwrap().unwrap().as_slice(), &perm[..]);
    assert!(s.get(ids::UEFI_VARSTORE).unwrap().is_none());
    assert_eq!(s.stats().objects, 2);
}

#[test]
fn sizes_around_block_and_index_boundaries_round_trip() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 1024, 2);
    let sizes = [1usize, 4095, 4096, 4097, 85 * 4096, 85 * 4096 + 1, 86 * 4096 + 17];
    let mut tx = s.begin();
    for (i, &n) in sizes.iter().enumerate() {
        tx.put(0x1_0000 + i as u64, &bytes(i as u64, n)).unwrap();
    }
    tx.commit().unwrap();
    let dev = s.close().unwrap();
    let mut s = reopen(dev, &ledger, 3).unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        let want = bytes(i as u64, n);
        assert_eq!(s.get(0x1_0000 + i as u64).unwrap().unwrap().as_slice(), &want[..], "size {n}");
        // Ranged reads across block boundaries.
        for (off, len) in [(0usize, 10usize), (4090, 20), (n / 2, 9000), (n.saturating_sub(3), 100)] {
            let mut buf = vec![0u8; len];
            if off > n {
                let err = s.read_at(0x1_0000 + i as u64, off as u64, &mut buf).unwrap_err();
                assert!(matches!(err, StoreError::OutOfRange { .. }));
                continue;
            }
            let got = s.read_at(0x1_0000 + i as u64, off as u64, &mut buf).unwrap().unwrap();
            let end = (off + len).min(n);
            assert_eq!(got, end - off.min(n));
            assert_eq!(&buf[..got], &want[off.min(n)..end]);
        }
    }
    assert_eq!(
        s.verify_all(&mut |_, _| {}).unwrap(),
        sizes.iter().map(|n| n.div_ceil(4096) as u64).sum::<u64>()
    );
}

#[test]
fn many_objects_need_interior_table_nodes() {
    let (mut s, ledger) = fresh(LedgerMode::BootEpoch, 512, 3);
    let mut tx = s.begin();
    for i in 0..200u64 {
        tx.put(0x1_0000 + i * 3, &i.to_le_bytes()).unwrap();
    }
    tx.commit().unwrap();
    let dev = s.close().unwrap();
    let mut s = reopen(dev, &ledger, 4).unwrap();
    assert_eq!(s.objects().count(), 200);
    for i in 0..200u64 {
        assert_eq!(s.get(0x1_0000 + i * 3).unwrap().unwrap().as_slice(), &i.to_le_bytes());
    }
}

#[test]
fn reserved_ids_are_refused() {
    let (mut s, _) = fresh(LedgerMode::Strict, 64, 4);
    let mut tx = s.begin();
    assert_eq!(tx.put(0, b"x"), Err(StoreError::InvalidObjectId { id: 0 }));
    assert_eq!(tx.put(0x100, b"x"), Err(StoreError::InvalidObjectId { id: 0x100 }));
}

#[test]
fn errors_tell_wrong_key_unformatted_and_already_formatted_apart() {
    let blank = MemDisk::new(4096, 64).unwrap();
    let err = Store::open(blank.clone(), &key(), MemLedger::new(), opts(1)).unwrap_err();
    assert!(matches!(err, StoreError::Unformatted { .. }), "{err}");
    let mut garbage = blank.clone();
    garbage.image_mut()[..8].copy_from_slice(b"NOTASTOR");
    let err = Store::open(garbage, &key(), MemLedger::new(), opts(1)).unwrap_err();
    assert!(matches!(err, StoreError::Unformatted { .. }), "{err}");

    let (s, ledger) = fresh(LedgerMode::Strict, 64, 5);
    let (dev, _) = s.into_parts();
    let err = Store::open(dev.clone(), &StoreKey::from_bytes([8; 32]), ledger.clone(), opts(2)).unwrap_err();
    assert_eq!(err, StoreError::WrongKey);
    let mut d = dev.clone();
    let err = Store::<_, MemLedger>::format(
        &mut d,
        &key(),
        FormatParams::new(LedgerMode::Strict, Box::new(SeededRandom::new(1))),
    )
    .unwrap_err();
    assert_eq!(err, StoreError::AlreadyFormatted);
    // Not enrolled in this ledger.
    let err = Store::open(dev.clone(), &key(), MemLedger::new(), opts(2)).unwrap_err();
    assert!(matches!(err, StoreError::NotEnrolled { .. }), "{err}");
    // Truncated image.
    let short = MemDisk::from_image(4096, dev.image()[..32 * 4096].to_vec()).unwrap();
    let err = Store::open(short, &key(), ledger.clone(), opts(2)).unwrap_err();
    assert_eq!(err, StoreError::DeviceTooSmall { device_blocks: 32, volume_blocks: 64 });
}

#[test]
fn version_and_feature_checks_come_before_the_mac() {
    let (s, ledger) = fresh(LedgerMode::Strict, 64, 6);
    let (dev, _) = s.into_parts();
    let slot1 = 4096;
    let mut d = dev.clone();
    d.image_mut()[slot1 + 8] = 3;
    let err = Store::open(d, &key(), ledger.clone(), opts(1)).unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedVersion { major: 3, supported: 2, .. }), "{err}");
    // A v1 volume (no ledger anchor in its superblock) is refused by version, not misread.
    let mut d = dev.clone();
    d.image_mut()[slot1 + 8] = 1;
    let err = Store::open(d, &key(), ledger.clone(), opts(1)).unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedVersion { major: 1, supported: 2, .. }), "{err}");
    let mut d = dev.clone();
    d.image_mut()[slot1 + 16] = 0x80;
    let err = Store::open(d, &key(), ledger.clone(), opts(1)).unwrap_err();
    assert_eq!(err, StoreError::UnsupportedFeature { kind: FeatureKind::Incompat, bits: 0x80 });
    let mut d = dev.clone();
    d.image_mut()[slot1 + 24] = 0x01;
    let err = Store::open(d.clone(), &key(), ledger.clone(), opts(1)).unwrap_err();
    assert_eq!(err, StoreError::UnsupportedFeature { kind: FeatureKind::RoCompat, bits: 1 });
    // Read-only gets past the feature check; the edited header then fails its MAC (it was not written by us).
    let mut o = opts(1);
    o.read_only = true;
    let err = Store::open(d, &key(), ledger.clone(), o).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { structure: Structure::Superblock { .. }, .. }), "{err}");
    // Naming a different AEAD is refused outright (and would derive different keys anyway).
    let mut d = dev.clone();
    d.image_mut()[slot1 + 88] = 2;
    let err = Store::open(d, &key(), ledger, opts(1)).unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedAlgorithm { .. }), "{err}");
}

fn commit_one(s: &mut Store<MemDisk, MemLedger>, id: u64, data: &[u8]) -> u64 {
    let mut tx = s.begin();
    tx.put(id, data).unwrap();
    tx.commit().unwrap()
}

#[test]
fn strict_mode_refuses_any_older_image() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 128, 7);
    let mut images = Vec::new();
    for g in 0..6u64 {
        let (dev, l) = s.into_parts();
        images.push(dev.clone());
        s = Store::open(dev, &key(), l, opts(g)).unwrap();
        commit_one(&mut s, ids::VTPM_PERMANENT, &bytes(g, 5000));
    }
    let newest = s.generation();
    for (i, img) in images.iter().enumerate() {
        let err = reopen(img.clone(), &ledger, 1).unwrap_err();
        assert_eq!(err, StoreError::Rollback { found: i as u64 + 1, expected: newest }, "image {i}");
    }
    let (dev, _) = s.into_parts();
    assert_eq!(reopen(dev, &ledger, 1).unwrap().generation(), newest);
}

#[test]
fn strict_unacknowledged_commit_is_discarded_and_lost_ack_is_adopted() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 128, 8);
    commit_one(&mut s, 0x1_0000, b"one");
    // The request never reaches the ledger: commit fails, nothing visible, and a reopen discards it.
    ledger.set_fault(MemLedgerFault::LoseRequest);
    let mut tx = s.begin();
    tx.put(0x1_0000, b"two").unwrap();
    assert!(matches!(tx.commit(), Err(StoreError::Ledger(_))));
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().as_slice(), b"one");
    let (dev, _) = s.into_parts();
    let mut s = reopen(dev, &ledger, 2).unwrap();
    assert_eq!(s.open_report().discarded, Some(3));
    assert_eq!(s.generation(), 2);
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().as_slice(), b"one");
    // The next commit reuses generation 3 and is acknowledged.
    assert_eq!(commit_one(&mut s, 0x1_0000, b"three"), 3);
    // Ack lost: the ledger moved; the store learns it at the next commit and keeps going.
    ledger.set_fault(MemLedgerFault::LoseAck);
    let mut tx = s.begin();
    tx.put(0x1_0000, b"four").unwrap();
    assert!(matches!(tx.commit(), Err(StoreError::Ledger(_))));
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().as_slice(), b"three");
    assert_eq!(commit_one(&mut s, 0x1_0001, b"five"), 5);
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().as_slice(), b"four");
    let (dev, _) = s.into_parts();
    let mut s = reopen(dev, &ledger, 3).unwrap();
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().as_slice(), b"four");
    assert_eq!(s.generation(), 5);
}

#[test]
fn ledger_down_blocks_commits_until_it_answers() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 128, 9);
    ledger.set_fault(MemLedgerFault::LoseAck);
    let mut tx = s.begin();
    tx.put(0x1_0000, b"a").unwrap();
    assert!(tx.commit().is_err());
    ledger.set_fault(MemLedgerFault::Down);
    let mut tx = s.begin();
    assert!(matches!(tx.put(0x1_0000, b"b"), Err(StoreError::Ledger(_))));
    drop(tx);
    ledger.set_fault(MemLedgerFault::None);
    s.sync_ledger().unwrap();
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().as_slice(), b"a");
}

#[test]
fn ledger_conflict_poisons_the_handle() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 128, 10);
    commit_one(&mut s, 0x1_0000, b"a");
    let vol = s.volume_id();
    let mut r = ledger.record(&vol).unwrap();
    r.generation += 10;
    ledger.force(&vol, Some(r));
    let mut tx = s.begin();
    tx.put(0x1_0000, b"b").unwrap();
    assert!(matches!(tx.commit(), Err(StoreError::LedgerConflict { .. })));
    let mut tx = s.begin();
    assert_eq!(tx.put(0x1_0000, b"c"), Err(StoreError::Poisoned));
}

#[test]
fn boot_epoch_refuses_images_older_than_the_last_open() {
    let (mut s, ledger) = fresh(LedgerMode::BootEpoch, 128, 11);
    commit_one(&mut s, 0x1_0000, b"g2");
    let (dev, l) = s.into_parts();
    let at_g2 = dev.clone();
    let mut s = Store::open(dev, &key(), l, opts(2)).unwrap();
    assert_eq!(s.open_report().ledger_was, Some(1));
    commit_one(&mut s, 0x1_0000, b"g3");
    let (dev, _) = s.into_parts();
    // Within the epoch (g2 is the ledger's generation), g2 is still acceptable: documented limit.
    assert_eq!(reopen(at_g2.clone(), &ledger, 3).unwrap().generation(), 2);
    // That open advanced nothing (it opened g2 == ledger). Open the real newest, then close cleanly.
    let s = reopen(dev, &ledger, 4).unwrap();
    assert_eq!(s.generation(), 3);
    let dev = s.close().unwrap();
    assert_eq!(reopen(at_g2, &ledger, 5).unwrap_err(), StoreError::Rollback { found: 2, expected: 3 });
    assert_eq!(reopen(dev, &ledger, 6).unwrap().generation(), 3);
}

#[test]
fn two_volumes_with_one_ledger_roll_back_independently_detected() {
    let ledger = MemLedger::new();
    let mut stores = Vec::new();
    for seed in [20u64, 21] {
        let mut dev = MemDisk::new(4096, 64).unwrap();
        Store::<_, MemLedger>::format(
            &mut dev,
            &key(),
            FormatParams::new(LedgerMode::Strict, Box::new(SeededRandom::new(seed))),
        )
        .unwrap();
        let mut o = opts(seed);
        o.enroll = true;
        stores.push(Store::open(dev, &key(), ledger.clone(), o).unwrap());
    }
    let old_uefi = {
        let (d, l) = stores.remove(1).into_parts();
        let img = d.clone();
        stores.push(Store::open(d, &key(), l, opts(1)).unwrap());
        img
    };
    commit_one(&mut stores[0], ids::VTPM_PERMANENT, b"tpm");
    commit_one(&mut stores[1], ids::UEFI_VARSTORE, b"dbx v2");
    assert_ne!(stores[0].volume_id(), stores[1].volume_id());
    let err = reopen(old_uefi, &ledger, 1).unwrap_err();
    assert!(matches!(err, StoreError::Rollback { found: 1, expected: 2 }), "{err}");
}

#[test]
fn volume_full_is_an_error_and_leaves_the_store_usable() {
    let (mut s, _) = fresh(LedgerMode::Strict, 16, 12);
    let mut tx = s.begin();
    assert!(matches!(tx.put(0x1_0000, &bytes(1, 20 * 4096)), Err(StoreError::VolumeFull { .. })));
    drop(tx);
    commit_one(&mut s, 0x1_0000, &bytes(2, 4096 * 4));
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().len(), 4096 * 4);
}

#[test]
fn small_sector_devices_work() {
    let mut dev = MemDisk::new(512, 64 * 8).unwrap();
    let f = Store::<_, MemLedger>::format(
        &mut dev,
        &key(),
        FormatParams::new(LedgerMode::Strict, Box::new(SeededRandom::new(3))),
    )
    .unwrap();
    assert_eq!(dev.num_blocks(), 512);
    let ledger = MemLedger::new();
    let mut o = opts(4);
    o.enroll = true;
    let mut s = Store::open(dev, &key(), ledger.clone(), o).unwrap();
    commit_one(&mut s, 0x1_0000, &bytes(3, 10_000));
    let (dev, _) = s.into_parts();
    let mut s = reopen(dev, &ledger, 5).unwrap();
    assert_eq!(s.get(0x1_0000).unwrap().unwrap().as_slice(), &bytes(3, 10_000)[..]);
    assert_eq!(ledger.record(&f.volume_id).unwrap().generation, 2);
}

#[test]
fn freed_blocks_are_reused_so_the_volume_does_not_leak() {
    let (mut s, _) = fresh(LedgerMode::Strict, 32, 13);
    for i in 0..200u64 {
        commit_one(&mut s, 0x1_0000, &bytes(i, 8 * 4096));
    }
    // 8 data + 1 index + 1 table + 2 superblocks.
    assert_eq!(s.stats().used_blocks, 12);
}

#[test]
fn detached_open_reads_any_authentic_image_but_never_writes() {
    let (mut s, ledger) = fresh(LedgerMode::Strict, 64, 14);
    commit_one(&mut s, 0x1_0000, b"old");
    let (dev, l) = s.into_parts();
    let old = dev.clone();
    let mut s = Store::open(dev, &key(), l, opts(1)).unwrap();
    commit_one(&mut s, 0x1_0000, b"new");
    assert!(matches!(reopen(old.clone(), &ledger, 2), Err(StoreError::Rollback { .. })));
    let mut d = Store::open_detached(old, &key(), opts(3)).unwrap();
    assert_eq!(d.get(0x1_0000).unwrap().unwrap().as_slice(), b"old");
    let mut tx = d.begin();
    assert_eq!(tx.put(0x1_0000, b"x"), Err(StoreError::ReadOnly));
    assert_eq!(
        Store::open_detached(MemDisk::new(4096, 8).unwrap(), &key(), opts(4)).unwrap_err(),
        StoreError::Unformatted { detail: "both superblock slots are blank" }
    );
}
