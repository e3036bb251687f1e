//! The one test-support module of svsm-host's integration tests (`mod common;` in each test file): the
//! `serve` daemon ([`Serve`], [`Daemon`]), the other binaries and tools they drive (svsm-host commands,
//! tpm2-tools, `svsm-host guest uefi`, QEMU), raw swtpm data and control clients, waiting for sockets, and
//! child processes that are killed when a test ends (pass or fail). The key-release (`kbs`) and ledger
//! (`ledger`: etcd cluster, ledger service) helpers are submodules.
#![allow(dead_code)]

mod daemon;
/// The key-release tests' KBS double, proxy and simulated-SNP helpers.
pub mod kbs;
/// The ledger-service tests' etcd cluster, `ledger serve` and clients.
pub mod ledger;

// Not every test binary starts a daemon.
#[allow(unused_imports)]
pub use daemon::{Daemon, Serve};

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop, so a failing assertion never leaves QEMU or a daemon running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub struct Data(pub UnixStream);

impl Data {
    pub fn send(&mut self, command: &[u8]) -> Vec<u8> {
        self.0.write_all(command).unwrap();
        let mut h = [0u8; 10];
        self.0.read_exact(&mut h).unwrap();
        let len = u32::from_be_bytes(h[2..6].try_into().unwrap()) as usize;
        let mut r = h.to_vec();
        r.resize(len, 0);
        self.0.read_exact(&mut r[10..]).unwrap();
        r
    }
}

pub struct Ctrl(pub UnixStream);

impl Ctrl {
    /// Sends control command `code` with `body`, reads `reply` bytes.
    pub fn call(&mut self, code: u32, body: &[u8], reply: usize) -> Vec<u8> {
        let mut m = code.to_be_bytes().to_vec();
        m.extend_from_slice(body);
        self.0.write_all(&m).unwrap();
        let mut b = vec![0u8; reply];
        self.0.read_exact(&mut b).unwrap();
        b
    }

    /// CMD_GET_STATEBLOB of `kind`: (result, flags, blob).
    pub fn get_blob(&mut self, kind: u32) -> (u32, u32, Vec<u8>) {
        let mut body = Vec::new();
        for x in [1u32, kind, 0] {
            body.extend_from_slice(&x.to_be_bytes());
        }
        let h = self.call(0x0C, &body, 16);
        let be = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().unwrap());
        let mut data = vec![0u8; be(12) as usize];
        self.0.read_exact(&mut data).unwrap();
        (be(0), be(4), data)
    }

    /// CMD_SET_STATEBLOB: the result code.
    pub fn set_blob(&mut self, kind: u32, flags: u32, blob: &[u8]) -> u32 {
        let mut body = Vec::new();
        for x in [flags, kind, blob.len() as u32] {
            body.extend_from_slice(&x.to_be_bytes());
        }
        body.extend_from_slice(blob);
        be32(&self.call(0x0D, &body, 4))
    }
}

pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

/// Polls `f` every 200 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Waits until a client can connect to the Unix socket at `path`; panics naming `what` after `timeout`.
pub fn wait_for_socket(path: &Path, what: &str, timeout: Duration) {
    let ok = wait_for(timeout, || UnixStream::connect(path).ok());
    assert!(ok.is_some(), "{what} did not listen on {} within {timeout:?}", path.display());
}

/// `svsm-host` (the binary under test), to add arguments to.
pub fn host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svsm-host"))
}

/// Runs `svsm-host ARGS` in `dir`.
pub fn svsm_host(dir: &Path, args: &[&str]) -> Output {
    host().args(args).current_dir(dir).output().unwrap()
}

/// Runs `svsm-host ARGS`, asserts it succeeded; returns its stdout.
pub fn host_ok(args: &[&str]) -> String {
    let out = host().args(args).output().unwrap();
    assert!(out.status.success(), "svsm-host {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout then stderr of a finished command, as text.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs a program in `dir` and asserts it succeeded; returns its stdout.
pub fn run_ok(dir: &Path, prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e} (run `make deps`)"));
    assert!(out.status.success(), "{prog} {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `svsm-host guest uefi SUBCOMMAND --svsm-socket STATE/svsm.sock --memory STATE/guest.mem ARGS...`
/// (`args[0]` is the subcommand), against a daemon started with [`Serve::uefi`]: (success, stdout, stderr).
pub fn guest_uefi(state: &Path, args: &[&str]) -> (bool, String, String) {
    let out = host()
        .args(["guest", "uefi", args[0], "--svsm-socket"])
        .arg(state.join("svsm.sock"))
        .arg("--memory")
        .arg(state.join("guest.mem"))
        .args(&args[1..])
        .output()
        .expect("run guest");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Fails loudly if tpm2-tools is missing: CI installs it, so a skip would hide a broken set-up.
pub fn require_tpm2_tools() {
    let ok =
        Command::new("tpm2_startup").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "tpm2-tools is not installed: run `make deps` (apt-get install tpm2-tools)");
}

/// Runs a tpm2-tools command against `tcti` in `dir`.
pub fn tpm2(tcti: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .env("TPM2TOOLS_TCTI", tcti)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{} could not run ({e}): install tpm2-tools with `make deps`", args[0]))
}

/// Runs a tpm2-tools command and asserts it succeeded; returns its stdout.
pub fn tpm2_ok(tcti: &str, dir: &Path, args: &[&str]) -> String {
    let out = tpm2(tcti, dir, args);
    assert!(out.status.success(), "{args:?} over {tcti} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `name:` line of `tpm2_readpublic` output.
pub fn name_of(readpublic: &str) -> String {
    readpublic
        .lines()
        .find(|l| l.starts_with("name:"))
        .expect("no name in tpm2_readpublic output")
        .trim_start_matches("name:")
        .trim()
        .to_owned()
}

/// Replaces `to` with a copy of `from` (`cp -a`: modes and times kept), e.g. to rewind a state directory.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    assert!(Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success());
}

/// Writes a store key file (64 hex digits, 0600).
pub fn key_file(dir: &Path, name: &str, byte: u8) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, format!("{}\n", format!("{byte:02x}").repeat(32))).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A QEMU q35 under TCG with our daemon behind `-tpmdev emulator` (`device` = tpm-tis or tpm-crb).
pub fn qemu(ctrl: &Path, device: &str, extra: &[&str], stderr: &Path) -> Killed {
    let err = std::fs::File::create(stderr).unwrap();
    let child = Command::new("qemu-system-x86_64")
        .args(["-M", "q35", "-accel", "tcg", "-m", "256", "-display", "none", "-no-reboot", "-nic", "none"])
        .arg("-chardev")
        .arg(format!("socket,id=chrtpm,path={}", ctrl.display()))
        .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device"])
        .arg(format!("{device},tpmdev=tpm0"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("qemu-system-x86_64 is not installed: run `make deps` (apt-get install qemu-system-x86)");
    Killed(child)
}

/// TPM2_PCR_Read of one PCR in one bank: the digest, or `None` if the TPM refused (not started yet).
pub fn pcr_read(d: &mut Data, alg: u16, pcr: u32) -> Option<Vec<u8>> {
    let mut select = [0u8; 3];
    select[(pcr / 8) as usize] = 1 << (pcr % 8);
    let cmd =
        svsm_vtpm::marshal::CommandBuilder::new(0x17E).u32(1).u16(alg).u8(3).bytes(&select).build().unwrap();
    let r = d.send(&cmd);
    if svsm_vtpm::marshal::response_code(&r).unwrap() != 0 {
        return None;
    }
    let mut rd = svsm_vtpm::marshal::Reader::new(&r[10..]);
    rd.u32().unwrap();
    for _ in 0..rd.u32().unwrap() {
        rd.u16().unwrap();
        let n = rd.u8().unwrap();
        rd.take(usize::from(n)).unwrap();
    }
    assert_eq!(rd.u32().unwrap(), 1, "PCR_Read returned no digest for PCR {pcr}");
    Some(rd.tpm2b().unwrap().to_vec())
}

/// TPM2_PCR_Extend of `pcr` in the SHA-256 bank with `digest`; panics unless it succeeds.
pub fn pcr_extend_sha256(d: &mut Data, pcr: u32, digest: [u8; 32]) {
    let cmd = svsm_vtpm::marshal::CommandBuilder::new(0x182)
        .handle(pcr)
        .password_auth(b"")
        .u32(1)
        .u16(0x000B)
        .bytes(&digest)
        .build()
        .unwrap();
    let r = d.send(&cmd);
    assert_eq!(svsm_vtpm::marshal::response_code(&r).unwrap(), 0, "PCR_Extend failed: {r:02x?}");
}

/// TPM2_Startup(CLEAR); panics unless it succeeds.
pub fn startup(d: &mut Data) {
    let r = d.send(&svsm_vtpm::marshal::cmd::startup(0).unwrap());
    assert_eq!(svsm_vtpm::marshal::response_code(&r).unwrap(), 0, "TPM2_Startup failed: {r:02x?}");
}

/// The vTPM volume's id and authenticated generation, read with `store inspect --detached` (also beside a
/// running daemon).
pub fn vtpm_image(state: &Path) -> (svsm_store::VolumeId, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .args(["store", "inspect", "--detached"])
        .arg(state.join("vtpm.store"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "store inspect: {text}{}", String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` in {text}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let hex: String = field("volume ").chars().filter(|c| *c != '-').collect();
    let mut id = [0u8; 16];
    hex::decode_to_slice(&hex, &mut id).unwrap();
    (svsm_store::VolumeId(id), field("generation ").parse().unwrap())
}
