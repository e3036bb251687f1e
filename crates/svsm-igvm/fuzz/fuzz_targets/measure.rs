//! `svsm-host igvm measure` on arbitrary bytes: parse, validate, both digest rule sets, reference values.
//! Every input is tried twice: as is, and with its header checksum recomputed so that mutations reach the
//! header checks instead of stopping at the CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_igvm::testing::reseal_checksum;
use svsm_igvm::{CoconutRules, IgvmCrateRules, ReferenceValues, SnpImage, measure_image};

fn run(data: &[u8]) {
    if let Ok(image) = SnpImage::parse(data) {
        for rules in [&IgvmCrateRules as &dyn svsm_igvm::DigestRules, &CoconutRules { zero_pages: true }] {
            if let Ok(v) = measure_image(&image, rules) {
                let json = ReferenceValues::from_launch(&v).to_json();
                assert!(ReferenceValues::from_json(&json).is_ok());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run(data);
    let mut sealed = data.to_vec();
    reseal_checksum(&mut sealed);
    run(&sealed);
});
