//! svsm-discovery's fw_cfg reader on QEMU's real fw_cfg device: the signature, the directory, and
//! `etc/hardware-info` (supplied with `-fw_cfg name=etc/hardware-info,file=...`) read through the
//! selector/data ports and through DMA, then the virtio-blk device it names driven at that address.

use svsm_block::{BlockDevice, WriteMode};
use svsm_block_virtio::VirtioBlkConfig;
use svsm_discovery::DiscoveryError;
use svsm_discovery::fw_cfg::{FEATURE_DMA, FEATURE_TRADITIONAL, FwCfg, HARDWARE_INFO_FILE};
use svsm_discovery::hardware_info::{TYPE_VIRTIO_MMIO, encode_records};
use svsm_qtest::fw_cfg::{DmaFwCfg, port_fw_cfg};
use svsm_qtest::{MachineBuilder, microvm_slot, open_virtio_blk};

#[test]
fn hardware_info_from_qemus_fw_cfg_finds_the_virtio_blk_device() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.img");
    std::fs::File::create(&img).unwrap().set_len(1 << 20).unwrap();
    // What COCONUT-SVSM's QEMU puts there: a virtio-mmio record per device; plus a record of another type
    // (EDK2's host-bridge info uses the same file), which must be skipped.
    let addr = microvm_slot(23).to_le_bytes();
    let other = [0x11u8; 24];
    let blob = encode_records([(1, &other[..]), (TYPE_VIRTIO_MMIO, &addr[..])]);
    let hw = dir.path().join("hardware-info");
    std::fs::write(&hw, &blob).unwrap();
    let m = MachineBuilder::microvm()
        .virtio_blk("d0", &img, "", "")
        .args(["-fw_cfg".to_string(), format!("name={HARDWARE_INFO_FILE},file={}", hw.display())])
        .start()
        .unwrap();

    let mut ports = FwCfg::probe(port_fw_cfg(m.qtest())).unwrap();
    let features = ports.features().unwrap();
    assert_eq!(features & (FEATURE_TRADITIONAL | FEATURE_DMA), FEATURE_TRADITIONAL | FEATURE_DMA);
    let files = ports.files().unwrap();
    let entry = files.iter().find(|f| f.name == HARDWARE_INFO_FILE).expect("our file in QEMU's directory");
    assert_eq!(entry.size as usize, blob.len());
    assert!(entry.select >= 0x20, "file keys start at FW_CFG_FILE_FIRST");
    assert_eq!(ports.read_file(HARDWARE_INFO_FILE, 4096).unwrap().unwrap(), blob);

    let trips = m.qtest().round_trips().count;
    let mut dma = FwCfg::probe(DmaFwCfg::new(m.qtest())).unwrap();
    assert_eq!(dma.files().unwrap(), files, "DMA and port I/O see the same directory");
    assert_eq!(dma.read_file(HARDWARE_INFO_FILE, 4096).unwrap().unwrap(), blob);
    let devices = dma.virtio_mmio_devices().unwrap();
    assert!(m.qtest().round_trips().count - trips < 40, "DMA moves whole items per request");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].address, 0xfeb0_2e00);
    assert_eq!(ports.virtio_mmio_devices().unwrap(), devices);
    // A size bound below the file's size is refused, not truncated.
    assert!(matches!(
        ports.read_file(HARDWARE_INFO_FILE, blob.len() - 1),
        Err(DiscoveryError::FwCfgFileTooLarge { .. })
    ));

    // The discovered address is the device: probe it and move data.
    let mut blk = open_virtio_blk(m.qtest(), devices[0].address, VirtioBlkConfig::default(), None)
        .expect("virtio-blk there");
    blk.write_blocks(3, &[0x5A; 512], WriteMode::Durable).unwrap();
    let mut back = [0u8; 512];
    blk.read_blocks(3, &mut back).unwrap();
    assert_eq!(back, [0x5A; 512]);
}

#[test]
fn a_machine_without_hardware_info_says_how_to_supply_it() {
    let m = MachineBuilder::microvm().start().unwrap();
    let mut fw = FwCfg::probe(port_fw_cfg(m.qtest())).unwrap();
    let err = fw.virtio_mmio_devices().unwrap_err();
    assert!(matches!(err, DiscoveryError::FwCfgFileMissing { .. }), "{err}");
    assert!(err.to_string().contains("-fw_cfg name=etc/hardware-info"), "{err}");
    // Where there is no fw_cfg device, the signature check says so (ports read as all-ones on x86).
    #[derive(Debug)]
    struct Empty;
    impl svsm_discovery::fw_cfg::PortIo for Empty {
        fn outw(&mut self, _: u16, _: u16) {}
        fn inb(&mut self, _: u16) -> u8 {
            0xFF
        }
    }
    let err = FwCfg::probe(svsm_discovery::fw_cfg::PortFwCfg(Empty)).unwrap_err();
    assert_eq!(err, DiscoveryError::FwCfgNoDevice { found: [0xFF; 4] });
}
