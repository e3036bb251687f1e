//! Why a ledger exchange failed. Every variant maps to `LedgerError::Unavailable` at the `Ledger` trait: a
//! reply that cannot be trusted says nothing about the record, so the store must read back before deciding.

use alloc::string::String;

/// A reply (or a frame) that the client refuses. Each names one check so logs say what the relay did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// Not exactly one reply long.
    #[error("reply is {len} bytes, expected {expected}: truncated or padded in transit")]
    Length {
        /// Bytes received.
        len: usize,
        /// Bytes a reply has.
        expected: usize,
    },
    /// The magic or a reserved field is wrong: not a ledger reply of this version.
    #[error("not a ledger v1 reply: {0}")]
    Malformed(&'static str),
    /// The MAC does not verify under this VM's ledger key: forged or altered by the relay.
    #[error("reply fails authentication under the ledger key: forged or altered in transit")]
    Forged,
    /// Authentic, but answers a different request (an old nonce): a replay.
    #[error("authentic reply to an earlier request (nonce differs): replayed")]
    Replayed,
    /// Authentic, but about another volume.
    #[error("authentic reply about volume {found_hex}, not the one asked about: cross-volume substitution")]
    CrossVolume {
        /// The volume the reply names, as hex.
        found_hex: String,
    },
    /// Authentic and fresh, but it answers a different request than the one sent (or another VM's).
    #[error("authentic reply does not bind the request that was sent")]
    RequestMismatch,
    /// Authentic and bound, but its status makes no sense for the request (a service bug).
    #[error("reply status {status} is not an answer to a {kind} request")]
    Inconsistent {
        /// The status byte.
        status: u8,
        /// The request kind.
        kind: &'static str,
    },
    /// Authentic, but the service's clock is behind a time this client already trusted.
    #[error("reply carries service time {found} ms, older than the trusted time {latest} ms already seen")]
    ClockWentBack {
        /// The reply's time (ms since the Unix epoch).
        found: u64,
        /// The latest trusted time.
        latest: u64,
    },
    /// The service answered with an error (unauthenticated: the relay may have made it up).
    #[error("ledger service reports {0} (unauthenticated)")]
    Service(crate::wire::ServiceErrorCode),
}

/// A request the service refuses (parsed before the VM's key is known, so nothing here is trusted yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not exactly one request long.
    #[error("request is {len} bytes, expected {expected}")]
    Length {
        /// Bytes received.
        len: usize,
        /// Bytes a request has.
        expected: usize,
    },
    /// Magic, kind, flags or a reserved field is wrong.
    #[error("not a ledger v1 request: {0}")]
    Malformed(&'static str),
    /// The MAC does not verify under the named VM's key.
    #[error("request fails authentication under the VM's ledger key")]
    Forged,
    /// A compare-and-set that would not move the generation forward (a replayed or hostile request).
    #[error("compare-and-set does not advance the generation")]
    NotMonotonic,
}

/// A byte-channel failure: the outcome of the exchange is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Could not send or receive (connection refused, reset, closed, timed out).
    #[error("ledger channel: {0}")]
    Io(String),
    /// A frame header that breaks the framing rules.
    #[error("ledger channel frame: {0}")]
    Frame(svsm_channel::FrameError),
}
