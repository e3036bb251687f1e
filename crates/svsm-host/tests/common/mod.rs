//! Helpers for the QEMU, state-blob and key-release (`kbs`) tests: the daemon on Unix sockets only, raw swtpm data and control
//! clients, and child processes that are killed when a test ends (pass or fail).
#![allow(dead_code)]

/// The key-release tests' KBS double, proxy and simulated-SNP helpers.
pub mod kbs;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed on drop, so a failing assertion never leaves QEMU or a daemon running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `svsm-host serve` on Unix sockets only (no TCP), with the TPM command recorder on.
pub struct Daemon {
    pub child: Killed,
    pub state: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn try_start(state: &Path, extra: &[&str]) -> Result<Daemon, String> {
        let log = state.with_extension("log");
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_svsm-host"))
            .args(["serve", "--no-mssim", "--no-swtpm", "--state-dir"])
            .arg(state)
            .args(extra)
            .env("SVSM_LOG", "info,tpm_io=trace")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let child = Killed(child);
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line == "ready" => break,
                Ok(_) => {}
                Err(_) => {
                    drop(child);
                    return Err(format!(
                        "daemon never got ready:\n{}",
                        std::fs::read_to_string(&log).unwrap()
                    ));
                }
            }
        }
        Ok(Daemon { child, state: state.to_path_buf(), log })
    }

    pub fn start(state: &Path, extra: &[&str]) -> Daemon {
        Self::try_start(state, extra).unwrap()
    }

    pub fn ctrl_path(&self) -> PathBuf {
        self.state.join("swtpm.sock.ctrl")
    }

    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// A client on the swtpm data socket (the same TPM QEMU uses).
    pub fn data(&self) -> Data {
        let s = UnixStream::connect(self.state.join("swtpm.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Data(s)
    }

    /// A client on the control socket.
    pub fn ctrl(&self) -> Ctrl {
        let s = UnixStream::connect(self.ctrl_path()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Ctrl(s)
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
