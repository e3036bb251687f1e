//! The model as a device, driven by hand-built rings: a correct request is served byte for byte, and each
//! kind of driver bug becomes a recorded `ModelError` (and a stopped device), never a wild access.

use std::ptr::NonNull;

use svsm_block::{BlockDevice, MemDisk};
use svsm_virtio_model::wire::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, S_OK, T_IN, T_OUT};
use svsm_virtio_model::{GuestMemory, ModelError, ModelOptions, VirtioBlkModel};
use virtio_drivers::transport::{DeviceStatus, Transport};

const GPA: u64 = 0x10_0000;
const SIZE: u32 = 16;
const DESC: u64 = GPA;
const AVAIL: u64 = GPA + 0x1000;
const USED: u64 = GPA + 0x2000;
const BUF: u64 = GPA + 0x3000;

/// Guest RAM of 16 pages, a model on it, and the queue set up.
struct Rig {
    ram: Vec<u64>,
    dev: VirtioBlkModel,
}

impl Rig {
    fn new(opts: ModelOptions) -> Self {
        let mut ram = vec![0u64; 16 * 4096 / 8];
        let mut mem = GuestMemory::new();
        let host = NonNull::new(ram.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `ram` lives as long as the rig (moved into it, never reallocated) and is only accessed
        // through the arena and through raw pointers below.
        unsafe { mem.add_region(GPA, host, 16 * 4096) }.unwrap();
        let mut disk = MemDisk::new(512, 8).unwrap();
        disk.write_blocks(2, &[0xAB; 512], svsm_block::WriteMode::Cached).unwrap();
        let mut dev = VirtioBlkModel::new(Box::new(disk), mem, opts);
        dev.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let features = dev.read_device_features();
        dev.write_driver_features(features);
        dev.queue_set(0, SIZE, DESC, AVAIL, USED);
        dev.set_status(
            DeviceStatus::ACKNOWLEDGE
                | DeviceStatus::DRIVER
                | DeviceStatus::FEATURES_OK
                | DeviceStatus::DRIVER_OK,
        );
        Rig { ram, dev }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the Vec<u64> is 16 pages of initialised memory; viewing it as bytes is always valid.
        unsafe { std::slice::from_raw_parts_mut(self.ram.as_mut_ptr().cast::<u8>(), 16 * 4096) }
    }

    fn put(&mut self, gpa: u64, data: &[u8]) {
        let at = (gpa - GPA) as usize;
        self.bytes()[at..at + data.len()].copy_from_slice(data);
    }

    fn get(&mut self, gpa: u64, len: usize) -> Vec<u8> {
        let at = (gpa - GPA) as usize;
        self.bytes()[at..at + len].to_vec()
    }

    fn desc(&mut self, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = Vec::new();
        d.extend(addr.to_le_bytes());
        d.extend(len.to_le_bytes());
        d.extend(flags.to_le_bytes());
        d.extend(next.to_le_bytes());
        self.put(table + 16 * u64::from(i), &d);
    }

    fn header(&mut self, at: u64, kind: u32, sector: u64) {
        let mut h = Vec::new();
        h.extend(kind.to_le_bytes());
        h.extend(0u32.to_le_bytes());
        h.extend(sector.to_le_bytes());
        self.put(at, &h);
    }

    /// Publishes head `head` as available entry `n` and notifies.
    fn submit(&mut self, n: u16, head: u16) {
        self.put(AVAIL + 4 + 2 * u64::from(n % 16), &head.to_le_bytes());
        self.put(AVAIL + 2, &(n + 1).to_le_bytes());
        self.dev.notify(0);
    }

    fn used_idx(&mut self) -> u16 {
        u16::from_le_bytes(self.get(USED + 2, 2).try_into().unwrap())
    }
}

#[test]
fn a_direct_read_chain_is_served_and_published() {
    let mut rig = Rig::new(ModelOptions::default());
    let handle = rig.dev.handle();
    rig.header(BUF, T_IN, 2);
    rig.desc(DESC, 0, BUF, 16, DESC_F_NEXT, 1);
    rig.desc(DESC, 1, BUF + 512, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
    rig.desc(DESC, 2, BUF + 1024, 1, DESC_F_WRITE, 0);
    rig.put(BUF + 1024, &[0xEE]);
    rig.submit(0, 0);
    assert!(handle.errors().is_empty(), "{:?}", handle.errors());
    assert_eq!(rig.get(BUF + 512, 512), vec![0xAB; 512]);
    assert_eq!(rig.get(BUF + 1024, 1), [S_OK]);
    assert_eq!(rig.used_idx(), 1);
    assert_eq!(rig.get(USED + 4, 8), [0, 0, 0, 0, 1, 2, 0, 0], "used elem {{id 0, len 513}}");
    // EVENT_IDX: the device asks to be notified once avail.idx passes 1.
    assert_eq!(rig.get(USED + 4 + 8 * 16, 2), [1, 0]);
}

#[test]
fn an_indirect_write_chain_reaches_the_medium() {
    let mut rig = Rig::new(ModelOptions::default());
    let handle = rig.dev.handle();
    let table = BUF + 0x800;
    rig.header(BUF, T_OUT, 5);
    rig.put(BUF + 16, &[0x42; 512]);
    rig.desc(table, 0, BUF, 16, DESC_F_NEXT, 1);
    rig.desc(table, 1, BUF + 16, 512, DESC_F_NEXT, 2);
    rig.desc(table, 2, BUF + 600, 1, DESC_F_WRITE, 0);
    rig.desc(DESC, 3, table, 48, DESC_F_INDIRECT, 0);
    rig.submit(0, 3);
    assert!(handle.errors().is_empty(), "{:?}", handle.errors());
    assert_eq!(rig.get(BUF + 600, 1), [S_OK]);
    let mut block = [0u8; 512];
    handle.with_backing(|b| b.read_blocks(5, &mut block)).unwrap();
    assert_eq!(block, [0x42; 512]);
}

#[test]
fn driver_bugs_become_model_errors() {
    type Setup = fn(&mut Rig);
    type Check = fn(&ModelError) -> bool;
    let cases: [(&str, Setup, Check); 5] = [
        (
            "address outside guest RAM",
            |r| {
                r.header(BUF, T_IN, 0);
                r.desc(DESC, 0, BUF, 16, DESC_F_NEXT, 1);
                r.desc(DESC, 1, 0xDEAD_0000, 513, DESC_F_WRITE, 0);
            },
            |e| matches!(e, ModelError::OutsideGuestRam { gpa: 0xDEAD_0000, .. }),
        ),
        (
            "descriptor loop",
            |r| {
                r.header(BUF, T_IN, 0);
                r.desc(DESC, 0, BUF, 16, DESC_F_NEXT, 1);
                r.desc(DESC, 1, BUF + 512, 512, DESC_F_NEXT | DESC_F_WRITE, 0);
            },
            |e| matches!(e, ModelError::ChainTooLong),
        ),
        (
            "next index out of range",
            |r| {
                r.header(BUF, T_IN, 0);
                r.desc(DESC, 0, BUF, 16, DESC_F_NEXT, 99);
            },
            |e| matches!(e, ModelError::BadDescriptorIndex(99)),
        ),
        (
            "readable after writable",
            |r| {
                r.header(BUF, T_IN, 0);
                r.desc(DESC, 0, BUF + 512, 1, DESC_F_NEXT | DESC_F_WRITE, 1);
                r.desc(DESC, 1, BUF, 16, 0, 0);
            },
            |e| matches!(e, ModelError::ReadableAfterWritable),
        ),
        (
            "nested indirect",
            |r| {
                let table = BUF + 0x800;
                r.desc(table, 0, table, 16, DESC_F_INDIRECT, 0);
                r.desc(DESC, 0, table, 16, DESC_F_INDIRECT, 0);
            },
            |e| matches!(e, ModelError::BadIndirect(_)),
        ),
    ];
    for (name, setup, expected) in cases {
        let mut rig = Rig::new(ModelOptions::default());
        let handle = rig.dev.handle();
        setup(&mut rig);
        rig.submit(0, 0);
        let errors = handle.errors();
        assert!(matches!(errors.as_slice(), [e] if expected(e)), "{name}: {errors:?}");
        assert!(rig.dev.get_status().contains(DeviceStatus::DEVICE_NEEDS_RESET), "{name}");
        assert_eq!(rig.used_idx(), 0, "{name}: nothing may be completed");
        assert!(handle.events().is_empty(), "{name}");
    }
}
