//! Secure-store costs against plain file I/O of the same bytes, measured interleaved in one run on FileDisk
//! (ext4 here). Targets from the store issue:
//!
//! * durable commit of a 16 KiB object <= 1.5x a plain pwrite + fdatasync of 16 KiB;
//! * bulk put of 1 MiB objects: throughput >= 70 % of plain writes (time ratio <= 1/0.7);
//! * open + full verification of a full 64 MiB volume <= 50 ms, peak heap <= 4 MiB;
//! * AEAD cost per 4 KiB block (reported against a 4 KiB durable write, to show where the time goes).

use std::fs::OpenOptions as FsOpen;
use std::os::unix::fs::FileExt;
use std::path::Path;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use svsm_benchkit::{CountingAlloc, Plan, Report, Target, compare, fmt_duration, measure};
use svsm_block::{BlockDevice, FileDisk, WriteMode};
use svsm_store::{
    FileLedger, FormatParams, Ledger, LedgerMode, MemLedger, OpenOptions, PooledOsRandom, Store, StoreKey,
};

#[global_allocator]
static HEAP: CountingAlloc = CountingAlloc::new();

const BLOCK: u32 = 4096;

fn key() -> StoreKey {
    StoreKey::from_bytes([0x42; 32])
}

fn opts() -> OpenOptions {
    OpenOptions::new(Box::new(PooledOsRandom::new()))
}

/// A formatted, enrolled volume file of `mib` MiB.
fn volume<L: Ledger + Clone>(
    dir: &Path,
    name: &str,
    mib: u64,
    mode: LedgerMode,
    mut ledger: L,
) -> Store<FileDisk, L> {
    let path = dir.join(name);
    let mut disk = FileDisk::create(&path, BLOCK, mib * 256).unwrap();
    // A provisioned image is allocated, not sparse (as `store create` leaves it): fill it with zeros.
    let zeros = vec![0u8; 1 << 20];
    for m in 0..mib {
        disk.write_blocks(m * 256, &zeros, WriteMode::Cached).unwrap();
    }
    disk.flush().unwrap();
    let f = Store::<_, L>::format(disk, &key(), FormatParams::new(mode, Box::new(PooledOsRandom::new())))
        .unwrap();
    ledger.compare_and_set(&f.volume_id, None, &f.record).unwrap();
    Store::open(FileDisk::open(&path, BLOCK, false).unwrap(), &key(), ledger, opts()).unwrap()
}

/// A preallocated plain file for the baseline.
fn plain(dir: &Path, name: &str, bytes: u64) -> std::fs::File {
    let f = FsOpen::new().read(true).write(true).create_new(true).open(dir.join(name)).unwrap();
    // Allocated like the volume files, so both sides overwrite existing blocks.
    let zeros = vec![0u8; 1 << 20];
    for m in 0..bytes.div_ceil(1 << 20) {
        f.write_all_at(&zeros, m << 20).unwrap();
    }
    f.set_len(bytes).unwrap();
    f.sync_all().unwrap();
    f
}

fn main() {
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into())).unwrap();
    let mut report = Report::new("Secure store on FileDisk vs plain file I/O (ext4 here)");

    // 1. Durable commit of a 16 KiB object.
    let data16 = vec![0x5Au8; 16 * 1024];
    let f16 = plain(dir.path(), "plain16", 8 << 20);
    let mut s = volume(dir.path(), "epoch16.img", 8, LedgerMode::BootEpoch, MemLedger::new());
    let mut i = 0u64;
    let mut row = compare(
        "durable commit of a 16 KiB object (boot-epoch: no ledger write)",
        Plan::new(20, 25),
        "pwrite 16 KiB + fdatasync",
        || {
            i = (i + 1) % 64;
            f16.write_all_at(&data16, i * 16384).unwrap();
            f16.sync_data().unwrap();
        },
        "put + commit",
        || {
            let mut tx = s.begin();
            tx.put(svsm_store::ids::VTPM_PERMANENT, &data16).unwrap();
            tx.commit().unwrap();
        },
    );
    row.target = Some(Target::AtMost(1.5));
    report.push(row);

    let ledger_dir = dir.path().join("ledger");
    let mut strict =
        volume(dir.path(), "strict16.img", 8, LedgerMode::Strict, FileLedger::new(&ledger_dir).unwrap());
    let row = compare(
        "durable commit of a 16 KiB object (strict, FileLedger: +1 pwrite + fdatasync)",
        Plan::new(10, 20),
        "pwrite 16 KiB + fdatasync",
        || {
            i = (i + 1) % 64;
            f16.write_all_at(&data16, i * 16384).unwrap();
            f16.sync_data().unwrap();
        },
        "put + commit + ledger CAS",
        || {
            let mut tx = strict.begin();
            tx.put(svsm_store::ids::VTPM_PERMANENT, &data16).unwrap();
            tx.commit().unwrap();
        },
    );
    report.push(row);

    // 2. Bulk put: 8 objects of 1 MiB in one transaction vs 8 MiB of plain writes + one fdatasync.
    let mib = vec![0xC3u8; 1 << 20];
    let fbulk = plain(dir.path(), "plainbulk", 64 << 20);
    let mut bulk = volume(dir.path(), "bulk.img", 64, LedgerMode::BootEpoch, MemLedger::new());
    let mut round = 0u64;
    let mut row = compare(
        "bulk: 8 x 1 MiB objects, one durable commit",
        Plan::new(8, 3),
        "8 x pwrite 1 MiB + fdatasync",
        || {
            round = (round + 1) % 6;
            for k in 0..8u64 {
                fbulk.write_all_at(&mib, (round * 8 + k) << 20).unwrap();
            }
            fbulk.sync_data().unwrap();
        },
        "8 x put + commit",
        || {
            let mut tx = bulk.begin();
            for k in 0..8u64 {
                tx.put(0x1_0000 + k, &mib).unwrap();
            }
            tx.commit().unwrap();
        },
    );
    // Throughput >= 70 % of plain writes  <=>  time ratio <= 1 / 0.7.
    row.target = Some(Target::AtMost(1.0 / 0.7));
    let bulk_ratio = row.ratio();
    report.push(row);
    drop(bulk);

    // 3. Open + full verification of a full 64 MiB volume, and its peak heap.
    let full_path = dir.path().join("full.img");
    let ledger = MemLedger::new();
    {
        let mut s = volume(dir.path(), "full.img", 64, LedgerMode::Strict, ledger.clone());
        let mut n = 0u64;
        loop {
            let mut tx = s.begin();
            if tx.put(0x2_0000 + n, &mib).is_err() {
                break;
            }
            tx.commit().unwrap();
            n += 1;
        }
        // Fill the remainder with smaller objects until nothing fits.
        let small = vec![0x11u8; 16 * 1024];
        loop {
            let mut tx = s.begin();
            if tx.put(0x3_0000 + n, &small).is_err() {
                break;
            }
            if tx.commit().is_err() {
                break;
            }
            n += 1;
        }
        let st = s.stats();
        report.note(format!(
            "full volume: {} objects, {} MiB of content, {} of {} blocks used",
            st.objects,
            st.object_bytes >> 20,
            st.used_blocks,
            st.total_blocks
        ));
    }
    let open_full = |verify_all: bool| {
        let mut o = opts();
        o.read_only = true;
        o.verify_all_data = verify_all;
        let s =
            Store::open(FileDisk::open(&full_path, BLOCK, true).unwrap(), &key(), ledger.clone(), o).unwrap();
        std::hint::black_box(s.generation());
    };
    let raw = std::fs::File::open(&full_path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut row = compare(
        "open + authenticate every block of a full 64 MiB volume",
        Plan::new(10, 3),
        "plain read of the 64 MiB file",
        || {
            for k in 0..64u64 {
                raw.read_exact_at(&mut buf, k << 20).unwrap();
            }
        },
        "Store::open(verify_all_data)",
        || open_full(true),
    );
    let full_median = row.candidate.median;
    row.target = None;
    report.push(row);
    let quick = measure("open (metadata + newest commit) of the 64 MiB volume", Plan::new(10, 5), || {
        open_full(false)
    });
    HEAP.reset_peak();
    let before = HEAP.live();
    open_full(true);
    let peak = HEAP.peak() - before;
    report.note(format!(
        "open + full verification of the full 64 MiB volume: median {} (target <= 50 ms: {}); standard open (metadata and newest-commit blocks only): median {}",
        fmt_duration(full_median),
        if full_median.as_secs_f64() <= 0.050 { "met ✅" } else { "missed ❌" },
        fmt_duration(quick.median)
    ));
    report.note(format!(
        "peak heap during open + full verification: {:.2} MiB (target <= 4 MiB: {})",
        peak as f64 / (1u64 << 20) as f64,
        if peak <= 4 << 20 { "met ✅" } else { "missed ❌" }
    ));
    report.note(format!("bulk put throughput: {:.0} % of plain writes (target >= 70 %)", 100.0 / bulk_ratio));

    // 4. AEAD per 4 KiB block (the store's seal and open), against a durable 4 KiB write.
    let cipher = Aes256Gcm::new(&[7u8; 32].into());
    let aad = [0u8; 48];
    let mut blk = vec![0u8; 4096];
    let zeros = vec![0u8; 4096];
    let f4 = plain(dir.path(), "plain4", 1 << 20);
    let mut tag = Tag::default();
    let row = compare(
        "AES-256-GCM seal + open of one 4 KiB block (48 B AAD)",
        Plan::new(20, 200),
        "pwrite 4 KiB + fdatasync",
        || {
            f4.write_all_at(&zeros, 0).unwrap();
            f4.sync_data().unwrap();
        },
        "seal + open",
        || {
            let n = Nonce::from([1u8; 12]);
            tag = cipher.encrypt_inout_detached(&n, &aad, blk.as_mut_slice().into()).unwrap();
            cipher.decrypt_inout_detached(&n, &aad, blk.as_mut_slice().into(), &tag).unwrap();
        },
    );
    report.note(format!(
        "AEAD per 4 KiB block: seal + open median {} ({}% of one durable 4 KiB write)",
        fmt_duration(row.candidate.median),
        (row.ratio() * 100.0).round()
    ));
    report.push(row);
    report.emit();
}
