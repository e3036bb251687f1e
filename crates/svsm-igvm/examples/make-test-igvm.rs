//! Writes IGVM test files (the ones the tests build) for trying `svsm-host igvm measure`, `serve --igvm`,
//! `attest simulate --igvm` and `attest verify --igvm` without an external image:
//!
//! `cargo run -p svsm-igvm --example make-test-igvm -- DIR` writes DIR/sample.igvm (every page kind),
//! DIR/other.igvm (one byte different), DIR/id-block.igvm (with an ID block signed for its own digest) and
//! DIR/large.igvm (16 MiB of page data).

use svsm_igvm::testing::{TEST_POLICY, large_image, sample_image};
use svsm_igvm::{IgvmCrateRules, measure};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: make-test-igvm DIR")?);
    std::fs::create_dir_all(&dir)?;
    let sample = sample_image(TEST_POLICY);
    let other = sample.clone().page(0x30_0000, b"one more page".to_vec());
    let ld = measure(&sample.build()?, &IgvmCrateRules)?.measurement;
    let id_block = sample.clone().id_block(ld, 0x11, Some(0x22));
    for (name, image) in
        [("sample", &sample), ("other", &other), ("id-block", &id_block), ("large", &large_image(16 << 20))]
    {
        let path = dir.join(format!("{name}.igvm"));
        std::fs::write(&path, image.build()?)?;
        println!("{}", path.display());
    }
    Ok(())
}
