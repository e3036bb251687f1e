//! The shared conformance suite against VirtioBlk: the unmodified virtio-drivers driver, through the bounce
//! HAL, against the device model backed by memory and by a file.

use std::cell::RefCell;
use std::rc::Rc;

use svsm_block::conformance::{LARGE_TRANSFER_BYTES, run_all};
use svsm_block::{BlockDevice, FileDisk, MemDisk};
use svsm_block_virtio::fuzzing::{ModelBlk, model};
use svsm_virtio_model::wire::{T_IN, T_OUT};
use svsm_virtio_model::{ModelHandle, ModelOptions};

type Handles = Rc<RefCell<Vec<ModelHandle>>>;

fn device(backing: Box<dyn BlockDevice>, opts: ModelOptions, handles: &Handles) -> Box<dyn BlockDevice> {
    let (dev, handle) = model(backing, opts);
    handles.borrow_mut().push(handle);
    Box::new(ModelBlk::new(dev).expect("probe of an honest model"))
}

fn assert_clean(handles: &Handles) {
    let handles = handles.borrow();
    assert!(!handles.is_empty());
    for h in handles.iter() {
        assert!(h.errors().is_empty(), "driver violated the protocol: {:?}", h.errors());
    }
    // The 1 MiB check went to the device as one request of 1 MiB (no one-page splitting).
    let largest = handles.iter().flat_map(|h| h.events()).filter(|e| e.kind == T_IN || e.kind == T_OUT);
    assert_eq!(largest.map(|e| e.data_len).max(), Some(LARGE_TRANSFER_BYTES));
}

fn conform(make_backing: &mut dyn FnMut(bool) -> Box<dyn BlockDevice>, opts: ModelOptions) {
    let handles: Handles = Rc::default();
    // The read-only device's backing is made first: the writable factory then borrows make_backing alone.
    let mut ro_backings: Vec<Box<dyn BlockDevice>> = vec![make_backing(true)];
    let h = handles.clone();
    let o = opts.clone();
    let mut writable = || device(make_backing(false), o.clone(), &h);
    let ro_opts = ModelOptions { read_only: true, ..opts };
    let handles_ro = handles.clone();
    let mut read_only =
        || device(ro_backings.pop().expect("one read-only device"), ro_opts.clone(), &handles_ro);
    run_all(&mut writable, Some(&mut read_only));
    assert_clean(&handles);
}

#[test]
fn memdisk_backed_conforms() {
    for bs in [512u32, 4096] {
        let blocks = (2 << 20) / u64::from(bs);
        conform(&mut |_| Box::new(MemDisk::new(bs, blocks).unwrap()), ModelOptions::default());
    }
}

#[test]
fn memdisk_backed_conforms_without_indirect_or_event_idx() {
    // Direct descriptor chains and flag-based notification suppression: the other driver paths.
    let opts = ModelOptions { indirect: false, event_idx: false, blk_size: false, ..ModelOptions::default() };
    conform(&mut |_| Box::new(MemDisk::new(512, 4096).unwrap()), opts);
}

#[test]
fn filedisk_backed_conforms() {
    let dir = tempfile::tempdir().unwrap();
    for bs in [512u32, 4096] {
        let mut n = 0;
        let blocks = (2 << 20) / u64::from(bs);
        conform(
            &mut |_| {
                n += 1;
                Box::new(FileDisk::create(dir.path().join(format!("d{bs}-{n}.img")), bs, blocks).unwrap())
            },
            ModelOptions::default(),
        );
    }
}
