//! Runs the fuzz entry point (`svsm_store::fuzzing::open_and_read`) over hand-made and seeded-random inputs,
//! so `cargo test` covers what the fuzzer covers.

mod common;

use common::bytes;
use svsm_store::LedgerMode;
use svsm_store::fuzzing::{mutate_and_read, open_and_read, seed_image};

#[test]
fn the_seed_images_open_and_read() {
    assert_eq!(open_and_read(&seed_image(LedgerMode::Strict)), 3);
    assert_eq!(open_and_read(&seed_image(LedgerMode::BootEpoch)), 3);
}

#[test]
fn hand_made_inputs_do_not_panic() {
    for input in [&b""[..], &[0u8; 4096], &[0xff; 8192], b"SVSMSTOR", &[0u8; 3]] {
        assert_eq!(open_and_read(input), 0);
    }
    let mut hdr = vec![0u8; 8192];
    hdr[4096..4104].copy_from_slice(b"SVSMSTOR");
    assert_eq!(open_and_read(&hdr), 0);
}

#[test]
fn mutated_images_never_panic() {
    let base = [seed_image(LedgerMode::Strict), seed_image(LedgerMode::BootEpoch)];
    let iterations = if std::env::var_os("SVSM_LONG_TESTS").is_some() { 50_000 } else { 3_000 };
    for i in 0..iterations {
        let r = bytes(i, 16);
        let mut img = base[i as usize % 2].clone();
        let n = 1 + r[0] as usize % 4;
        for k in 0..n {
            let pos = u32::from_le_bytes([r[1 + k * 3], r[2 + k * 3], r[3 + k * 3], 0]) as usize % img.len();
            img[pos] ^= 1 << (r[13] % 8);
        }
        if r[14].is_multiple_of(16) {
            img.truncate(img.len() * (r[15] as usize) / 256);
        }
        open_and_read(&img);
    }
    // The mutation-script entry point the `mutate_image` fuzz target uses.
    for i in 0..1000u64 {
        let script = bytes(i + 7, (i as usize % 40) + 1);
        mutate_and_read(&base[i as usize % 2], &script);
    }
    assert_eq!(mutate_and_read(&base[0], &[0]), 3);
    // Pure random images.
    for i in 0..200u64 {
        open_and_read(&bytes(i + 1000, (i as usize % 5 + 1) * 4096));
    }
}
