//! The ledger protocol's two messages, byte for byte (specified in `docs/ledger-protocol.md`).
//!
//! Both are fixed-size, so a parser is a length check, a copy and field checks: no variable-length field for
//! a hostile relay to play with. Requests are authenticated too: the relay must not be able to move a record
//! (to an old value it observed, say) by itself.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use svsm_store::{LedgerRecord, VolumeId};
use zerocopy::little_endian::U64;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{ReplyError, RequestError};

/// Magic of a request.
pub const REQUEST_MAGIC: [u8; 4] = *b"SLQ1";
/// Magic of a reply.
pub const REPLY_MAGIC: [u8; 4] = *b"SLP1";
/// Bytes in a request.
pub const REQUEST_LEN: usize = 184;
/// Bytes in a reply.
pub const REPLY_LEN: usize = 184;
/// Bytes of a MAC (HMAC-SHA256, untruncated).
pub const MAC_LEN: usize = 32;

const REQUEST_MAC_LABEL: &[u8] = b"svsm-ledger v1 request";
const REPLY_MAC_LABEL: &[u8] = b"svsm-ledger v1 reply";
const HKDF_SALT: &[u8] = b"svsm-ledger v1";

/// Which VM a request comes from: names the ledger key, and scopes the volume ids the VM may touch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct VmId(pub [u8; 16]);

impl core::fmt::Display for VmId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        VolumeId(self.0).fmt(f)
    }
}

/// A VM's 32-byte ledger key (from enrolment; from key release once that lands), with its two direction keys
/// derived once (HKDF) when it is made, not per message. All three are zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LedgerKey {
    master: [u8; 32],
    request: [u8; 32],
    reply: [u8; 32],
}

/// HKDF-SHA256(salt [`HKDF_SALT`], ikm `master`, info `label`), 32 bytes: the key of one direction.
fn direction_key(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut sub = [0u8; 32];
    // HKDF-Expand of 32 bytes cannot fail (the limit is 255 * 32).
    let _ = Hkdf::<Sha256>::new(Some(HKDF_SALT), master).expand(label, &mut sub);
    sub
}

impl LedgerKey {
    /// Wraps a key (and derives its direction keys).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        LedgerKey {
            request: direction_key(&bytes, REQUEST_MAC_LABEL),
            reply: direction_key(&bytes, REPLY_MAC_LABEL),
            master: bytes,
        }
    }

    /// The key's bytes (to store it at enrolment).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.master
    }

    /// The direction's MAC over `label || message`. Separate keys per direction (HKDF), so a request can
    /// never be reflected as a reply.
    fn mac(&self, label: &'static [u8], message: &[u8]) -> [u8; MAC_LEN] {
        let sub = if label == REQUEST_MAC_LABEL { &self.request } else { &self.reply };
        debug_assert!(label == REQUEST_MAC_LABEL || label == REPLY_MAC_LABEL);
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(sub) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(label);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

impl core::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LedgerKey(<secret>)")
    }
}

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// The current record.
    Read,
    /// Replace the record if it equals `expected`.
    CompareAndSet {
        /// The record the client believes current (`None`: no record yet).
        expected: Option<LedgerRecord>,
        /// The record to store.
        new: LedgerRecord,
    },
}

impl RequestKind {
    fn name(&self) -> &'static str {
        match self {
            RequestKind::Read => "read",
            RequestKind::CompareAndSet { .. } => "compare-and-set",
        }
    }
}

const KIND_READ: u8 = 1;
const KIND_CAS: u8 = 2;
const FLAG_EXPECTED: u8 = 1;
const FLAG_RECORD: u8 = 1;

/// The request layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawRequest {
    magic: [u8; 4],
    kind: u8,
    flags: u8,
    reserved: [u8; 2],
    vm: [u8; 16],
    volume: [u8; 16],
    nonce: [u8; 32],
    expected_generation: U64,
    expected_hash: [u8; 32],
    new_generation: U64,
    new_hash: [u8; 32],
    mac: [u8; MAC_LEN],
}

/// The reply layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawReply {
    magic: [u8; 4],
    kind: u8,
    status: u8,
    flags: u8,
    error: u8,
    vm: [u8; 16],
    volume: [u8; 16],
    nonce: [u8; 32],
    request_digest: [u8; 32],
    record_generation: U64,
    record_hash: [u8; 32],
    service_time_ms: U64,
    mac: [u8; MAC_LEN],
}

const _: () = assert!(size_of::<RawRequest>() == REQUEST_LEN);
const _: () = assert!(size_of::<RawReply>() == REPLY_LEN);
const _: () = assert!(core::mem::offset_of!(RawRequest, mac) == REQUEST_LEN - MAC_LEN);
const _: () = assert!(core::mem::offset_of!(RawReply, mac) == REPLY_LEN - MAC_LEN);
const _: () = assert!(core::mem::offset_of!(RawReply, service_time_ms) == 144);

/// One request, as the client builds it and the service reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The requesting VM.
    pub vm: VmId,
    /// The volume whose record is asked about.
    pub volume: VolumeId,
    /// 32 fresh random bytes; the reply must echo them.
    pub nonce: [u8; 32],
    /// Read or compare-and-set.
    pub kind: RequestKind,
}

fn record_fields(r: Option<&LedgerRecord>) -> (U64, [u8; 32]) {
    r.map_or((U64::new(0), [0; 32]), |r| (U64::new(r.generation), r.superblock_hash))
}

impl Request {
    /// The request's bytes, authenticated under `key`.
    pub fn seal(&self, key: &LedgerKey) -> [u8; REQUEST_LEN] {
        let (kind, flags, expected, new) = match &self.kind {
            RequestKind::Read => (KIND_READ, 0, None, None),
            RequestKind::CompareAndSet { expected, new } => {
                (KIND_CAS, if expected.is_some() { FLAG_EXPECTED } else { 0 }, expected.as_ref(), Some(new))
            }
        };
        let (expected_generation, expected_hash) = record_fields(expected);
        let (new_generation, new_hash) = record_fields(new);
        let mut raw = RawRequest {
            magic: REQUEST_MAGIC,
            kind,
            flags,
            reserved: [0; 2],
            vm: self.vm.0,
            volume: self.volume.0,
            nonce: self.nonce,
            expected_generation,
            expected_hash,
            new_generation,
            new_hash,
            mac: [0; MAC_LEN],
        };
        raw.mac = key.mac(REQUEST_MAC_LABEL, &raw.as_bytes()[..REQUEST_LEN - MAC_LEN]);
        let mut out = [0u8; REQUEST_LEN];
        out.copy_from_slice(raw.as_bytes());
        out
    }

    /// The VM a request claims to come from, read before anything is verified (to find its key).
    pub fn claimed_vm(bytes: &[u8]) -> Result<VmId, RequestError> {
        Ok(VmId(parse_request(bytes)?.vm))
    }

    /// Parses and authenticates a request under the claimed VM's key. A compare-and-set must move the
    /// generation forward, so no old request replayed later can move a record back.
    pub fn open(bytes: &[u8], key: &LedgerKey) -> Result<Request, RequestError> {
        let raw = parse_request(bytes)?;
        let want = key.mac(REQUEST_MAC_LABEL, &bytes[..REQUEST_LEN - MAC_LEN]);
        if !bool::from(want.ct_eq(&raw.mac)) {
            return Err(RequestError::Forged);
        }
        let kind = match raw.kind {
            KIND_READ => RequestKind::Read,
            _ => {
                let expected = (raw.flags & FLAG_EXPECTED != 0).then_some(LedgerRecord {
                    generation: raw.expected_generation.get(),
                    superblock_hash: raw.expected_hash,
                });
                let new =
                    LedgerRecord { generation: raw.new_generation.get(), superblock_hash: raw.new_hash };
                if expected.is_some_and(|e| new.generation <= e.generation) {
                    return Err(RequestError::NotMonotonic);
                }
                RequestKind::CompareAndSet { expected, new }
            }
        };
        Ok(Request { vm: VmId(raw.vm), volume: VolumeId(raw.volume), nonce: raw.nonce, kind })
    }
}

fn parse_request(bytes: &[u8]) -> Result<RawRequest, RequestError> {
    let raw = RawRequest::read_from_bytes(bytes)
        .map_err(|_| RequestError::Length { len: bytes.len(), expected: REQUEST_LEN })?;
    if raw.magic != REQUEST_MAGIC {
        return Err(RequestError::Malformed("bad magic"));
    }
    if raw.reserved != [0; 2] {
        return Err(RequestError::Malformed("reserved bytes not zero"));
    }
    let zero_record = |g: U64, h: &[u8; 32]| g.get() == 0 && *h == [0; 32];
    match raw.kind {
        KIND_READ => {
            if raw.flags != 0
                || !zero_record(raw.expected_generation, &raw.expected_hash)
                || !zero_record(raw.new_generation, &raw.new_hash)
            {
                return Err(RequestError::Malformed("read request with record fields set"));
            }
        }
        KIND_CAS => {
            if raw.flags & !FLAG_EXPECTED != 0 {
                return Err(RequestError::Malformed("unknown flags"));
            }
            if raw.flags & FLAG_EXPECTED == 0 && !zero_record(raw.expected_generation, &raw.expected_hash) {
                return Err(RequestError::Malformed("absent expected record with fields set"));
            }
        }
        _ => return Err(RequestError::Malformed("unknown request kind")),
    }
    Ok(raw)
}

/// Why the service could not answer; sent unauthenticated, so the client treats every one as "unavailable".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceErrorCode {
    /// The request was not a well-formed v1 request.
    Malformed,
    /// No key is enrolled for the VM.
    UnknownVm,
    /// The request failed authentication.
    Forged,
    /// A compare-and-set that does not advance the generation.
    NotMonotonic,
    /// The backing store (etcd) did not answer in time; the outcome of a compare-and-set is unknown.
    Backend,
    /// A code this client does not know.
    Other(u8),
}

impl ServiceErrorCode {
    fn to_byte(self) -> u8 {
        match self {
            ServiceErrorCode::Malformed => 1,
            ServiceErrorCode::UnknownVm => 2,
            ServiceErrorCode::Forged => 3,
            ServiceErrorCode::NotMonotonic => 4,
            ServiceErrorCode::Backend => 5,
            ServiceErrorCode::Other(b) => b,
        }
    }
    fn from_byte(b: u8) -> Self {
        match b {
            1 => ServiceErrorCode::Malformed,
            2 => ServiceErrorCode::UnknownVm,
            3 => ServiceErrorCode::Forged,
            4 => ServiceErrorCode::NotMonotonic,
            5 => ServiceErrorCode::Backend,
            b => ServiceErrorCode::Other(b),
        }
    }
}

impl From<RequestError> for ServiceErrorCode {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Forged => ServiceErrorCode::Forged,
            RequestError::NotMonotonic => ServiceErrorCode::NotMonotonic,
            _ => ServiceErrorCode::Malformed,
        }
    }
}

impl core::fmt::Display for ServiceErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ServiceErrorCode::Malformed => f.write_str("a malformed request"),
            ServiceErrorCode::UnknownVm => {
                f.write_str("no ledger key enrolled for this VM (run `ledger enrol`)")
            }
            ServiceErrorCode::Forged => {
                f.write_str("a request that fails authentication (wrong ledger key?)")
            }
            ServiceErrorCode::NotMonotonic => {
                f.write_str("a compare-and-set that does not advance the generation")
            }
            ServiceErrorCode::Backend => f.write_str("its backing store (etcd) unavailable"),
            ServiceErrorCode::Other(b) => write!(f, "error code {b}"),
        }
    }
}

/// What the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read: the record (`None`: the volume has none).
    Current(Option<LedgerRecord>),
    /// Compare-and-set: applied; the record is now the requested one.
    Applied,
    /// Compare-and-set: refused; the record is this.
    Conflict(Option<LedgerRecord>),
    /// No answer to give (unauthenticated).
    Error(ServiceErrorCode),
}

const STATUS_CURRENT: u8 = 1;
const STATUS_APPLIED: u8 = 2;
const STATUS_CONFLICT: u8 = 3;
const STATUS_ERROR: u8 = 4;

/// An authenticated, bound and fresh answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The answer (never [`Outcome::Error`]: errors are returned as [`ReplyError::Service`]).
    pub outcome: Outcome,
    /// The service's clock when it answered, ms since the Unix epoch.
    pub service_time_ms: u64,
}

/// Builds the reply to `request_bytes` (the exact bytes received). `key` is `None` only for errors that
/// arise before the VM's key is known; such replies carry a zero MAC.
pub fn seal_reply(
    key: Option<&LedgerKey>,
    request_bytes: &[u8],
    outcome: Outcome,
    service_time_ms: u64,
) -> [u8; REPLY_LEN] {
    let req = RawRequest::read_from_bytes(request_bytes).ok();
    let (status, error, record) = match outcome {
        Outcome::Current(r) => (STATUS_CURRENT, 0, r),
        Outcome::Applied => {
            let new =
                req.map(|q| LedgerRecord { generation: q.new_generation.get(), superblock_hash: q.new_hash });
            (STATUS_APPLIED, 0, new)
        }
        Outcome::Conflict(r) => (STATUS_CONFLICT, 0, r),
        Outcome::Error(code) => (STATUS_ERROR, code.to_byte(), None),
    };
    let (record_generation, record_hash) = record_fields(record.as_ref());
    let mut raw = RawReply {
        magic: REPLY_MAGIC,
        kind: req.map_or(0, |q| q.kind),
        status,
        flags: if record.is_some() { FLAG_RECORD } else { 0 },
        error,
        vm: req.map_or([0; 16], |q| q.vm),
        volume: req.map_or([0; 16], |q| q.volume),
        nonce: req.map_or([0; 32], |q| q.nonce),
        request_digest: Sha256::digest(request_bytes).into(),
        record_generation,
        record_hash,
        service_time_ms: U64::new(service_time_ms),
        mac: [0; MAC_LEN],
    };
    if let Some(key) = key {
        raw.mac = key.mac(REPLY_MAC_LABEL, &raw.as_bytes()[..REPLY_LEN - MAC_LEN]);
    }
    let mut out = [0u8; REPLY_LEN];
    out.copy_from_slice(raw.as_bytes());
    out
}

/// Parses and checks a reply to `request` (whose sealed bytes were `request_bytes`): length and layout, then
/// the MAC, then that it binds this nonce, this volume and this exact request, then that its status fits.
/// Freshness of the clock is the caller's (it keeps the trusted time).
pub fn open_reply(
    bytes: &[u8],
    key: &LedgerKey,
    request: &Request,
    request_bytes: &[u8],
) -> Result<Reply, ReplyError> {
    let raw = RawReply::read_from_bytes(bytes)
        .map_err(|_| ReplyError::Length { len: bytes.len(), expected: REPLY_LEN })?;
    if raw.magic != REPLY_MAGIC {
        return Err(ReplyError::Malformed("bad magic"));
    }
    if raw.flags & !FLAG_RECORD != 0 {
        return Err(ReplyError::Malformed("unknown flags"));
    }
    if raw.status == STATUS_ERROR {
        return Err(ReplyError::Service(ServiceErrorCode::from_byte(raw.error)));
    }
    if raw.error != 0 {
        return Err(ReplyError::Malformed("error code on a non-error reply"));
    }
    let want = key.mac(REPLY_MAC_LABEL, &bytes[..REPLY_LEN - MAC_LEN]);
    if !bool::from(want.ct_eq(&raw.mac)) {
        return Err(ReplyError::Forged);
    }
    if raw.nonce != request.nonce {
        return Err(ReplyError::Replayed);
    }
    if raw.volume != request.volume.0 {
        return Err(ReplyError::CrossVolume { found_hex: alloc::format!("{}", VolumeId(raw.volume)) });
    }
    let digest: [u8; 32] = Sha256::digest(request_bytes).into();
    if raw.vm != request.vm.0 || raw.request_digest != digest {
        return Err(ReplyError::RequestMismatch);
    }
    let record = (raw.flags & FLAG_RECORD != 0).then_some(LedgerRecord {
        generation: raw.record_generation.get(),
        superblock_hash: raw.record_hash,
    });
    let inconsistent = || ReplyError::Inconsistent { status: raw.status, kind: request.kind.name() };
    let outcome = match (&request.kind, raw.status) {
        (RequestKind::Read, STATUS_CURRENT) => Outcome::Current(record),
        (RequestKind::CompareAndSet { new, .. }, STATUS_APPLIED) if record.as_ref() == Some(new) => {
            Outcome::Applied
        }
        (RequestKind::CompareAndSet { expected, .. }, STATUS_CONFLICT) if record != *expected => {
            Outcome::Conflict(record)
        }
        _ => return Err(inconsistent()),
    };
    Ok(Reply { outcome, service_time_ms: raw.service_time_ms.get() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LedgerKey {
        LedgerKey::from_bytes([5; 32])
    }

    fn cas_request() -> Request {
        Request {
            vm: VmId([1; 16]),
            volume: VolumeId([2; 16]),
            nonce: [3; 32],
            kind: RequestKind::CompareAndSet {
                expected: Some(LedgerRecord { generation: 4, superblock_hash: [4; 32] }),
                new: LedgerRecord { generation: 5, superblock_hash: [5; 32] },
            },
        }
    }

    #[test]
    fn requests_round_trip_and_every_bit_is_authenticated() {
        let req = cas_request();
        let bytes = req.seal(&key());
        assert_eq!(Request::open(&bytes, &key()).unwrap(), req);
        assert_eq!(Request::claimed_vm(&bytes).unwrap(), req.vm);
        for bit in 0..REQUEST_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Request::open(&b, &key()).is_err(), "bit {bit} flipped and still accepted");
        }
        assert_eq!(Request::open(&bytes, &LedgerKey::from_bytes([6; 32])), Err(RequestError::Forged));
        assert!(matches!(Request::open(&bytes[..100], &key()), Err(RequestError::Length { len: 100, .. })));
    }

    #[test]
    fn cached_direction_keys_are_the_hkdf_derivation_and_differ() {
        let k = key();
        for (label, cached) in [(REQUEST_MAC_LABEL, &k.request), (REPLY_MAC_LABEL, &k.reply)] {
            let mut want = [0u8; 32];
            Hkdf::<Sha256>::new(Some(HKDF_SALT), &[5; 32]).expand(label, &mut want).unwrap();
            assert_eq!(cached, &want);
        }
        assert_ne!(k.request, k.reply);
        assert_eq!(k.clone().as_bytes(), &[5; 32]);
    }

    #[test]
    fn the_request_mac_is_unchanged_on_the_wire() {
        // Computed independently (Python hmac/hashlib: HKDF-SHA256 then HMAC-SHA256 over label || body).
        let want = "8dd7950ecf5c1229e2ee59078f5389cc85d3a15ceebdd483d27b56bf1496c11e";
        let mac = &cas_request().seal(&key())[REQUEST_LEN - MAC_LEN..];
        let hex: alloc::string::String = mac.iter().map(|b| alloc::format!("{b:02x}")).collect();
        assert_eq!(hex, want);
    }

    #[test]
    fn a_compare_and_set_that_does_not_advance_is_refused() {
        let mut req = cas_request();
        req.kind = RequestKind::CompareAndSet {
            expected: Some(LedgerRecord { generation: 9, superblock_hash: [1; 32] }),
            new: LedgerRecord { generation: 9, superblock_hash: [2; 32] },
        };
        assert_eq!(Request::open(&req.seal(&key()), &key()), Err(RequestError::NotMonotonic));
    }

    #[test]
    fn a_reply_is_bound_to_its_request() {
        let req = cas_request();
        let rb = req.seal(&key());
        let reply = seal_reply(Some(&key()), &rb, Outcome::Applied, 77);
        assert_eq!(
            open_reply(&reply, &key(), &req, &rb).unwrap(),
            Reply { outcome: Outcome::Applied, service_time_ms: 77 }
        );
        // A request reflected as a reply, or a reply under another key, does not verify.
        assert!(open_reply(&rb, &key(), &req, &rb).is_err());
        assert_eq!(open_reply(&reply, &LedgerKey::from_bytes([9; 32]), &req, &rb), Err(ReplyError::Forged));
    }
}
