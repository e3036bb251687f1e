//! What the virtio path costs on top of the medium: VirtioBlk (real virtio-drivers driver, bounce HAL, device
//! model doing the ring work in `notify`) against the same MemDisk used directly, 4 KiB and 64 KiB.

use std::hint::black_box;

use svsm_benchkit::{Plan, Report, compare};
use svsm_block::{BlockDevice, MemDisk, WriteMode};
use svsm_block_virtio::fuzzing::{ModelBlk, model};
use svsm_virtio_model::ModelOptions;

const DISK_BLOCKS: u64 = 4096; // 2 MiB of 512-byte sectors

fn main() {
    let mut report = Report::new("virtio-blk: VirtioBlk + device model vs MemDisk directly");
    let mut direct = MemDisk::new(512, DISK_BLOCKS).expect("geometry");
    let (dev, _handle) =
        model(Box::new(MemDisk::new(512, DISK_BLOCKS).expect("geometry")), ModelOptions::default());
    let mut virtio = ModelBlk::new(dev).expect("probe");
    for size in [4096usize, 65536] {
        let blocks = (size / 512) as u64;
        let span = DISK_BLOCKS / blocks;
        let data = vec![0x3Cu8; size];
        let mut buf_a = vec![0u8; size];
        let mut buf_b = vec![0u8; size];
        let (mut i, mut j) = (0u64, 0u64);
        let plan = Plan::new(30, if size == 4096 { 400 } else { 100 });
        report.push(compare(
            &format!("read {} KiB", size / 1024),
            plan,
            "MemDisk",
            || {
                i = (i + 1) % span;
                direct.read_blocks(i * blocks, black_box(&mut buf_a)).expect("read");
            },
            "VirtioBlk+model",
            || {
                j = (j + 1) % span;
                virtio.read_blocks(j * blocks, black_box(&mut buf_b)).expect("read");
            },
        ));
        report.push(compare(
            &format!("write {} KiB (cached)", size / 1024),
            plan,
            "MemDisk",
            || {
                i = (i + 1) % span;
                direct.write_blocks(i * blocks, black_box(&data), WriteMode::Cached).expect("write");
            },
            "VirtioBlk+model",
            || {
                j = (j + 1) % span;
                virtio.write_blocks(j * blocks, black_box(&data), WriteMode::Cached).expect("write");
            },
        ));
    }
    report.note(
        "The model does its device work synchronously inside notify, so the candidate includes both the driver \
         side (descriptor setup, bounce copy in and out, status check) and the device side (chain walk, copy \
         to or from the medium); a real host adds its own exit and I/O latency on top.",
    );
    report.emit();
}
