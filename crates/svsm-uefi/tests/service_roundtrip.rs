//! A guest sets, reads, lists and deletes variables through protocol 4; non-volatile ones survive a crash
//! (the SVSM dropped without closing anything) and a restart, volatile ones do not and never touch the
//! volume; timestamps of authenticated writes persist.

mod common;

use svsm_protocol::Guid;
use svsm_store::MemLedger;
use svsm_uefi::guest::UefiGuestError;
use svsm_uefi::mm::{self, EFI_GLOBAL_VARIABLE_GUID, status};
use svsm_uefi::{MmService, UEFI_SERVICE_GUID};

const VENDOR: Guid = Guid::from_fields(0x1234_5678, 0x9abc, 0xdef0, [1, 2, 3, 4, 5, 6, 7, 8]);
const NV_BS_RT: u32 = 0x7;
const BS_RT: u32 = 0x6;

#[test]
fn nv_variable_survives_crash_and_restart_volatile_does_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    let ledger = MemLedger::new();
    let mut g = common::guest(common::svsm_with(common::service(&path, &ledger)));
    let value: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    g.set_variable("SvsmTest", &VENDOR, NV_BS_RT, &value).expect("set NV");
    g.set_variable("Scratch", &VENDOR, BS_RT, b"volatile").expect("set volatile");
    assert_eq!(g.get_variable("SvsmTest", &VENDOR).expect("get"), (NV_BS_RT, value.clone()));
    assert_eq!(g.get_variable("Scratch", &VENDOR).expect("get"), (BS_RT, b"volatile".to_vec()));
    let names = g.list().expect("list");
    assert!(names.contains(&(VENDOR, "SvsmTest".into())) && names.contains(&(VENDOR, "Scratch".into())));
    drop(g); // crash: nothing closed

    let mut g = common::guest(common::svsm_with(common::service(&path, &ledger)));
    assert_eq!(g.get_variable("SvsmTest", &VENDOR).expect("NV back after restart"), (NV_BS_RT, value));
    assert_eq!(g.get_variable("Scratch", &VENDOR), Err(UefiGuestError::Efi(status::NOT_FOUND)));
    g.set_variable("SvsmTest", &VENDOR, NV_BS_RT, &[]).expect("delete");
    drop(g);
    let mut g = common::guest(common::svsm_with(common::service(&path, &ledger)));
    assert_eq!(g.get_variable("SvsmTest", &VENDOR), Err(UefiGuestError::Efi(status::NOT_FOUND)));
}

#[test]
fn volatile_writes_never_commit_nv_writes_commit_before_the_reply() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    let ledger = MemLedger::new();
    let mut service = common::service(&path, &ledger);
    let generation = service.storage().store().generation();
    let reply = service
        .communicate(&mm::SMM_VARIABLE_GUID, &mm::set_variable_message(&VENDOR, "V", BS_RT, b"x"))
        .expect("answer");
    assert_eq!(mm::parse_variable_reply(&reply).expect("reply").status, status::SUCCESS);
    assert_eq!(service.storage().store().generation(), generation, "a volatile write committed");
    let cas = ledger.cas_count();
    let reply = service
        .communicate(&mm::SMM_VARIABLE_GUID, &mm::set_variable_message(&VENDOR, "N", NV_BS_RT, b"y"))
        .expect("answer");
    assert_eq!(mm::parse_variable_reply(&reply).expect("reply").status, status::SUCCESS);
    assert_eq!(service.storage().store().generation(), generation + 1, "NV write not committed once");
    assert_eq!(ledger.cas_count(), cas + 1, "strict mode: one ledger CAS per NV write");
    // A failed SetVariable (attribute change) commits nothing.
    let reply = service
        .communicate(&mm::SMM_VARIABLE_GUID, &mm::set_variable_message(&VENDOR, "N", NV_BS_RT & !4, b"z"))
        .expect("answer");
    assert_eq!(mm::parse_variable_reply(&reply).expect("reply").status, status::INVALID_PARAMETER);
    assert_eq!(service.storage().store().generation(), generation + 1);
}

/// An EFI_VARIABLE_AUTHENTICATION_2 header (EFI_TIME, WIN_CERTIFICATE_UEFI_GUID with the PKCS7 GUID and an
/// empty certificate) followed by `payload`: what setup-mode enrolment tools send.
pub fn auth2(time: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut v = time.to_vec();
    v.extend_from_slice(&24u32.to_le_bytes());
    v.extend_from_slice(&0x0200u16.to_le_bytes());
    v.extend_from_slice(&0x0EF1u16.to_le_bytes());
    v.extend_from_slice(
        Guid::from_fields(0x4aafd29d, 0x68df, 0x49ee, [0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7])
            .as_bytes(),
    );
    v.extend_from_slice(payload);
    v
}

#[test]
fn setup_mode_dbx_write_persists_its_timestamp_and_manifest_flags_follow() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    let ledger = MemLedger::new();
    let mut svsm = common::svsm_with(common::service(&path, &ledger));
    let time = [0xe8, 0x07, 12, 2, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut g = common::guest(svsm);
    g.set_variable("dbx", &mm::IMAGE_SECURITY_DATABASE_GUID, 0x27, &auth2(time, b"dbx-payload"))
        .expect("setup mode");
    assert_eq!(g.get_variable("dbx", &mm::IMAGE_SECURITY_DATABASE_GUID).expect("get").1, b"dbx-payload");
    svsm = std::mem::replace(&mut g.guest().transport.svsm, common::bare_svsm());
    drop(svsm);
    let service = common::service(&path, &ledger);
    let dbx = service.get("dbx", &mm::IMAGE_SECURITY_DATABASE_GUID).expect("persisted");
    assert_eq!(dbx.timestamp, Some(time), "authenticated-write timestamp lost");
    assert_eq!(dbx.attributes, 0x27);
    // Manifest: persistent, setup mode (no PK) => secure boot not enabled.
    let mut p = svsm_uefi::UefiProtocol::new(service);
    assert_eq!(p.manifest_flags(), svsm_uefi::protocol::MANIFEST_PERSISTENT_NV_VARS);
    let entry = svsm_protocol::ProtocolHandler::manifest_entry(&mut p).expect("entry");
    assert_eq!(entry, (UEFI_SERVICE_GUID, vec![0, 0, 0, 0, 1, 0, 0, 0]));
    let _ = EFI_GLOBAL_VARIABLE_GUID;
}

#[test]
fn enrolled_pk_sets_secureboot_enabled_and_memory_storage_is_not_persistent() {
    use svsm_uefi::persist::MemoryVariableStorage;
    let mut service =
        svsm_uefi::UefiVariables::open(MemoryVariableStorage::new(), Default::default()).expect("open");
    assert!(!service.persistent());
    assert!(!service.secure_boot_enabled());
    let reply = service
        .communicate(
            &mm::SMM_VARIABLE_GUID,
            &mm::set_variable_message(&EFI_GLOBAL_VARIABLE_GUID, "PK", 0x27, &auth2([0; 16], b"pk-esl")),
        )
        .expect("answer");
    assert_eq!(mm::parse_variable_reply(&reply).expect("reply").status, status::SUCCESS);
    assert!(service.secure_boot_enabled(), "PK enrolled but manifest would say secure boot off");
    let p = svsm_uefi::UefiProtocol::new(service);
    assert_eq!(p.manifest_flags(), svsm_uefi::protocol::MANIFEST_SECUREBOOT_ENABLED);
}
