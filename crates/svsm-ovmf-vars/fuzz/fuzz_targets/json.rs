//! The JSON importer on hostile documents: never a panic (virtfw-varstore's own import panics on bad hex),
//! and whatever it accepts exports and re-imports as the same variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_ovmf_vars::json;

fuzz_target!(|data: &[u8]| {
    let Ok(vars) = json::parse(data) else { return };
    let text = json::to_json(&vars).expect("accepted variables must export");
    assert_eq!(json::parse(text.as_bytes()).expect("exported JSON must parse"), vars);
});
