//! The KBS 0.4.0 client as a state machine: `start` -> Request; Challenge -> Attestation; token -> resource
//! GET; JWE -> the released secret. No I/O of its own: the caller moves frames ([`release`] does it over a
//! [`Channel`]), so the SVSM can drive it from any transport, synchronously.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kbs_types::{
    Attestation, Challenge, CompositeEvidence, ErrorInformation, InitData, Request, RuntimeData,
};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::api::{Channel, EvidenceProvider};
use crate::binding::snp_report_data;
use crate::error::{KbsError, Stage};
use crate::frame::{Frame, Kind};
use crate::jwe::{Curve, TeeKey};

/// The KBS protocol version current Trustee requires exactly.
pub const KBS_PROTOCOL_VERSION: &str = "0.4.0";
/// Smallest released secret accepted as a key root.
pub const MIN_SECRET: usize = 32;
/// Largest released secret accepted.
pub const MAX_SECRET: usize = 1024;
/// Longest challenge nonce accepted (Trustee sends base64 of 32 bytes: 44 characters).
pub const MAX_NONCE: usize = 512;

/// What to ask for.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Curve of the per-attempt key.
    pub curve: Curve,
    /// `<repository>/<type>/<tag>` of the resource holding the secret.
    pub resource: String,
    /// `tee-evidence.additional_evidence` (`""` if none); it is part of the binding.
    pub additional_evidence: String,
    /// Optional init-data (checked by the KBS against HOST_DATA).
    pub init_data: Option<InitData>,
}

impl ClientConfig {
    /// P-384, no additional evidence, no init-data.
    pub fn new(resource: impl Into<String>) -> Self {
        ClientConfig {
            curve: Curve::P384,
            resource: resource.into(),
            additional_evidence: String::new(),
            init_data: None,
        }
    }
}

/// The secret a KBS released; zeroized on drop, never printed.
pub struct ReleasedSecret(Zeroizing<Vec<u8>>);

impl ReleasedSecret {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Wraps bytes obtained another way (provisioning creates the secret it registers).
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Result<Self, KbsError> {
        if !(MIN_SECRET..=MAX_SECRET).contains(&bytes.len()) {
            return Err(KbsError::SecretSize(bytes.len()));
        }
        Ok(ReleasedSecret(bytes))
    }
}

impl core::fmt::Debug for ReleasedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ReleasedSecret({} bytes, redacted)", self.0.len())
    }
}

/// What the caller does next.
#[derive(Debug)]
pub enum Step {
    /// Send this frame and feed the reply to [`KbsClient::on_frame`].
    Send(Frame),
    /// Done.
    Released(ReleasedSecret),
}

#[derive(Debug)]
enum State {
    Idle,
    AwaitChallenge(TeeKey),
    AwaitToken(TeeKey),
    AwaitResource(TeeKey),
    Finished,
}

/// One KBS client; each [`KbsClient::start`] begins a fresh attempt with a fresh key.
#[derive(Debug)]
pub struct KbsClient {
    config: ClientConfig,
    state: State,
}

fn kind_of(error_type: &str) -> String {
    error_type.rsplit('/').next().unwrap_or(error_type).to_string()
}

impl KbsClient {
    /// A client for `config`.
    pub fn new(config: ClientConfig) -> Self {
        KbsClient { config, state: State::Idle }
    }

    /// Starts an attempt: a new ephemeral key, and the auth Request to send.
    pub fn start(&mut self, tee: kbs_types::Tee, rng: &mut impl CryptoRngCore) -> Result<Frame, KbsError> {
        let key = TeeKey::generate(self.config.curve, rng);
        let request = Request {
            version: KBS_PROTOCOL_VERSION.into(),
            tee,
            extra_params: serde_json::Value::String(String::new()),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| KbsError::Json { stage: Stage::Auth, reason: e.to_string() })?;
        self.state = State::AwaitChallenge(key);
        Ok(Frame::new(Kind::AuthRequest, body)?)
    }

    /// Feeds the proxy's reply to the request in flight. Any error ends the attempt (start again for a new
    /// key); nothing from a failed attempt is reused.
    pub fn on_frame(&mut self, frame: Frame, platform: &mut dyn EvidenceProvider) -> Result<Step, KbsError> {
        let state = core::mem::replace(&mut self.state, State::Finished);
        let (stage, expected) = match &state {
            State::AwaitChallenge(_) => (Stage::Auth, Kind::AuthReply),
            State::AwaitToken(_) => (Stage::Attest, Kind::AttestReply),
            State::AwaitResource(_) => (Stage::Resource, Kind::ResourceReply),
            State::Idle | State::Finished => return Err(KbsError::State("no request in flight")),
        };
        if frame.kind == Kind::ProxyError {
            let reason = String::from_utf8_lossy(&frame.payload).chars().take(512).collect();
            return Err(KbsError::Proxy { stage, reason });
        }
        if frame.kind != expected {
            return Err(KbsError::UnexpectedReply { stage, got: frame.kind as u8 });
        }
        let (status, body) = frame.status_and_body()?;
        if status != 200 {
            let (kind, detail) = match serde_json::from_slice::<ErrorInformation>(body) {
                Ok(info) => (kind_of(&info.error_type), info.detail.chars().take(512).collect()),
                Err(_) => ("unknown".to_string(), String::from_utf8_lossy(body).chars().take(512).collect()),
            };
            return Err(KbsError::Kbs { stage, status, kind, detail });
        }
        let json_err = |e: serde_json::Error| KbsError::Json { stage, reason: e.to_string() };
        match state {
            State::AwaitChallenge(key) => {
                let challenge: Challenge = serde_json::from_slice(body).map_err(json_err)?;
                if challenge.nonce.is_empty() || challenge.nonce.len() > MAX_NONCE {
                    return Err(KbsError::Nonce(alloc::format!("{} characters", challenge.nonce.len())));
                }
                STANDARD.decode(&challenge.nonce).map_err(|e| KbsError::Nonce(e.to_string()))?;
                let tee_pubkey = key.public_jwk();
                let report_data =
                    snp_report_data(&challenge.nonce, &tee_pubkey, &self.config.additional_evidence);
                let primary_evidence = platform.evidence(&report_data).map_err(KbsError::Evidence)?;
                let attestation = Attestation {
                    init_data: self.config.init_data.clone(),
                    runtime_data: RuntimeData { nonce: challenge.nonce, tee_pubkey },
                    tee_evidence: CompositeEvidence {
                        primary_evidence,
                        additional_evidence: self.config.additional_evidence.clone(),
                    },
                };
                let body = serde_json::to_vec(&attestation)
                    .map_err(|e| KbsError::Json { stage: Stage::Attest, reason: e.to_string() })?;
                self.state = State::AwaitToken(key);
                Ok(Step::Send(Frame::new(Kind::AttestRequest, body)?))
            }
            State::AwaitToken(key) => {
                // The token (EAR) is the KBS's business; the proxy keeps the session cookie. Only its shape is
                // checked here: the secret's confidentiality rests on the JWE to this attempt's key.
                let _: serde_json::Value = serde_json::from_slice(body).map_err(json_err)?;
                self.state = State::AwaitResource(key);
                Ok(Step::Send(Frame::new(Kind::ResourceRequest, self.config.resource.as_bytes().to_vec())?))
            }
            State::AwaitResource(key) => {
                let plain = key.decrypt(body)?;
                Ok(Step::Released(ReleasedSecret::from_bytes(plain)?))
            }
            State::Idle | State::Finished => Err(KbsError::State("no request in flight")),
        }
    }
}

/// One attempt over `channel`.
pub fn release(
    channel: &mut impl Channel,
    platform: &mut dyn EvidenceProvider,
    config: &ClientConfig,
    rng: &mut impl CryptoRngCore,
) -> Result<ReleasedSecret, KbsError> {
    let mut client = KbsClient::new(config.clone());
    let mut frame = client.start(platform.tee(), rng)?;
    // Three requests; a fourth reply would be a protocol error the state machine reports.
    loop {
        channel.send(&frame)?;
        let reply = channel.recv()?;
        match client.on_frame(reply, platform)? {
            Step::Send(next) => frame = next,
            Step::Released(secret) => return Ok(secret),
        }
    }
}

impl KbsError {
    /// Whether another attempt (fresh key, fresh session) may succeed: transport trouble, tampering the
    /// next attempt's key defeats, an expired session, a KBS-side 5xx. A policy or attestation verdict is
    /// final.
    pub fn is_transient(&self) -> bool {
        match self {
            KbsError::Channel(_)
            | KbsError::Frame(_)
            | KbsError::Proxy { .. }
            | KbsError::UnexpectedReply { .. }
            | KbsError::Json { .. }
            | KbsError::Nonce(_)
            | KbsError::Jwe(_) => true,
            KbsError::Kbs { status, kind, .. } => *status >= 500 || kind == "TokenNotFound",
            KbsError::Evidence(_) | KbsError::SecretSize(_) | KbsError::State(_) => false,
        }
    }
}
