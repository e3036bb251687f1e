//! Flash semantics, error reporting, power-cut recovery and hostile devices.

use svsm_block::{BlockDevice, BlockError, IoCause, IoOp, WriteMode};
use svsm_pflash::model::{EraseCut, Garbage, Hostile, ModelConfig, PflashModel, Rng};
use svsm_pflash::status::{SR_ERASE_ERROR, SR_PROGRAM_ERROR, SR_VPP_LOW};
use svsm_pflash::{BusWidth, FlashMmio, Geometry, Pflash, PflashConfig, ProbeError, VolatileMmio, fuzzing};

fn config(width: BusWidth) -> PflashConfig {
    let mut c = PflashConfig::new(width);
    c.poll_limit = 1000;
    c
}

fn x86(blocks: u32) -> Pflash<PflashModel> {
    Pflash::probe(PflashModel::new(ModelConfig::qemu_x86(blocks)), config(BusWidth::X8)).unwrap()
}

fn random_block(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn block_of(flash: &Pflash<PflashModel>, lba: u64) -> Vec<u8> {
    let bs = flash.block_size() as usize;
    flash.mmio().image()[lba as usize * bs..(lba as usize + 1) * bs].to_vec()
}

#[test]
fn the_model_programs_by_clearing_bits_and_erases_to_ones() {
    let mut m = PflashModel::new(ModelConfig::qemu_x86(4));
    m.write8(10, 0x40);
    m.write8(10, 0xF0);
    assert_eq!(m.read8(10) & 0x80, 0, "busy right after the program");
    while m.read8(10) & 0x80 == 0 {}
    m.write8(0, 0xFF);
    assert_eq!(m.read8(10), 0xF0);
    // Programming 0x0F over 0xF0 without an erase cannot set bits: the cell becomes 0xF0 & 0x0F.
    m.write8(10, 0x10);
    m.write8(10, 0x0F);
    while m.read8(10) & 0x80 == 0 {}
    m.write8(0, 0xFF);
    assert_eq!(m.read8(10), 0x00);
    assert_eq!(m.program_count(), 2);
    // Erase sets the whole erase block back to 0xFF and nothing else.
    m.image_mut()[4096] = 0x12;
    m.write8(4095, 0x20);
    m.write8(4095, 0xD0);
    while m.read8(0) & 0x80 == 0 {}
    m.write8(0, 0xFF);
    assert!(m.image()[..4096].iter().all(|&b| b == 0xFF));
    assert_eq!(m.image()[4096], 0x12);
    assert_eq!(m.erase_counts(), &[1, 0, 0, 0]);
    // Reads stay in status mode after an operation until read-array, like QEMU.
    m.write8(0, 0x40);
    m.write8(0, 0x00);
    while m.read8(0) & 0x80 == 0 {}
    assert_eq!(m.read8(0), 0x80, "status, not data");
    m.write8(0, 0xFF);
    assert_eq!(m.read8(0), 0x00);
    // A buffered program of one word (count 0) is a valid sequence: QEMU's pflash_cfi01 programs it, as real
    // parts do (checked against QEMU in crates/svsm-qtest/tests/pflash.rs).
    m.write8(256, 0xE8);
    assert_eq!(m.read8(256), 0x80, "write buffer available");
    m.write8(256, 0);
    m.write8(256, 0x11);
    m.write8(256, 0xD0);
    while m.read8(256) & 0x80 == 0 {}
    assert_eq!(m.read8(256), 0x80, "no error bits");
    m.write8(0, 0xFF);
    assert_eq!(m.read8(256), 0x11);
    m.write8(0, 0x50);
    m.write8(0, 0x70);
    assert_eq!(m.read8(0), 0x80);
    assert_eq!(m.violations(), 0);
    // Read-ID and CFI answer like the real part.
    m.write8(0, 0x90);
    assert_eq!(m.read8(0), 0x89);
    m.write8(0, 0x98);
    assert_eq!([m.read8(0x10), m.read8(0x11), m.read8(0x12)], *b"QRY");
}

#[test]
fn cfi_probe_reads_the_geometry() {
    for (width, erase_block, blocks, buffer, expect_buffer) in [
        (BusWidth::X8, 4096, 132, 256, 256),
        (BusWidth::X16, 65536, 4, 2048, 2048),
        (BusWidth::X32, 512, 300, 0, 0),
        (BusWidth::X8, 1024, 2, 1024, 256), // an x8 count field cannot say more than 256 words
    ] {
        let model =
            ModelConfig { width, erase_block, num_blocks: blocks, write_buffer: buffer, busy_polls: 0 };
        let flash = Pflash::probe(PflashModel::new(model), config(width)).unwrap();
        assert_eq!(
            flash.geometry(),
            Geometry { erase_block, num_blocks: u64::from(blocks), write_buffer: expect_buffer }
        );
        assert_eq!(flash.info().block_size, erase_block);
        assert_eq!(flash.info().num_blocks, u64::from(blocks));
        let mut flash = flash;
        assert_eq!(flash.read_identifier(), (0x89, 0x18));
        assert_eq!(flash.read_status(), 0x80);
        // Both leave the device reading data again.
        let mut buf = vec![0u8; erase_block as usize];
        flash.read_blocks(0, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0xFF));
    }
}

#[test]
fn bad_cfi_tables_are_refused_precisely() {
    let probe = |edit: &dyn Fn(&mut [u8; 0x40])| {
        let mut m = PflashModel::new(ModelConfig::qemu_x86(8));
        edit(m.cfi_table_mut());
        Pflash::probe(m, config(BusWidth::X8)).map(|_| ())
    };
    assert_eq!(probe(&|t| t[0x11] = b'X'), Err(ProbeError::NoCfi { found: *b"QXY" }));
    assert_eq!(probe(&|t| t[0x13] = 0x02), Err(ProbeError::UnsupportedCommandSet { id: 2 }));
    assert_eq!(probe(&|t| t[0x2C] = 2), Err(ProbeError::NonUniform { regions: 2 }));
    assert_eq!(probe(&|t| t[0x30] = 1), Err(ProbeError::EraseBlockSize { erase_block: 4096 + 65536 }));
    assert_eq!(
        probe(&|t| t[0x2F..0x31].copy_from_slice(&[0, 0])),
        Err(ProbeError::EraseBlockSize { erase_block: 128 })
    );
    assert_eq!(
        probe(&|t| t[0x2F..0x31].copy_from_slice(&[1, 0])),
        Err(ProbeError::EraseBlockSize { erase_block: 256 })
    );
    assert_eq!(
        probe(&|t| t[0x2D] = 8),
        Err(ProbeError::ExceedsWindow { erase_block: 4096, num_blocks: 9, window_len: 8 * 4096 })
    );
    assert_eq!(
        probe(&|t| t[0x2F..0x31].copy_from_slice(&[0, 0x80])),
        Err(ProbeError::ExceedsWindow { erase_block: 1 << 23, num_blocks: 8, window_len: 8 * 4096 })
    );
    // An absurd write-buffer size is clamped, not trusted.
    let mut m = PflashModel::new(ModelConfig::qemu_x86(8));
    m.cfi_table_mut()[0x2A] = 200;
    assert_eq!(Pflash::probe(m, config(BusWidth::X8)).unwrap().geometry().write_buffer, 256);
    // A wrong bus width finds no "QRY" where it looks.
    let m = PflashModel::new(ModelConfig::qemu_x86(8));
    assert!(matches!(Pflash::probe(m, config(BusWidth::X16)), Err(ProbeError::NoCfi { .. })));
    // Geometry given by the caller is checked against the window too.
    let m = PflashModel::new(ModelConfig::qemu_x86(8));
    let too_big = Geometry { erase_block: 4096, num_blocks: u64::MAX, write_buffer: 0 };
    assert!(matches!(
        Pflash::with_geometry(m, config(BusWidth::X8), too_big),
        Err(ProbeError::ExceedsWindow { .. })
    ));
}

#[test]
fn the_driver_always_produces_exact_data() {
    for (buffered, skip) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut c = config(BusWidth::X8);
        c.buffered_program = buffered;
        c.skip_erase_when_possible = skip;
        let mut flash = Pflash::probe(PflashModel::new(ModelConfig::qemu_x86(8)), c).unwrap();
        let mut rng = Rng::new(7);
        for round in 0..40 {
            let lba = rng.below(8);
            let old = block_of(&flash, lba);
            let new: Vec<u8> = match round % 3 {
                0 => random_block(&mut rng, 4096),
                1 => old.iter().map(|b| b & rng.next_u64() as u8).collect(),
                _ => old.iter().map(|b| b | rng.next_u64() as u8).collect(),
            };
            flash.write_blocks(lba, &new, WriteMode::Cached).unwrap();
            assert_eq!(block_of(&flash, lba), new, "round {round} buffered={buffered} skip={skip}");
            let mut back = vec![0u8; 4096];
            flash.read_blocks(lba, &mut back).unwrap();
            assert_eq!(back, new);
        }
        assert_eq!(flash.mmio().violations(), 0);
    }
}

#[test]
fn erases_are_skipped_only_when_programming_alone_is_correct() {
    let mut flash = x86(4);
    let mut rng = Rng::new(3);
    let data = random_block(&mut rng, 4096);
    // Fresh (erased) flash: writing needs no erase at all.
    flash.write_blocks(1, &data, WriteMode::Durable).unwrap();
    assert_eq!(flash.mmio().erase_counts(), &[0, 0, 0, 0]);
    // Clearing more bits: still no erase.
    let cleared: Vec<u8> = data.iter().map(|b| b & 0x0F).collect();
    flash.write_blocks(1, &cleared, WriteMode::Durable).unwrap();
    assert_eq!(flash.mmio().erase_counts(), &[0, 0, 0, 0]);
    // Writing identical data programs nothing.
    let programs = flash.mmio().program_count();
    flash.write_blocks(1, &cleared, WriteMode::Durable).unwrap();
    assert_eq!(flash.mmio().program_count(), programs);
    // Setting a single bit forces exactly one erase of exactly that block.
    let mut one_bit = cleared.clone();
    one_bit[100] |= 0x80;
    flash.write_blocks(1, &one_bit, WriteMode::Durable).unwrap();
    assert_eq!(flash.mmio().erase_counts(), &[0, 1, 0, 0]);
    assert_eq!(block_of(&flash, 1), one_bit);
    // With the optimisation off, every changing write erases.
    let mut c = config(BusWidth::X8);
    c.skip_erase_when_possible = false;
    let mut plain = Pflash::probe(PflashModel::new(ModelConfig::qemu_x86(4)), c).unwrap();
    plain.write_blocks(2, &data, WriteMode::Durable).unwrap();
    assert_eq!(plain.mmio().erase_counts(), &[0, 0, 1, 0]);
}

#[test]
fn a_stuck_device_times_out() {
    let mut flash = x86(4);
    flash.mmio_mut().set_stuck(true);
    let err = flash.write_blocks(2, &[0u8; 4096], WriteMode::Durable).unwrap_err();
    assert_eq!(err, BlockError::Io { op: IoOp::Write, lba: 2, cause: IoCause::Timeout });
    // When the device comes back, the driver's recovery lets the next write through.
    flash.mmio_mut().set_stuck(false);
    flash.mmio_mut().power_on();
    flash.write_blocks(2, &[0x5Au8; 4096], WriteMode::Durable).unwrap();
    assert_eq!(block_of(&flash, 2), vec![0x5A; 4096]);
}

fn status_error(err: &BlockError) -> (u32, &'static str) {
    match err {
        BlockError::Io { op: IoOp::Write, cause: IoCause::DeviceStatus { status, meaning }, .. } => {
            (*status, meaning)
        }
        other => panic!("expected a device status error, got {other:?}"),
    }
}

#[test]
fn error_bits_give_precise_errors_and_the_driver_recovers() {
    let cases: [(u8, &str); 4] = [
        (SR_VPP_LOW, "programming voltage low"),
        (SR_PROGRAM_ERROR, "program failed"),
        (SR_ERASE_ERROR, "erase failed"),
        (SR_ERASE_ERROR | SR_PROGRAM_ERROR, "improper command sequence"),
    ];
    for (bits, meaning) in cases {
        let mut flash = x86(4);
        flash.write_blocks(0, &[0x11; 4096], WriteMode::Durable).unwrap();
        // The next step is the erase of block 0 for a write that sets bits.
        let step = flash.mmio().steps() + 1;
        flash.mmio_mut().inject_status_at_step(step, bits);
        let err = flash.write_blocks(0, &[0x22; 4096], WriteMode::Durable).unwrap_err();
        let (status, got) = status_error(&err);
        assert_eq!(status, u32::from(0x80 | bits));
        assert!(got.starts_with(meaning), "{bits:#x}: {got}");
        assert!(err.to_string().contains(meaning), "{err}");
        // Status was cleared: the retry succeeds.
        flash.write_blocks(0, &[0x22; 4096], WriteMode::Durable).unwrap();
        assert_eq!(block_of(&flash, 0), vec![0x22; 4096]);
    }
}

#[test]
fn write_protection_is_reported_as_a_locked_block_and_changes_nothing() {
    let mut flash = x86(4);
    flash.write_blocks(3, &[0x33; 4096], WriteMode::Durable).unwrap();
    flash.mmio_mut().set_write_protected(true);
    let before = flash.mmio().image().to_vec();
    for data in [[0x00u8; 4096], [0x77; 4096]] {
        let err = flash.write_blocks(3, &data, WriteMode::Durable).unwrap_err();
        let (status, meaning) = status_error(&err);
        assert_eq!(status & 0x02, 0x02);
        assert!(meaning.contains("write-protected"));
    }
    assert_eq!(flash.mmio().image(), &before[..]);
    let mut buf = vec![0u8; 4096];
    flash.read_blocks(3, &mut buf).unwrap();
    assert_eq!(buf, vec![0x33; 4096]);
}

#[test]
fn a_device_that_drops_a_program_silently_fails_verification() {
    let mut flash = x86(4);
    // Status 0 injected: the step is skipped but reports success.
    let step = flash.mmio().steps() + 1;
    flash.mmio_mut().inject_status_at_step(step, 0);
    let err = flash.write_blocks(1, &[0x44; 4096], WriteMode::Durable).unwrap_err();
    assert!(matches!(err, BlockError::DeviceMisbehaved { op: IoOp::Write, .. }), "{err:?}");
}

#[test]
fn impossible_status_bits_are_misbehaviour() {
    for garbage in [0xC0u8, 0x84] {
        let mut m = PflashModel::new(ModelConfig::qemu_x86(4));
        m.set_hostile(Some(Hostile {
            garbage: Garbage::Script { bytes: vec![garbage; 64], pos: 0 },
            array_reads: false,
        }));
        let mut flash = Pflash::with_geometry(
            m,
            config(BusWidth::X8),
            Geometry { erase_block: 4096, num_blocks: 4, write_buffer: 256 },
        )
        .unwrap();
        let err = flash.write_blocks(0, &[0u8; 4096], WriteMode::Durable).unwrap_err();
        assert!(matches!(err, BlockError::DeviceMisbehaved { .. }), "{garbage:#x}: {err:?}");
    }
}

/// Power cut at every step of a rewrite of block 3 (erase and every program), both erase-cut styles, both
/// program paths: the interrupted block may be garbage, every other block is intact, and after power-on a
/// fresh driver rewrites it.
#[test]
fn power_cuts_tear_only_the_block_being_written() {
    for buffered in [true, false] {
        for cut in [EraseCut::Prefix, EraseCut::Random] {
            let mut rng = Rng::new(11);
            // Word programming takes one step per word: a small block keeps the sweep short.
            let (model, bs) = if buffered {
                (ModelConfig::qemu_x86(6), 4096)
            } else {
                (
                    ModelConfig {
                        width: BusWidth::X32,
                        erase_block: 512,
                        num_blocks: 6,
                        write_buffer: 0,
                        busy_polls: 1,
                    },
                    512,
                )
            };
            let c = config(model.width);
            let mut flash = Pflash::probe(PflashModel::new(model), c).unwrap();
            let blocks: Vec<Vec<u8>> = (0..6).map(|_| random_block(&mut rng, bs)).collect();
            for (i, b) in blocks.iter().enumerate() {
                flash.write_blocks(i as u64, b, WriteMode::Durable).unwrap();
            }
            let new = random_block(&mut rng, bs);
            let mut step = 1;
            loop {
                let first = flash.mmio().steps() + step;
                flash.mmio_mut().cut_power_at_step(first, cut, step);
                let result = flash.write_blocks(3, &new, WriteMode::Durable);
                let mut model = flash.into_inner();
                if result.is_ok() {
                    // The cut step lies past the whole write: every step of it has been tried.
                    assert!(step > 2, "too few steps: {step}");
                    assert!(model.is_powered());
                    break;
                }
                assert!(!model.is_powered());
                assert_eq!(
                    result.unwrap_err(),
                    BlockError::Io { op: IoOp::Write, lba: 3, cause: IoCause::Timeout }
                );
                for (i, b) in blocks.iter().enumerate() {
                    if i != 3 {
                        assert_eq!(
                            &model.image()[i * bs..(i + 1) * bs],
                            &b[..],
                            "block {i} after cut at step {step}"
                        );
                    }
                }
                model.power_on();
                let mut again = Pflash::probe(model, c).unwrap();
                again.write_blocks(3, &new, WriteMode::Durable).unwrap();
                assert_eq!(block_of(&again, 3), new);
                // Restore block 3's old contents for the next round.
                again.write_blocks(3, &blocks[3], WriteMode::Durable).unwrap();
                flash = again;
                step += 1;
            }
        }
    }
}

#[test]
fn a_cut_during_an_erase_leaves_a_prefix_or_random_bytes() {
    for (cut, check) in [
        (
            EraseCut::Prefix,
            (|b: &[u8]| {
                let k = b.iter().position(|&x| x != 0xFF).unwrap_or(b.len());
                b[k..].iter().all(|&x| x == 0x00)
            }) as fn(&[u8]) -> bool,
        ),
        (EraseCut::Random, |b: &[u8]| b.iter().any(|&x| x != 0xFF && x != 0x00)),
    ] {
        let mut flash = x86(2);
        flash.write_blocks(0, &[0x00; 4096], WriteMode::Durable).unwrap();
        let step = flash.mmio().steps() + 1;
        flash.mmio_mut().cut_power_at_step(step, cut, 99);
        assert!(flash.write_blocks(0, &[0xA5; 4096], WriteMode::Durable).is_err());
        assert!(check(&block_of(&flash, 0)), "{cut:?}");
    }
}

/// Campaign sizes grow 20x with `SVSM_LONG_TESTS=1`.
fn campaign(normal: u32) -> u32 {
    if std::env::var_os("SVSM_LONG_TESTS").is_some() { normal * 20 } else { normal }
}

#[test]
fn hostile_devices_never_panic() {
    let mut rng = Rng::new(0x5EED);
    for i in 0..campaign(1500) {
        let len = rng.below(300) as usize;
        let script: Vec<u8> = match i % 3 {
            // Plausible: mostly ready status bytes with sprinkled garbage.
            0 => (0..len).map(|_| if rng.below(4) == 0 { rng.next_u64() as u8 } else { 0x80 }).collect(),
            _ => (0..len).map(|_| rng.next_u64() as u8).collect(),
        };
        let selector = (rng.next_u64() as u8) & 0x7F;
        fuzzing::hostile(selector, &script);
    }
    // A random hostile device through the probe path with a seeded generator, all reads garbage.
    for seed in 0..200 {
        let mut m = PflashModel::new(ModelConfig::qemu_x86(8));
        m.set_hostile(Some(Hostile { garbage: Garbage::Random(Rng::new(seed)), array_reads: true }));
        if let Ok(mut f) = Pflash::probe(m, config(BusWidth::X8)) {
            let _ = f.write_blocks(0, &[1; 4096], WriteMode::Durable);
        }
    }
}

#[test]
fn seeded_fault_campaigns_hold_their_invariants() {
    let mut rng = Rng::new(0xFA17);
    let mut fired = 0;
    let runs = campaign(600);
    for _ in 0..runs {
        let selector = 0x80 | rng.next_u64() as u8;
        let params: Vec<u8> = (0..(8 + rng.below(24))).map(|_| rng.next_u64() as u8).collect();
        if fuzzing::faults(selector, &params) {
            fired += 1;
        }
    }
    assert!(fired > runs / 3, "faults fired in only {fired} of {runs} runs");
}

#[test]
fn volatile_mmio_reaches_memory_and_drops_out_of_window_accesses() {
    let mut ram = vec![0u32; 16];
    let len = (ram.len() * 4) as u64;
    {
        // SAFETY: `ram` is a live, 4-byte-aligned allocation of `len` bytes used only through `mmio` while it
        // exists.
        let mut mmio = unsafe { VolatileMmio::new(ram.as_mut_ptr().cast(), len) };
        mmio.write32(4, 0x1122_3344);
        mmio.write16(8, 0xBEEF);
        mmio.write8(63, 0x7E);
        assert_eq!(mmio.read8(4), 0x44);
        assert_eq!(mmio.read16(6), 0x1122);
        assert_eq!(mmio.read32(8), 0xBEEF);
        mmio.write32(64, 1);
        mmio.write32(62, 1);
        mmio.write16(u64::MAX, 1);
        mmio.write16(3, 1);
        assert_eq!(mmio.read32(64), u32::MAX);
        assert_eq!(mmio.read16(u64::MAX - 1), u16::MAX);
        assert_eq!(mmio.window_len(), 64);
    }
    assert_eq!(ram[1], 0x1122_3344);
    assert_eq!(ram[2], 0xBEEF);
    assert_eq!(ram[15], 0x7E00_0000);
    assert_eq!(ram.iter().filter(|&&w| w != 0).count(), 3);
}

#[test]
fn a_window_too_small_for_the_query_is_refused_without_touching_it() {
    let mut ram = vec![0u32; 16];
    // SAFETY: `ram` is a live, 4-byte-aligned allocation of 64 bytes used only through the probe.
    let mmio = unsafe { VolatileMmio::new(ram.as_mut_ptr().cast(), 64) };
    let err = Pflash::probe(mmio, config(BusWidth::X8)).unwrap_err();
    assert_eq!(err, ProbeError::ExceedsWindow { erase_block: 0, num_blocks: 0, window_len: 64 });
    assert!(ram.iter().all(|&w| w == 0), "the probe wrote to a window it refused");
}
