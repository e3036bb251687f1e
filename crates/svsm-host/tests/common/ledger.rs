//! The ledger-service tests' part of `common`: a real 3-member etcd cluster on loopback (Debian
//! `etcd-server`), the real `svsm-host ledger serve`, enrolment through the real CLI, and clients over TCP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use svsm_ledger::tcp::TcpTransport;
use svsm_ledger::{LedgerKey, ServiceLedger, VmId};
use svsm_store::{LedgerRecord, OsRandom};

pub type Client = ServiceLedger<TcpTransport, OsRandom>;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One member's fixed identity (ports, data dir) so it can be killed and restarted as itself.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
}

/// A 3-member etcd cluster in a temporary directory; killed on drop.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    initial: String,
    token: String,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (1..=3)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("svsm-ledger-test-{}-{}", std::process::id(), members[0].client_port);
        let mut c = Cluster { dir, members, initial, token };
        for i in 0..3 {
            c.start_member(i);
        }
        c.wait_healthy(Duration::from_secs(60));
        c
    }

    pub fn start_member(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name))).unwrap();
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--logger", "zap", "--log-level", "warn"])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", m.client_port)])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{}", m.client_port)])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", m.peer_port)])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", m.peer_port)])
            .args(["--initial-cluster", &self.initial, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian etcd-server) must be installed: make deps");
        self.members[i].child = Some(child);
    }

    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running member reports healthy (a linearizable read through Raft).
    pub fn wait_healthy(&self, timeout: Duration) {
        let eps: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect();
        let t0 = Instant::now();
        loop {
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &eps.join(","), "--command-timeout=2s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                t0.elapsed() < timeout,
                "etcd cluster not healthy after {timeout:?}; logs in {}",
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Index of the current leader (from etcdctl's endpoint status).
    pub fn leader(&self) -> usize {
        for (i, m) in self.members.iter().enumerate() {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &format!("http://127.0.0.1:{}", m.client_port),
                    "endpoint",
                    "status",
                    "-w",
                    "json",
                ])
                .output();
            if let Ok(o) = out {
                let s = String::from_utf8_lossy(&o.stdout);
                // {"Status":{"header":{"member_id":X,...},"leader":X,...}}
                let field = |name: &str| {
                    s.split(&format!("\"{name}\":"))
                        .nth(1)
                        .map(|r| r.chars().take_while(|c| c.is_ascii_digit()).collect::<String>())
                };
                if let (Some(me), Some(leader)) = (field("member_id"), field("leader"))
                    && !me.is_empty()
                    && me == leader
                {
                    return i;
                }
            }
        }
        panic!("no etcd leader found");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }
}

/// A running `svsm-host ledger serve`; killed on drop.
#[derive(Debug)]
pub struct Service {
    pub child: Child,
    pub addr: String,
}

impl Service {
    pub fn start(cluster: &Cluster, dir: &Path, name: &str) -> Service {
        let ready = dir.join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = super::host()
            .args([
                "--log",
                "info",
                "ledger",
                "serve",
                "--etcd",
                &cluster.endpoints(),
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        // Owned by a Service at once, so it is killed (and waited for) on every path, panics included.
        let mut service = Service { child, addr: String::new() };
        let t0 = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&ready)
                && s.ends_with('\n')
            {
                service.addr = s.trim().to_string();
                return service;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "ledger service did not start; see {name}.log");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Enrols a VM through the real CLI; returns its id and key.
pub fn enrol(cluster: &Cluster, dir: &Path, vm_hex: &str) -> (VmId, LedgerKey) {
    let key_file = dir.join(format!("{vm_hex}.key"));
    let out = super::host()
        .args(["ledger", "enrol", "--etcd", &cluster.endpoints(), "--vm-id", vm_hex])
        .arg("--key-out")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "enrol failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&key_file).unwrap();
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&text.trim()[2 * i..2 * i + 2], 16).unwrap();
    }
    let mut vm = [0u8; 16];
    for (i, b) in vm.iter_mut().enumerate() {
        *b = u8::from_str_radix(&vm_hex[2 * i..2 * i + 2], 16).unwrap();
    }
    (VmId(vm), LedgerKey::from_bytes(key))
}

pub fn client(addr: &str, vm: VmId, key: &LedgerKey) -> Client {
    ServiceLedger::new(vm, key.clone(), TcpTransport::new(addr, Duration::from_secs(10)), OsRandom)
}

pub fn record(generation: u64, salt: u8) -> LedgerRecord {
    let mut h = [salt; 32];
    h[..8].copy_from_slice(&generation.to_le_bytes());
    LedgerRecord { generation, superblock_hash: h }
}
