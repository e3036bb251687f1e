//! Entry points shared by the fuzz targets (`crates/svsm-store/fuzz`) and the unit tests that run them over
//! seeded inputs, so `cargo test` exercises the same code the fuzzer does.

use alloc::vec::Vec;

use svsm_block::MemDisk;

use crate::api::{Ledger, LedgerRecord, VolumeId};
use crate::crypto::StoreKey;
use crate::error::LedgerError;
use crate::format::{SUPERBLOCK_LEN, Superblock};
use crate::rng::SeededRandom;
use crate::store::{OpenOptions, Store};
use sha2::{Digest, Sha256};
use zerocopy::FromBytes;

/// The fixed key fuzz images are built with (so the fuzzer can reach past the superblock MAC only by
/// mutating images that were valid to begin with).
pub const FUZZ_KEY: [u8; 32] = [0x5a; 32];

/// A ledger double that accepts whatever generation it is asked about first, for fuzzing open paths.
#[derive(Debug, Default)]
struct TrustingLedger(Option<LedgerRecord>);

impl Ledger for TrustingLedger {
    fn read(&mut self, _volume: &VolumeId) -> Result<Option<LedgerRecord>, LedgerError> {
        Ok(self.0)
    }
    fn compare_and_set(
        &mut self,
        _volume: &VolumeId,
        _expected: Option<&LedgerRecord>,
        new: &LedgerRecord,
    ) -> Result<(), LedgerError> {
        self.0 = Some(*new);
        Ok(())
    }
}

/// Opens `image` (padded to whole 4 KiB blocks) as a volume and reads every object fully and by ranges,
/// then runs full verification. Must never panic; returns how many objects were read successfully.
pub fn open_and_read(image: &[u8]) -> usize {
    let mut data: Vec<u8> = image.to_vec();
    let padded = data.len().div_ceil(4096).max(2) * 4096;
    data.resize(padded, 0);
    let Ok(dev) = MemDisk::from_image(4096, data) else { return 0 };
    let key = StoreKey::from_bytes(FUZZ_KEY);
    let mut options = OpenOptions::new(alloc::boxed::Box::new(SeededRandom::new(1)));
    options.enroll = true;
    // An empty ledger enrols only an untouched generation 1, so also try with a ledger that pins each slot's
    // claimed generation and hash: the point is to reach the tree parser with arbitrary content.
    let mut opened = Store::open(dev.clone(), &key, TrustingLedger::default(), options).ok();
    let mut slots: Vec<(u64, usize)> = (0..2usize)
        .filter_map(|slot| {
            let raw = &dev.image()[slot * 4096..slot * 4096 + SUPERBLOCK_LEN];
            Superblock::read_from_prefix(raw).ok().map(|(sb, _)| (sb.generation.get(), slot))
        })
        .collect();
    slots.sort_unstable_by(|a, b| b.cmp(a));
    for (_, slot) in slots {
        if opened.is_some() {
            break;
        }
        let raw = &dev.image()[slot * 4096..slot * 4096 + SUPERBLOCK_LEN];
        let Ok((sb, _)) = Superblock::read_from_prefix(raw) else { continue };
        let rec =
            LedgerRecord { generation: sb.generation.get(), superblock_hash: Sha256::digest(raw).into() };
        let options = OpenOptions::new(alloc::boxed::Box::new(SeededRandom::new(2)));
        opened = Store::open(dev.clone(), &key, TrustingLedger(Some(rec)), options).ok();
    }
    let Some(mut store) = opened else { return 0 };
    let ids: Vec<(u64, u64)> = store.objects().collect();
    let mut ok = 0;
    for (id, size) in ids {
        if let Ok(Some(v)) = store.get(id) {
            assert_eq!(v.len() as u64, size, "get returned a different size than the table says");
            ok += 1;
        }
        let mut buf = [0u8; 100];
        let _ = store.read_at(id, size / 2, &mut buf);
    }
    let _ = store.verify_all(&mut |_, _| {});
    let mut tx = store.begin();
    let _ = tx.put(0x1_0000, b"fuzz");
    let _ = tx.commit();
    ok
}

/// A valid image built with [`FUZZ_KEY`]: three objects over two commits (a depth-1 object, a small one, and
/// one replaced), the starting point for [`mutate_and_read`].
pub fn seed_image(mode: crate::api::LedgerMode) -> Vec<u8> {
    let build = || -> Result<Vec<u8>, crate::error::StoreError> {
        let mut dev = MemDisk::new(4096, 24)?;
        let key = StoreKey::from_bytes(FUZZ_KEY);
        let params = crate::store::FormatParams::new(mode, alloc::boxed::Box::new(SeededRandom::new(1)));
        Store::<_, TrustingLedger>::format(&mut dev, &key, params)?;
        let mut o = OpenOptions::new(alloc::boxed::Box::new(SeededRandom::new(2)));
        o.enroll = true;
        let mut s = Store::open(dev, &key, TrustingLedger::default(), o)?;
        let mut tx = s.begin();
        tx.put(1, &[0xa5; 9000])?;
        tx.put(0x10, b"uefi")?;
        tx.commit()?;
        let mut tx = s.begin();
        tx.put(2, &[0x3c; 100])?;
        tx.put(1, &[0x5a; 5000])?;
        tx.commit()?;
        Ok(s.into_parts().0.into_image())
    };
    build().unwrap_or_default()
}

/// Applies `data` as a mutation script to a valid seed image and runs [`open_and_read`] on the result, so
/// the fuzzer spends its time past the superblock MAC instead of on random bytes that never authenticate.
///
/// Script: byte 0 picks the ledger mode and whether to truncate; then 4-byte records
/// `(offset: u24 LE, xor: u8)` flip bytes; with truncation the last two bytes give the new length in 512ths.
pub fn mutate_and_read(seed: &[u8], data: &[u8]) -> usize {
    let mut img = seed.to_vec();
    if img.is_empty() {
        return 0;
    }
    let Some((&ctl, rest)) = data.split_first() else { return open_and_read(&img) };
    for rec in rest.chunks_exact(4) {
        let off = u32::from_le_bytes([rec[0], rec[1], rec[2], 0]) as usize % img.len();
        img[off] ^= rec[3];
    }
    if ctl & 0x80 != 0 && rest.len() >= 2 {
        let n = u16::from_le_bytes([rest[rest.len() - 2], rest[rest.len() - 1]]) as usize;
        img.truncate(n.saturating_mul(512).min(img.len()));
    }
    open_and_read(&img)
}
