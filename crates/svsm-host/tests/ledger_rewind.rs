//! The host rewinds a whole state directory (the image and every local file) to an older copy. With the
//! ledger service the store refuses it at open, naming the ledger's generation and the image's; with the
//! development file ledger (inside the state directory) the same rewind goes unnoticed, which is why that
//! ledger is development-only.

mod common;
use common::copy_dir;
use common::ledger::*;
use std::path::Path;
use svsm_block::FileDisk;
use svsm_store::{
    FileLedger, FormatParams, Ledger, LedgerMode, OpenOptions, OsRandom, Store, StoreError, StoreKey,
};

const OBJECT: u64 = 0x1_0000;

fn commit_n<L: Ledger>(store: &mut Store<FileDisk, L>, n: u64) {
    for i in 0..n {
        let mut tx = store.begin();
        tx.put(OBJECT, &i.to_le_bytes()).unwrap();
        tx.commit().unwrap();
    }
}

fn make_volume<L: Ledger>(state: &Path, key: &StoreKey, mode: LedgerMode, ledger: L) -> Store<FileDisk, L> {
    std::fs::create_dir_all(state).unwrap();
    let mut disk = FileDisk::create(state.join("vtpm.img"), 4096, 128).unwrap();
    Store::<_, L>::format(&mut disk, key, FormatParams::new(mode, Box::new(OsRandom))).unwrap();
    let mut o = OpenOptions::new(Box::new(OsRandom));
    o.enroll = true;
    Store::open(disk, key, ledger, o).unwrap()
}

fn reopen<L: Ledger>(state: &Path, key: &StoreKey, ledger: L) -> Result<Store<FileDisk, L>, StoreError> {
    Store::open(
        FileDisk::open(state.join("vtpm.img"), 4096, false).unwrap(),
        key,
        ledger,
        OpenOptions::new(Box::new(OsRandom)),
    )
}

#[test]
fn a_rewound_state_directory_is_refused_naming_both_generations() {
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let (vm, key) = enrol(&cluster, work.path(), "cafe0000cafe0000cafe0000cafe0000");
    let svc = Service::start(&cluster, work.path(), "svc");
    let store_key = StoreKey::from_bytes([6; 32]);
    for mode in [LedgerMode::Strict, LedgerMode::BootEpoch] {
        let state = work.path().join(format!("state-{mode:?}"));
        let backup = work.path().join(format!("backup-{mode:?}"));
        let mut store = make_volume(&state, &store_key, mode, client(&svc.addr, vm, &key));
        commit_n(&mut store, 4);
        drop(store.close().unwrap());
        copy_dir(&state, &backup); // the host keeps a copy of everything
        let old = reopen(&state, &store_key, client(&svc.addr, vm, &key)).unwrap().generation();
        let mut store = reopen(&state, &store_key, client(&svc.addr, vm, &key)).unwrap();
        commit_n(&mut store, 3);
        let new = store.generation();
        drop(store.close().unwrap());
        copy_dir(&backup, &state); // ... and puts it back
        let err = reopen(&state, &store_key, client(&svc.addr, vm, &key)).map(|_| ()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Rollback { .. }), "{mode:?}: {err:?}");
        assert!(
            msg.contains(&format!("generation is {old}")) && msg.contains(&format!("expects {new}")),
            "{mode:?}: {msg}"
        );
    }
}

#[test]
fn the_same_rewind_is_accepted_with_the_file_ledger_in_the_state_directory() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let backup = work.path().join("backup");
    let store_key = StoreKey::from_bytes([6; 32]);
    let ledger = || FileLedger::new(state.join("ledger")).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let mut store = make_volume(&state, &store_key, LedgerMode::Strict, ledger());
    commit_n(&mut store, 4);
    let old = store.generation();
    drop(store.close().unwrap());
    copy_dir(&state, &backup);
    let mut store = reopen(&state, &store_key, ledger()).unwrap();
    commit_n(&mut store, 3);
    drop(store.close().unwrap());
    copy_dir(&backup, &state);
    assert_eq!(
        reopen(&state, &store_key, ledger()).unwrap().generation(),
        old,
        "the file ledger is rewound with the directory"
    );
}
