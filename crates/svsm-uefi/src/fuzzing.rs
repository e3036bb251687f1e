//! Fuzzing entry points (run by `crates/svsm-uefi/fuzz` and by the unit tests): the MM request path from
//! guest registers and guest memory to the variable store and its secure-store volume, and the volume loader.

use alloc::boxed::Box;
use alloc::vec::Vec;

use svsm_block::MemDisk;
use svsm_protocol::doubles::UnsignedReportDouble;
use svsm_protocol::error::{SVSM_ERR_INVALID_REQUEST, SVSM_ERR_UNSUPPORTED_PROTOCOL, SVSM_SUCCESS};
use svsm_protocol::model::{SimulatedRmp, SimulatedVcpus};
use svsm_protocol::{Registers, Svsm, SvsmConfig, VecGuestMemory, call_rax};
use svsm_store::{LedgerMode, MemLedger, OpenOptions, SeededRandom, Store, StoreKey};

use crate::persist::StoreVariableStorage;
use crate::protocol::{PROTOCOL_UEFI_MM, UefiProtocol};
use crate::service::{UefiConfig, UefiVariables};

/// Guest memory size: the 256 KiB buffer limit plus room on both sides.
pub const MEM_SIZE: usize = 0x50000;
/// Where the fuzz input's message bytes are placed (page aligned).
pub const BUFFER_GPA: u64 = 0x2000;

/// A fresh store-backed volume on a memory disk (strict ledger mode, as `serve --uefi` formats it).
pub fn memory_volume() -> Option<Store<MemDisk, MemLedger>> {
    let key = StoreKey::from_bytes([0x42; 32]);
    let mut dev = MemDisk::new(4096, 256).ok()?;
    let params = svsm_store::FormatParams::new(LedgerMode::Strict, Box::new(SeededRandom::new(1)));
    Store::<_, MemLedger>::format(&mut dev, &key, params).ok()?;
    let mut options = OpenOptions::new(Box::new(SeededRandom::new(2)));
    options.enroll = true;
    Store::open(dev, &key, MemLedger::new(), options).ok()
}

fn svsm_with_uefi() -> Option<Svsm> {
    let storage = StoreVariableStorage::open(memory_volume()?).ok()?;
    let service = UefiVariables::open(storage, UefiConfig::default()).ok()?;
    let svsm_base = (MEM_SIZE - 0x1000) as u64;
    Svsm::new(
        SvsmConfig { svsm_base, svsm_size: 0x1000, initial_caa: 0x1000 },
        Box::new(SimulatedRmp::new()),
        Box::new(SimulatedVcpus::new(1)),
        None,
        Box::new(UnsignedReportDouble { certificates: Vec::new(), fail: false, requests: 0 }),
    )
    .with_protocol(Box::new(UefiProtocol::new(service)))
    .ok()
}

fn pick(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

/// Runs up to four SVSM_UEFI_MM_REQUEST calls whose registers come from `data[..32]` and whose buffer
/// holds `data[32..]`; the message in the buffer is rewritten between calls from successive slices, so a
/// SetVariable can be followed by the GetVariable that reads it. Never panics; checks the SVSM codes are
/// known, nothing was written into SVSM memory, and RAX's high half is clear. Returns how many calls
/// succeeded.
pub fn mm_request(data: &[u8]) -> usize {
    let Some(mut svsm) = svsm_with_uefi() else { return 0 };
    let mut succeeded = 0;
    let svsm_base = MEM_SIZE - 0x1000;
    let mut mem_bytes = alloc::vec![0u8; MEM_SIZE];
    for b in mem_bytes.iter_mut().skip(svsm_base) {
        *b = 0xA5;
    }
    let body = data.get(32..).unwrap_or(&[]);
    let chunk = body.len().div_ceil(4).max(1);
    let mut mem = VecGuestMemory::from_bytes(0, mem_bytes);
    for n in 0..4usize {
        let part = body.get(n * chunk..((n + 1) * chunk).min(body.len())).unwrap_or(&[]);
        let _ = svsm_protocol::GuestMemory::write(&mut mem, BUFFER_GPA, part);
        let o = n * 8;
        let mut rcx = match pick(data, o) % 8 {
            0 => 0,
            1 => BUFFER_GPA + u64::from(pick(data, o + 1)),
            2 => svsm_base as u64 - 0x1000,
            3 => {
                u64::from_le_bytes([pick(data, o + 1), pick(data, o + 2), pick(data, o + 3), 0, 0, 0, 0, 0])
                    << 12
            }
            _ => BUFFER_GPA,
        };
        if pick(data, o) == 0xff {
            rcx = !0xfff;
        }
        let rdx = match pick(data, o + 4) % 6 {
            0 => u64::from(pick(data, o + 5)),
            1 => 0x40000 + u64::from(pick(data, o + 5)),
            2 => u64::MAX - u64::from(pick(data, o + 5)),
            3 => 0x1000 * u64::from(pick(data, o + 5) % 65),
            _ => 0x10000,
        };
        let call = if pick(data, o + 6) == 0xff { u32::from(pick(data, o + 7)) } else { 1 };
        let mut regs = Registers { rax: call_rax(PROTOCOL_UEFI_MM, call), rcx, rdx, r8: 0, r9: 0 };
        svsm.handle_call(&mut mem, &mut regs);
        let code = regs.rax as u32;
        assert!(
            code == SVSM_SUCCESS
                || (SVSM_ERR_UNSUPPORTED_PROTOCOL..=SVSM_ERR_INVALID_REQUEST).contains(&code),
            "unexpected result code {code:#x}"
        );
        assert_eq!(regs.rax >> 32, 0, "RAX high half must be clear");
        assert!(mem.as_slice()[svsm_base..].iter().all(|b| *b == 0xA5), "a call wrote into SVSM memory");
        succeeded += usize::from(code == SVSM_SUCCESS);
    }
    succeeded
}

/// Handles `data` as one MM message body for each of the MM GUIDs the service routes (variables, policy,
/// events, unknown) directly on the service; the reply must never be longer than the message.
pub fn communicate(data: &[u8]) {
    use crate::api::MmService;
    let Some(volume) = memory_volume() else { return };
    let Ok(storage) = StoreVariableStorage::open(volume) else { return };
    let Ok(mut service) = UefiVariables::open(storage, UefiConfig::default()) else { return };
    let guid = match pick(data, 0) % 5 {
        0 => crate::mm::VAR_CHECK_POLICY_GUID,
        1 => crate::mm::END_OF_DXE_GUID,
        2 => crate::mm::EXIT_BOOT_SERVICES_GUID,
        3 => svsm_protocol::Guid([pick(data, 1); 16]),
        _ => crate::mm::SMM_VARIABLE_GUID,
    };
    let message = data.get(2..).unwrap_or(&[]);
    if let Ok(reply) = service.communicate(&guid, message) {
        assert!(reply.len() <= message.len());
    }
    if let Ok(reply) = service.communicate(&crate::mm::SMM_VARIABLE_GUID, message) {
        assert!(reply.len() <= message.len());
    }
}
