//! The key-file parser on arbitrary bytes (a state file is untrusted input): it never panics, and it accepts
//! exactly the inputs the format allows (one line of 64 hex digits among blank and `#` comment lines).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let allowed = std::str::from_utf8(data).is_ok_and(|text| {
        let lines: Vec<&str> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        lines.len() == 1 && lines[0].len() == 64 && lines[0].bytes().all(|b| b.is_ascii_hexdigit())
    });
    let parsed = svsm_host::state::key_file::parse_key_text(data);
    assert_eq!(parsed.is_ok(), allowed, "{data:?}: {parsed:?}");
    if let Err(reason) = parsed {
        // The reason never echoes the input (it could be key material).
        assert!(reason.len() < 200);
    }
});
