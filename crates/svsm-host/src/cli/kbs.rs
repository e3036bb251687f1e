//! `svsm-host kbs-proxy`: the untrusted host relay between the SVSM's framed channel and a Trustee KBS.
//!
//! The proxy sees what the host may see (the report, the public keys, the ciphertext) and nothing that
//! decrypts: the secret travels as a JWE to the SVSM's per-attempt key. It holds the KBS session cookie per
//! SVSM connection, bounds every size and time, and reports KBS transport failures to the SVSM as
//! `ProxyError` frames so the SVSM can name them. Framing: `docs/key-release.md`.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use svsm_kbs::frame::{Frame, Kind, MAX_PAYLOAD};
use svsm_kbs::stream::{ProxyAddress, TimedStream, read_frame, write_frame};
use svsm_kbs::{ChannelError, KbsError};

/// The resource `kbs provision` registers and `serve --key-source kbs` asks for, unless told otherwise.
pub const DEFAULT_RESOURCE: &str = "default/svsm/vtpm-root";

/// `svsm-host kbs ...`: the operator's side of attested key release.
#[derive(Debug, clap::Subcommand)]
pub enum KbsCommand {
    /// Provision a new vTPM whose store key only a KBS releases: create a random secret (never written to
    /// disk), register it at the KBS through Trustee's admin API (resource upload, optionally the resource
    /// policy), and format and manufacture the vTPM with the key derived from it. Afterwards `serve
    /// --key-source kbs` opens it with the secret the KBS releases after attestation.
    Provision(ProvisionArgs),
}

/// How `kbs provision` authenticates to the KBS admin API.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AdminAuth {
    /// Ed25519 private key (PKCS#8 PEM, `openssl genpkey -algorithm ed25519`) whose public key the KBS's
    /// `[admin.authentication.bearer_jwt]` identity provider names; a short-lived EdDSA JWT is signed with it.
    #[arg(long)]
    admin_key: Option<PathBuf>,
    /// A ready admin JWT in a file (e.g. Trustee docker-compose's `admin-token`).
    #[arg(long)]
    admin_token: Option<PathBuf>,
    /// Send no admin token: only for a KBS configured `authorization_mode = "InsecureAllowAll"`.
    #[arg(long)]
    admin_insecure_no_auth: bool,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The new vTPM's state directory; must not exist (provisioning never reformats anything).
    #[arg(long)]
    state_dir: PathBuf,
    /// KBS base URL for the admin API, e.g. `https://kbs.example:8080`.
    #[arg(long)]
    kbs: String,
    /// Resource that will hold the secret, `<repository>/<type>/<tag>`.
    #[arg(long, default_value = DEFAULT_RESOURCE)]
    resource: String,
    #[command(flatten)]
    auth: AdminAuth,
    /// With --admin-key: the token's `iss` (the KBS identity provider's `issuer`, if it sets one).
    #[arg(long, default_value = "svsm-host")]
    admin_issuer: String,
    /// With --admin-key: the token's `aud` (the identity provider's `audience`, if it sets one).
    #[arg(long)]
    admin_audience: Option<String>,
    /// With --admin-key: the token's `role` (what the KBS's `regex_acl` grants).
    #[arg(long, default_value = "admin")]
    admin_role: String,
    /// Also set the KBS's resource policy from this Rego file. Trustee has ONE resource policy for all
    /// resources: this replaces the one in force.
    #[arg(long)]
    resource_policy: Option<PathBuf>,
    /// Secret length in bytes (32..=1024).
    #[arg(long, default_value_t = 32)]
    secret_bytes: usize,
    /// The simulated SNP platform identity to create (DEVELOPMENT ONLY). Default:
    /// `<state-dir>/simulated-snp-platform.pem`.
    #[arg(long)]
    sim_platform: Option<PathBuf>,
    /// Seconds allowed for each KBS request.
    #[arg(long, default_value_t = 10)]
    kbs_timeout_secs: u64,
    #[command(flatten)]
    manufacture: crate::cli::tpm::ManufactureArgs,
}

pub fn run(cmd: KbsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KbsCommand::Provision(args) => provision(args),
    }
}

fn provision(args: ProvisionArgs) -> anyhow::Result<ExitCode> {
    use rand::RngCore as _;
    use zeroize::Zeroizing;

    use crate::kbs::admin::{AdminClient, TokenClaims, admin_token, check_resource_path, read_admin_key};
    use crate::kbs::platform::{ARK_FILE, PLATFORM_FILE, SimulatedPlatformIdentity};
    use crate::state::{StateDir, VolumeName};

    // Everything is checked before anything is sent or created.
    if args.state_dir.exists() {
        bail!(
            "{} exists: provisioning creates a new vTPM and never reformats one. Name a new directory",
            args.state_dir.display()
        );
    }
    check_resource_path(&args.resource)?;
    if !(32..=1024).contains(&args.secret_bytes) {
        bail!("--secret-bytes must be 32..=1024");
    }
    let rego = match &args.resource_policy {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    args.manufacture.issuer()?;
    let token = match (&args.auth.admin_key, &args.auth.admin_token) {
        (Some(key), _) => Some(admin_token(
            &read_admin_key(key)?,
            &TokenClaims {
                issuer: args.admin_issuer.clone(),
                audience: args.admin_audience.clone(),
                role: args.admin_role.clone(),
                lifetime: Duration::from_secs(300),
            },
        )),
        (None, Some(file)) => Some(Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?
                .trim()
                .to_string(),
        )),
        (None, None) => {
            tracing::warn!("--admin-insecure-no-auth: sending admin requests without a token");
            None
        }
    };
    let client = AdminClient::new(&args.kbs, token, Duration::from_secs(args.kbs_timeout_secs))?;

    let mut secret = Zeroizing::new(vec![0u8; args.secret_bytes]);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    client.set_resource(&args.resource, &secret)?;
    println!("registered the secret as KBS resource {} at {}", args.resource, args.kbs);
    if let Some(rego) = &rego {
        client.set_resource_policy(rego)?;
        println!("set the KBS resource policy (it applies to every resource of that KBS)");
    }

    // The directory did not exist: on failure remove what this command made, so a retry starts clean.
    let made = (|| -> anyhow::Result<()> {
        let (dir, _) = StateDir::open_or_create(&args.state_dir)?;
        let lock = dir.lock_for_write("kbs provision")?;
        let released = svsm_kbs::ReleasedSecret::from_bytes(secret.clone())
            .map_err(|e| anyhow::anyhow!("secret: {e}"))?;
        let keys = std::sync::Arc::new(crate::kbs::ProvisionedKeys::new(released, &args.resource));
        let vol = dir.volume(VolumeName::VTPM, keys, dir.default_ledgers());
        let mut storage = crate::vtpm::create_store(&vol, &lock, args.manufacture.ledger_mode.into())?;
        let record = args
            .manufacture
            .manufacture_into(&args.state_dir, &mut storage)
            .context("manufacturing the vTPM")?;
        print!("{}", crate::vtpm::describe(&record));
        let id_path = args.sim_platform.clone().unwrap_or_else(|| dir.file(PLATFORM_FILE));
        let (_, created) = SimulatedPlatformIdentity::load_or_create(&id_path)?;
        let ark = id_path.parent().map(|p| p.join(ARK_FILE)).unwrap_or_else(|| dir.file(ARK_FILE));
        println!(
            "simulated SNP platform identity {} ({}; DEVELOPMENT ONLY); its ARK {} is the trust anchor to give \
             a KBS double",
            id_path.display(),
            if created { "created" } else { "existing" },
            ark.display()
        );
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&args.state_dir);
        return Err(e.context(format!(
            "provisioning {} failed after the secret was registered; nothing was kept locally, run it again \
             (the new secret replaces resource {})",
            args.state_dir.display(),
            args.resource
        )));
    }
    println!(
        "provisioned: start it with `svsm-host serve --state-dir {} --key-source kbs --kbs-proxy SOCKET \
         --kbs-resource {}` (the proxy: `svsm-host kbs-proxy --kbs {} --listen SOCKET`)",
        args.state_dir.display(),
        args.resource,
        args.kbs
    );
    Ok(ExitCode::SUCCESS)
}

/// Largest KBS reply relayed (the frame's payload limit minus the status).
const MAX_REPLY: u64 = (MAX_PAYLOAD - 2) as u64;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// KBS base URL, e.g. `https://kbs.example:8080`. Plain `http://` is for loopback testing only: the
    /// channel carries nothing the host may not see, but HTTPS keeps the KBS's identity honest to the operator.
    #[arg(long)]
    kbs: String,
    /// Where the SVSM side connects: a Unix socket path (created with mode 0600; `unix:PATH` also works),
    /// or `tcp:127.0.0.1:PORT`. QEMU bridges a guest's vsock port or serial port to this socket.
    #[arg(long)]
    listen: ProxyAddress,
    /// Accept a TCP listen address that is not loopback (off: nothing listens beyond this host by default).
    #[arg(long)]
    allow_remote: bool,
    /// Seconds allowed for each KBS request, connect to last byte.
    #[arg(long, default_value_t = 10)]
    kbs_timeout_secs: u64,
    /// Seconds an SVSM connection may stay silent (or take to send a frame) before it is dropped.
    #[arg(long, default_value_t = 30)]
    idle_timeout_secs: u64,
    /// Exit after serving this many connections (0: serve until killed).
    #[arg(long, default_value_t = 0)]
    max_connections: u64,
}

pub fn run_proxy(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let base = args.kbs.trim_end_matches('/').to_string();
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        bail!("--kbs must be an http:// or https:// URL, got {base:?}");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(args.kbs_timeout_secs)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let relay = Relay { agent, base };
    let idle = Duration::from_secs(args.idle_timeout_secs);
    let mut served = 0u64;
    let done = |served: u64| args.max_connections != 0 && served >= args.max_connections;
    match &args.listen {
        ProxyAddress::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    bail!(
                        "{} exists and is not a socket; remove it or choose another --listen",
                        path.display()
                    );
                }
                std::fs::remove_file(path)
                    .with_context(|| format!("removing stale socket {}", path.display()))?;
            }
            let listener = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            tracing::info!(listen = %args.listen, kbs = %relay.base, "kbs-proxy listening");
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => relay.serve(s, idle),
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
                served += 1;
                if done(served) {
                    break;
                }
            }
        }
        ProxyAddress::Tcp(addr) => {
            if !addr.ip().is_loopback() && !args.allow_remote {
                bail!("{addr} is not a loopback address; pass --allow-remote to listen beyond this host");
            }
            let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
            tracing::info!(listen = %listener.local_addr()?, kbs = %relay.base, "kbs-proxy listening");
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => relay.serve(s, idle),
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
                served += 1;
                if done(served) {
                    break;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct Relay {
    agent: ureq::Agent,
    base: String,
}

/// `<repository>/<type>/<tag>`, each segment non-empty and of URL-safe characters (no `..`, no query).
fn valid_resource_path(p: &str) -> bool {
    let segs: Vec<&str> = p.split('/').collect();
    segs.len() == 3
        && segs.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

impl Relay {
    /// Serves one SVSM connection (one KBS session) until it closes, times out or misbehaves.
    fn serve<S: TimedStream>(&self, mut stream: S, idle: Duration) {
        if let Err(e) = stream.set_timeouts(idle) {
            tracing::warn!(error = %e, "cannot bound the connection's time; dropping it");
            return;
        }
        let mut cookie: Option<String> = None;
        loop {
            let frame = match read_frame(&mut stream) {
                Ok(f) => f,
                Err(KbsError::Channel(ChannelError::Closed)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "dropping SVSM connection");
                    let _ = send_error(&mut stream, &e.to_string());
                    return;
                }
            };
            let reply = match self.relay(&frame, &mut cookie) {
                Ok(r) => r,
                Err(reason) => {
                    tracing::warn!(%reason, kind = ?frame.kind, "KBS request failed");
                    match Frame::new(Kind::ProxyError, reason.into_bytes()) {
                        Ok(f) => f,
                        Err(_) => return,
                    }
                }
            };
            if let Err(e) = write_frame(&mut stream, &reply) {
                tracing::warn!(error = %e, "SVSM connection lost");
                return;
            }
        }
    }

    fn relay(&self, frame: &Frame, cookie: &mut Option<String>) -> Result<Frame, String> {
        let reply_kind = frame.kind.reply().ok_or_else(|| format!("{:?} is not a request", frame.kind))?;
        let result = match frame.kind {
            Kind::AuthRequest => {
                *cookie = None;
                self.post("/kbs/v0/auth", &frame.payload, None)
            }
            Kind::AttestRequest => self.post("/kbs/v0/attest", &frame.payload, cookie.as_deref()),
            Kind::ResourceRequest => {
                let path = std::str::from_utf8(&frame.payload).map_err(|_| "resource path is not UTF-8")?;
                if !valid_resource_path(path) {
                    return Err(format!("resource path {path:?} is not <repository>/<type>/<tag>"));
                }
                let mut req = self.agent.get(format!("{}/kbs/v0/resource/{path}", self.base));
                if let Some(c) = cookie.as_deref() {
                    req = req.header("Cookie", format!("kbs-session-id={c}"));
                }
                req.call()
            }
            _ => return Err(format!("{:?} is not a request", frame.kind)),
        };
        let mut resp = result.map_err(|e| format!("KBS {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        if frame.kind == Kind::AuthRequest {
            *cookie = resp.headers().get_all("set-cookie").iter().find_map(|v| {
                let v = v.to_str().ok()?;
                let first = v.split(';').next()?.trim();
                first.strip_prefix("kbs-session-id=").map(str::to_string)
            });
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_vec()
            .map_err(|e| format!("KBS reply unreadable or over {MAX_REPLY} bytes: {e}"))?;
        tracing::info!(kind = ?frame.kind, status, bytes = body.len(), "relayed");
        Frame::reply(reply_kind, status, &body).map_err(|e| e.to_string())
    }

    fn post(
        &self,
        path: &str,
        body: &[u8],
        cookie: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req =
            self.agent.post(format!("{}{path}", self.base)).header("Content-Type", "application/json");
        if let Some(c) = cookie {
            req = req.header("Cookie", format!("kbs-session-id={c}"));
        }
        req.send(body)
    }
}

fn send_error(stream: &mut impl Write, reason: &str) -> Result<(), KbsError> {
    write_frame(stream, &Frame::new(Kind::ProxyError, reason.as_bytes().to_vec())?)
}

#[cfg(test)]
mod tests {
    use super::valid_resource_path;

    #[test]
    fn resource_paths_are_confined() {
        assert!(valid_resource_path("default/svsm/vtpm-root"));
        for bad in ["", "a/b", "a/b/c/d", "../b/c", "a/./c", "a/b/c?x=1", "a//c", "a/b/c%2f", "a/b/ c"] {
            assert!(!valid_resource_path(bad), "{bad}");
        }
    }
}
