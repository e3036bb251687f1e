//! VirtioBlk on QEMU's virtio-blk-device (microvm, virtio-mmio through qtest, writeback cache) against
//! FileDisk on the same image file, 4 KiB and 64 KiB reads and cached writes, interleaved in one run; then
//! where the candidate's time goes: qtest round trips (the register writes, i.e. the notification) versus
//! everything else (driver, bounce copies, and QEMU's device work on its own threads while we poll).

use std::hint::black_box;
use std::time::{Duration, Instant};

use svsm_benchkit::{Plan, Report, compare, fmt_duration, measure};
use svsm_block::{BlockDevice, FileDisk, WriteMode};
use svsm_block_virtio::VirtioBlkConfig;
use svsm_qtest::{QemuDisk, microvm_slot};

const IMAGE_BYTES: u64 = 16 << 20;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("bench.img");
    std::fs::File::create(&img).and_then(|f| f.set_len(IMAGE_BYTES)).expect("image");
    let mut file = FileDisk::open(&img, 512, false).expect("FileDisk");
    let mut qemu =
        QemuDisk::start(&img, "cache.direct=off,file.locking=off", "", VirtioBlkConfig::default(), None)
            .expect("QEMU virtio-blk (is qemu-system-x86 installed?)");
    let mut report =
        Report::new("QEMU virtio-blk: VirtioBlk on QEMU's virtio-blk-device vs FileDisk, same image");
    let mut breakdown = Vec::new();
    for size in [4096usize, 65536] {
        let blocks = (size / 512) as u64;
        let span = IMAGE_BYTES / 512 / blocks;
        let data = vec![0x3Cu8; size];
        let mut a = vec![0u8; size];
        let mut b = vec![0u8; size];
        let (mut i, mut j) = (0u64, 0u64);
        let plan = Plan::new(20, if size == 4096 { 100 } else { 40 });
        for write in [false, true] {
            let name = format!("{} {} KiB", if write { "write (cached)" } else { "read" }, size / 1024);
            report.push(compare(
                &name,
                plan,
                "FileDisk",
                || {
                    i = (i + 7) % span;
                    if write {
                        file.write_blocks(i * blocks, black_box(&data), WriteMode::Cached).expect("write");
                    } else {
                        file.read_blocks(i * blocks, black_box(&mut a)).expect("read");
                    }
                },
                "VirtioBlk on QEMU",
                || {
                    j = (j + 7) % span;
                    if write {
                        qemu.write_blocks(j * blocks, black_box(&data), WriteMode::Cached).expect("write");
                    } else {
                        qemu.read_blocks(j * blocks, black_box(&mut b)).expect("read");
                    }
                },
            ));
            // Where the time goes: the same operation again, per request: its time, and the time spent in
            // qtest round trips (medians over the requests).
            let ops = 400usize;
            let mut totals = Vec::with_capacity(ops);
            let mut in_trips = Vec::with_capacity(ops);
            let mut trips = 0u64;
            for _ in 0..ops {
                j = (j + 7) % span;
                let before = qemu.machine.qtest().round_trips();
                let t = Instant::now();
                if write {
                    qemu.write_blocks(j * blocks, &data, WriteMode::Cached).expect("write");
                } else {
                    qemu.read_blocks(j * blocks, &mut b).expect("read");
                }
                totals.push(t.elapsed());
                let after = qemu.machine.qtest().round_trips();
                trips += after.count - before.count;
                in_trips.push(Duration::from_nanos(after.nanos - before.nanos));
            }
            let median = |v: &mut Vec<Duration>| {
                v.sort();
                v[v.len() / 2]
            };
            let (total, trip) = (median(&mut totals), median(&mut in_trips));
            breakdown.push((name, trips as f64 / ops as f64, total, trip));
        }
    }
    let q = qemu.machine.qtest().clone();
    let rt = measure("one qtest round trip (readl of the magic register)", Plan::new(20, 200), || {
        black_box(q.readl(microvm_slot(23)).expect("readl"));
    });
    report.note(format!(
        "One qtest round trip alone (readl of a virtio-mmio register): median {}.",
        fmt_duration(rt.median)
    ));
    for (name, trips, total, trip) in breakdown {
        report.note(format!(
            "{name}: {trips:.1} qtest round trip per request; median request {}, of which {} inside the round \
             trip (a bare round trip: {}, the rest is QEMU handling the notification), {} outside it (driver, \
             bounce copies, polling the used ring while QEMU's threads finish the request)",
            fmt_duration(total),
            fmt_duration(trip),
            fmt_duration(rt.median),
            fmt_duration(total.saturating_sub(trip)),
        ));
    }
    report.note(
        "A qtest round trip is a line over a Unix socket to QEMU's main loop and back, standing in for a VM exit; \
         the QueueNotify write is the only register access per request. Its answer comes only after QEMU's \
         virtio-blk has popped the request and submitted it (it runs the queue inside the MMIO write \
         handler), so the round trip holds device work too; QEMU completes the request on its own threads, \
         which the driver sees by polling shared RAM. Only the bare round trip is qtest overhead.",
    );
    report.emit();
}
