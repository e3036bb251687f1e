//! Property test: random transactions, aborts and reopens against an in-memory model of committed state.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use svsm_store::LedgerMode;

#[derive(Debug, Clone)]
enum Op {
    Put(u64, usize, u64),
    Delete(u64),
    Commit,
    Abort,
    Reopen,
    ReadRange(u64, u64, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let id = prop_oneof![Just(1u64), Just(2), Just(3), Just(0x10), 0x1_0000u64..0x1_0010];
    prop_oneof![
        4 => (id.clone(), prop_oneof![0usize..10, 4090usize..4100, 0usize..30_000], any::<u64>()).prop_map(|(i, l, s)| Op::Put(i, l, s)),
        1 => id.clone().prop_map(Op::Delete),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
        1 => (id, 0u64..30_000, 0usize..9000).prop_map(|(i, o, l)| Op::ReadRange(i, o, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..40), strict in any::<bool>()) {
        let mode = if strict { LedgerMode::Strict } else { LedgerMode::BootEpoch };
        let (store, ledger) = fresh(mode, 256, 42);
        let mut store = Some(store);
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut staged: BTreeMap<u64, Option<Vec<u8>>> = BTreeMap::new();
        let mut generation = 1u64;
        for (n, op) in ops.into_iter().enumerate() {
            let s = store.as_mut().unwrap();
            match op {
                Op::Put(id, len, seed) => { staged.insert(id, Some(bytes(seed, len))); }
                Op::Delete(id) => { staged.insert(id, None); }
                Op::Abort => {
                    // Write the staged blocks, then drop the transaction.
                    let mut tx = s.begin();
                    for (id, v) in &staged {
                        match v { Some(b) => tx.put(*id, b).unwrap(), None => tx.delete(*id).unwrap() }
                    }
                    drop(tx);
                    staged.clear();
                }
                Op::Commit => {
                    let mut tx = s.begin();
                    for (id, v) in &staged {
                        match v { Some(b) => tx.put(*id, b).unwrap(), None => tx.delete(*id).unwrap() }
                    }
                    let g = tx.commit().unwrap();
                    if !staged.is_empty() { generation += 1; }
                    prop_assert_eq!(g, generation);
                    for (id, v) in std::mem::take(&mut staged) {
                        match v { Some(b) => { model.insert(id, b); } None => { model.remove(&id); } }
                    }
                }
                Op::Reopen => {
                    let (dev, _) = store.take().unwrap().into_parts();
                    let mut o = opts(n as u64);
                    o.verify_all_data = true;
                    let s2 = svsm_store::Store::open(dev, &key(), ledger.clone(), o).unwrap();
                    prop_assert_eq!(s2.generation(), generation);
                    store = Some(s2);
                }
                Op::ReadRange(id, off, len) => {
                    let mut buf = vec![0u8; len];
                    match (model.get(&id), s.read_at(id, off, &mut buf)) {
                        (None, Ok(None)) => {}
                        (Some(v), Ok(Some(got))) => {
                            let end = (off as usize + len).min(v.len());
                            prop_assert_eq!(&buf[..got], &v[off as usize..end]);
                        }
                        (Some(v), Err(svsm_store::StoreError::OutOfRange { .. })) => prop_assert!(off as usize > v.len()),
                        (m, r) => prop_assert!(false, "model {:?} store {:?}", m.map(|v| v.len()), r),
                    }
                }
            }
            let s = store.as_mut().unwrap();
            let ids: Vec<(u64, u64)> = s.objects().collect();
            let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, v.len() as u64)).collect();
            prop_assert_eq!(ids, want);
        }
        let s = store.as_mut().unwrap();
        for (id, v) in &model {
            let got = s.get(*id).unwrap().unwrap();
            prop_assert_eq!(got.as_slice(), v.as_slice());
        }
        s.verify_all(&mut |_, _| {}).unwrap();
    }
}
