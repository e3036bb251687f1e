//! Shared set-up for the key-release tests: simulated SNP platform, the KBS double, the real `svsm-host
//! kbs-proxy` process, and a man-in-the-middle relay that plays the hostile host.

#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use svsm_attest::chain::{SimulatedRoots, Tcb};
use svsm_attest::{SimulatedSnp, SimulatedSnpConfig};
use svsm_kbs::frame::Frame;
use svsm_kbs::snp::SimulatedSnpEvidence;
use svsm_kbs::stream::{AnyChannel, ProxyAddress, read_frame, write_frame};
use svsm_kbs::{ClientConfig, KbsError, ReleasedSecret};
use svsm_kbs_double::{DoubleConfig, KbsDouble, Resource, ResourcePolicy};

pub const RESOURCE: &str = "default/svsm/vtpm-root";
pub const MEASUREMENT: [u8; 48] = [0x4D; 48];

pub fn roots() -> Arc<SimulatedRoots> {
    static ROOTS: OnceLock<Arc<SimulatedRoots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
            Arc::new(SimulatedRoots::generate("Milan", &mut rng).unwrap())
        })
        .clone()
}

pub fn platform(config: SimulatedSnpConfig) -> SimulatedSnpEvidence {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    SimulatedSnpEvidence { snp: SimulatedSnp::new(roots(), config, &mut rng).unwrap() }
}

pub fn good_platform() -> SimulatedSnpEvidence {
    platform(SimulatedSnpConfig { measurement: MEASUREMENT, ..Default::default() })
}

pub fn policy() -> ResourcePolicy {
    ResourcePolicy {
        expected_measurement: Some(MEASUREMENT),
        minimum_tcb: Tcb { bootloader: 3, tee: 0, snp: 14, microcode: 200 },
        ..ResourcePolicy::default()
    }
}

pub fn double(secret: &[u8]) -> KbsDouble {
    let mut resources = HashMap::new();
    resources.insert(RESOURCE.to_string(), Resource { data: secret.to_vec(), policy: policy() });
    KbsDouble::start(DoubleConfig::new(roots().ark.clone(), resources)).unwrap()
}

/// The real proxy binary; killed on drop.
pub struct Proxy {
    pub child: super::Killed,
    pub socket: PathBuf,
}

impl Proxy {
    pub fn start(kbs_url: &str, dir: &Path, extra: &[&str]) -> Proxy {
        let socket = dir.join("kbs-proxy.sock");
        let child = super::host()
            .args(["kbs-proxy", "--kbs", kbs_url, "--listen"])
            .arg(&socket)
            .args(extra)
            .stdout(Stdio::null())
            .env("SVSM_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let proxy = Proxy { child: super::Killed(child), socket };
        super::wait_for_socket(&proxy.socket, "kbs-proxy", Duration::from_secs(20));
        proxy
    }
}

pub fn config() -> ClientConfig {
    ClientConfig::new(RESOURCE)
}

/// One release attempt over the Unix socket at `socket`.
pub fn release_via(
    socket: &Path,
    platform: &mut SimulatedSnpEvidence,
    timeout: Duration,
) -> Result<ReleasedSecret, KbsError> {
    let mut channel = AnyChannel::connect(&ProxyAddress::Unix(socket.to_path_buf()), timeout)?;
    svsm_kbs::release(&mut channel, platform, &config(), &mut rand::rngs::OsRng)
}

/// Which way a frame travels through the man in the middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// SVSM -> proxy.
    Request,
    /// Proxy -> SVSM.
    Reply,
}

/// What the man in the middle does with a frame.
pub enum Act {
    /// Forward this (possibly altered) frame.
    Pass(Frame),
    /// Send these raw bytes instead, then close.
    Raw(Vec<u8>),
    /// Close both sides.
    Close,
    /// Forward after a delay.
    Delay(Duration, Frame),
}

/// A hostile host between the SVSM and the real proxy, for one connection. Returns its socket.
pub fn mitm(
    upstream: &Path,
    dir: &Path,
    mut tamper: impl FnMut(Dir, usize, Frame) -> Act + Send + 'static,
) -> PathBuf {
    let path = dir.join(format!("mitm-{}.sock", rand::random::<u32>()));
    let listener = UnixListener::bind(&path).unwrap();
    let upstream = upstream.to_path_buf();
    std::thread::spawn(move || {
        let Ok((mut svsm, _)) = listener.accept() else { return };
        let Ok(mut proxy) = UnixStream::connect(&upstream) else { return };
        let mut index = 0;
        loop {
            let Ok(req) = read_frame(&mut svsm) else { return };
            let forward = |to: &mut UnixStream, act: Act| -> bool {
                match act {
                    Act::Pass(f) => write_frame(to, &f).is_ok(),
                    Act::Raw(b) => {
                        let _ = std::io::Write::write_all(to, &b);
                        false
                    }
                    Act::Close => false,
                    Act::Delay(d, f) => {
                        std::thread::sleep(d);
                        write_frame(to, &f).is_ok()
                    }
                }
            };
            if !forward(&mut proxy, tamper(Dir::Request, index, req)) {
                return;
            }
            let Ok(reply) = read_frame(&mut proxy) else { return };
            if !forward(&mut svsm, tamper(Dir::Reply, index, reply)) {
                return;
            }
            index += 1;
        }
    });
    path
}

pub fn secret32(b: u8) -> Vec<u8> {
    (0..32u8).map(|i| i ^ b).collect()
}

/// The admin identity the provisioning tests configure at the double (Trustee's `bearer_jwt` with one
/// identity provider and a role ACL).
pub const ADMIN_ISSUER: &str = "svsm-host";

/// An Ed25519 admin key written as PKCS#8 PEM (as `openssl genpkey -algorithm ed25519` writes it).
pub fn admin_key(dir: &Path, name: &str, seed: u8) -> (ed25519_dalek::SigningKey, PathBuf) {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let path = dir.join(name);
    std::fs::write(&path, key.to_pkcs8_pem(Default::default()).unwrap().as_bytes()).unwrap();
    (key, path)
}

/// A double with no resources whose admin API trusts `admin` (role `admin`, issuer [`ADMIN_ISSUER`]) and
/// applies the default policy (VMPL 0, no debug) to uploaded resources. It trusts the test roots until
/// [`KbsDouble::set_trusted_ark`] names the provisioned state directory's simulated ARK.
pub fn admin_double(admin: &ed25519_dalek::SigningKey) -> KbsDouble {
    let mut config = DoubleConfig::new(roots().ark.clone(), HashMap::new());
    config.admin = svsm_kbs_double::AdminMode::BearerJwt(Box::new(svsm_kbs_double::AdminIdentity {
        public_key: admin.verifying_key(),
        issuer: Some(ADMIN_ISSUER.into()),
        audience: None,
        role: "admin".into(),
    }));
    KbsDouble::start(config).unwrap()
}

/// Runs `svsm-host ARGS` (killed after 300 s: a command expected to fail must not hang a test by serving);
/// returns (success, stdout, stderr).
pub fn svsm_host_run(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let mut child = super::host()
        .args(args)
        .env("SVSM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), out.join().unwrap(), err.join().unwrap())
}

/// `svsm-host kbs provision --state-dir STATE --kbs URL --admin-key KEY EXTRA...`.
pub fn provision(state: &Path, kbs_url: &str, key: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "kbs".as_ref(),
        "provision".as_ref(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--kbs".as_ref(),
        kbs_url.as_ref(),
        "--admin-key".as_ref(),
        key.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    svsm_host_run(&args)
}

/// Points the double at the simulated ARK `kbs provision` made in `state`.
pub fn trust_state_dir(kbs: &KbsDouble, state: &Path) {
    use der::DecodePem;
    let pem = std::fs::read_to_string(state.join("simulated-ark.pem")).unwrap();
    kbs.set_trusted_ark(x509_cert::Certificate::from_pem(pem.as_bytes()).unwrap());
}
