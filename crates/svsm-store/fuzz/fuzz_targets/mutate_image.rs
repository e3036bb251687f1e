//! Mutation scripts over a valid image, to reach the tree parser past the superblock MAC. Must never panic.
#![no_main]

use std::sync::OnceLock;

static SEEDS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let seeds = SEEDS.get_or_init(|| {
        [
            svsm_store::fuzzing::seed_image(svsm_store::LedgerMode::Strict),
            svsm_store::fuzzing::seed_image(svsm_store::LedgerMode::BootEpoch),
        ]
    });
    let which = data.first().map_or(0, |b| usize::from(b & 1));
    svsm_store::fuzzing::mutate_and_read(&seeds[which], data);
});
