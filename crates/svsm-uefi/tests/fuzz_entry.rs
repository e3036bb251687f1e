//! The fuzz entry points run on crafted and pseudo-random inputs in the normal suite (the campaign itself is
//! `cargo +nightly fuzz run mm_request` in crates/svsm-uefi/fuzz).

use svsm_uefi::fuzzing;
use svsm_uefi::mm;

#[test]
fn mm_request_entry_survives_crafted_and_random_inputs() {
    let set = mm::encode_communicate(
        &mm::SMM_VARIABLE_GUID,
        &mm::set_variable_message(&mm::EFI_GLOBAL_VARIABLE_GUID, "X", 7, b"abc"),
    );
    let mut seeds: Vec<Vec<u8>> = vec![Vec::new(), vec![0xff; 40]];
    let mut regs = vec![4u8; 32];
    regs.extend_from_slice(&set);
    seeds.push(regs);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [8usize, 31, 64, 200, 1000, 5000] {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        seeds.push(v);
    }
    assert!(fuzzing::memory_volume().is_some());
    assert!(fuzzing::mm_request(&seeds[2]) >= 1, "the crafted SetVariable seed never got through");
    for s in &seeds {
        fuzzing::mm_request(s);
        fuzzing::communicate(s);
    }
    let mut direct = vec![4u8];
    direct.push(0);
    direct.extend_from_slice(&mm::set_variable_message(&mm::EFI_GLOBAL_VARIABLE_GUID, "Y", 7, b"z"));
    fuzzing::communicate(&direct);
}
