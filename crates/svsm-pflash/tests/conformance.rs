//! The shared block-device conformance suite against the driver on the flash model.

use svsm_block::BlockDevice;
use svsm_block::conformance::run_all;
use svsm_pflash::model::{ModelConfig, PflashModel};
use svsm_pflash::{BusWidth, Pflash, PflashConfig};

fn flash(model: ModelConfig, read_only: bool, buffered: bool) -> Box<dyn BlockDevice> {
    let mut config = PflashConfig::new(model.width);
    config.read_only = read_only;
    config.buffered_program = buffered;
    Box::new(Pflash::probe(PflashModel::new(model), config).expect("probe the model"))
}

#[test]
fn qemu_x86_flash_conforms() {
    let model = ModelConfig::qemu_x86(64);
    run_all(&mut || flash(model, false, true), Some(&mut || flash(model, true, true)));
}

#[test]
fn wide_buses_and_word_programming_conform() {
    for (width, erase_block, buffer, buffered) in [
        (BusWidth::X16, 1024, 64, true),
        (BusWidth::X32, 2048, 2048, true),
        (BusWidth::X8, 512, 0, true),
        (BusWidth::X32, 512, 64, false),
    ] {
        let model = ModelConfig { width, erase_block, num_blocks: 40, write_buffer: buffer, busy_polls: 1 };
        run_all(&mut || flash(model, false, buffered), Some(&mut || flash(model, true, buffered)));
    }
}
