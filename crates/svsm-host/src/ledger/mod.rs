//! The freshness-ledger service: answers `svsm-ledger` requests (relayed by hosts) from records kept in an
//! etcd cluster, with linearizable compare-and-set. Stateless itself: any number of instances may serve one
//! cluster at once, and etcd's transactions decide every race.
//!
//! Layout in etcd (under `--prefix`, default [`DEFAULT_PREFIX`]):
//! - `<prefix>/vm/<vm-id>/key`: the VM's 32-byte ledger key (written once by `ledger enrol`);
//! - `<prefix>/vm/<vm-id>/volume/<volume-id>`: the record, generation (u64 LE) then superblock hash (32 B).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnOpResponse};
use svsm_ledger::wire::seal_reply;
use svsm_ledger::{LedgerKey, Outcome, Request, RequestKind, ServiceErrorCode, VmId, frame};
use svsm_store::{LedgerRecord, VolumeId};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::RwLock;

pub mod keyfile;
pub mod source;

/// Where records live in etcd unless `--prefix` says otherwise.
pub const DEFAULT_PREFIX: &str = "/svsm-ledger/v1";
/// Bytes of a record value in etcd.
const RECORD_LEN: usize = 40;

/// How the service reaches etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the cluster's members.
    pub endpoints: Vec<String>,
    /// Key prefix.
    pub prefix: String,
    /// Deadline for one ledger operation, retries included; past it the answer is "backend unavailable".
    pub op_timeout: Duration,
}

/// The etcd side: records and keys.
#[derive(Clone)]
pub struct Records {
    client: Client,
    cfg: EtcdConfig,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("endpoints", &self.cfg.endpoints).finish_non_exhaustive()
    }
}

fn encode_record(r: &LedgerRecord) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECORD_LEN);
    v.extend_from_slice(&r.generation.to_le_bytes());
    v.extend_from_slice(&r.superblock_hash);
    v
}

fn decode_record(v: &[u8]) -> anyhow::Result<LedgerRecord> {
    anyhow::ensure!(v.len() == RECORD_LEN, "record value is {} bytes, expected {RECORD_LEN}", v.len());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&v[8..]);
    Ok(LedgerRecord { generation: u64::from_le_bytes(v[..8].try_into()?), superblock_hash: hash })
}

impl Records {
    /// Connects to the cluster (lazily: an unreachable member is retried per request, not fatal).
    pub async fn connect(cfg: EtcdConfig) -> anyhow::Result<Self> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(cfg.op_timeout)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_require_leader(true);
        let client = Client::connect(&cfg.endpoints, Some(opts))
            .await
            .with_context(|| format!("connecting to etcd at {}", cfg.endpoints.join(",")))?;
        Ok(Records { client, cfg })
    }

    fn key_key(&self, vm: &VmId) -> String {
        format!("{}/vm/{vm}/key", self.cfg.prefix)
    }

    fn record_key(&self, vm: &VmId, volume: &VolumeId) -> String {
        format!("{}/vm/{vm}/volume/{volume}", self.cfg.prefix)
    }

    /// Runs `op` until it succeeds or the deadline passes (a member down or an election in progress shows as
    /// errors for a moment; the retries ride over it).
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> anyhow::Result<T>
    where
        F: FnMut(etcd_client::KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.cfg.op_timeout;
        let mut delay = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let err = match tokio::time::timeout(left, op(self.client.kv_client())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => anyhow::anyhow!("{e}"),
                Err(_) => anyhow::anyhow!("timed out"),
            };
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(err.context(format!("etcd {what} failed within {:?}", self.cfg.op_timeout)));
            }
            tracing::debug!(what, error = %err, "etcd operation failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// The VM's ledger key, if enrolled (linearizable read).
    pub async fn vm_key(&self, vm: &VmId) -> anyhow::Result<Option<LedgerKey>> {
        let k = self.key_key(vm);
        let resp = self
            .retry("get key", |mut kv| {
                let k = k.clone();
                async move { kv.get(k, None).await }
            })
            .await?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) => {
                let bytes: [u8; 32] =
                    kv.value().try_into().map_err(|_| anyhow::anyhow!("{k}: stored key is not 32 bytes"))?;
                Ok(Some(LedgerKey::from_bytes(bytes)))
            }
        }
    }

    /// Enrols a VM: stores its key if the VM has none yet (create-if-absent). Returns false if it had one.
    pub async fn enrol(&self, vm: &VmId, key: &LedgerKey) -> anyhow::Result<bool> {
        let k = self.key_key(vm);
        let v = key.as_bytes().to_vec();
        let resp = self
            .retry("enrol", |mut kv| {
                let txn = Txn::new()
                    .when([Compare::version(k.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(k.clone(), v.clone(), None)]);
                async move { kv.txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// The record of `volume` (linearizable read).
    pub async fn read(&self, vm: &VmId, volume: &VolumeId) -> anyhow::Result<Option<LedgerRecord>> {
        let k = self.record_key(vm, volume);
        let resp = self
            .retry("get", |mut kv| {
                let k = k.clone();
                async move { kv.get(k, None).await }
            })
            .await?;
        resp.kvs().first().map(|kv| decode_record(kv.value())).transpose()
    }

    /// Compare-and-set in one etcd transaction: if the stored value is `expected` (or the key is absent
    /// when `expected` is `None`), put `new`; otherwise return what is stored. A retry after a lost answer
    /// is safe: the retried compare fails and reports `new` as current, which the store takes as success.
    pub async fn compare_and_set(
        &self,
        vm: &VmId,
        volume: &VolumeId,
        expected: Option<&LedgerRecord>,
        new: &LedgerRecord,
    ) -> anyhow::Result<Outcome> {
        let k = self.record_key(vm, volume);
        let compare = match expected {
            None => Compare::version(k.clone(), CompareOp::Equal, 0),
            Some(e) => Compare::value(k.clone(), CompareOp::Equal, encode_record(e)),
        };
        let value = encode_record(new);
        let resp = self
            .retry("txn", |mut kv| {
                let txn = Txn::new()
                    .when([compare.clone()])
                    .and_then([TxnOp::put(k.clone(), value.clone(), None)])
                    .or_else([TxnOp::get(k.clone(), None)]);
                async move { kv.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(Outcome::Applied);
        }
        let current = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| decode_record(kv.value()))),
                _ => None,
            })
            .ok_or_else(|| anyhow::anyhow!("etcd txn failed its compare but returned no get"))?
            .transpose()?;
        Ok(Outcome::Conflict(current))
    }
}

/// The service's clock: wall-clock ms since the epoch, never going back within one process.
#[derive(Debug, Default)]
pub struct Clock(AtomicU64);

impl Clock {
    /// Now, or the last time handed out if the wall clock stepped back.
    pub fn now_ms(&self) -> u64 {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let prev = self.0.fetch_max(wall, Ordering::SeqCst);
        prev.max(wall)
    }
}

/// Request handling shared by all connections.
#[derive(Debug)]
pub struct Service {
    records: Records,
    clock: Clock,
    keys: RwLock<HashMap<VmId, LedgerKey>>,
}

impl Service {
    /// A service over `records`.
    pub fn new(records: Records) -> Self {
        Service { records, clock: Clock::default(), keys: RwLock::new(HashMap::new()) }
    }

    async fn key_of(&self, vm: &VmId) -> Result<LedgerKey, ServiceErrorCode> {
        if let Some(k) = self.keys.read().await.get(vm) {
            return Ok(k.clone());
        }
        match self.records.vm_key(vm).await {
            Ok(Some(k)) => {
                // Keys are written once at enrolment, so caching them is safe.
                self.keys.write().await.insert(*vm, k.clone());
                Ok(k)
            }
            Ok(None) => Err(ServiceErrorCode::UnknownVm),
            Err(e) => {
                tracing::warn!(%vm, error = %format!("{e:#}"), "could not fetch the VM's ledger key");
                Err(ServiceErrorCode::Backend)
            }
        }
    }

    /// The reply to one request message.
    pub async fn answer(&self, bytes: &[u8]) -> Vec<u8> {
        let err = |code| {
            tracing::info!(%code, "refusing a ledger request");
            seal_reply(None, bytes, Outcome::Error(code), self.clock.now_ms()).to_vec()
        };
        let vm = match Request::claimed_vm(bytes) {
            Ok(vm) => vm,
            Err(e) => return err(e.into()),
        };
        let key = match self.key_of(&vm).await {
            Ok(k) => k,
            Err(code) => return err(code),
        };
        let req = match Request::open(bytes, &key) {
            Ok(r) => r,
            Err(e) => return err(e.into()),
        };
        let result = match &req.kind {
            RequestKind::Read => self.records.read(&vm, &req.volume).await.map(Outcome::Current),
            RequestKind::CompareAndSet { expected, new } => {
                self.records.compare_and_set(&vm, &req.volume, expected.as_ref(), new).await
            }
        };
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(%vm, volume = %req.volume, error = %format!("{e:#}"), "etcd did not answer");
                return err(ServiceErrorCode::Backend);
            }
        };
        tracing::debug!(%vm, volume = %req.volume, ?outcome, "answered");
        seal_reply(Some(&key), bytes, outcome, self.clock.now_ms()).to_vec()
    }
}

/// Serves one connection: frames in, frames out, until the peer closes or breaks the framing.
async fn connection(service: Arc<Service>, mut stream: tokio::net::TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    loop {
        let mut header = [0u8; frame::HEADER_LEN];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = match frame::request_len(&header) {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(%peer, error = %e, "closing a connection that broke the framing");
                return;
            }
        };
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        let reply = service.answer(&payload).await;
        if stream.write_all(&frame::encode_reply(&reply)).await.is_err() {
            return;
        }
    }
}

/// Accepts connections on `listener` forever.
pub async fn serve(service: Arc<Service>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await.context("accepting a connection")?;
        tokio::spawn(connection(service.clone(), stream, peer));
    }
}
