//! Fuzzing entry points (thin `fuzz_target!` wrappers call these; unit tests run them on seeded inputs).

use alloc::boxed::Box;

use crate::dispatch::{Registers, Svsm, SvsmConfig};
use crate::doubles::{UnsignedReportDouble, VtpmDouble};
use crate::error::*;
use crate::manifest::{build_certificate_table, parse_certificate_table, parse_services_manifest};
use crate::memory::VecGuestMemory;
use crate::model::{SimulatedRmp, SimulatedVcpus};

const MEM_SIZE: usize = 64 * 1024;

fn pick(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

fn word(data: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, v) in b.iter_mut().enumerate() {
        *v = pick(data, i + k);
    }
    u64::from_le_bytes(b)
}

/// A register value biased towards interesting guest addresses.
fn reg(data: &[u8], i: usize) -> u64 {
    let raw = word(data, i);
    match pick(data, i + 8) % 4 {
        0 => raw,
        1 => (raw % MEM_SIZE as u64) & !0xfff,
        2 => raw % MEM_SIZE as u64,
        _ => 0x1008,
    }
}

/// Runs the dispatcher with arbitrary registers and guest memory: up to four calls chosen by `data` against
/// 64 KiB of guest memory filled from `data`. Panics (= a finding) only if an invariant breaks: RAX must be
/// a known result code, and calls must never touch the SVSM's own memory.
pub fn dispatch(data: &[u8]) {
    let mut mem_bytes = alloc::vec![0u8; MEM_SIZE];
    for (dst, src) in mem_bytes.iter_mut().zip(data.iter().skip(160)) {
        *dst = *src;
    }
    // SVSM memory: the last 4 KiB, filled with a canary.
    let svsm_base = (MEM_SIZE - 4096) as u64;
    for b in mem_bytes.iter_mut().skip(svsm_base as usize) {
        *b = 0xA5;
    }
    let mut mem = VecGuestMemory::from_bytes(0, mem_bytes);
    let cert_table =
        build_certificate_table(&[(crate::guid::CERT_TABLE_VCEK_GUID, &[1u8; 100][..])]).unwrap_or_default();
    let snp = UnsignedReportDouble { certificates: cert_table, fail: pick(data, 3) == 0xff, requests: 0 };
    let vtpm = VtpmDouble::new([0x5a; 256], [7; 32]);
    let mut svsm = Svsm::new(
        SvsmConfig { svsm_base, svsm_size: 4096, initial_caa: 0x1000 },
        Box::new(SimulatedRmp::new()),
        Box::new(SimulatedVcpus::new(4)),
        if pick(data, 2) & 1 == 0 { Some(Box::new(vtpm)) } else { None },
        Box::new(snp),
    );
    for n in 0..4 {
        let o = n * 40;
        let mut regs = Registers {
            rax: (u64::from(pick(data, o) % 4) << 32) | u64::from(pick(data, o + 1) % 9),
            rcx: reg(data, o + 4),
            rdx: reg(data, o + 13),
            r8: reg(data, o + 22),
            r9: word(data, o + 31),
        };
        svsm.handle_call(&mut mem, &mut regs);
        let code = regs.rax as u32;
        let known = code == SVSM_SUCCESS
            || (SVSM_ERR_UNSUPPORTED_PROTOCOL..=SVSM_ERR_INVALID_REQUEST).contains(&code)
            || (SVSM_ERR_PROTOCOL_BASE..SVSM_ERR_PROTOCOL_BASE + 0x1100).contains(&code);
        assert!(known, "unexpected result code {code:#x}");
        assert_eq!(regs.rax >> 32, 0, "RAX high half must be clear");
        assert!(
            mem.as_slice()[svsm_base as usize..].iter().all(|b| *b == 0xA5),
            "a call wrote into SVSM memory"
        );
        if pick(data, o + 39) & 1 == 1 {
            break;
        }
    }
}

/// Parses arbitrary bytes as a services manifest and as a certificate table (verifier-side parsers).
pub fn parse_tables(data: &[u8]) {
    if let Ok(services) = parse_services_manifest(data) {
        for s in services {
            assert!(s.data.len() <= data.len());
        }
    }
    let _ = parse_certificate_table(data);
}
