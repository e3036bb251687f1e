//! Ledger compare-and-set through `svsm-host ledger serve` vs a raw etcd Txn of the same shape, from the same
//! process, on the same real 3-member loopback cluster, interleaved in one run. One volume, and 16 volumes at
//! once (one operation = 16 concurrent compare-and-sets).

#[path = "../tests/common/mod.rs"]
mod common;

use common::ledger::*;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use svsm_benchkit::{Plan, Report, Target, compare};
use svsm_store::{Ledger as _, LedgerRecord, VolumeId};

fn value(r: &LedgerRecord) -> Vec<u8> {
    let mut v = r.generation.to_le_bytes().to_vec();
    v.extend_from_slice(&r.superblock_hash);
    v
}

struct Raw {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Raw {
    /// The service's own Txn: compare the stored value, put the new one, else get.
    fn cas(&self, keys: &[(String, LedgerRecord)], next: &[LedgerRecord]) {
        self.rt.block_on(async {
            let mut tasks = Vec::new();
            for ((k, cur), new) in keys.iter().zip(next) {
                let mut kv = self.client.kv_client();
                let txn = Txn::new()
                    .when([Compare::value(k.clone(), CompareOp::Equal, value(cur))])
                    .and_then([TxnOp::put(k.clone(), value(new), None)])
                    .or_else([TxnOp::get(k.clone(), None)]);
                tasks.push(tokio::spawn(async move { kv.txn(txn).await.unwrap().succeeded() }));
            }
            for t in tasks {
                assert!(t.await.unwrap(), "raw txn lost its compare");
            }
        })
    }
}

fn main() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (vm, key) = enrol(&cluster, dir.path(), "be0c0000be0c0000be0c0000be0c0000");
    let svc = Service::start(&cluster, dir.path(), "svc");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let eps: Vec<String> = cluster.endpoints().split(',').map(str::to_string).collect();
    let etcd = rt.block_on(Client::connect(&eps, None)).unwrap();
    let raw = Raw { rt, client: etcd };
    let mut report =
        Report::new("Ledger compare-and-set: ledger service vs raw etcd Txn (3-member etcd, loopback)");
    for n in [1usize, 16] {
        // Raw side: its own keys, seeded.
        let mut raw_keys: Vec<(String, LedgerRecord)> =
            (0..n).map(|i| (format!("/bench/raw/{n}/{i}"), record(0, i as u8))).collect();
        raw.rt.block_on(async {
            let mut kv = raw.client.kv_client();
            for (k, r) in &raw_keys {
                kv.put(k.clone(), value(r), None).await.unwrap();
            }
        });
        // Service side: n clients (one connection each), one volume each, enrolled at generation 1.
        let mut clients: Vec<(Client_, VolumeId, LedgerRecord)> = (0..n)
            .map(|i| {
                let mut c = client(&svc.addr, vm, &key);
                let v = VolumeId([n as u8, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                c.compare_and_set(&v, None, &record(1, i as u8)).unwrap();
                (c, v, record(1, i as u8))
            })
            .collect();
        let mut raw_op = || {
            let next: Vec<LedgerRecord> =
                raw_keys.iter().map(|(_, r)| record(r.generation + 1, r.superblock_hash[8])).collect();
            raw.cas(&raw_keys, &next);
            for ((_, r), nx) in raw_keys.iter_mut().zip(next) {
                *r = nx;
            }
        };
        let mut svc_op = || {
            std::thread::scope(|s| {
                for (c, v, r) in clients.iter_mut() {
                    s.spawn(move || {
                        let nx = record(r.generation + 1, r.superblock_hash[8]);
                        c.compare_and_set(v, Some(r), &nx).unwrap();
                        *r = nx;
                    });
                }
            });
        };
        let mut row = compare(
            &format!("{n} volume(s): {n} concurrent compare-and-set"),
            Plan::new(10, if n == 1 { 100 } else { 20 }).quick_if_requested(),
            "raw etcd Txn",
            &mut raw_op,
            "ledger service",
            &mut svc_op,
        );
        // Throughput >= 80 % of raw is time per operation <= 1.25x.
        row.target = Some(Target::AtMost(1.25));
        report.push(row);
    }
    report.note("one operation = n compare-and-sets issued at once; p10-p90 shown (benchkit records no p99)");
    report.emit();
}

type Client_ = common::ledger::Client;
