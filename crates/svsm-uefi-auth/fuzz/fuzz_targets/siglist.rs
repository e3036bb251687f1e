//! Signature-list parsing, the per-variable format rules and the append merge on hostile values: the first
//! byte picks the variable, the second where to split the rest into "stored" and "appended" values.
#![no_main]

use svsm_uefi_auth::{SecureBootVariable, siglist};

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let [selector, split, rest @ ..] = input else { return };
    let variable = SecureBootVariable::ALL[usize::from(selector & 7) % SecureBootVariable::ALL.len()];
    let at = (usize::from(*split) * rest.len()) / 256;
    let (stored, new) = rest.split_at(at);
    let _ = siglist::parse_for(variable, rest);
    if let (Ok(old), Ok(add)) = (siglist::parse(stored), siglist::parse(new)) {
        let merged = siglist::merge_append(&old, stored, &add);
        // The merge keeps the stored value as its prefix and stays parseable.
        assert!(merged.starts_with(stored));
        let again = siglist::parse(&merged).expect("a merge of parseable values parses");
        assert!(again.len() >= old.len());
    }
});
