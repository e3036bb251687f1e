//! The HTTP side of the double: Trustee's endpoints, cookie, statuses and error kinds as observed.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use kbs_types::{Attestation, Request, Tee, TeePubKey};
use p256::ecdsa::signature::Signer;
use rand::RngCore;
use serde_json::json;
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::CertType;
use sha2::{Digest, Sha256, Sha384};
use svsm_kbs::snp::SnpEvidence;
use tiny_http::{Header, Method, Response, Server};
use x509_cert::Certificate;

use crate::ResourcePolicy;
use crate::encrypt::{encrypt_to, to_json};

/// Largest request body read (Trustee's default payload limit is larger; the double only needs this).
pub const MAX_BODY: u64 = 1024 * 1024;
/// Session lifetime (Trustee: 5 minutes).
pub const SESSION_TTL: Duration = Duration::from_secs(300);
const ERROR_BASE: &str = "https://github.com/confidential-containers/kbs/errors/";

/// A resource and who may read it.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The bytes released.
    pub data: Vec<u8>,
    /// The policy.
    pub policy: ResourcePolicy,
}

/// What the double trusts and serves.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    /// The ARK every VCEK chain must end in (the simulated one in tests).
    pub trusted_ark: Certificate,
    /// Resources by `<repository>/<type>/<tag>`.
    pub resources: HashMap<String, Resource>,
}

#[derive(Debug)]
struct Session {
    nonce: String,
    created: Instant,
    attested: Option<(TeePubKey, Box<AttestationReport>, Vec<u8>)>,
}

/// Per-endpoint request counts, for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `POST /kbs/v0/auth`.
    pub auth: u32,
    /// `POST /kbs/v0/attest` (all, and the ones that passed).
    pub attest: u32,
    /// Attestations that passed.
    pub attest_ok: u32,
    /// `GET /kbs/v0/resource/...`.
    pub resource: u32,
    /// Resources released.
    pub released: u32,
}

#[derive(Debug)]
struct State {
    config: DoubleConfig,
    sessions: HashMap<String, Session>,
    counts: Counts,
    token_key: p256::ecdsa::SigningKey,
    /// Test hook: answer resource requests with this status and error kind instead.
    deny: Option<(u16, String)>,
}

/// A running double on `127.0.0.1:<ephemeral>`; stops on drop.
pub struct KbsDouble {
    addr: SocketAddr,
    server: Arc<Server>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

fn error(status: u16, kind: &str, detail: &str) -> (u16, Vec<u8>, Option<String>) {
    let body = json!({"type": format!("{ERROR_BASE}{kind}"), "detail": detail});
    (status, serde_json::to_vec(&body).unwrap_or_default(), None)
}

fn cookie(req: &tiny_http::Request) -> Option<String> {
    req.headers().iter().filter(|h| h.field.equiv("Cookie")).find_map(|h| {
        h.value.as_str().split(';').find_map(|c| c.trim().strip_prefix("kbs-session-id=").map(str::to_string))
    })
}

impl KbsDouble {
    /// Starts serving on an ephemeral loopback port.
    pub fn start(config: DoubleConfig) -> std::io::Result<KbsDouble> {
        let server = Arc::new(Server::http("127.0.0.1:0").map_err(std::io::Error::other)?);
        let addr = server.server_addr().to_ip().ok_or_else(|| std::io::Error::other("not an IP listener"))?;
        let state = Arc::new(Mutex::new(State {
            config,
            sessions: HashMap::new(),
            counts: Counts::default(),
            token_key: p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng),
            deny: None,
        }));
        let (srv, st) = (server.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut body = Vec::new();
                let read = req.as_reader().take(MAX_BODY + 1).read_to_end(&mut body);
                let (status, bytes, set_cookie) = if read.is_err() || body.len() as u64 > MAX_BODY {
                    error(413, "InvalidRequest", "request body too large or unreadable")
                } else {
                    let mut state = st.lock().unwrap_or_else(|p| p.into_inner());
                    state.handle(&req, &body)
                };
                let mut resp = Response::from_data(bytes).with_status_code(status);
                if let Ok(h) = Header::from_bytes("Content-Type", "application/json") {
                    resp.add_header(h);
                }
                if let Some(c) = set_cookie.and_then(|c| Header::from_bytes("Set-Cookie", c).ok()) {
                    resp.add_header(c);
                }
                let _ = req.respond(resp);
            }
        });
        Ok(KbsDouble { addr, server, state, thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds or replaces a resource.
    pub fn set_resource(&self, path: &str, resource: Resource) {
        self.lock().config.resources.insert(path.into(), resource);
    }

    /// Answers every resource request with `status` and error kind `kind` (None: normal service).
    pub fn deny_resources(&self, deny: Option<(u16, &str)>) {
        self.lock().deny = deny.map(|(s, k)| (s, k.to_string()));
    }

    /// Request counts so far.
    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for KbsDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KbsDouble({})", self.addr)
    }
}

impl Drop for KbsDouble {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl State {
    fn handle(&mut self, req: &tiny_http::Request, body: &[u8]) -> (u16, Vec<u8>, Option<String>) {
        let now = Instant::now();
        self.sessions.retain(|_, s| now.duration_since(s.created) < SESSION_TTL);
        let url = req.url().to_string();
        match (req.method(), url.as_str()) {
            (Method::Post, "/kbs/v0/auth") => self.auth(body),
            (Method::Post, "/kbs/v0/attest") => self.attest(cookie(req), body),
            (Method::Get, path) if path.starts_with("/kbs/v0/resource/") => {
                self.resource(cookie(req), &path["/kbs/v0/resource/".len()..])
            }
            _ => error(404, "InvalidRequest", "no such endpoint"),
        }
    }

    fn auth(&mut self, body: &[u8]) -> (u16, Vec<u8>, Option<String>) {
        self.counts.auth += 1;
        let request: Request = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return error(400, "InvalidRequest", &e.to_string()),
        };
        if request.version != "0.4.0" {
            return error(400, "ProtocolVersion", &format!("expected =0.4.0, got {}", request.version));
        }
        if request.tee != Tee::Snp {
            return error(401, "UnsupportedTee", "the double verifies snp evidence only");
        }
        let mut id = [0u8; 16];
        let mut nonce = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let (id, nonce) = (hex::encode(id), STANDARD.encode(nonce));
        self.sessions
            .insert(id.clone(), Session { nonce: nonce.clone(), created: Instant::now(), attested: None });
        let body = json!({"nonce": nonce, "extra-params": ""});
        (
            200,
            serde_json::to_vec(&body).unwrap_or_default(),
            Some(format!("kbs-session-id={id}; Max-Age=300")),
        )
    }

    fn attest(&mut self, cookie: Option<String>, body: &[u8]) -> (u16, Vec<u8>, Option<String>) {
        self.counts.attest += 1;
        let Some(id) = cookie.filter(|c| self.sessions.contains_key(c)) else {
            return error(401, "TokenNotFound", "no session: POST /kbs/v0/auth first");
        };
        let nonce = self.sessions[&id].nonce.clone();
        match self.verify(&nonce, body) {
            Ok((key, report, raw)) => {
                self.counts.attest_ok += 1;
                let token = self.token(&report);
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.attested = Some((key, Box::new(report), raw));
                }
                (200, serde_json::to_vec(&json!({"token": token})).unwrap_or_default(), None)
            }
            Err(why) => {
                tracing::info!(%why, "KBS double: attestation rejected");
                // Trustee keeps the reason in its log; the client sees the kind only.
                error(401, "AttestationError", "Attestation failed")
            }
        }
    }

    fn verify(&self, nonce: &str, body: &[u8]) -> Result<(TeePubKey, AttestationReport, Vec<u8>), String> {
        let a: Attestation = serde_json::from_slice(body).map_err(|e| format!("attestation JSON: {e}"))?;
        if a.runtime_data.nonce != nonce {
            return Err("nonce does not match the session".into());
        }
        let ev = SnpEvidence::from_value(a.tee_evidence.primary_evidence.clone())?;
        let bytes = ev.report_bytes()?;
        let der = |t: CertType, name: &'static str| {
            ev.cert(&t)
                .ok_or(format!("cert_chain has no {name}"))
                .and_then(|d| svsm_attest::chain::parse_certificate(name, d).map_err(|e| e.to_string()))
        };
        let (vcek, ask, ark) =
            (der(CertType::VCEK, "VCEK")?, der(CertType::ASK, "ASK")?, der(CertType::ARK, "ARK")?);
        let chain_policy = ResourcePolicy::default();
        let claims =
            svsm_attest::chain::verify_chain(&self.config.trusted_ark, &ark, &ask, &vcek, &chain_policy)
                .map_err(|e| e.to_string())?;
        // Trustee's SNP verifier: signature, TCB against the VCEK, VMPL 0; guest-policy bits, measurement and
        // minimum TCB are the resource policy's business (a DEBUG guest attests, then is denied the resource).
        let verifier = ResourcePolicy { allowed_policy_bits: u64::MAX, ..ResourcePolicy::default() };
        let report = svsm_attest::verify::verify_signed_report(&claims, &bytes, &verifier)
            .map_err(|e| e.to_string())?;
        if !(3..=5).contains(&report.version) {
            return Err(format!("report version {} (Trustee needs 3..=5)", report.version));
        }
        // The binding, computed the way Trustee does: serde_json's sorted map, compact.
        let runtime = json!({
            "additional-evidence": a.tee_evidence.additional_evidence,
            "nonce": a.runtime_data.nonce,
            "tee-pubkey": a.runtime_data.tee_pubkey,
        });
        let digest = Sha384::digest(serde_json::to_string(&runtime).map_err(|e| e.to_string())?.as_bytes());
        let mut expected = [0u8; 64];
        expected[..48].copy_from_slice(&digest);
        if report.report_data != expected {
            return Err("REPORT_DATA does not bind nonce and tee-pubkey".into());
        }
        if let Some(init) = &a.init_data {
            if init.format != "toml" {
                return Err(format!("init-data format {}", init.format));
            }
            if Sha256::digest(init.body.as_bytes()).as_slice() != report.host_data {
                return Err("init-data does not match HOST_DATA".into());
            }
        }
        Ok((a.runtime_data.tee_pubkey, report, bytes))
    }

    fn token(&self, report: &AttestationReport) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() + SESSION_TTL.as_secs())
            .unwrap_or(0);
        let claims = json!({
            "iss": "svsm-kbs-double",
            "exp": exp,
            "submods": {"cpu0": {"ear.status": "affirming", "ear.veraison.annotated-evidence": {"snp": {
                "measurement": hex::encode(report.measurement), "vmpl": report.vmpl}}}},
        });
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{claims}");
        let sig: p256::ecdsa::Signature = self.token_key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn resource(&mut self, cookie: Option<String>, path: &str) -> (u16, Vec<u8>, Option<String>) {
        self.counts.resource += 1;
        let attested = cookie.and_then(|c| self.sessions.get(&c)).and_then(|s| s.attested.clone());
        let Some((key, report, raw)) = attested else {
            return error(401, "TokenNotFound", "no attested session");
        };
        if let Some((status, kind)) = &self.deny {
            return error(*status, kind, "denied by test configuration");
        }
        let Some(resource) = self.config.resources.get(path) else {
            // Observed Trustee behaviour: a missing resource is 401 PluginInternalError (its docs say 404).
            return error(401, "PluginInternalError", &format!("resource {path} not found"));
        };
        if let Err(why) = svsm_attest::verify::report_meets_policy(&report, &raw, &resource.policy) {
            tracing::info!(%why, path, "KBS double: resource policy denied");
            return error(401, "PolicyDeny", "Resource policy denied the request");
        }
        match encrypt_to(&key, &resource.data, &mut rand::rngs::OsRng) {
            Ok(jwe) => {
                self.counts.released += 1;
                (200, to_json(&jwe), None)
            }
            Err(e) => error(401, "JWEFailed", &e),
        }
    }
}
