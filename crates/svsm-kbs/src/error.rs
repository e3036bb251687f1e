//! Every way a key release can fail, each precise enough to say what to do next.

use alloc::string::String;

/// The KBS request a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `POST /kbs/v0/auth` (Request -> Challenge).
    Auth,
    /// `POST /kbs/v0/attest` (Attestation -> token).
    Attest,
    /// `GET /kbs/v0/resource/...` (-> JWE).
    Resource,
}

impl core::fmt::Display for Stage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Stage::Auth => "auth",
            Stage::Attest => "attest",
            Stage::Resource => "resource",
        })
    }
}

/// A frame on the SVSM <-> proxy channel that cannot be accepted: the one channel framing's error
/// (`svsm-channel`, format in its `FORMAT.md` and `docs/key-release.md`).
pub use svsm_channel::FrameError;

/// A JWE that does not decrypt to a secret for this attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JweError {
    /// The response is not a flattened JWE JSON object with the required members.
    #[error("malformed JWE: {0}")]
    Format(String),
    /// Key management algorithm other than ECDH-ES+A256KW.
    #[error("unsupported JWE alg {0:?} (only ECDH-ES+A256KW)")]
    Alg(String),
    /// Content encryption other than A256GCM.
    #[error("unsupported JWE enc {0:?} (only A256GCM)")]
    Enc(String),
    /// The ephemeral public key is missing, on another curve than this attempt's key, or not a curve point.
    #[error("JWE epk unusable: {0}")]
    Epk(String),
    /// The wrapped content key does not unwrap under the key agreed with this attempt's ephemeral key: the
    /// JWE was made for another key (another VM, an earlier attempt) or was altered.
    #[error("JWE key unwrap failed: not encrypted to this attempt's key, or altered")]
    Unwrap,
    /// AES-GCM rejected the ciphertext, tag, IV or protected header.
    #[error("JWE content authentication failed: ciphertext, tag, iv or protected header altered")]
    Decrypt,
}

/// The byte channel between the SVSM and the host proxy failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No reply within the time bound.
    #[error("channel timed out")]
    Timeout,
    /// The peer closed the channel.
    #[error("channel closed by the peer")]
    Closed,
    /// Any other transport failure.
    #[error("channel I/O error: {0}")]
    Io(String),
}

/// A failed key release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KbsError {
    /// The channel failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A frame was malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The KBS answered with an error (RFC 7807 body `{"type": ".../errors/<Kind>", "detail": ...}`).
    #[error("KBS refused {stage}: HTTP {status} {kind}: {detail}")]
    Kbs {
        /// Request refused.
        stage: Stage,
        /// HTTP status.
        status: u16,
        /// Last path segment of the error type (`PolicyDeny`, `TokenNotFound`, `AttestationError`, ...), or
        /// `unknown` when the body is not RFC 7807.
        kind: String,
        /// The KBS's detail string.
        detail: String,
    },
    /// The proxy could not relay the request (KBS unreachable, timeout, oversize reply).
    #[error("host proxy failed during {stage}: {reason}")]
    Proxy {
        /// Request that failed.
        stage: Stage,
        /// The proxy's message (untrusted, for diagnosis only).
        reason: String,
    },
    /// A reply of the wrong kind for the request in flight (reordered, replayed or injected).
    #[error("unexpected reply kind {got:#04x} while waiting for {stage}")]
    UnexpectedReply {
        /// Request in flight.
        stage: Stage,
        /// Kind received.
        got: u8,
    },
    /// A 200 reply whose body is not the expected JSON.
    #[error("malformed KBS {stage} reply: {reason}")]
    Json {
        /// Reply stage.
        stage: Stage,
        /// serde's message.
        reason: String,
    },
    /// The Challenge's nonce is unusable.
    #[error("unusable challenge nonce: {0}")]
    Nonce(String),
    /// The platform could not produce evidence.
    #[error("evidence: {0}")]
    Evidence(String),
    /// The resource JWE was rejected.
    #[error(transparent)]
    Jwe(#[from] JweError),
    /// The released secret has the wrong size for a key root.
    #[error("released secret is {0} bytes; a key root needs 32 to 1024")]
    SecretSize(usize),
    /// The client was driven out of order (a programming error in the caller, never input-dependent).
    #[error("key-release client used out of order: {0}")]
    State(&'static str),
}
