//! Volumes the service must refuse, with a precise error and nothing changed: another service's volume,
//! UEFI objects without the marker, a damaged variable object, damaged blocks, a rolled-back image; and a
//! commit that fails while serving (the guest gets EFI_DEVICE_ERROR and the service stops, nothing lost).

mod common;

use svsm_protocol::Guid;
use svsm_store::{MemLedger, MemLedgerFault, StoreError};
use svsm_uefi::mm::{self, status};
use svsm_uefi::persist::StoreVariableStorage;
use svsm_uefi::{MmService, UefiError};

const VENDOR: Guid = Guid::from_fields(0xabad_cafe, 1, 2, [3, 4, 5, 6, 7, 8, 9, 10]);

fn fresh() -> (tempfile::TempDir, std::path::PathBuf, MemLedger) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    (dir, path, MemLedger::new())
}

#[test]
fn a_vtpm_volume_is_foreign() {
    let (_d, path, ledger) = fresh();
    let mut v = common::open(&path, &ledger).expect("open");
    let mut tx = v.begin();
    tx.put(svsm_store::ids::VTPM_PERMANENT, b"permall").expect("put");
    tx.commit().expect("commit");
    let err = StoreVariableStorage::open(v).expect_err("vTPM volume accepted");
    assert!(matches!(err, UefiError::Foreign(_)), "{err}");
}

#[test]
fn uefi_objects_without_marker_or_with_a_bad_one_are_refused() {
    let (_d, path, ledger) = fresh();
    let mut v = common::open(&path, &ledger).expect("open");
    let mut tx = v.begin();
    tx.put(0x11, b"UVAR").expect("put");
    tx.commit().expect("commit");
    assert!(matches!(StoreVariableStorage::open(v), Err(UefiError::Foreign(_))));
    let mut v = common::open(&path, &ledger).expect("open");
    let mut tx = v.begin();
    let mut marker = svsm_uefi::record::encode_marker();
    marker[16] = 2;
    tx.put(0x10, &marker).expect("put");
    tx.commit().expect("commit");
    assert!(matches!(StoreVariableStorage::open(v), Err(UefiError::UnsupportedVersion(2))));
}

#[test]
fn a_damaged_variable_object_is_refused_not_skipped() {
    let (_d, path, ledger) = fresh();
    {
        let mut s = common::service(&path, &ledger);
        let m = mm::set_variable_message(&VENDOR, "Keep", 7, b"value");
        s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("set");
    }
    let valid = {
        let mut v = common::open(&path, &ledger).expect("open");
        let id = v.objects().map(|(id, _)| id).filter(|id| *id > 0x10).max().expect("a variable object");
        let bytes = v.get(id).expect("read").expect("present").to_vec();
        (id, bytes)
    };
    for (what, mutate) in [
        ("magic", Box::new(|b: &mut Vec<u8>| b[0] ^= 1) as Box<dyn Fn(&mut Vec<u8>)>),
        ("length", Box::new(|b: &mut Vec<u8>| b.push(0))),
        ("name length", Box::new(|b: &mut Vec<u8>| b[44] = 0xff)),
        ("flags", Box::new(|b: &mut Vec<u8>| b[41] = 1)),
        ("attributes", Box::new(|b: &mut Vec<u8>| b[4] = 0x06)),
        ("utf-8", Box::new(|b: &mut Vec<u8>| b[52] = 0xff)),
    ] {
        let mut v = common::open(&path, &ledger).expect("open");
        let mut bytes = valid.1.clone();
        mutate(&mut bytes);
        let mut tx = v.begin();
        tx.put(valid.0, &bytes).expect("put");
        tx.commit().expect("commit");
        let err = StoreVariableStorage::open(v).expect_err(what);
        assert!(matches!(err, UefiError::Corrupt { object, .. } if object == valid.0), "{what}: {err}");
    }
}

#[test]
fn damaged_blocks_and_a_rolled_back_image_fail_to_open() {
    let (dir, path, ledger) = fresh();
    {
        let mut s = common::service(&path, &ledger);
        s.communicate(&mm::SMM_VARIABLE_GUID, &mm::set_variable_message(&VENDOR, "dbxish", 7, b"v1"))
            .expect("set");
    }
    let copy = dir.path().join("copy.store");
    std::fs::copy(&path, &copy).expect("copy");
    {
        let mut s = common::service(&path, &ledger);
        s.communicate(&mm::SMM_VARIABLE_GUID, &mm::set_variable_message(&VENDOR, "dbxish", 7, b"v2"))
            .expect("set");
    }
    std::fs::copy(&copy, &path).expect("restore the old image");
    let err = common::open(&path, &ledger).expect_err("rolled-back image opened");
    assert!(matches!(err, StoreError::Rollback { .. }), "{err}");
    // Flip bytes in every data block of a current image: opening must fail, never panic.
    let (_d2, path2, ledger2) = fresh();
    {
        let mut s = common::service(&path2, &ledger2);
        s.communicate(&mm::SMM_VARIABLE_GUID, &mm::set_variable_message(&VENDOR, "x", 7, b"v")).expect("set");
    }
    let mut image = std::fs::read(&path2).expect("read");
    for block in 2..image.len() / 4096 {
        image[block * 4096 + 100] ^= 0x40;
    }
    std::fs::write(&path2, &image).expect("write");
    let opened = common::open(&path2, &ledger2).map_err(UefiError::from).and_then(StoreVariableStorage::open);
    assert!(opened.is_err(), "damaged volume accepted");
}

#[test]
fn a_failed_commit_answers_device_error_and_stops_the_service_without_losing_committed_data() {
    let (_d, path, ledger) = fresh();
    let mut s = common::service(&path, &ledger);
    let ok = mm::set_variable_message(&VENDOR, "Committed", 7, b"yes");
    assert_eq!(
        mm::parse_variable_reply(&s.communicate(&mm::SMM_VARIABLE_GUID, &ok).expect("a")).expect("r").status,
        status::SUCCESS
    );
    ledger.set_fault(MemLedgerFault::Down);
    let lost = mm::set_variable_message(&VENDOR, "Lost", 7, b"no");
    let reply = s.communicate(&mm::SMM_VARIABLE_GUID, &lost).expect("answered");
    assert_eq!(mm::parse_variable_reply(&reply).expect("r").status, status::DEVICE_ERROR);
    assert!(s.is_poisoned());
    let get = mm::get_variable_message(&VENDOR, "Lost", 16);
    assert!(matches!(s.communicate(&mm::SMM_VARIABLE_GUID, &get), Err(UefiError::Poisoned)));
    drop(s);
    ledger.set_fault(MemLedgerFault::None);
    let s = common::service(&path, &ledger);
    assert_eq!(s.get("Committed", &VENDOR).map(|v| v.data.clone()), Some(b"yes".to_vec()));
    assert!(s.get("Lost", &VENDOR).is_none(), "an unacknowledged write appeared");
}
