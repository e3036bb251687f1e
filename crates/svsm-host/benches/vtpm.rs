//! The vTPM daemon against Debian's swtpm, same raw client, same run, loopback TCP.
//!
//! Both servers are driven through their raw TPM data channel (swtpm framing) on one persistent
//! TCP_NODELAY connection each. Note what is compared for NV_Write: our write is durable (fdatasync before
//! the response), swtpm 0.7.1's is not (it renames a file without fsync), so the target there is a ratio
//! above 1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use svsm_benchkit::{Plan, Report, Target, compare, fmt_duration, measure};
use svsm_vtpm::manufacture::EkKind;
use svsm_vtpm::marshal::{self, PublicArea, PublicKey, cmd, rh, su};

struct Client(TcpStream);

impl Client {
    fn connect(a: SocketAddr) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match TcpStream::connect(a) {
                Ok(s) => {
                    s.set_nodelay(true).unwrap();
                    return Client(s);
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("connect {a}: {e}"),
            }
        }
    }

    fn send(&mut self, c: &[u8]) -> Vec<u8> {
        self.0.write_all(c).unwrap();
        let mut h = [0u8; 10];
        self.0.read_exact(&mut h).unwrap();
        let len = u32::from_be_bytes(h[2..6].try_into().unwrap()) as usize;
        let mut r = h.to_vec();
        r.resize(len, 0);
        self.0.read_exact(&mut r[10..]).unwrap();
        r
    }

    fn ok(&mut self, c: &[u8]) -> Vec<u8> {
        let r = self.send(c);
        assert_eq!(marshal::response_code(&r).unwrap(), 0, "TPM error {r:02x?}");
        r
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

fn spawn_swtpm(dir: &Path, port: u16) -> Child {
    Command::new("swtpm")
        .args(["socket", "--tpm2", "--server", &format!("type=tcp,port={port},bindaddr=127.0.0.1")])
        .args(["--ctrl", &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1)])
        .args(["--tpmstate", &format!("dir={}", dir.display()), "--flags", "not-need-init,startup-clear"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("swtpm is not installed: run `make deps`")
}

fn spawn_ours(state: &Path, port: u16) -> Child {
    spawn_ours_mode(state, port, "strict")
}

fn spawn_ours_mode(state: &Path, port: u16, mode: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .args([
            "serve",
            "--tcp",
            "--no-mssim",
            "--no-swtpm-unix",
            "--swtpm-port",
            &port.to_string(),
            "--state-dir",
        ])
        .arg(state)
        .args(["--ledger-mode", mode])
        .env("SVSM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

const IDX: u32 = 0x0150_0016;

fn define(c: &mut Client) {
    let public = marshal::NvPublic {
        index: IDX,
        name_alg: marshal::alg::SHA256,
        attributes: marshal::nv_attr::OWNERWRITE | marshal::nv_attr::OWNERREAD,
        auth_policy: vec![],
        data_size: 64,
    };
    c.ok(&cmd::nv_define_space(rh::OWNER, &public).unwrap());
}

fn srk_template(rsa: bool) -> PublicArea {
    // A storage-key template (userWithAuth, no policy) so no session is needed.
    let mut t = if rsa { EkKind::Rsa2048.template() } else { EkKind::EccP256.template() };
    t.attributes =
        (t.attributes & !marshal::object_attr::ADMIN_WITH_POLICY) | marshal::object_attr::USER_WITH_AUTH;
    t.auth_policy.clear();
    match &mut t.key {
        PublicKey::Rsa { modulus, .. } => modulus.clear(),
        PublicKey::Ecc { x, y, .. } => {
            x.clear();
            y.clear();
        }
        PublicKey::KeyedHash { unique, .. } | PublicKey::SymCipher { unique, .. } => unique.clear(),
    }
    t
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let sw_dir = tmp.path().join("swtpm");
    std::fs::create_dir(&sw_dir).unwrap();
    let state = tmp.path().join("state");
    let sw_port = free_port_pair();
    let swtpm = spawn_swtpm(&sw_dir, sw_port);
    let our_port = free_port_pair();
    let ours = spawn_ours(&state, our_port);
    let epoch_state = tmp.path().join("state-epoch");
    let epoch_port = free_port_pair();
    let epoch = spawn_ours_mode(&epoch_state, epoch_port, "boot-epoch");
    let sw_addr: SocketAddr = ([127, 0, 0, 1], sw_port).into();
    let our_addr: SocketAddr = ([127, 0, 0, 1], our_port).into();
    let mut s = Client::connect(sw_addr);
    let mut o = Client::connect(our_addr);
    o.ok(&cmd::startup(su::CLEAR).unwrap());
    let mut eo = Client::connect(([127, 0, 0, 1], epoch_port).into());
    eo.ok(&cmd::startup(su::CLEAR).unwrap());
    define(&mut eo);
    define(&mut s);
    define(&mut o);

    let mut report =
        Report::new("vTPM daemon vs swtpm 0.7.1 (raw TPM framing, loopback TCP, one connection)");
    let get_random = cmd::get_random(8).unwrap();
    let mut row = compare(
        "GetRandom(8) round trip",
        Plan::new(20, 200),
        "swtpm",
        || {
            s.ok(&get_random);
        },
        "svsm-host serve",
        || {
            o.ok(&get_random);
        },
    );
    row.target = Some(Target::AtMost(0.5));
    report.push(row);

    let (mut i, mut j) = (0u64, 0u64);
    let mut row = compare(
        "NV_Write 64 B, data changes (ours durable: fdatasync; swtpm: no fsync)",
        Plan::new(20, 50),
        "swtpm",
        || {
            i += 1;
            let data = [i.to_le_bytes(); 8].concat();
            s.ok(&cmd::nv_write(rh::OWNER, IDX, &data, 0).unwrap());
        },
        "svsm-host serve",
        || {
            j += 1;
            let data = [j.to_le_bytes(); 8].concat();
            o.ok(&cmd::nv_write(rh::OWNER, IDX, &data, 0).unwrap());
        },
    );
    row.target = Some(Target::AtMost(1.5));
    report.push(row);

    let mut k = 0u64;
    let row = compare(
        "NV_Write 64 B: ours strict ledger vs ours boot-epoch ledger",
        Plan::new(10, 30),
        "boot-epoch",
        || {
            k += 1;
            let data = [k.to_le_bytes(); 8].concat();
            eo.ok(&cmd::nv_write(rh::OWNER, IDX, &data, 0).unwrap());
        },
        "strict",
        || {
            j += 1;
            let data = [j.to_le_bytes(); 8].concat();
            o.ok(&cmd::nv_write(rh::OWNER, IDX, &data, 0).unwrap());
        },
    );
    report.push(row);
    let mut k2 = 1_000_000u64;
    let mut row = compare(
        "NV_Write 64 B, boot-epoch ledger (durable) vs swtpm (not durable)",
        Plan::new(10, 30),
        "swtpm",
        || {
            i += 1;
            let data = [i.to_le_bytes(); 8].concat();
            s.ok(&cmd::nv_write(rh::OWNER, IDX, &data, 0).unwrap());
        },
        "svsm-host serve --ledger-mode boot-epoch",
        || {
            k2 += 1;
            let data = [k2.to_le_bytes(); 8].concat();
            eo.ok(&cmd::nv_write(rh::OWNER, IDX, &data, 0).unwrap());
        },
    );
    row.target = Some(Target::AtMost(1.5));
    report.push(row);
    drop(eo);
    stop(epoch);

    for (name, rsa, plan) in [
        ("CreatePrimary RSA-2048 + FlushContext", true, Plan::new(4, 5)),
        ("CreatePrimary ECC P-256 + FlushContext", false, Plan::new(10, 20)),
    ] {
        let c = cmd::create_primary(rh::OWNER, &srk_template(rsa)).unwrap();
        let run = |cl: &mut Client| {
            let r = cl.ok(&c);
            let h = marshal::CreatedPrimary::parse(&r).unwrap().handle;
            cl.ok(&cmd::flush_context(h).unwrap());
        };
        let row = compare(name, plan, "swtpm", || run(&mut s), "svsm-host serve", || run(&mut o));
        report.push(row);
    }
    let stores_note = "NV_Write: swtpm writes its state file with rename and no fsync; ours commits a secure-store transaction (sealed copy-on-write blocks, superblock, device flush) and, in strict mode, a file-ledger compare-and-set (one pwrite + fdatasync into the record file's spare slot) before answering";
    report.note(stores_note);

    // Start time with existing state: spawn until the first TPM response on the data channel.
    drop(s);
    drop(o);
    stop(swtpm);
    stop(ours);
    let start_until_response = |spawn: &dyn Fn() -> Child, addr: SocketAddr| {
        let t = Instant::now();
        let child = spawn();
        let mut c = Client::connect(addr);
        let _ = c.send(&get_random);
        let e = t.elapsed();
        drop(c);
        stop(child);
        e
    };
    let mut sw_times = Vec::new();
    let mut our_times = Vec::new();
    let start_plan = Plan::new(5, 4);
    let row = compare(
        "start with existing state until first TPM response",
        start_plan,
        "swtpm",
        || sw_times.push(start_until_response(&|| spawn_swtpm(&sw_dir, sw_port), sw_addr)),
        "svsm-host serve",
        || our_times.push(start_until_response(&|| spawn_ours(&state, our_port), our_addr)),
    );
    report.push(row);
    let single = measure("our start (alone)", Plan::new(1, 3), || {
        let _ = start_until_response(&|| spawn_ours(&state, our_port), our_addr);
    });
    report.note(format!("svsm-host serve start alone: median {}", fmt_duration(single.median)));
    report.emit();
}
