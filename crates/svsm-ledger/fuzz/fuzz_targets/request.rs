//! The service's request parser on hostile bytes: never a panic, and only a request sealed under the key is
//! opened (it then re-seals to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use svsm_ledger::{LedgerKey, Request};

fuzz_target!(|data: &[u8]| {
    let key = LedgerKey::from_bytes([7; 32]);
    let _ = Request::claimed_vm(data);
    if let Ok(req) = Request::open(data, &key) {
        assert_eq!(&req.seal(&key)[..], data);
    }
});
