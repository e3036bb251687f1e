//! Socket servers in front of the one vTPM of this process: the MS simulator pair (command + platform port),
//! and swtpm's data + control channels over TCP and Unix sockets (with `CMD_SET_DATAFD` for QEMU).
//!
//! Every connection gets a thread; all of them share the vTPM behind one mutex, so each TPM command is
//! executed atomically and its NV change is durable before its response is written to the socket. Frames
//! are parsed by the pure parsers of `svsm_vtpm::{mssim, swtpm}`; a malformed or oversized frame closes that
//! connection with a logged reason and the server keeps serving everyone else. A client that disconnects
//! mid-command loses only the command it did not finish sending; anything acknowledged is already durable.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use svsm_libtpms::LibTpms;
use svsm_store::{OsRandom, VolumeId};
use svsm_vtpm::error::FrameError;
use svsm_vtpm::mssim::{self, CommandRequest, Parse, PlatformSignal};
use svsm_vtpm::swtpm::blob_type;
use svsm_vtpm::swtpm::{self, CtrlRequest, reply};
use svsm_vtpm::{NvBlob, Vtpm};
use tracing::{debug, error, info, trace, warn};

use super::stateblob::{self, StateBlobKey};

/// Tracing target of the TPM command/response recorder: at `trace` level every command and response on the
/// swtpm data channel is logged in hex (`SVSM_LOG=info,tpm_io=trace`). For debugging and firmware tests
/// only: commands carry authorization values.
pub const TPM_IO_TARGET: &str = "tpm_io";

/// The vTPM shared by all connections.
#[derive(Debug)]
pub struct Shared {
    vtpm: Mutex<Vtpm<LibTpms>>,
    allow_remote_stop: bool,
    stopping: AtomicBool,
    /// Migration and snapshots (GET/SET_STATEBLOB); `None` answers them with an error.
    blobs: Option<StateBlobs>,
}

/// The state-blob side of the control channel: the sealing key and what SET_STATEBLOB delivered so far.
#[derive(Debug)]
struct StateBlobs {
    key: StateBlobKey,
    incoming: Mutex<Incoming>,
}

/// Blobs received by SET_STATEBLOB, applied (durably) by the next CMD_INIT.
#[derive(Default)]
struct Incoming {
    /// Accept blobs of any vTPM sealed under this key until the first one fixes which (`serve --incoming`).
    adopt: bool,
    /// Volume id of the vTPM the pending blobs come from.
    source: Option<VolumeId>,
    pending: BTreeMap<u32, stateblob::Opened>,
    /// The last sealed blob of each type, so a GET with an offset continues the same bytes.
    last_sealed: BTreeMap<u32, Vec<u8>>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pending blobs are plain TPM state: only their types are shown.
        f.debug_struct("Incoming")
            .field("adopt", &self.adopt)
            .field("source", &self.source)
            .field("pending", &self.pending.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Wraps the process's vTPM with migration and snapshot support: state blobs sealed under `key`. With
    /// `incoming`, the vTPM has no state yet and takes it from the first blobs that authenticate.
    pub fn with_state_blobs(
        vtpm: Vtpm<LibTpms>,
        allow_remote_stop: bool,
        key: StateBlobKey,
        incoming: bool,
    ) -> Arc<Self> {
        let incoming = Mutex::new(Incoming { adopt: incoming, ..Incoming::default() });
        Arc::new(Shared {
            vtpm: Mutex::new(vtpm),
            allow_remote_stop,
            stopping: AtomicBool::new(false),
            blobs: Some(StateBlobs { key, incoming }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vtpm<LibTpms>> {
        self.vtpm.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Powers the vTPM off before the daemon closes its volumes. A command already running has finished
    /// when it returns (it held the same lock); anything a client sends later fails at the closed volume.
    pub fn power_off_for_shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.lock().power_off();
    }

    fn stop_requested(&self, peer: &str) {
        if self.allow_remote_stop {
            info!(%peer, "stop requested by client; powering off and exiting");
            self.power_off_for_shutdown();
            // `serve` waits for this signal and then closes the volumes cleanly (ledger advanced).
            // SAFETY: kill(2) on our own pid with a valid signal number has no memory-safety preconditions.
            unsafe { libc::kill(std::process::id() as libc::pid_t, libc::SIGTERM) };
            return;
        }
        warn!(%peer, "client asked the server to stop; ignored (start with --allow-remote-stop to permit)");
    }
}

/// The same vTPM as seen through the SVSM vTPM protocol (`serve --svsm-socket`): commands run at the
/// locality given, under the one lock every other client uses.
#[derive(Debug, Clone)]
pub struct SvsmVtpm(pub Arc<Shared>);

impl svsm_protocol::VtpmService for SvsmVtpm {
    fn send_command(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, svsm_protocol::VtpmError> {
        self.0.lock().execute_at(locality, command).map_err(|err| {
            error!(%err, "vTPM failed a command from the SVSM interface; response withheld");
            svsm_protocol::VtpmError::Engine("the vTPM engine failed; see the host log")
        })
    }
}

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    #[error("client disconnected in the middle of a frame ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("vTPM failed, response withheld: {0}")]
    Vtpm(#[from] svsm_vtpm::VtpmError),
    #[error("file descriptors refused: {0}")]
    Fds(String),
}

impl From<crate::sockets::FdError> for ConnError {
    fn from(e: crate::sockets::FdError) -> Self {
        match e {
            crate::sockets::FdError::Io(e) => ConnError::Io(e),
            e => ConnError::Fds(e.to_string()),
        }
    }
}

/// A byte stream plus, for Unix sockets, file descriptors passed alongside the bytes.
trait Conn: Read + Write {
    /// Reads like `read`, also returning every descriptor that arrived with the bytes (Unix sockets only),
    /// each owned so that dropping it closes it.
    fn read_with_fds(&mut self, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), ConnError> {
        Ok((self.read(buf)?, Vec::new()))
    }
}

impl Conn for TcpStream {}

impl Conn for UnixStream {
    fn read_with_fds(&mut self, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), ConnError> {
        Ok(crate::sockets::recv_with_fds(self, buf)?)
    }
}

/// Which channels take descriptors: only swtpm's control channel (for `CMD_SET_DATAFD`), and never more
/// than [`crate::sockets::MAX_FDS`] pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fds {
    Refuse,
    Accept,
}

/// Reads until `buf` holds `need` bytes. `Ok(false)`: clean EOF before any byte of a new frame.
fn fill(
    conn: &mut dyn Conn,
    buf: &mut Vec<u8>,
    need: usize,
    fds: &mut Vec<OwnedFd>,
    policy: Fds,
) -> Result<bool, ConnError> {
    // Read whatever is available (one syscall for a typical command), not just the missing bytes: frames
    // are at most MAX_TPM_MESSAGE + 9 bytes, so the buffer stays below twice that.
    let mut tmp = [0u8; 4096];
    while buf.len() < need {
        let (n, received) = match conn.read_with_fds(&mut tmp) {
            Ok(x) => x,
            Err(ConnError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(ConnError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset && buf.is_empty() => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if !received.is_empty() {
            if policy == Fds::Refuse {
                return Err(ConnError::Fds(format!("{} sent on a channel that takes none", received.len())));
            }
            fds.extend(received);
            if fds.len() > crate::sockets::MAX_FDS {
                return Err(ConnError::Fds(format!("{} pending, more than any command uses", fds.len())));
            }
        }
        if n == 0 {
            if buf.is_empty() {
                return Ok(false);
            }
            return Err(ConnError::Truncated { have: buf.len(), need });
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Ok(true)
}

/// Reads one complete frame with `parse`, returning the bytes it occupies (or `None` at clean EOF).
fn next_frame<T>(
    conn: &mut dyn Conn,
    buf: &mut Vec<u8>,
    fds: &mut Vec<OwnedFd>,
    policy: Fds,
    parse: impl Fn(&[u8]) -> Result<Parse<T>, FrameError>,
) -> Result<Option<usize>, ConnError> {
    loop {
        match parse(buf)? {
            Parse::Complete { consumed, .. } => return Ok(Some(consumed)),
            Parse::Incomplete { needed } => {
                if !fill(conn, buf, needed, fds, policy)? {
                    return Ok(None);
                }
            }
        }
    }
}

/// Drops a frame's borrowed contents, keeping only how far it reaches.
fn size_only<T>(p: Parse<T>) -> Parse<()> {
    match p {
        Parse::Complete { consumed, .. } => Parse::Complete { frame: (), consumed },
        Parse::Incomplete { needed } => Parse::Incomplete { needed },
    }
}

fn run_conn(kind: &'static str, peer: String, f: impl FnOnce() -> Result<(), ConnError>) {
    match f() {
        Ok(()) => debug!(kind, %peer, "connection closed"),
        Err(ConnError::Io(e)) => debug!(kind, %peer, error = %e, "connection ended"),
        Err(e @ ConnError::Vtpm(_)) => error!(kind, %peer, error = %e, "closing connection"),
        Err(e) => warn!(kind, %peer, reason = %e, "closing connection"),
    }
}

// ---- mssim ----

fn serve_mssim_command(conn: &mut dyn Conn, shared: &Shared, peer: &str) -> Result<(), ConnError> {
    let mut buf = Vec::new();
    let mut fds = Vec::new();
    while let Some(consumed) =
        next_frame(conn, &mut buf, &mut fds, Fds::Refuse, |b| mssim::parse_command(b).map(size_only))?
    {
        let mut out = Vec::new();
        let frame = match mssim::parse_command(&buf)? {
            Parse::Complete { frame, .. } => frame,
            Parse::Incomplete { .. } => unreachable_incomplete()?,
        };
        match frame {
            CommandRequest::SendCommand { locality, command } => {
                let resp = shared.lock().execute_at(locality, command)?;
                mssim::encode_response(&resp, &mut out);
            }
            CommandRequest::Handshake { client_version } => {
                debug!(%peer, client_version, "mssim handshake");
                for v in [mssim::SERVER_VERSION, mssim::HANDSHAKE_FLAGS, 0] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            CommandRequest::SetAlternativeResult(_) => out.extend_from_slice(&0u32.to_be_bytes()),
            CommandRequest::SessionEnd => return Ok(()),
            CommandRequest::Stop => {
                shared.stop_requested(peer);
                return Ok(());
            }
        }
        conn.write_all(&out)?;
        buf.drain(..consumed);
    }
    Ok(())
}

/// The parser said "complete" once and is deterministic; a second answer of "incomplete" cannot happen, but
/// is reported as an error rather than trusted.
fn unreachable_incomplete<T>() -> Result<T, ConnError> {
    Err(ConnError::Frame(FrameError::Unsupported("parser changed its mind")))
}

fn serve_mssim_platform(conn: &mut dyn Conn, shared: &Shared, peer: &str) -> Result<(), ConnError> {
    let mut buf = Vec::new();
    let mut fds = Vec::new();
    while let Some(consumed) =
        next_frame(conn, &mut buf, &mut fds, Fds::Refuse, |b| mssim::parse_platform(b).map(size_only))?
    {
        let signal = match mssim::parse_platform(&buf)? {
            Parse::Complete { frame, .. } => frame,
            Parse::Incomplete { .. } => unreachable_incomplete()?,
        };
        let ok = {
            let mut v = shared.lock();
            match signal {
                PlatformSignal::PowerOn => {
                    v.power_on().map_err(|e| error!(%peer, error = %e, "power on failed")).is_ok()
                }
                PlatformSignal::PowerOff => {
                    v.power_off();
                    true
                }
                PlatformSignal::Reset | PlatformSignal::Restart => {
                    v.reset().map_err(|e| error!(%peer, error = %e, "reset failed")).is_ok()
                }
                PlatformSignal::Nv(on) => {
                    v.set_nv(on);
                    true
                }
                PlatformSignal::Cancel(on) => {
                    if on {
                        v.cancel();
                    }
                    true
                }
                PlatformSignal::PhysicalPresence(_) | PlatformSignal::KeyCache(_) => true,
                PlatformSignal::SessionEnd => return Ok(()),
                PlatformSignal::Stop => {
                    drop(v);
                    shared.stop_requested(peer);
                    return Ok(());
                }
            }
        };
        conn.write_all(&u32::from(!ok).to_be_bytes())?;
        buf.drain(..consumed);
    }
    Ok(())
}

// ---- swtpm ----

fn serve_swtpm_data(conn: &mut dyn Conn, shared: &Shared) -> Result<(), ConnError> {
    let mut buf = Vec::new();
    let mut fds = Vec::new();
    while let Some(consumed) =
        next_frame(conn, &mut buf, &mut fds, Fds::Refuse, |b| swtpm::parse_data(b).map(size_only))?
    {
        let command = buf.get(..consumed).unwrap_or(&[]);
        let resp = {
            let mut v = shared.lock();
            let locality = v.locality();
            v.execute_at(locality, command)?
        };
        trace!(target: TPM_IO_TARGET, command = %super::hex(command), response = %super::hex(&resp));
        conn.write_all(&resp)?;
        buf.drain(..consumed);
    }
    Ok(())
}

fn serve_swtpm_ctrl(conn: &mut dyn Conn, shared: &Arc<Shared>, peer: &str) -> Result<(), ConnError> {
    let mut buf = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    loop {
        let consumed = match next_frame(conn, &mut buf, &mut fds, Fds::Accept, |b| {
            swtpm::parse_ctrl(b).map(size_only)
        }) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(ConnError::Frame(e)) => {
                // Answer so the client is not left waiting, then close: the body length is unknown.
                let _ = conn.write_all(&reply::result(swtpm::RESULT_BAD_ORDINAL));
                return Err(e.into());
            }
            Err(e) => return Err(e),
        };
        let req = match swtpm::parse_ctrl(&buf)? {
            Parse::Complete { frame, .. } => frame,
            Parse::Incomplete { .. } => unreachable_incomplete()?,
        };
        debug!(%peer, ?req, "swtpm control");
        let answer = {
            let mut v = shared.lock();
            let res = |ok: bool| reply::result(if ok { 0 } else { swtpm::RESULT_FAIL });
            match req {
                CtrlRequest::GetCapability => reply::capability(swtpm::CAPABILITIES),
                CtrlRequest::Init { flags } if shared.has_pending_blobs() => {
                    res(shared.apply_incoming(&mut v, flags, peer))
                }
                CtrlRequest::GetStateBlob { flags: _, blob_type: kind, offset } => {
                    shared.get_state_blob(&mut v, kind, offset, peer)
                }
                CtrlRequest::SetStateBlob { flags, blob_type: kind, data } => {
                    reply::result(shared.set_state_blob(&v, flags, kind, data, peer))
                }
                CtrlRequest::Init { flags } => {
                    v.power_off();
                    let mut ok = true;
                    if flags & swtpm::INIT_FLAG_DELETE_VOLATILE != 0 {
                        ok = matches!(
                            v.engine_mut().with_storage(|s| s.delete(NvBlob::Volatile)),
                            Some(Ok(()))
                        );
                    }
                    ok = ok && v.power_on().map_err(|e| error!(%peer, error = %e, "CMD_INIT failed")).is_ok();
                    res(ok)
                }
                CtrlRequest::Shutdown | CtrlRequest::Stop => {
                    v.power_off();
                    res(true)
                }
                CtrlRequest::GetEstablished => match v.established() {
                    Ok(bit) => reply::established(0, bit),
                    Err(_) => reply::established(swtpm::RESULT_FAIL, false),
                },
                CtrlRequest::SetLocality(l) => res(v.set_locality(l).is_ok()),
                CtrlRequest::Cancel => {
                    v.cancel();
                    res(true)
                }
                CtrlRequest::StoreVolatile => res(v.store_volatile().is_ok()),
                CtrlRequest::ResetEstablished(l) => res(v.reset_established(l).is_ok()),
                CtrlRequest::GetConfig => reply::config(0, 0),
                CtrlRequest::SetBufferSize(n) => {
                    let (size, min, max) = v.set_buffer_size(n);
                    reply::buffer_size(0, size, min, max)
                }
                CtrlRequest::SetDataFd => match (fds.len() == 1).then(|| fds.pop()).flatten() {
                    Some(fd) => {
                        let data = UnixStream::from(fd);
                        let shared2 = Arc::clone(shared);
                        let p = format!("{peer} (data fd)");
                        std::thread::spawn(move || {
                            let mut data = data;
                            run_conn("swtpm-data", p, || serve_swtpm_data(&mut data, &shared2));
                        });
                        res(true)
                    }
                    None => {
                        warn!(%peer, fds = fds.len(), "CMD_SET_DATAFD needs exactly one descriptor");
                        res(false)
                    }
                },
            }
        };
        // Descriptors that came with any other command (or extra ones) are closed here, not kept.
        fds.clear();
        conn.write_all(&answer)?;
        buf.drain(..consumed);
    }
}

// ---- state blobs (migration, snapshots) ----

impl Shared {
    fn has_pending_blobs(&self) -> bool {
        self.blobs.as_ref().is_some_and(|b| !lock_incoming(b).pending.is_empty())
    }

    /// CMD_GET_STATEBLOB: the blob of `kind`, sealed. Permanent state comes from the store (every NV change is
    /// already there), volatile state from the running TPM.
    fn get_state_blob(&self, v: &mut Vtpm<LibTpms>, kind: u32, offset: u32, peer: &str) -> Vec<u8> {
        let fail = |code: u32| reply::state_blob(code, 0, &[]);
        let Some(blobs) = &self.blobs else {
            warn!(%peer, "CMD_GET_STATEBLOB refused: this daemon was started without state-blob support");
            return fail(swtpm::RESULT_BAD_ORDINAL);
        };
        let mut incoming = lock_incoming(blobs);
        let sealed = if offset == 0 {
            let sealed = match read_state(v, kind) {
                Ok(None) => return reply::state_blob(0, 0, &[]),
                Ok(Some((state, record))) => blobs.key.seal(kind, &state, record.as_deref(), &mut OsRandom),
                Err(e) => {
                    error!(%peer, kind, error = %e, "CMD_GET_STATEBLOB failed");
                    return fail(swtpm::RESULT_FAIL);
                }
            };
            match sealed {
                Ok(b) => {
                    incoming.last_sealed.insert(kind, b);
                }
                Err(e) => {
                    error!(%peer, kind, error = %e, "sealing the state blob failed");
                    return fail(swtpm::RESULT_FAIL);
                }
            }
            &incoming.last_sealed[&kind]
        } else {
            match incoming.last_sealed.get(&kind) {
                Some(b) => b,
                None => return fail(swtpm::RESULT_BAD_PARAMETER),
            }
        };
        match sealed.get(offset as usize..) {
            Some(rest) => reply::state_blob(0, swtpm::STATE_FLAG_ENCRYPTED, rest),
            None => fail(swtpm::RESULT_BAD_PARAMETER),
        }
    }

    /// CMD_SET_STATEBLOB: verifies and stages one blob; the next CMD_INIT makes the set durable and loads it.
    fn set_state_blob(&self, v: &Vtpm<LibTpms>, flags: u32, kind: u32, data: &[u8], peer: &str) -> u32 {
        let Some(blobs) = &self.blobs else {
            warn!(%peer, "CMD_SET_STATEBLOB refused: this daemon was started without state-blob support");
            return swtpm::RESULT_BAD_ORDINAL;
        };
        if v.is_powered() {
            warn!(%peer, kind, "CMD_SET_STATEBLOB refused: the TPM is running (send CMD_STOP first)");
            return swtpm::RESULT_INVALID_POSTINIT;
        }
        if !matches!(kind, blob_type::PERMANENT | blob_type::VOLATILE | blob_type::SAVESTATE) {
            warn!(%peer, kind, "CMD_SET_STATEBLOB refused: unknown blob type");
            return swtpm::RESULT_BAD_PARAMETER;
        }
        if flags & swtpm::STATE_FLAG_ENCRYPTED == 0 {
            warn!(%peer, kind, "CMD_SET_STATEBLOB refused: unencrypted state blobs are not accepted");
            return swtpm::RESULT_DECRYPT_ERROR;
        }
        let mut incoming = lock_incoming(blobs);
        let expect = incoming.source.or((!incoming.adopt).then(|| blobs.key.volume()));
        match blobs.key.open(kind, data, expect) {
            Ok(opened) => {
                info!(%peer, kind, len = data.len(), source = %opened.volume, "state blob accepted");
                incoming.source = Some(opened.volume);
                incoming.pending.insert(kind, opened);
                0
            }
            Err(e) => {
                error!(%peer, kind, error = %e, "state blob refused");
                swtpm::RESULT_DECRYPT_ERROR
            }
        }
    }

    /// CMD_INIT after SET_STATEBLOB: commits the received state to the store in one durable transaction, then
    /// powers the TPM on from it. Blobs QEMU did not send (empty ones) are deleted, so nothing of the previous
    /// state mixes in.
    fn apply_incoming(&self, v: &mut Vtpm<LibTpms>, flags: u32, peer: &str) -> bool {
        let Some(blobs) = &self.blobs else { return false };
        let mut incoming = lock_incoming(blobs);
        let pending = std::mem::take(&mut incoming.pending);
        let source = incoming.source.take();
        v.power_off();
        let Some(perm) = pending.get(&blob_type::PERMANENT) else {
            error!(%peer, "CMD_INIT refused: state blobs arrived without the permanent one");
            return false;
        };
        let state = |k: u32| pending.get(&k).map(|o| &o.state[..]);
        let mut changes: Vec<(NvBlob, Option<&[u8]>)> = vec![
            (NvBlob::Permanent, Some(&perm.state[..])),
            (NvBlob::Volatile, state(blob_type::VOLATILE)),
            (NvBlob::SaveState, state(blob_type::SAVESTATE)),
        ];
        if let Some(record) = &perm.manufacture {
            changes.push((NvBlob::Manufacture, Some(record)));
        }
        match v.engine_mut().with_storage(|s| s.commit(&changes)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                error!(%peer, error = %e, "CMD_INIT failed: the received state could not be stored");
                return false;
            }
            None => return false,
        }
        if let Err(e) = v.power_on() {
            error!(%peer, error = %e, "CMD_INIT failed: the TPM did not start from the received state");
            return false;
        }
        if flags & swtpm::INIT_FLAG_DELETE_VOLATILE != 0
            && !matches!(v.engine_mut().with_storage(|s| s.delete(NvBlob::Volatile)), Some(Ok(())))
        {
            error!(%peer, "CMD_INIT: deleting the loaded volatile state failed");
            return false;
        }
        incoming.adopt = false;
        info!(%peer, source = ?source.map(|s| s.to_string()), "TPM state restored from state blobs and stored");
        true
    }
}

fn lock_incoming(blobs: &StateBlobs) -> MutexGuard<'_, Incoming> {
    blobs.incoming.lock().unwrap_or_else(|p| p.into_inner())
}

/// The plain state of blob `kind` and, for the permanent blob, the manufacture record. `None`: no such state
/// (an empty blob to QEMU).
type PlainState = (zeroize::Zeroizing<Vec<u8>>, Option<Vec<u8>>);

fn read_state(v: &mut Vtpm<LibTpms>, kind: u32) -> anyhow::Result<Option<PlainState>> {
    let load = |v: &mut Vtpm<LibTpms>, blob: NvBlob| -> anyhow::Result<Option<svsm_vtpm::NvData>> {
        match v.engine_mut().with_storage(|s| s.load(blob)) {
            Some(r) => Ok(r?),
            None => anyhow::bail!("the TPM engine stopped after a storage failure"),
        }
    };
    Ok(match kind {
        blob_type::PERMANENT => match load(v, NvBlob::Permanent)? {
            Some(p) => Some((p, load(v, NvBlob::Manufacture)?.map(|r| r.to_vec()))),
            None => None,
        },
        blob_type::VOLATILE if v.is_powered() => Some((zeroize::Zeroizing::new(v.volatile_state()?), None)),
        blob_type::VOLATILE => None,
        blob_type::SAVESTATE => load(v, NvBlob::SaveState)?.map(|s| (s, None)),
        other => anyhow::bail!("unknown state blob type {other}"),
    })
}

// ---- listeners ----

/// What to listen on.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Address to bind (loopback by default).
    pub ip: IpAddr,
    /// mssim command port (platform = +1); `None` disables mssim; `Some(0)` picks free ports.
    pub mssim_port: Option<u16>,
    /// swtpm data port (control = +1); `None` disables; `Some(0)` picks free ports.
    pub swtpm_port: Option<u16>,
    /// swtpm Unix sockets: data at this path, control at `<path>.ctrl`.
    pub swtpm_unix: Option<PathBuf>,
    /// Who may connect to the Unix sockets.
    pub access: crate::sockets::SocketAccess,
}

/// Addresses actually bound.
#[derive(Debug, Clone)]
pub struct Bound {
    /// mssim command address.
    pub mssim: Option<SocketAddr>,
    /// swtpm data address.
    pub swtpm: Option<SocketAddr>,
    /// swtpm Unix data socket and control socket.
    pub swtpm_unix: Option<(PathBuf, PathBuf)>,
}

/// Binds `port` and `port + 1` (or a free pair when `port` is 0).
fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(TcpListener, TcpListener)> {
    if port != 0 {
        let next = port.checked_add(1).ok_or_else(|| io::Error::other("port 65535 has no +1 companion"))?;
        return Ok((TcpListener::bind((ip, port))?, TcpListener::bind((ip, next))?));
    }
    for _ in 0..64 {
        let a = TcpListener::bind((ip, 0))?;
        let p = a.local_addr()?.port();
        if let Some(next) = p.checked_add(1)
            && let Ok(b) = TcpListener::bind((ip, next))
        {
            return Ok((a, b));
        }
    }
    Err(io::Error::other("no free pair of adjacent ports"))
}

fn spawn_tcp(
    listener: TcpListener,
    kind: &'static str,
    shared: &Arc<Shared>,
    handler: fn(&mut dyn Conn, &Arc<Shared>, &str) -> Result<(), ConnError>,
) {
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        crate::sockets::accept_forever(
            kind,
            || listener.accept(),
            |(mut s, addr): (TcpStream, SocketAddr)| {
                let _ = s.set_nodelay(true);
                let peer = addr.to_string();
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || run_conn(kind, peer.clone(), || handler(&mut s, &shared, &peer)));
            },
        )
    });
}

fn spawn_unix(
    listener: UnixListener,
    kind: &'static str,
    shared: &Arc<Shared>,
    handler: fn(&mut dyn Conn, &Arc<Shared>, &str) -> Result<(), ConnError>,
) {
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        crate::sockets::accept_forever(
            kind,
            || listener.accept(),
            |(mut s, _)| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    run_conn(kind, "unix".into(), || handler(&mut s, &shared, "unix"))
                });
            },
        )
    });
}

/// Binds every configured socket and starts serving on background threads.
pub fn start(shared: &Arc<Shared>, listen: &Listen) -> io::Result<Bound> {
    let mut bound = Bound { mssim: None, swtpm: None, swtpm_unix: None };
    if let Some(port) = listen.mssim_port {
        let (cmd, plat) = bind_pair(listen.ip, port)?;
        bound.mssim = Some(cmd.local_addr()?);
        spawn_tcp(cmd, "mssim-command", shared, |c, s, p| serve_mssim_command(c, s, p));
        spawn_tcp(plat, "mssim-platform", shared, |c, s, p| serve_mssim_platform(c, s, p));
    }
    if let Some(port) = listen.swtpm_port {
        let (data, ctrl) = bind_pair(listen.ip, port)?;
        bound.swtpm = Some(data.local_addr()?);
        spawn_tcp(data, "swtpm-data", shared, |c, s, _| serve_swtpm_data(c, s));
        spawn_tcp(ctrl, "swtpm-ctrl", shared, serve_swtpm_ctrl);
    }
    if let Some(path) = &listen.swtpm_unix {
        let ctrl_path = PathBuf::from(format!("{}.ctrl", path.display()));
        let data = crate::sockets::bind_unix(path, listen.access)?;
        let ctrl = crate::sockets::bind_unix(&ctrl_path, listen.access)?;
        spawn_unix(data, "swtpm-data", shared, |c, s, _| serve_swtpm_data(c, s));
        spawn_unix(ctrl, "swtpm-ctrl", shared, serve_swtpm_ctrl);
        bound.swtpm_unix = Some((path.clone(), ctrl_path));
    }
    Ok(bound)
}
