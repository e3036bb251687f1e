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

/// Who may use the admin endpoints (Trustee's `[admin] authorization_mode`).
#[derive(Debug, Clone)]
pub enum AdminMode {
    /// `InsecureAllowAll`: anyone.
    InsecureAllowAll,
    /// `DenyAll`: nobody (the double's default).
    DenyAll,
    /// `AuthenticatedAuthorization` with `bearer_jwt` (one identity provider with a `public_key_uri`) and a
    /// `regex_acl` granting `role` every admin endpoint.
    BearerJwt(Box<AdminIdentity>),
}

/// One trusted admin identity provider.
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    /// The provider's Ed25519 public key (`public_key_uri`).
    pub public_key: ed25519_dalek::VerifyingKey,
    /// `issuer`, checked against `iss` if set.
    pub issuer: Option<String>,
    /// `audience`, looked for in `aud` if set.
    pub audience: Option<String>,
    /// The role the ACL allows.
    pub role: String,
}

/// What the double trusts and serves.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    /// The ARK every VCEK chain must end in (the simulated one in tests).
    pub trusted_ark: Certificate,
    /// Resources by `<repository>/<type>/<tag>`.
    pub resources: HashMap<String, Resource>,
    /// Who may register resources and set the resource policy.
    pub admin: AdminMode,
    /// The policy the double applies to resources registered through the admin API. (Trustee evaluates the
    /// Rego set by `POST /kbs/v0/resource-policy`; the double records that text but cannot run Rego.)
    pub upload_policy: ResourcePolicy,
    /// Accept Trustee's `sample` TEE evidence (development only; Trustee's default resource policy denies
    /// it, so a Trustee needs an allowing policy too). Off by default.
    pub accept_sample: bool,
}

impl DoubleConfig {
    /// A double trusting `trusted_ark` and serving `resources`; admin endpoints closed, no sample TEE.
    pub fn new(trusted_ark: Certificate, resources: HashMap<String, Resource>) -> Self {
        DoubleConfig {
            trusted_ark,
            resources,
            admin: AdminMode::DenyAll,
            upload_policy: ResourcePolicy::default(),
            accept_sample: false,
        }
    }
}

/// What a session attested: an SNP report (and its raw bytes), or sample evidence (no report).
type Attested = (TeePubKey, Option<(Box<AttestationReport>, Vec<u8>)>);

#[derive(Debug)]
struct Session {
    nonce: String,
    tee: Tee,
    created: Instant,
    attested: Option<Attested>,
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
    /// The Rego text last set through `POST /kbs/v0/resource-policy`.
    policy_rego: Option<String>,
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
            policy_rego: None,
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

    /// Replaces the trusted ARK (e.g. with a state directory's simulated ARK once provisioning made it).
    pub fn set_trusted_ark(&self, ark: Certificate) {
        self.lock().config.trusted_ark = ark;
    }

    /// Accepts (or stops accepting) Trustee's `sample` TEE evidence: development only.
    pub fn set_accept_sample(&self, accept: bool) {
        self.lock().config.accept_sample = accept;
    }

    /// The resource bytes registered at `path`, if any.
    pub fn resource_data(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().config.resources.get(path).map(|r| r.data.clone())
    }

    /// The Rego text last set through the admin API.
    pub fn resource_policy_rego(&self) -> Option<String> {
        self.lock().policy_rego.clone()
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
            (Method::Post, "/kbs/v0/resource-policy") => self.set_policy(req, body),
            (Method::Post, path) if path.starts_with("/kbs/v0/resource/") => {
                self.upload(req, &path["/kbs/v0/resource/".len()..], body)
            }
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
        let sample_ok = request.tee == Tee::Sample && self.config.accept_sample;
        if request.tee != Tee::Snp && !sample_ok {
            return error(
                401,
                "UnsupportedTee",
                "the double verifies snp (and, if configured, sample) evidence only",
            );
        }
        let mut id = [0u8; 16];
        let mut nonce = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let (id, nonce) = (hex::encode(id), STANDARD.encode(nonce));
        self.sessions.insert(
            id.clone(),
            Session { nonce: nonce.clone(), tee: request.tee, created: Instant::now(), attested: None },
        );
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
        let (nonce, tee) = (self.sessions[&id].nonce.clone(), self.sessions[&id].tee);
        let verified = if tee == Tee::Sample {
            self.verify_sample(&nonce, body).map(|key| (key, None))
        } else {
            self.verify(&nonce, body).map(|(key, report, raw)| (key, Some((Box::new(report), raw))))
        };
        match verified {
            Ok((key, snp)) => {
                self.counts.attest_ok += 1;
                let token = self.token(snp.as_ref().map(|(r, _)| &**r));
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.attested = Some((key, snp));
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

    /// Trustee's sample verifier: `{"svn": <string>, "report_data": <std base64>}`, where report_data must
    /// be the SHA-384 of the canonical runtime data itself (48 bytes, not padded).
    fn verify_sample(&self, nonce: &str, body: &[u8]) -> Result<TeePubKey, String> {
        let a: Attestation = serde_json::from_slice(body).map_err(|e| format!("attestation JSON: {e}"))?;
        if a.runtime_data.nonce != nonce {
            return Err("nonce does not match the session".into());
        }
        let ev = &a.tee_evidence.primary_evidence;
        if !ev["svn"].is_string() {
            return Err("sample evidence has no string `svn`".into());
        }
        let report_data = STANDARD
            .decode(ev["report_data"].as_str().unwrap_or_default())
            .map_err(|e| format!("sample report_data: {e}"))?;
        let runtime = json!({
            "additional-evidence": a.tee_evidence.additional_evidence,
            "nonce": a.runtime_data.nonce,
            "tee-pubkey": a.runtime_data.tee_pubkey,
        });
        let digest = Sha384::digest(serde_json::to_string(&runtime).map_err(|e| e.to_string())?.as_bytes());
        if report_data != digest.as_slice() {
            return Err("REPORT_DATA is different from that in Sample Quote".into());
        }
        Ok(a.runtime_data.tee_pubkey)
    }

    /// Trustee's admin check; `Err` is the RFC 7807 reply.
    fn admin_check(&self, req: &tiny_http::Request) -> Result<(), String> {
        let identity = match &self.config.admin {
            AdminMode::InsecureAllowAll => return Ok(()),
            AdminMode::DenyAll => {
                return Err(
                    "Admin access denied: Admin access denied as DenyAll authorization_mode is enabled"
                        .into(),
                );
            }
            AdminMode::BearerJwt(identity) => identity,
        };
        let header = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err("Failed to parse HTTP Auth Bearer header".into());
        };
        let denied = |reason: &str| format!("Admin access denied: {reason}");
        let claims = verify_eddsa_jwt(token, &identity.public_key).map_err(|why| {
            tracing::info!(%why, "KBS double: admin token not verified");
            denied("Cannot verify token with any of the issuers")
        })?;
        if let Some(iss) = &identity.issuer
            && claims["iss"].as_str() != Some(iss)
        {
            return Err(denied("Cannot verify token with any of the issuers"));
        }
        if let Some(aud) = &identity.audience {
            let auds: Vec<&str> = match &claims["aud"] {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
                _ => vec![],
            };
            if !auds.contains(&aud.as_str()) {
                return Err(denied("Cannot verify token with any of the issuers"));
            }
        }
        let Some(role) = claims["role"].as_str() else {
            return Err(denied("Failed to parse claims from token: Missing required `role` claim in JWT"));
        };
        if role != identity.role {
            return Err(denied(&format!("Role {role} not allowed for path {}", req.url())));
        }
        Ok(())
    }

    fn set_policy(&mut self, req: &tiny_http::Request, body: &[u8]) -> (u16, Vec<u8>, Option<String>) {
        if let Err(why) = self.admin_check(req) {
            return error(
                401,
                "AdminAuthAccess",
                &format!("admin access denied for endpoint resource-policy: {why}"),
            );
        }
        let parsed: Result<String, &str> = serde_json::from_slice::<serde_json::Value>(body)
            .map_err(|_| "Illegal SetPolicy Request Json")
            .and_then(|v| {
                v["policy"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or("No `policy` field inside SetPolicy Request Json")
            })
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).map_err(|_| "Failed to decode policy"))
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "Failed to decode policy"));
        match parsed {
            Ok(rego) => {
                self.policy_rego = Some(rego);
                (200, Vec::new(), None)
            }
            Err(why) => error(401, "ParsePolicyError", why),
        }
    }

    fn upload(
        &mut self,
        req: &tiny_http::Request,
        path: &str,
        body: &[u8],
    ) -> (u16, Vec<u8>, Option<String>) {
        if let Err(why) = self.admin_check(req) {
            // Trustee maps an admin failure on a plugin call through its generic admin error.
            return error(
                401,
                "AdminAuthInitialization",
                &format!("failed to initialize [admin] configuration: {why}"),
            );
        }
        let segs: Vec<&str> = path.split('/').collect();
        if segs.len() != 3 || segs.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
            return error(401, "PluginInternalError", &format!("invalid resource path {path}"));
        }
        let policy = self.config.upload_policy.clone();
        self.config.resources.insert(path.to_string(), Resource { data: body.to_vec(), policy });
        (200, Vec::new(), None)
    }

    fn token(&self, report: Option<&AttestationReport>) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() + SESSION_TTL.as_secs())
            .unwrap_or(0);
        let evidence = match report {
            Some(report) => {
                json!({"snp": {"measurement": hex::encode(report.measurement), "vmpl": report.vmpl}})
            }
            None => json!({"sample": {"svn": "", "launch_digest": "abcde", "debug": false}}),
        };
        let claims = json!({
            "iss": "svsm-kbs-double",
            "exp": exp,
            "submods": {"cpu0": {"ear.status": "affirming", "ear.veraison.annotated-evidence": evidence}},
        });
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{claims}");
        let sig: p256::ecdsa::Signature = self.token_key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn resource(&mut self, cookie: Option<String>, path: &str) -> (u16, Vec<u8>, Option<String>) {
        self.counts.resource += 1;
        let attested = cookie.and_then(|c| self.sessions.get(&c)).and_then(|s| s.attested.clone());
        let Some((key, snp)) = attested else {
            return error(401, "TokenNotFound", "no attested session");
        };
        if let Some((status, kind)) = &self.deny {
            return error(*status, kind, "denied by test configuration");
        }
        let Some(resource) = self.config.resources.get(path) else {
            // Observed Trustee behaviour: a missing resource is 401 PluginInternalError (its docs say 404).
            return error(401, "PluginInternalError", &format!("resource {path} not found"));
        };
        match &snp {
            Some((report, raw)) => {
                if let Err(why) = svsm_attest::verify::report_meets_policy(report, raw, &resource.policy) {
                    tracing::info!(%why, path, "KBS double: resource policy denied");
                    return error(401, "PolicyDeny", "Resource policy denied the request");
                }
            }
            // Sample evidence proves nothing; it is released only because the double was told to accept it.
            None if self.config.accept_sample => {}
            None => return error(401, "PolicyDeny", "Resource policy denied the request"),
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

/// Verifies a compact JWS with `alg` EdDSA under `key` and an unexpired `exp` (60 s leeway, as Trustee's
/// `jsonwebtoken` validation); returns the claims.
fn verify_eddsa_jwt(token: &str, key: &ed25519_dalek::VerifyingKey) -> Result<serde_json::Value, String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [h, p, s] = parts[..] else { return Err("not a compact JWS".into()) };
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    if header["alg"] != "EdDSA" {
        return Err(format!("alg {} is not EdDSA", header["alg"]));
    }
    let sig = ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    key.verify_strict(format!("{h}.{p}").as_bytes(), &sig).map_err(|e| e.to_string())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    match claims["exp"].as_u64() {
        Some(exp) if exp + 60 >= now => Ok(claims),
        Some(_) => Err("ExpiredSignature".into()),
        None => Err("Missing required claim: exp".into()),
    }
}
