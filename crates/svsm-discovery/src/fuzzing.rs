//! Entry points the cargo-fuzz targets wrap, also run by the unit tests over seeded-random and hand-made
//! inputs so `cargo test` exercises the same code.
//!
//! Each one parses arbitrary bytes and checks the promises the parsers make on success, so a fuzzer finds
//! wrong answers as well as panics.

use crate::api::DeviceSource;
use alloc::vec::Vec;

use crate::fdt::{FDT_MAGIC, Fdt, HEADER_LEN};
use crate::hardware_info::{HardwareInfo, RECORD_HEADER_LEN};

/// Parses `data` as `etc/hardware-info` and checks what a successful parse promises.
pub fn hardware_info(data: &[u8]) {
    let info = HardwareInfo::new(data);
    let mut covered = 0usize;
    let mut records_ok = true;
    for record in info.records() {
        match record {
            Ok(r) => {
                assert_eq!(r.offset, covered, "records must tile the blob");
                covered = covered + RECORD_HEADER_LEN + r.payload.len();
                assert!(covered <= data.len(), "record past the end");
            }
            Err(_) => records_ok = false,
        }
    }
    if let Ok(devices) = info.virtio_mmio_devices() {
        assert!(records_ok, "devices reported from a blob with a bad record");
        assert_eq!(covered, data.len(), "a successful parse must consume the whole blob");
        assert!(devices.len() * (RECORD_HEADER_LEN + 8) <= data.len(), "more devices than records");
        for d in devices {
            assert!(d.address.checked_add(d.window_size()).is_some());
        }
    }
}

/// Wraps a structure block and a strings block in a valid version-17 header, so fuzz input can reach the
/// token walker without first guessing a consistent header.
pub fn wrap_fdt(structure: &[u8], strings: &[u8]) -> Vec<u8> {
    let struct_off = HEADER_LEN + 16;
    let strings_off = struct_off + structure.len();
    let total = strings_off + strings.len();
    let words = [
        FDT_MAGIC,
        total as u32,
        struct_off as u32,
        strings_off as u32,
        HEADER_LEN as u32,
        17,
        16,
        0,
        strings.len() as u32,
        structure.len() as u32,
    ];
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(structure);
    out.extend_from_slice(strings);
    out
}

/// Parses `data` as a DTB. The low two bits of the first byte pick the mode: 0 parses the bytes as they are,
/// 1 forces the magic, 2 and 3 treat the rest as a structure block (of `4 * data[1]` bytes, clamped) plus a
/// strings block and wrap them in a valid header ([`wrap_fdt`]), so the fuzzer spends its time in the walk.
pub fn fdt(data: &[u8]) {
    let mode = data.first().map_or(0, |b| b & 3);
    let buf = match mode {
        0 => data.to_vec(),
        1 => {
            let mut buf = data.to_vec();
            if let Some(magic) = buf.get_mut(..4) {
                magic.copy_from_slice(&FDT_MAGIC.to_be_bytes());
            }
            buf
        }
        _ => {
            let body = data.get(2..).unwrap_or_default();
            let split = (usize::from(data.get(1).copied().unwrap_or(0)) * 4).min(body.len() & !3);
            let (structure, strings) = body.split_at(split);
            wrap_fdt(structure, strings)
        }
    };
    check_fdt(&buf);
}

fn check_fdt(buf: &[u8]) {
    let Ok(fdt) = Fdt::parse(buf) else { return };
    // The token walk alone must terminate within size/4 steps.
    assert!(fdt.tokens().count() <= buf.len() / 4 + 1);
    if let Ok(devices) = fdt.virtio_mmio_devices() {
        assert!(devices.len() <= buf.len() / 8);
        for d in devices {
            if let Some(size) = d.size {
                assert!(d.address.checked_add(size).is_some());
            }
            assert!(d.name.is_some());
        }
    }
}

/// Parses `data` as a fw_cfg file directory item and checks what a successful parse promises.
pub fn fw_cfg_directory(data: &[u8]) {
    if let Ok(files) = crate::fw_cfg::parse_directory(data) {
        assert!(files.len() as u32 <= crate::fw_cfg::MAX_FILES);
        assert!(4 + files.len() * 64 <= data.len().max(4));
        for f in files {
            assert!(f.name.len() <= 3 * crate::fw_cfg::FILE_NAME_LEN, "name bounded by its field");
        }
    }
}
