//! Malformed MM messages: sizes that overflow or point past the message, unterminated or odd-sized names,
//! unknown functions and GUIDs, truncated headers. Each gets its EFI status in the buffer (RAX stays
//! SUCCESS), nothing is stored, and the service keeps working.

mod common;

use svsm_protocol::Guid;
use svsm_store::MemLedger;
use svsm_uefi::MmService;
use svsm_uefi::mm::{self, status};

const VENDOR: Guid = Guid::from_fields(0xfeed_f00d, 1, 2, [3, 4, 5, 6, 7, 8, 9, 10]);

fn status_of(reply: &[u8]) -> u64 {
    mm::parse_variable_reply(reply).expect("reply has a header").status
}

fn setup() -> (tempfile::TempDir, common::Service) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    let s = common::service(&path, &MemLedger::new());
    (dir, s)
}

#[test]
fn size_fields_that_overflow_or_exceed_the_message_are_invalid_parameter() {
    let (_d, mut s) = setup();
    let generation = s.storage().store().generation();
    let good = mm::set_variable_message(&VENDOR, "Var", 7, b"data");
    for (off, value) in [
        (16 + 16, u64::MAX),     // DataSize
        (16 + 16, 5),            // DataSize one past the message
        (16 + 24, u64::MAX),     // NameSize
        (16 + 24, u64::MAX - 7), // NameSize + DataSize wraps
        (16 + 24, 1 << 40),      // NameSize far beyond
        (16 + 24, 0),            // empty name
        (16 + 24, 7),            // odd
        (16 + 24, 6),            // not terminated where NameSize says
    ] {
        let mut m = good.clone();
        m[off..off + 8].copy_from_slice(&value.to_le_bytes());
        let reply = s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("answered");
        assert_eq!(status_of(&reply), status::INVALID_PARAMETER, "field @{off} = {value:#x}");
        assert!(reply.len() <= m.len());
    }
    let mut m = mm::get_variable_message(&VENDOR, "Var", 8);
    m[16 + 24..16 + 32].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a")), status::INVALID_PARAMETER);
    let mut m = mm::get_next_variable_message(&VENDOR, "", 16);
    m[16 + 16..16 + 24].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    assert_eq!(status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a")), status::INVALID_PARAMETER);
    assert_eq!(s.storage().store().generation(), generation, "a malformed request committed");
    let reply = s.communicate(&mm::SMM_VARIABLE_GUID, &good).expect("still serving");
    assert_eq!(status_of(&reply), status::SUCCESS);
}

#[test]
fn unterminated_names_and_truncated_payloads() {
    let (_d, mut s) = setup();
    // Name without its NUL: NameSize counts only the characters.
    let mut m = mm::set_variable_message(&VENDOR, "Var", 7, b"data");
    m[16 + 24..16 + 32].copy_from_slice(&6u64.to_le_bytes());
    m.drain(16 + 36 + 6..16 + 36 + 8);
    assert_eq!(status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a")), status::INVALID_PARAMETER);
    // GetNext whose name buffer has no NUL at all.
    let mut m = mm::get_next_variable_message(&VENDOR, "", 8);
    for b in &mut m[16 + 24..] {
        *b = b'A';
    }
    assert_eq!(status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a")), status::INVALID_PARAMETER);
    // A surrogate code unit (not UCS-2).
    let mut m = mm::set_variable_message(&VENDOR, "ab", 7, b"d");
    m[16 + 36..16 + 38].copy_from_slice(&0xd800u16.to_le_bytes());
    assert_eq!(status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a")), status::INVALID_PARAMETER);
    // Payload truncated inside the fixed ACCESS header.
    for cut in 16..16 + 36 {
        let m = &mm::set_variable_message(&VENDOR, "Var", 7, b"data")[..cut];
        assert_eq!(
            status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, m).expect("a")),
            status::INVALID_PARAMETER,
            "cut {cut}"
        );
    }
    // Shorter than the variable header: nothing to answer in; the buffer stays as it was.
    for cut in 0..16 {
        let m = &mm::set_variable_message(&VENDOR, "Var", 7, b"data")[..cut];
        assert!(s.communicate(&mm::SMM_VARIABLE_GUID, m).expect("a").is_empty());
    }
    assert!(s.get("Var", &VENDOR).is_none(), "a malformed SetVariable stored something");
}

#[test]
fn unknown_functions_and_guids() {
    let (_d, mut s) = setup();
    for function in [0u64, mm::FN_GET_STATISTICS, 9, 10, 12, 0x8000_0000_0000_0003, u64::MAX] {
        let mut m = vec![0u8; 64];
        m[..8].copy_from_slice(&function.to_le_bytes());
        let reply = s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("answered");
        assert_eq!(status_of(&reply), status::INVALID_PARAMETER, "function {function:#x}");
        assert_eq!(u64::from_le_bytes(reply[..8].try_into().expect("8")), function, "function echoed");
    }
    // An unknown GUID gets an empty reply (the buffer is left as it is), like COCONUT.
    let reply = s.communicate(&Guid([0x99; 16]), &[1, 2, 3, 4]).expect("answered");
    assert!(reply.is_empty());
    // A var-check-policy message that is too short, and one with a bad signature: no panic, bounded reply.
    for m in [&b"VC"[..], &[0u8; 24][..], &b"VCPC\x01\x00\x00\x00\x63\x00\x00\x00\x00\x00\x00\x00"[..]] {
        let reply = s.communicate(&mm::VAR_CHECK_POLICY_GUID, m).expect("answered");
        assert!(reply.len() <= m.len());
    }
}

#[test]
fn too_many_or_too_large_nv_variables_are_out_of_resources_before_anything_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    let volume = common::open(&path, &MemLedger::new()).expect("open");
    let storage = svsm_uefi::persist::StoreVariableStorage::open(volume).expect("uefi");
    let config = svsm_uefi::UefiConfig { max_nv_bytes: 4096, ..Default::default() };
    let mut s = svsm_uefi::UefiVariables::open(storage, config).expect("service");
    let m = mm::set_variable_message(&VENDOR, "Big", 7, &[1u8; 5000]);
    assert_eq!(status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a")), status::OUT_OF_RESOURCES);
    assert!(s.get("Big", &VENDOR).is_none());
    let m = mm::get_variable_message(&VENDOR, "Big", 16);
    assert_eq!(
        status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a")),
        status::NOT_FOUND,
        "stored in memory anyway"
    );
    // Slots: 223 objects; the boot initialisation already holds some.
    let mut n = 0;
    loop {
        let m = mm::set_variable_message(&VENDOR, &format!("V{n}"), 7, b"x");
        let st = status_of(&s.communicate(&mm::SMM_VARIABLE_GUID, &m).expect("a"));
        if st != status::SUCCESS {
            assert_eq!(st, status::OUT_OF_RESOURCES);
            break;
        }
        n += 1;
        assert!(n < 300, "no slot limit");
    }
    assert!(!s.is_poisoned());
    assert_eq!(s.variables().count(), 223);
}
