//! A client of Trustee's KBS admin API, for provisioning: register a resource and set the resource policy.
//!
//! Facts (Trustee `kbs/src/api_server.rs`, `kbs/src/admin/`, its docker-compose set-up), implemented here in
//! our own code:
//! - `POST /kbs/v0/resource/<repository>/<type>/<tag>`, body = the resource bytes
//!   (`Content-Type: application/octet-stream`) -> 200 with an empty body.
//! - `POST /kbs/v0/resource-policy`, body `{"policy": "<base64url, no padding, of the Rego text>"}` -> 200.
//! - Both need `Authorization: Bearer <JWT>` when the KBS's `[admin]` is `authorization_mode =
//!   "AuthenticatedAuthorization"` with `bearer_jwt`: a JWT whose signature verifies under a configured
//!   identity provider's `public_key_uri` (an Ed25519 public key PEM: header `{"alg":"EdDSA","typ":"JWT"}`),
//!   with an unexpired `exp`, the provider's `iss`/`aud` if it names them, and a `role` claim that the
//!   `regex_acl` allows for the path. A refusal is HTTP 401 with an RFC 7807 body (kind `AdminAuthAccess`
//!   for the policy endpoint, `AdminAuthInitialization` for resource uploads, as Trustee maps them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use zeroize::Zeroizing;

/// Who the admin token says it is, and for how long.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    /// `iss`: must equal the KBS identity provider's `issuer` if it sets one.
    pub issuer: String,
    /// `aud`: must contain the provider's `audience` if it sets one.
    pub audience: Option<String>,
    /// `role`: what the KBS's `regex_acl` grants.
    pub role: String,
    /// Validity from now.
    pub lifetime: Duration,
}

/// Signs an admin JWT (EdDSA) with `key`.
pub fn admin_token(key: &ed25519_dalek::SigningKey, claims: &TokenClaims) -> Zeroizing<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut payload = serde_json::json!({
        "iss": claims.issuer,
        "sub": "svsm-host kbs provision",
        "role": claims.role,
        "iat": now,
        "exp": now + claims.lifetime.as_secs(),
    });
    if let Some(aud) = &claims.audience {
        payload["aud"] = serde_json::json!([aud]);
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signing_input = format!("{header}.{body}");
    let sig = key.sign(signing_input.as_bytes());
    Zeroizing::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes())))
}

/// Reads an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
pub fn read_admin_key(path: &std::path::Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let pem = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading the admin key {}", path.display()))?,
    );
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an Ed25519 private key in PKCS#8 PEM ({e}); create one with `openssl genpkey -algorithm \
             ed25519 -out admin.key` and configure its public key at the KBS",
            path.display()
        )
    })
}

/// A refusal from the KBS, with its RFC 7807 kind.
#[derive(Debug, thiserror::Error)]
#[error("the KBS refused {what}: HTTP {status} {kind}: {detail}")]
pub struct AdminRefused {
    /// What was asked.
    pub what: String,
    /// HTTP status.
    pub status: u16,
    /// The error kind (last segment of the RFC 7807 `type`).
    pub kind: String,
    /// The KBS's `detail`.
    pub detail: String,
}

/// The admin API of one KBS.
pub struct AdminClient {
    agent: ureq::Agent,
    base: String,
    token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminClient({}, token: {})", self.base, self.token.is_some())
    }
}

/// `<repository>/<type>/<tag>`, each segment of `[A-Za-z0-9._-]`, not `.`/`..`.
pub fn check_resource_path(p: &str) -> anyhow::Result<()> {
    let segs: Vec<&str> = p.split('/').collect();
    let ok = segs.len() == 3
        && segs.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if !ok {
        bail!("resource {p:?} is not <repository>/<type>/<tag> (each of [A-Za-z0-9._-])");
    }
    Ok(())
}

impl AdminClient {
    /// A client of the KBS at `base` (`http(s)://host:port`), authenticating with `token` (None: the KBS runs
    /// `InsecureAllowAll`).
    pub fn new(base: &str, token: Option<Zeroizing<String>>, timeout: Duration) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            bail!("--kbs must be an http:// or https:// URL, got {base:?}");
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(AdminClient { agent, base, token })
    }

    fn post(&self, path: &str, content_type: &str, body: &[u8], what: &str) -> anyhow::Result<()> {
        let mut req = self.agent.post(format!("{}{path}", self.base)).header("Content-Type", content_type);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {}", t.as_str()));
        }
        let mut resp = req.send(body).with_context(|| format!("{what}: KBS {} unreachable", self.base))?;
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let text = resp.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
        let (kind, detail) = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => (
                v["type"].as_str().and_then(|t| t.rsplit('/').next()).unwrap_or("unknown").to_string(),
                v["detail"].as_str().unwrap_or_default().chars().take(512).collect(),
            ),
            Err(_) => ("unknown".to_string(), text.chars().take(512).collect()),
        };
        Err(AdminRefused { what: what.to_string(), status, kind, detail }.into())
    }

    /// Registers (or replaces) resource `path` with `data`.
    pub fn set_resource(&self, path: &str, data: &[u8]) -> anyhow::Result<()> {
        check_resource_path(path)?;
        self.post(
            &format!("/kbs/v0/resource/{path}"),
            "application/octet-stream",
            data,
            &format!("the upload of resource {path}"),
        )
    }

    /// Sets the KBS's resource policy (Rego). It is the KBS's only resource policy: it replaces the one in
    /// force for every resource.
    pub fn set_resource_policy(&self, rego: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({"policy": URL_SAFE_NO_PAD.encode(rego)}).to_string();
        self.post("/kbs/v0/resource-policy", "application/json", body.as_bytes(), "the resource policy")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;

    #[test]
    fn token_is_an_eddsa_jwt_with_role_and_expiry() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let claims = TokenClaims {
            issuer: "ops".into(),
            audience: Some("KBS".into()),
            role: "admin".into(),
            lifetime: Duration::from_secs(300),
        };
        let token = admin_token(&key, &claims);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "EdDSA", "typ": "JWT"}));
        let body: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["role"], "admin");
        assert_eq!(body["iss"], "ops");
        assert_eq!(body["aud"], serde_json::json!(["KBS"]));
        assert_eq!(body["exp"].as_u64().unwrap() - body["iat"].as_u64().unwrap(), 300);
        let sig = ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        key.verifying_key().verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
    }
}
