//! MemDisk and FileDisk against the shared conformance suite.

use svsm_block::conformance::run_all;
use svsm_block::{BlockDevice, FileDisk, FileDiskError, MemDisk};

#[test]
fn memdisk_conforms() {
    for bs in [512, 4096] {
        run_all(
            &mut || Box::new(MemDisk::new(bs, 512).unwrap()),
            Some(&mut || {
                let mut d = MemDisk::new(bs, 64).unwrap();
                d.set_read_only(true);
                Box::new(d)
            }),
        );
    }
}

#[test]
fn filedisk_conforms() {
    let dir = tempfile::tempdir().unwrap();
    for bs in [512u32, 4096] {
        let mut n = 0;
        let mut make = || -> Box<dyn BlockDevice> {
            n += 1;
            Box::new(FileDisk::create(dir.path().join(format!("w{bs}-{n}.img")), bs, 512).unwrap())
        };
        let ro_path = dir.path().join(format!("ro{bs}.img"));
        drop(FileDisk::create(&ro_path, bs, 64).unwrap());
        run_all(&mut make, Some(&mut || Box::new(FileDisk::open(&ro_path, bs, true).unwrap())));
    }
}

#[test]
fn filedisk_refuses_partial_block_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.img");
    std::fs::write(&path, vec![0u8; 4096 + 100]).unwrap();
    match FileDisk::open(&path, 4096, false) {
        Err(FileDiskError::PartialBlock { size, block_size, .. }) => {
            assert_eq!((size, block_size), (4196, 4096));
        }
        other => panic!("expected PartialBlock, got {other:?}"),
    }
    // Block sizes below 512 are refused as geometry errors, not guessed at.
    assert!(matches!(FileDisk::open(&path, 100, false), Err(FileDiskError::Geometry { .. })));
}

#[test]
fn filedisk_create_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exists.img");
    std::fs::write(&path, b"precious").unwrap();
    assert!(matches!(FileDisk::create(&path, 512, 8), Err(FileDiskError::Io { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn filedisk_reports_a_file_shrunk_underneath_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrink.img");
    let mut disk = FileDisk::create(&path, 512, 8).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1024).unwrap();
    let mut buf = vec![0u8; 512];
    let err = disk.read_blocks(7, &mut buf).unwrap_err();
    assert!(matches!(err, svsm_block::BlockError::DeviceMisbehaved { .. }), "{err:?}");
}
