//! Entry points the cargo-fuzz target wraps, also run by the unit tests over seeded-random and hand-made
//! inputs, so `cargo test` exercises what the fuzzer does.
//!
//! Two kinds of run, chosen by the first input byte:
//!
//! * [`hostile`]: the driver against a device whose status, query and optionally data reads are the fuzz
//!   bytes. It must never panic or access outside its window, and a write it reports as successful must
//!   really be on the medium whenever data reads are honest.
//! * [`faults`]: the driver against an honest device with a power cut, an injected error or write protection
//!   at a fuzz-chosen step, under a fuzz-chosen workload. After the failure every block outside the failed
//!   request is intact, at most one block inside it is neither old nor new, and after power-on a fresh
//!   driver rewrites it correctly.

use alloc::vec;
use alloc::vec::Vec;

use svsm_block::{BlockDevice, BlockError, IoCause, WriteMode};

use crate::api::BusWidth;
use crate::cfi::Geometry;
use crate::driver::{Pflash, PflashConfig};
use crate::model::{EraseCut, Garbage, Hostile, ModelConfig, PflashModel, Rng};
use crate::status::SR_BLOCK_LOCKED;

/// Dispatches on the first byte; see the module documentation.
pub fn drive(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    if selector & 0x80 == 0 {
        hostile(selector, rest);
    } else {
        faults(selector, rest);
    }
}

const WIDTHS: [BusWidth; 3] = [BusWidth::X8, BusWidth::X16, BusWidth::X32];

fn small_model(width: BusWidth, buffer: u32, busy: u32) -> ModelConfig {
    ModelConfig { width, erase_block: 512, num_blocks: 8, write_buffer: buffer, busy_polls: busy }
}

/// The driver against garbage. `selector` picks the bus width, probing vs. fixed geometry and whether data
/// reads are garbage too; `script` is the garbage.
pub fn hostile(selector: u8, script: &[u8]) {
    let width = WIDTHS[(selector % 3) as usize];
    let array_reads = selector & 0x40 != 0;
    let mut model = PflashModel::new(small_model(width, 64, u32::from(selector >> 4 & 3)));
    model.set_hostile(Some(Hostile {
        garbage: Garbage::Script { bytes: script.to_vec(), pos: 0 },
        array_reads,
    }));
    let mut config = PflashConfig::new(width);
    config.poll_limit = 16;
    config.buffered_program = selector & 0x08 != 0;
    let driver = if selector & 0x04 != 0 {
        Pflash::probe(model, config)
    } else {
        Pflash::with_geometry(model, config, Geometry { erase_block: 512, num_blocks: 8, write_buffer: 64 })
    };
    let Ok(mut flash) = driver else { return };
    let bs = flash.block_size() as usize;
    let mut rng = Rng::new(script.len() as u64 + u64::from(selector));
    for round in 0..6u64 {
        let lba = rng.below(flash.num_blocks());
        let data: Vec<u8> = (0..bs).map(|_| rng.next_u64() as u8).collect();
        let result = flash.write_blocks(lba, &data, WriteMode::Durable);
        if result.is_ok() && !array_reads {
            let start = lba as usize * bs;
            assert_eq!(
                flash.mmio().image().get(start..start + bs),
                Some(&data[..]),
                "round {round}: a write reported success but the medium differs"
            );
        }
        let mut buf = vec![0u8; bs];
        let _ = flash.read_blocks(lba, &mut buf);
        let _ = flash.flush();
    }
    assert_eq!(flash.mmio().violations(), 0, "driver accessed outside its window or misaligned");
}

/// What the fault campaign injects.
#[derive(Debug, Clone, Copy)]
enum Fault {
    PowerCut(EraseCut),
    Status(u8),
    WriteProtect,
}

/// An honest device with one fault; see the module documentation. Returns whether the fault fired.
pub fn faults(selector: u8, params: &[u8]) -> bool {
    let byte = |i: usize| params.get(i).copied().unwrap_or(0);
    let width = WIDTHS[(selector % 3) as usize];
    let buffer = [0u32, 8, 64, 512][(selector >> 2 & 3) as usize];
    let model_config = small_model(width, buffer, u32::from(byte(0) & 3));
    let mut config = PflashConfig::new(width);
    config.poll_limit = 64;
    config.buffered_program = selector & 0x10 != 0;
    config.skip_erase_when_possible = selector & 0x20 != 0;
    let step = u64::from(byte(1) % 48) + 1;
    let fault = match byte(2) % 5 {
        0 => Fault::PowerCut(EraseCut::Prefix),
        1 => Fault::PowerCut(EraseCut::Random),
        2 => Fault::Status(byte(3) & 0x3A | 0x10),
        3 => Fault::Status(byte(3) & 0x0A | 0x20),
        _ => Fault::WriteProtect,
    };
    let seed = u64::from_le_bytes([byte(4), byte(5), byte(6), byte(7), 1, 0, 0, 0]);
    run_fault_campaign(model_config, config, fault, step, seed, params.get(8..).unwrap_or_default())
}

fn new_data(rng: &mut Rng, old: &[u8], kind: u8) -> Vec<u8> {
    match kind % 4 {
        // Clears bits only: the erase can be skipped.
        0 => old.iter().map(|b| b & rng.next_u64() as u8).collect(),
        // Identical: nothing to program.
        1 => old.to_vec(),
        // A few changed words in otherwise equal data: short programs.
        2 => {
            let mut d = old.to_vec();
            for _ in 0..3 {
                let i = rng.below(d.len() as u64) as usize;
                if let Some(b) = d.get_mut(i) {
                    *b = rng.next_u64() as u8;
                }
            }
            d
        }
        _ => (0..old.len()).map(|_| rng.next_u64() as u8).collect(),
    }
}

fn run_fault_campaign(
    model_config: ModelConfig,
    config: PflashConfig,
    fault: Fault,
    step: u64,
    seed: u64,
    workload: &[u8],
) -> bool {
    let mut model = PflashModel::new(model_config);
    match fault {
        Fault::PowerCut(cut) => model.cut_power_at_step(step, cut, seed),
        Fault::Status(bits) => model.inject_status_at_step(step, bits),
        Fault::WriteProtect => {}
    }
    let mut flash = match Pflash::probe(model, config) {
        Ok(f) => f,
        Err(e) => panic!("probe of an honest model failed: {e}"),
    };
    let bs = flash.block_size() as usize;
    let n = flash.num_blocks();
    let mut expected: Vec<Vec<u8>> = (0..n).map(|_| vec![0xFF; bs]).collect();
    let mut rng = Rng::new(seed);
    let ops = workload.len().clamp(4, 24);
    for i in 0..ops {
        let w = workload.get(i).copied().unwrap_or(i as u8);
        if matches!(fault, Fault::WriteProtect) && i == ops / 2 {
            flash.mmio_mut().set_write_protected(true);
        }
        let lba = u64::from(w) % n;
        let count = (u64::from(w >> 5) % 3 + 1).min(n - lba);
        let mut data = Vec::new();
        for b in lba..lba + count {
            data.extend(new_data(&mut rng, &expected[b as usize], w >> 3));
        }
        let before = flash.mmio().image().to_vec();
        match flash.write_blocks(lba, &data, WriteMode::Durable) {
            Ok(()) => {
                for (k, block) in data.chunks(bs).enumerate() {
                    expected[lba as usize + k] = block.to_vec();
                }
                assert_eq!(flash.mmio().violations(), 0);
                for (b, want) in expected.iter().enumerate() {
                    assert_eq!(
                        flash.mmio().image().get(b * bs..(b + 1) * bs),
                        Some(&want[..]),
                        "block {b} wrong after a successful write"
                    );
                }
            }
            Err(err) => {
                check_failure(&mut flash, fault, &err, &before, &expected, lba, &data);
                let model = flash.into_inner();
                recover_and_rewrite(model, config, &mut expected, lba, &data);
                return true;
            }
        }
    }
    false
}

fn check_failure(
    flash: &mut Pflash<PflashModel>,
    fault: Fault,
    err: &BlockError,
    before: &[u8],
    expected: &[Vec<u8>],
    lba: u64,
    data: &[u8],
) {
    let bs = flash.block_size() as usize;
    match fault {
        Fault::PowerCut(_) => {
            assert!(!flash.mmio().is_powered(), "error {err} without the power cut");
            assert!(matches!(err, BlockError::Io { cause: IoCause::Timeout, .. }), "{err:?}");
        }
        Fault::Status(bits) => match err {
            BlockError::Io { cause: IoCause::DeviceStatus { status, .. }, .. } => {
                assert_eq!(*status as u8 & bits, bits, "reported status {status:#x} lacks injected {bits:#x}")
            }
            other => panic!("injected status {bits:#x} reported as {other:?}"),
        },
        Fault::WriteProtect => {
            match err {
                BlockError::Io { cause: IoCause::DeviceStatus { status, .. }, .. } => {
                    assert_ne!(*status as u8 & SR_BLOCK_LOCKED, 0)
                }
                other => panic!("write protection reported as {other:?}"),
            }
            assert_eq!(flash.mmio().image(), before, "a refused write changed the medium");
        }
    }
    let image = flash.mmio().image();
    let mut torn = 0;
    for (b, want) in expected.iter().enumerate() {
        let got = image.get(b * bs..(b + 1) * bs).unwrap_or_default();
        let b = b as u64;
        if b < lba || b >= lba + (data.len() / bs) as u64 {
            assert_eq!(got, &want[..], "block {b} outside the failed request changed");
        } else {
            let new = data.get((b - lba) as usize * bs..).and_then(|d| d.get(..bs)).unwrap_or_default();
            if got != &want[..] && got != new {
                torn += 1;
            }
        }
    }
    assert!(torn <= 1, "{torn} blocks of the failed request are torn");
}

fn recover_and_rewrite(
    mut model: PflashModel,
    config: PflashConfig,
    expected: &mut [Vec<u8>],
    lba: u64,
    data: &[u8],
) {
    model.power_on();
    model.clear_faults();
    let mut flash = match Pflash::probe(model, config) {
        Ok(f) => f,
        Err(e) => panic!("probe after power-on failed: {e}"),
    };
    let bs = flash.block_size() as usize;
    if let Err(e) = flash.write_blocks(lba, data, WriteMode::Durable) {
        panic!("rewrite after power-on failed: {e}");
    }
    for (k, block) in data.chunks(bs).enumerate() {
        expected[lba as usize + k] = block.to_vec();
    }
    let mut buf = vec![0u8; bs];
    for (b, want) in expected.iter().enumerate() {
        if let Err(e) = flash.read_blocks(b as u64, &mut buf) {
            panic!("read after recovery failed: {e}");
        }
        assert_eq!(&buf, want, "block {b} wrong after recovery");
    }
}
