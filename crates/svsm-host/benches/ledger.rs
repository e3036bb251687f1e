//! The freshness-ledger service on a real 3-member loopback etcd cluster, every comparison interleaved in one
//! run:
//!
//! 1. compare-and-set through `svsm-host ledger serve` vs a raw etcd Txn of the same shape from this process,
//!    for one volume and for 16 volumes at once (one operation = 16 concurrent compare-and-sets), p50/p99;
//!    plus the floor of the extra hop (a loopback TCP echo of one reply-sized frame);
//! 2. a durable NV_Write 64 B through `svsm-host serve --ledger service:` in strict mode vs the sum of its two
//!    unavoidable parts (the same NV_Write through serve in boot-epoch mode, plus one raw etcd Txn on the same
//!    cluster), and vs swtpm.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ledger::*;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use svsm_benchkit::{Plan, Report, Target, compare, fmt_duration, measure};
use svsm_store::{Ledger as _, LedgerRecord, VolumeId};
use svsm_vtpm::marshal::{self, cmd, rh, su};

fn value(r: &LedgerRecord) -> Vec<u8> {
    let mut v = r.generation.to_le_bytes().to_vec();
    v.extend_from_slice(&r.superblock_hash);
    v
}

/// The service's own Txn: compare the stored value, put the new one, else get.
fn txn(k: &str, cur: &LedgerRecord, new: &LedgerRecord) -> Txn {
    Txn::new()
        .when([Compare::value(k, CompareOp::Equal, value(cur))])
        .and_then([TxnOp::put(k, value(new), None)])
        .or_else([TxnOp::get(k, None)])
}

fn next(r: &LedgerRecord) -> LedgerRecord {
    record(r.generation + 1, r.superblock_hash[8])
}

struct Raw {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Raw {
    fn seed(&self, keys: &[(String, LedgerRecord)]) {
        self.rt.block_on(async {
            let mut kv = self.client.kv_client();
            for (k, r) in keys {
                kv.put(k.clone(), value(r), None).await.unwrap();
            }
        });
    }

    /// One Txn, awaited on the calling thread (as a single client would).
    fn cas_one(&self, key: &mut (String, LedgerRecord)) {
        let nx = next(&key.1);
        let ok = self.rt.block_on(self.client.kv_client().txn(txn(&key.0, &key.1, &nx))).unwrap().succeeded();
        assert!(ok, "raw txn lost its compare");
        key.1 = nx;
    }

    /// `keys.len()` Txns at once, one task each.
    fn cas_many(&self, keys: &mut [(String, LedgerRecord)]) {
        self.rt.block_on(async {
            let mut tasks = Vec::new();
            for (k, cur) in keys.iter() {
                let mut kv = self.client.kv_client();
                let t = txn(k, cur, &next(cur));
                tasks.push(tokio::spawn(async move { kv.txn(t).await.unwrap().succeeded() }));
            }
            for t in tasks {
                assert!(t.await.unwrap(), "raw txn lost its compare");
            }
        });
        for (_, r) in keys.iter_mut() {
            *r = next(r);
        }
    }
}

/// A ledger client on its own long-lived thread (so a 16-volume operation costs 16 wake-ups, as the raw side's
/// 16 tasks do, not 16 thread spawns).
struct Worker {
    go: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

impl Worker {
    fn start(mut c: common::ledger::Client, v: VolumeId, mut r: LedgerRecord) -> Worker {
        let (go, go_rx) = mpsc::channel::<()>();
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            while go_rx.recv().is_ok() {
                let nx = next(&r);
                c.compare_and_set(&v, Some(&r), &nx).unwrap();
                r = nx;
                done_tx.send(()).unwrap();
            }
        });
        Worker { go, done }
    }
}

/// The floor of the service's extra hop: one reply-sized frame echoed over loopback TCP (tokio server on
/// the raw side's runtime, blocking NODELAY client, as the ledger client is).
fn echo_floor(rt: &tokio::runtime::Runtime) -> Duration {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 189];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [7u8; 189];
    measure("loopback TCP echo of 189 bytes", Plan::new(10, 200), || {
        c.write_all(&buf).unwrap();
        c.read_exact(&mut buf).unwrap();
    })
    .median
}

fn cas_section(cluster: &Cluster, dir: &Path, raw: &Raw) -> Report {
    let (vm, key) = enrol(cluster, dir, "be0c0000be0c0000be0c0000be0c0000");
    let svc = Service::start(cluster, dir, "svc");
    let mut report = Report::new(
        "Ledger compare-and-set: ledger service vs raw etcd Txn (3-member etcd 3.4.23, loopback)",
    )
    .with_p99();
    let mut medians = Vec::new();
    for n in [1usize, 16] {
        let mut raw_keys: Vec<(String, LedgerRecord)> =
            (0..n).map(|i| (format!("/bench/raw/{n}/{i}"), record(0, i as u8))).collect();
        raw.seed(&raw_keys);
        // Service side: n clients (one connection each), one volume each, enrolled at generation 1.
        let mut clients: Vec<(common::ledger::Client, VolumeId, LedgerRecord)> = (0..n)
            .map(|i| {
                let mut c = client(&svc.addr, vm, &key);
                let v = VolumeId([n as u8, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                c.compare_and_set(&v, None, &record(1, i as u8)).unwrap();
                (c, v, record(1, i as u8))
            })
            .collect();
        let name = format!("{n} volume(s): {n} concurrent compare-and-set");
        let mut row = if n == 1 {
            let (c, v, r) = &mut clients[0];
            compare(
                &name,
                Plan::new(10, 100),
                "raw etcd Txn",
                || raw.cas_one(&mut raw_keys[0]),
                "ledger service",
                || {
                    let nx = next(r);
                    c.compare_and_set(v, Some(r), &nx).unwrap();
                    *r = nx;
                },
            )
        } else {
            let workers: Vec<Worker> = clients.drain(..).map(|(c, v, r)| Worker::start(c, v, r)).collect();
            compare(
                &name,
                Plan::new(10, 30),
                "raw etcd Txn",
                || raw.cas_many(&mut raw_keys),
                "ledger service",
                || {
                    for w in &workers {
                        w.go.send(()).unwrap();
                    }
                    for w in &workers {
                        w.done.recv().unwrap();
                    }
                },
            )
        };
        // Throughput >= 80 % of raw is time per operation <= 1.25x.
        row.target = Some(Target::AtMost(1.25));
        medians.push((n, row.candidate.median.saturating_sub(row.baseline.median)));
        report.push(row);
    }
    let floor = echo_floor(&raw.rt);
    report.note(
        "one operation = n compare-and-sets issued at once; 1 volume: both sides on the calling thread; 16 \
         volumes: raw = 16 tokio tasks on one etcd-client, service = 16 long-lived client threads, one TCP \
         connection each",
    );
    for (n, d) in medians {
        report.note(format!("{n} volume(s): service - raw medians = {}", fmt_duration(d)));
    }
    report.note(format!(
        "floor of the extra hop: loopback TCP echo of one 189-byte frame (tokio server, blocking NODELAY \
         client) = {} median",
        fmt_duration(floor)
    ));
    report
}

// --- durable NV_Write through serve ---

struct Tpm(TcpStream);

impl Tpm {
    fn connect(a: SocketAddr) -> Tpm {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match TcpStream::connect(a) {
                Ok(s) => {
                    s.set_nodelay(true).unwrap();
                    return Tpm(s);
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("connect {a}: {e}"),
            }
        }
    }

    fn ok(&mut self, c: &[u8]) {
        self.0.write_all(c).unwrap();
        let mut h = [0u8; 10];
        self.0.read_exact(&mut h).unwrap();
        let len = u32::from_be_bytes(h[2..6].try_into().unwrap()) as usize;
        let mut r = h.to_vec();
        r.resize(len, 0);
        self.0.read_exact(&mut r[10..]).unwrap();
        assert_eq!(marshal::response_code(&r).unwrap(), 0, "TPM error {r:02x?}");
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn spawn_serve(dir: &Path, name: &str, port: u16, mode: &str, svc: &str, vm: &str) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_svsm-host"))
            .args(["serve", "--tcp", "--no-mssim", "--no-swtpm-unix", "--swtpm-port", &port.to_string()])
            .arg("--state-dir")
            .arg(dir.join(name))
            .args(["--ledger-mode", mode, "--ledger", &format!("service:{svc}"), "--ledger-vm-id", vm])
            .arg("--ledger-key")
            .arg(dir.join(format!("{vm}.key")))
            .env("SVSM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap(),
    )
}

const IDX: u32 = 0x0150_0016;

/// Defines the 64-byte owner NV index every NV_Write side of the comparison writes.
fn define_index(t: &mut Tpm) {
    let public = marshal::NvPublic {
        index: IDX,
        name_alg: marshal::alg::SHA256,
        attributes: marshal::nv_attr::OWNERWRITE | marshal::nv_attr::OWNERREAD,
        auth_policy: vec![],
        data_size: 64,
    };
    t.ok(&cmd::nv_define_space(rh::OWNER, &public).unwrap());
}

fn ready(port: u16) -> Tpm {
    let mut t = Tpm::connect(([127, 0, 0, 1], port).into());
    t.ok(&cmd::startup(su::CLEAR).unwrap());
    define_index(&mut t);
    t
}

fn nv_write(t: &mut Tpm, i: &mut u64) {
    *i += 1;
    t.ok(&cmd::nv_write(rh::OWNER, IDX, &[i.to_le_bytes(); 8].concat(), 0).unwrap());
}

fn nv_section(cluster: &Cluster, dir: &Path, raw: &Raw) -> Report {
    let (strict_vm, epoch_vm) = ("5e5e0000000000000000000000000001", "5e5e0000000000000000000000000002");
    enrol(cluster, dir, strict_vm);
    enrol(cluster, dir, epoch_vm);
    let svc = Service::start(cluster, dir, "svc-nv");
    let sw_dir = dir.join("swtpm");
    std::fs::create_dir(&sw_dir).unwrap();
    let sw_port = free_port_pair();
    let _swtpm = Killed(
        Command::new("swtpm")
            .args(["socket", "--tpm2", "--server", &format!("type=tcp,port={sw_port},bindaddr=127.0.0.1")])
            .args(["--ctrl", &format!("type=tcp,port={},bindaddr=127.0.0.1", sw_port + 1)])
            .args([
                "--tpmstate",
                &format!("dir={}", sw_dir.display()),
                "--flags",
                "not-need-init,startup-clear",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is not installed: run `make deps`"),
    );
    let (strict_port, epoch_port) = (free_port_pair(), free_port_pair());
    let _strict = spawn_serve(dir, "strict", strict_port, "strict", &svc.addr, strict_vm);
    let _epoch = spawn_serve(dir, "epoch", epoch_port, "boot-epoch", &svc.addr, epoch_vm);
    let mut sw = Tpm::connect(([127, 0, 0, 1], sw_port).into());
    define_index(&mut sw);
    let mut strict = ready(strict_port);
    let mut epoch = ready(epoch_port);
    let mut raw_key = ("/bench/raw/nv".to_string(), record(0, 0x77));
    raw.seed(std::slice::from_ref(&raw_key));

    let mut report = Report::new(
        "Durable NV_Write 64 B through `svsm-host serve --ledger service:` (3-member etcd, loopback)",
    )
    .with_p99();
    let (mut i, mut j, mut k) = (0u64, 0u64, 0u64);
    let mut row = compare(
        "NV_Write 64 B strict (store commit + ledger CAS via the service) vs its two parts",
        Plan::new(10, 50),
        "boot-epoch NV_Write + one raw etcd Txn",
        || {
            nv_write(&mut epoch, &mut i);
            raw.cas_one(&mut raw_key);
        },
        "strict, --ledger service:",
        || nv_write(&mut strict, &mut j),
    );
    row.target = Some(Target::AtMost(1.25));
    report.push(row);
    let row = compare(
        "NV_Write 64 B strict via the ledger service vs swtpm 0.7.1 (not durable: no fsync)",
        Plan::new(10, 50),
        "swtpm",
        || nv_write(&mut sw, &mut k),
        "strict, --ledger service:",
        || nv_write(&mut strict, &mut j),
    );
    report.push(row);
    report.note(
        "strict: each NV_Write commits the store (sealed blocks, superblock, fdatasync) and then compare-and-sets \
         the volume's record at the ledger service (one etcd Txn) before the response; boot-epoch: the same \
         commit, ledger advanced only at open",
    );
    report
}

fn main() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let eps: Vec<String> = cluster.endpoints().split(',').map(str::to_string).collect();
    let client = rt.block_on(Client::connect(&eps, None)).unwrap();
    let raw = Raw { rt, client };
    let cas = cas_section(&cluster, dir.path(), &raw);
    let nv = nv_section(&cluster, dir.path(), &raw);
    cas.emit();
    nv.emit();
}
