//! Our virtio-blk driver (the real virtio-drivers `VirtIOBlk` behind `SevBounceHal`, unchanged) on QEMU's
//! virtio-blk-device over microvm's virtio-mmio, through qtest: discovery of the slot, the shared conformance
//! suite, every request size up to the 1 MiB limit, unaligned buffers, flush reaching the image file, and
//! GET_ID.

use std::path::Path;

use svsm_block::conformance::{pattern, run_all};
use svsm_block::{BlockDevice, WriteMode};
use svsm_block_virtio::VirtioBlkConfig;
use svsm_qtest::{
    MICROVM_VIRTIO_MMIO_SLOTS, MachineBuilder, QemuDisk, QtestError, QtestMmioTransport, TransportError,
    microvm_slot,
};

const MIB: u64 = 1 << 20;

fn image(dir: &Path, name: &str, bytes: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(bytes).unwrap();
    p
}

fn disk(img: &Path, drive: &str, device: &str) -> QemuDisk {
    QemuDisk::start(img, drive, device, VirtioBlkConfig::default(), None)
        .unwrap_or_else(|e| panic!("QEMU virtio-blk on {}: {e}", img.display()))
}

fn fill(seed: u64, len: usize) -> Vec<u8> {
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

#[test]
fn the_device_sits_in_slot_23_and_the_other_slots_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "d.img", MIB);
    let m = MachineBuilder::microvm().virtio_blk("d0", &img, "", "").start().unwrap();
    let q = m.qtest();
    assert_eq!(microvm_slot(23), 0xfeb0_2e00);
    assert_eq!(q.readl(0xfeb0_2e00).unwrap(), svsm_qtest::virtio_mmio::MAGIC);
    assert_eq!(q.readl(0xfeb0_2e08).unwrap(), 2, "device id 2 = block");
    let t = QtestMmioTransport::new(q.clone(), microvm_slot(23)).unwrap();
    assert_eq!(t.base(), 0xfeb0_2e00);
    for slot in 0..MICROVM_VIRTIO_MMIO_SLOTS - 1 {
        match QtestMmioTransport::new(q.clone(), microvm_slot(slot)) {
            Err(TransportError::NoDevice { id: 0, .. }) => {}
            other => panic!("slot {slot}: expected an empty transport, got {other:?}"),
        }
    }
    // Below the windows there is no virtio-mmio at all.
    assert!(matches!(QtestMmioTransport::new(q.clone(), 0xfeaf_fe00), Err(TransportError::NotVirtio { .. })));
}

#[test]
fn qemu_problems_are_clear_errors() {
    let err = MachineBuilder::microvm().binary("/nonexistent/qemu-system-x86_64").start().unwrap_err();
    assert!(matches!(err, QtestError::QemuMissing { .. }), "{err}");
    assert!(err.to_string().contains("qemu-system-x86"), "the error says what to install: {err}");
    let err = MachineBuilder::microvm().args(["-device", "no-such-device"]).start().unwrap_err();
    match &err {
        QtestError::QemuExited { stderr, .. } => assert!(stderr.contains("no-such-device"), "{err}"),
        other => panic!("expected QemuExited, got {other}"),
    }
    // A killed QEMU: commands fail instead of hanging, and keep failing.
    let mut m = MachineBuilder::microvm().start().unwrap();
    let q = m.qtest().clone();
    assert!(q.readl(microvm_slot(0)).is_ok());
    m.kill();
    assert!(!m.is_running());
    let first = q.readl(microvm_slot(0)).unwrap_err();
    assert!(matches!(first, QtestError::QemuExited { .. }), "{first}");
    assert!(matches!(q.readl(microvm_slot(0)).unwrap_err(), QtestError::Disconnected(_)));
}

#[test]
fn conformance_suite_on_qemu_virtio_blk() {
    let dir = tempfile::tempdir().unwrap();
    for (bs, device, drive) in
        [(512u32, "", ""), (4096, "logical_block_size=4096,physical_block_size=4096", "cache.direct=on")]
    {
        let mut n = 0;
        let mut writable = || -> Box<dyn BlockDevice> {
            n += 1;
            let img = image(dir.path(), &format!("w{bs}-{n}.img"), 4 * MIB);
            Box::new(disk(&img, drive, device))
        };
        let ro = image(dir.path(), &format!("ro{bs}.img"), MIB);
        let ro_drive =
            if drive.is_empty() { "readonly=on".to_string() } else { format!("{drive},readonly=on") };
        let mut read_only = || -> Box<dyn BlockDevice> { Box::new(disk(&ro, &ro_drive, device)) };
        run_all(&mut writable, Some(&mut read_only));
        // The geometry came from the device: blk_size and capacity as QEMU was configured.
        let d = writable();
        assert_eq!((d.block_size(), d.num_blocks()), (bs, 4 * MIB / u64::from(bs)));
    }
}

/// Every request length from one sector to the 1 MiB single-request limit (and just past it, which the
/// driver splits): all lengths up to 64 sectors, then every 64th with its neighbours; every length with
/// `SVSM_LONG_TESTS=1`.
#[test]
fn requests_of_every_size_up_to_1_mib() {
    let long = std::env::var_os("SVSM_LONG_TESTS").is_some();
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "sizes.img", 4 * MIB);
    let mut d = disk(&img, "", "");
    let max = (MIB / 512) as usize;
    let mut counts: Vec<usize> = if long {
        (1..=max + 1).collect()
    } else {
        let mut v: Vec<usize> = (1..=64).collect();
        for k in (128..=max).step_by(64) {
            v.extend([k - 1, k, k + 1]);
        }
        v
    };
    counts.retain(|&k| k <= max + 1);
    counts.dedup();
    let fence = pattern(u64::MAX, 1, 512);
    for &k in &counts {
        let lba = 1 + (k as u64 * 7) % 1024;
        let data = fill(k as u64, k * 512);
        d.write_blocks(lba - 1, &fence, WriteMode::Cached).unwrap();
        d.write_blocks(lba + k as u64, &fence, WriteMode::Cached).unwrap();
        d.write_blocks(lba, &data, WriteMode::Cached).unwrap_or_else(|e| panic!("write of {k} sectors: {e}"));
        let mut back = vec![0u8; k * 512];
        d.read_blocks(lba, &mut back).unwrap_or_else(|e| panic!("read of {k} sectors: {e}"));
        assert!(back == data, "{k} sectors read back differently");
        let mut f = vec![0u8; 512];
        d.read_blocks(lba - 1, &mut f).unwrap();
        assert_eq!(f, fence, "{k} sectors: the sector before the request changed");
        d.read_blocks(lba + k as u64, &mut f).unwrap();
        assert_eq!(f, fence, "{k} sectors: the sector after the request changed");
    }
    eprintln!("{} request sizes checked", counts.len());
    d.flush().unwrap();
    drop(d);
    // What the last request wrote is in the image file, where QEMU put it.
    let k = *counts.last().unwrap();
    let lba = 1 + (k as u64 * 7) % 1024;
    let file = std::fs::read(&img).unwrap();
    assert!(file[lba as usize * 512..(lba as usize + k) * 512] == fill(k as u64, k * 512)[..]);
}

#[test]
fn unaligned_buffers_read_and_write_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "unaligned.img", 2 * MIB);
    let mut d = disk(&img, "cache.direct=on", "");
    for (i, len) in [512usize, 4096, 8192 + 512, 65536 + 512, 1 << 20].into_iter().enumerate() {
        for offset in [1usize, 3, 7, 511, 4095] {
            let mut backing = fill((i * 31 + offset) as u64, len + offset + 8);
            let data = backing[offset..offset + len].to_vec();
            d.write_blocks(8, &backing[offset..offset + len], WriteMode::Cached).unwrap();
            let mut out = vec![0xA5u8; len + offset + 8];
            d.read_blocks(8, &mut out[offset..offset + len]).unwrap();
            assert!(out[offset..offset + len] == data[..], "len {len} offset {offset}");
            assert!(out[..offset].iter().all(|&b| b == 0xA5), "bytes before the buffer were written");
            assert!(out[offset + len..].iter().all(|&b| b == 0xA5), "bytes after the buffer were written");
            backing.clear();
        }
    }
}

#[test]
fn flush_and_durable_writes_reach_the_image_file() {
    let dir = tempfile::tempdir().unwrap();
    for drive in ["cache.direct=on", "cache.direct=off", "cache.no-flush=off"] {
        let img = image(dir.path(), &format!("flush-{}.img", drive.replace(['=', '.'], "_")), MIB);
        let mut d = disk(&img, drive, "");
        let a = fill(1, 4096);
        let b = fill(2, 8192);
        d.write_blocks(16, &a, WriteMode::Cached).unwrap();
        d.flush().unwrap();
        d.write_blocks(64, &b, WriteMode::Durable).unwrap();
        let file = std::fs::read(&img).unwrap();
        assert!(file[16 * 512..16 * 512 + 4096] == a[..], "{drive}: flushed write not in the file");
        assert!(file[64 * 512..64 * 512 + 8192] == b[..], "{drive}: durable write not in the file");
        d.flush().unwrap();
    }
}

#[test]
fn get_id_returns_the_serial_qemu_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "id.img", MIB);
    let mut d = disk(&img, "", "serial=svsm-qtest-15");
    let (id, len) = d.blk.device_id().unwrap();
    assert_eq!(&id[..len], b"svsm-qtest-15");
}
