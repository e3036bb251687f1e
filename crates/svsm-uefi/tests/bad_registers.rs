//! The protocol-4 buffer contract: every malformed call gets its precise SVSM code and leaves guest memory
//! and the variables untouched.

mod common;

use svsm_protocol::error::{
    SVSM_ERR_INVALID_ADDRESS, SVSM_ERR_INVALID_PARAMETER, SVSM_ERR_UNSUPPORTED_CALL,
    SVSM_ERR_UNSUPPORTED_PROTOCOL, SVSM_SUCCESS,
};
use svsm_protocol::{GuestMemory, Registers, call_rax};
use svsm_store::MemLedger;
use svsm_uefi::mm::{self, status};
use svsm_uefi::protocol::{PROTOCOL_UEFI_MM, UEFI_MM_REQUEST};

fn call(t: &mut svsm_protocol::guest::DirectTransport, call: u32, rcx: u64, rdx: u64) -> u32 {
    let mut regs = Registers { rax: call_rax(PROTOCOL_UEFI_MM, call), rcx, rdx, ..Default::default() };
    t.svsm.handle_call(&mut t.memory, &mut regs);
    assert_eq!(regs.rax >> 32, 0);
    regs.rax as u32
}

fn setup() -> (tempfile::TempDir, svsm_protocol::guest::DirectTransport) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    let t = common::transport(common::svsm_with(common::service(&path, &MemLedger::new())));
    (dir, t)
}

#[test]
fn register_contract_codes() {
    let (_d, mut t) = setup();
    let msg = mm::encode_communicate(&mm::SMM_VARIABLE_GUID, &mm::query_variable_info_message(7));
    t.memory.write(common::BUFFER, &msg).expect("write");
    let b = common::BUFFER;
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, 0x10000), SVSM_SUCCESS);
    assert_eq!(call(&mut t, 0, b, 0x10000), SVSM_ERR_UNSUPPORTED_CALL);
    assert_eq!(call(&mut t, 2, b, 0x10000), SVSM_ERR_UNSUPPORTED_CALL);
    assert_eq!(call(&mut t, u32::MAX, b, 0x10000), SVSM_ERR_UNSUPPORTED_CALL);
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, 0, 0x10000), SVSM_ERR_INVALID_PARAMETER, "null gPA");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, 23), SVSM_ERR_INVALID_PARAMETER, "below 24");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, 24), SVSM_ERR_INVALID_PARAMETER, "header says more than 0");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, 256 * 1024 + 1), SVSM_ERR_INVALID_PARAMETER, "over 256 KiB");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, u64::MAX), SVSM_ERR_INVALID_PARAMETER);
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b + 8, 0x10000), SVSM_ERR_INVALID_ADDRESS, "unaligned");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b + 0x800, 0x10000), SVSM_ERR_INVALID_ADDRESS, "unaligned");
    // Buffers that run into SVSM memory or past the end of guest memory (cross-page into what is not the guest's).
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, common::SVSM_BASE - 0x1000, 0x2000), SVSM_ERR_INVALID_ADDRESS);
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, common::SVSM_BASE, 0x1000), SVSM_ERR_INVALID_ADDRESS);
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, 0x100_0000, 0x1000), SVSM_ERR_INVALID_ADDRESS);
    assert_eq!(
        call(&mut t, UEFI_MM_REQUEST, 0xffff_ffff_ffff_f000, 0x2000),
        SVSM_ERR_INVALID_ADDRESS,
        "wraps"
    );
    // A header whose MessageLength exceeds RDX - 24.
    let mut long = msg.clone();
    long[16..24].copy_from_slice(&(0x1000u64 - 23).to_le_bytes());
    t.memory.write(b, &long).expect("write");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, 0x1000), SVSM_ERR_INVALID_PARAMETER);
    long[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    t.memory.write(b, &long).expect("write");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, 0x10000), SVSM_ERR_INVALID_PARAMETER);
    long[16..24].copy_from_slice(&(0x1000u64 - 24).to_le_bytes());
    t.memory.write(b, &long).expect("write");
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, b, 0x1000), SVSM_SUCCESS, "exactly fits");
}

#[test]
fn query_protocol_reports_version_1_only_and_unregistered_svsm_refuses_protocol_4() {
    let (_d, mut t) = setup();
    let mut regs = Registers { rax: call_rax(0, 6), rcx: (4u64 << 32) | 1, ..Default::default() };
    t.svsm.handle_call(&mut t.memory, &mut regs);
    assert_eq!((regs.rax, regs.rcx), (0, (1u64 << 32) | 1));
    for v in [0u64, 2] {
        let mut regs = Registers { rax: call_rax(0, 6), rcx: (4u64 << 32) | v, ..Default::default() };
        t.svsm.handle_call(&mut t.memory, &mut regs);
        assert_eq!((regs.rax, regs.rcx), (0, 0), "version {v}");
    }
    let mut bare = common::transport(common::bare_svsm());
    assert_eq!(call(&mut bare, UEFI_MM_REQUEST, common::BUFFER, 0x10000), SVSM_ERR_UNSUPPORTED_PROTOCOL);
}

#[test]
fn failed_calls_leave_memory_untouched_and_the_header_is_never_rewritten() {
    let (_d, mut t) = setup();
    let msg = mm::encode_communicate(&mm::SMM_VARIABLE_GUID, &mm::query_variable_info_message(7));
    t.memory.write(common::BUFFER, &msg).expect("write");
    let before = t.memory.as_slice().to_vec();
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, common::BUFFER, 23), SVSM_ERR_INVALID_PARAMETER);
    assert_eq!(call(&mut t, 3, common::BUFFER, 0x10000), SVSM_ERR_UNSUPPORTED_CALL);
    assert_eq!(t.memory.as_slice(), &before[..]);
    assert_eq!(call(&mut t, UEFI_MM_REQUEST, common::BUFFER, 0x10000), SVSM_SUCCESS);
    let mut head = [0u8; 24];
    t.memory.read(common::BUFFER, &mut head).expect("read");
    assert_eq!(&head[..], &msg[..24], "header rewritten");
    let mut reply = vec![0u8; msg.len() - 24];
    t.memory.read(common::BUFFER + 24, &mut reply).expect("read");
    let r = mm::parse_variable_reply(&reply).expect("reply");
    assert_eq!((r.function, r.status), (mm::FN_QUERY_VARIABLE_INFO, status::SUCCESS));
}
