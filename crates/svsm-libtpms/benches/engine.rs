//! In-process libtpms engine figures for the flush policy (docs/flush-policy.md): how often libtpms stores
//! NV state when nothing but the clock changes, and what an NV store costs the engine itself.
//!
//! Run: `cargo bench -p svsm-libtpms --bench engine` (BENCH_QUICK=1 shortens the clock observation).

use std::time::{Duration, Instant};

use svsm_benchkit::{Plan, Report, compare};
use svsm_libtpms::{LibTpms, StateMode};
use svsm_vtpm::marshal::{self, cmd, rh, su};
use svsm_vtpm::{MemNvStorage, TpmEngine};

fn ok(r: &[u8]) {
    assert_eq!(marshal::response_code(r).unwrap(), 0);
}

fn main() {
    let mut e = LibTpms::new(MemNvStorage::new(), StateMode::MayManufacture).unwrap();
    e.power_on().unwrap();
    ok(&e.execute(0, &cmd::startup(su::CLEAR).unwrap()).unwrap());
    let public = marshal::NvPublic {
        index: 0x0150_0016,
        name_alg: marshal::alg::SHA256,
        attributes: marshal::nv_attr::OWNERWRITE | marshal::nv_attr::OWNERREAD,
        auth_policy: vec![],
        data_size: 64,
    };
    ok(&e.execute(0, &cmd::nv_define_space(rh::OWNER, &public).unwrap()).unwrap());

    // Clock-only stores: a stream of commands that change nothing but the TPM clock.
    let seconds = if std::env::var_os("BENCH_QUICK").is_some() { 3 } else { 20 };
    let get_random = cmd::get_random(8).unwrap();
    let before = e.store_count();
    let t = Instant::now();
    let mut commands = 0u64;
    while t.elapsed() < Duration::from_secs(seconds) {
        ok(&e.execute(0, &get_random).unwrap());
        commands += 1;
        if commands.is_multiple_of(1000) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let clock_stores = e.store_count() - before;

    let mut i = 0u64;
    let e = std::cell::RefCell::new(e);
    let mut report = Report::new("libtpms engine in-process (no I/O)");
    let row = compare(
        "GetRandom(8) vs NV_Write(64, changing data) incl. the whole-permall copy to storage",
        Plan::new(10, 200),
        "GetRandom(8)",
        || ok(&e.borrow_mut().execute(0, &get_random).unwrap()),
        "NV_Write(64)",
        || {
            i += 1;
            let d = [i.to_le_bytes(); 8].concat();
            ok(&e.borrow_mut().execute(0, &cmd::nv_write(rh::OWNER, 0x0150_0016, &d, 0).unwrap()).unwrap());
        },
    );
    report.push(row);
    report.note(format!(
        "clock-only NV stores: {clock_stores} in {seconds} s of {commands} state-neutral commands \
         (libtpms persists the clock only when it crosses its NV clock-update interval)"
    ));
    report.note(format!("total NV stores by this engine: {}", e.borrow().store_count()));
    report.emit();
}
