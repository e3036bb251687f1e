//! FileDisk write + flush latency against plain `std::fs` pwrite + `sync_data` of the same bytes.
//!
//! Both sides overwrite preallocated files in the same directory at the same rotating offsets, so the only
//! difference is FileDisk's own layer (request validation, error mapping). Target: within 5 %.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use svsm_benchkit::{Plan, Report, Target, compare};
use svsm_block::{BlockDevice, FileDisk, WriteMode};

const BLOCK: u32 = 4096;
const FILE_BLOCKS: u64 = 1024;

fn main() {
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("temp dir for bench files");
    let mut report = Report::new("Block layer: FileDisk durability cost vs plain std::fs (ext4 here)");
    for (label, bytes, mode) in [
        ("4 KiB write + flush", 4096usize, WriteMode::Cached),
        ("64 KiB write + flush", 65536, WriteMode::Cached),
        ("4 KiB durable (FUA) write", 4096, WriteMode::Durable),
    ] {
        let mut disk =
            FileDisk::create(dir.path().join(format!("disk-{bytes}-{mode:?}")), BLOCK, FILE_BLOCKS)
                .expect("create FileDisk");
        let plain_path = dir.path().join(format!("plain-{bytes}-{mode:?}"));
        let plain = OpenOptions::new().read(true).write(true).create_new(true).open(&plain_path).unwrap();
        plain.set_len(FILE_BLOCKS * u64::from(BLOCK)).unwrap();
        plain.sync_all().unwrap();
        let data = vec![0xA5u8; bytes];
        let stride = (bytes / BLOCK as usize) as u64;
        let slots = FILE_BLOCKS / stride;
        let (mut i, mut j) = (0u64, 0u64);
        let mut row = compare(
            label,
            Plan::new(20, 50),
            "pwrite + sync_data",
            || {
                i = (i + 1) % slots;
                plain.write_all_at(&data, i * stride * u64::from(BLOCK)).unwrap();
                plain.sync_data().unwrap();
            },
            "FileDisk",
            || {
                j = (j + 1) % slots;
                disk.write_blocks(j * stride, &data, mode).unwrap();
                if mode == WriteMode::Cached {
                    disk.flush().unwrap();
                }
            },
        );
        row.target = Some(Target::AtMost(1.05));
        report.push(row);
    }
    report.emit();
}
