//! The fw_cfg reader against hostile directories (the QEMU side is in crates/svsm-qtest/tests/fw_cfg.rs).

use svsm_discovery::DiscoveryError;
use svsm_discovery::fw_cfg::{FwCfg, FwCfgTransport, MAX_FILES, parse_directory};

/// Items served from memory, as a host would (any bytes it likes).
struct Items(Vec<(u16, Vec<u8>)>);

impl FwCfgTransport for Items {
    fn read_item(&mut self, key: u16, out: &mut [u8]) -> Result<(), DiscoveryError> {
        let item = self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        for (i, b) in out.iter_mut().enumerate() {
            *b = item.get(i).copied().unwrap_or(0);
        }
        Ok(())
    }
}

fn entry(name: &[u8], size: u32, select: u16) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend(size.to_be_bytes());
    e.extend(select.to_be_bytes());
    e.extend([0, 0]);
    let mut n = [0u8; 56];
    n[..name.len()].copy_from_slice(name);
    e.extend(n);
    e
}

#[test]
fn a_huge_directory_count_is_refused_before_anything_is_allocated() {
    let mut dir = (MAX_FILES + 1).to_be_bytes().to_vec();
    dir.extend(entry(b"x", 1, 0x20));
    let items = Items(vec![(0, b"QEMU".to_vec()), (0x19, dir.clone())]);
    let mut fw = FwCfg::probe(items).unwrap();
    assert_eq!(fw.files(), Err(DiscoveryError::FwCfgTooManyFiles { count: MAX_FILES + 1, max: MAX_FILES }));
    assert!(parse_directory(&u32::MAX.to_be_bytes()).is_err());
}

#[test]
fn names_without_nul_and_oversized_files_are_handled() {
    let mut dir = 2u32.to_be_bytes().to_vec();
    dir.extend(entry(&[b'a'; 56], 3, 0x20));
    dir.extend(entry(b"etc/hardware-info", u32::MAX, 0x21));
    let items = Items(vec![(0, b"QEMU".to_vec()), (0x19, dir)]);
    let mut fw = FwCfg::probe(items).unwrap();
    let files = fw.files().unwrap();
    assert_eq!(files[0].name.len(), 56, "a name filling its field ends at the field");
    assert!(matches!(
        fw.virtio_mmio_devices(),
        Err(DiscoveryError::FwCfgFileTooLarge { size: u32::MAX, .. })
    ));
}

#[test]
fn fuzz_entry_point_survives_seeded_inputs() {
    let mut x = 7u64;
    for len in 0..600 {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        svsm_discovery::fuzzing::fw_cfg_directory(&data);
        let mut small = data.clone();
        if small.len() >= 4 {
            small[..4].copy_from_slice(&((len as u32) / 64).to_be_bytes());
        }
        svsm_discovery::fuzzing::fw_cfg_directory(&small);
    }
}
