//! `etc/hardware-info` record lists, well-formed and hostile.

use svsm_discovery::hardware_info::{HardwareInfo, TYPE_VIRTIO_MMIO, encode_records};
use svsm_discovery::{DiscoveryError, VirtioMmioDevice, fuzzing, virtio_mmio_from_hardware_info};

fn dev(address: u64) -> VirtioMmioDevice {
    VirtioMmioDevice { address, size: None, plane: None, name: None }
}

#[test]
fn empty_blob_has_no_devices() {
    assert_eq!(virtio_mmio_from_hardware_info(&[]).unwrap(), vec![]);
}

#[test]
fn virtio_records_are_found_in_order_and_others_skipped() {
    let a = 0xfeb0_0000u64.to_le_bytes();
    let b = 0xfeb0_0200u64.to_le_bytes();
    let host_bridge = [0x5Au8; 24];
    let blob = encode_records([
        (1, &host_bridge[..]),
        (TYPE_VIRTIO_MMIO, &a[..]),
        (0x2000, &[][..]),
        (TYPE_VIRTIO_MMIO, &b[..]),
        (u64::MAX, &[1, 2, 3][..]),
    ]);
    let devices = virtio_mmio_from_hardware_info(&blob).unwrap();
    assert_eq!(devices, vec![dev(0xfeb0_0000), dev(0xfeb0_0200)]);
    assert_eq!(devices[0].window_size(), 0x200);
    // The record iterator sees all five, at the right offsets.
    let recs: Vec<_> = HardwareInfo::new(&blob).records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 40, 64, 80, 104]);
    assert_eq!(recs[4].payload, &[1, 2, 3]);
}

#[test]
fn a_truncated_header_is_reported_where_it_starts() {
    let a = 0x1000u64.to_le_bytes();
    let mut blob = encode_records([(TYPE_VIRTIO_MMIO, &a[..])]);
    blob.extend_from_slice(&[0u8; 15]);
    assert_eq!(
        virtio_mmio_from_hardware_info(&blob),
        Err(DiscoveryError::HwInfoTruncatedHeader { offset: 24, remaining: 15 })
    );
    assert_eq!(
        virtio_mmio_from_hardware_info(&[1, 2, 3]),
        Err(DiscoveryError::HwInfoTruncatedHeader { offset: 0, remaining: 3 })
    );
}

#[test]
fn payloads_past_the_end_are_refused_without_overflow() {
    let mut blob = encode_records([(TYPE_VIRTIO_MMIO, &[0u8; 8][..])]);
    blob[8] = 9; // claims 9 bytes, 8 present
    assert_eq!(
        virtio_mmio_from_hardware_info(&blob),
        Err(DiscoveryError::HwInfoPayloadPastEnd { offset: 0, size: 9, remaining: 8 })
    );
    for size in [u64::MAX, u64::MAX - 15, 1 << 63, usize::MAX as u64] {
        let mut blob = encode_records([(7, &[0u8; 4][..])]);
        blob[8..16].copy_from_slice(&size.to_le_bytes());
        assert_eq!(
            virtio_mmio_from_hardware_info(&blob),
            Err(DiscoveryError::HwInfoPayloadPastEnd { offset: 0, size, remaining: 4 })
        );
    }
}

#[test]
fn virtio_payloads_must_be_exactly_one_address() {
    for len in [0usize, 4, 7, 9, 16] {
        let payload = vec![0x11u8; len];
        let blob = encode_records([(TYPE_VIRTIO_MMIO, &payload[..])]);
        assert_eq!(
            virtio_mmio_from_hardware_info(&blob),
            Err(DiscoveryError::HwInfoVirtioPayloadSize { offset: 0, size: len as u64 }),
            "payload of {len} bytes"
        );
    }
}

#[test]
fn a_window_wrapping_the_address_space_is_refused() {
    let top = (u64::MAX - 0x100).to_le_bytes();
    let blob = encode_records([(TYPE_VIRTIO_MMIO, &top[..])]);
    assert_eq!(
        virtio_mmio_from_hardware_info(&blob),
        Err(DiscoveryError::WindowOverflow { address: u64::MAX - 0x100, size: 0x200 })
    );
    let last_ok = (u64::MAX - 0x200).to_le_bytes();
    let blob = encode_records([(TYPE_VIRTIO_MMIO, &last_ok[..])]);
    assert_eq!(virtio_mmio_from_hardware_info(&blob).unwrap(), vec![dev(u64::MAX - 0x200)]);
}

#[test]
fn the_record_iterator_stops_after_the_first_error() {
    let blob = [0u8; 20];
    let mut it = HardwareInfo::new(&blob).records();
    assert!(it.next().unwrap().is_ok()); // type 0, size 0
    assert!(it.next().unwrap().is_err()); // 4 bytes left
    assert!(it.next().is_none());
}

/// Seeded-random and structured inputs through the fuzz entry point, so CI runs what the fuzzer runs.
#[test]
fn fuzz_entry_point_survives_random_and_structured_blobs() {
    let mut x = 0x243F_6A88_85A3_08D3u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..4000 {
        let len = (next() % 96) as usize;
        let mut blob: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Every other input is a plausible record list with one field perturbed.
        if i % 2 == 0 {
            let addr = next().to_le_bytes();
            let other = vec![0u8; (next() % 20) as usize];
            blob = encode_records([(TYPE_VIRTIO_MMIO, &addr[..]), (next() % 3, &other[..])]);
            let at = (next() as usize) % blob.len();
            blob[at] = next() as u8;
            blob.truncate(blob.len() - (next() % 3) as usize);
        }
        fuzzing::hardware_info(&blob);
    }
}
