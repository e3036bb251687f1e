//! `TpmDouble`: a **test double** of a TPM engine, so [`crate::Vtpm`] and [`crate::manufacture`] can be tested
//! without libtpms. Only compiled with the `test-utils` feature, which no default feature enables; production
//! always runs the real engine (`svsm-libtpms`).
//!
//! It keeps the [`TpmEngine`] contract the real engine keeps, which is what the tests are about:
//!
//! * `power_on` loads the `Permanent` blob from the [`NvStorage`]; with no blob it manufactures a fresh seed
//!   only when created with [`DoubleMode::MayManufacture`], otherwise it fails with
//!   [`EngineError::StateMissing`]. A stored `Volatile` blob is resumed once and then deleted.
//! * Every NV-changing command (NV_DefineSpace, NV_Write, EvictControl, Shutdown) stores the new `Permanent`
//!   blob **before** `execute` returns the response; if the store fails the response is withheld
//!   ([`EngineError::Persist`]) and the engine refuses everything ([`EngineError::Stopped`]) from then on.
//! * Commands are parsed and answered in TPM 2.0 wire format with the crate's own codec ([`crate::marshal`]):
//!   TPM_RC_INITIALIZE before Startup, TPM_RC_COMMAND_CODE for commands it does not implement.
//!
//! It is not a TPM: a "key" from CreatePrimary is a SHA-256 expansion of the seed and the template, with no
//! private part and no cryptographic meaning. The supported commands are the ones manufacturing and survey
//! issue (Startup, Shutdown, CreatePrimary, FlushContext, EvictControl, NV_DefineSpace, NV_Write,
//! NV_ReadPublic, ReadPublic, GetRandom).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use crate::api::{NvBlob, NvStorage, TpmEngine};
use crate::error::{EngineError, MarshalError, StorageError};
use crate::marshal::{
    self, CommandHeader, NvPublic, PublicArea, PublicKey, Reader, alg, cc, nv_attr, rc, st,
};

/// TPM_RC_HANDLE (format 1, no parameter number): a handle that refers to nothing.
pub const RC_HANDLE: u32 = crate::marshal::rc::HANDLE;
/// TPM_RC_NV_DEFINED: the NV index already exists.
pub const RC_NV_DEFINED: u32 = crate::marshal::rc::NV_DEFINED;
/// TPM_RC_NV_RANGE: an NV write beyond the index's size.
pub const RC_NV_RANGE: u32 = crate::marshal::rc::NV_RANGE;
/// TPM_RC_BAD_LOCALITY as the real engine reports a locality-refused established-flag reset.
pub const RC_LOCALITY: u32 = crate::marshal::rc::LOCALITY;

/// Whether the double may manufacture a TPM when storage holds no state (as `svsm_libtpms::StateMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoubleMode {
    /// Missing state: manufacture a fresh seed.
    MayManufacture,
    /// Missing state is [`EngineError::StateMissing`].
    RequireExisting,
}

const PERM_MAGIC: &[u8; 8] = b"TPMDBL01";
const VOL_MAGIC: &[u8; 8] = b"TPMDBLV1";
const FIRST_TRANSIENT: u32 = 0x8000_0000;

/// The permanent state of the double (what libtpms keeps in `permall`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Permanent {
    seed: [u8; 32],
    nv: BTreeMap<u32, (NvPublic, Vec<u8>)>,
    persistent: BTreeMap<u32, Vec<u8>>,
    /// Whether the last shutdown was Shutdown(STATE) (TPM2_Startup(STATE) would resume).
    saved: bool,
}

impl Permanent {
    fn encode(&self) -> Result<Vec<u8>, MarshalError> {
        let mut out = Vec::new();
        out.extend_from_slice(PERM_MAGIC);
        out.extend_from_slice(&self.seed);
        out.push(u8::from(self.saved));
        out.extend_from_slice(
            &u16::try_from(self.nv.len()).map_err(|_| MarshalError::TooLarge)?.to_be_bytes(),
        );
        for (public, data) in self.nv.values() {
            marshal::put_tpm2b(&mut out, &public.marshal()?)?;
            marshal::put_tpm2b(&mut out, data)?;
        }
        let n = u16::try_from(self.persistent.len()).map_err(|_| MarshalError::TooLarge)?;
        out.extend_from_slice(&n.to_be_bytes());
        for (handle, public) in &self.persistent {
            out.extend_from_slice(&handle.to_be_bytes());
            marshal::put_tpm2b(&mut out, public)?;
        }
        Ok(out)
    }

    fn decode(buf: &[u8]) -> Result<Self, MarshalError> {
        let mut r = Reader::new(buf);
        if r.take(8)? != PERM_MAGIC {
            return Err(MarshalError::Unsupported("not a TPM double permanent blob"));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(r.take(32)?);
        let saved = r.u8()? != 0;
        let mut nv = BTreeMap::new();
        for _ in 0..r.u16()? {
            let public = NvPublic::parse(r.tpm2b()?)?;
            let data = r.tpm2b()?.to_vec();
            nv.insert(public.index, (public, data));
        }
        let mut persistent = BTreeMap::new();
        for _ in 0..r.u16()? {
            let handle = r.u32()?;
            persistent.insert(handle, r.tpm2b()?.to_vec());
        }
        if r.remaining() != 0 {
            return Err(MarshalError::Unsupported("trailing bytes after TPM double state"));
        }
        Ok(Permanent { seed, nv, persistent, saved })
    }
}

/// A TPM engine test double over any [`NvStorage`]; see the module documentation for its contract.
#[derive(Debug)]
pub struct TpmDouble<S> {
    storage: S,
    mode: DoubleMode,
    manufacture_seed: [u8; 32],
    state: Option<Permanent>,
    started: bool,
    established: bool,
    stopped: bool,
    transient: BTreeMap<u32, Vec<u8>>,
    next_handle: u32,
    stores: u64,
    cancel_requested: bool,
    /// Locality of every command executed, in order (so tests see what the platform passed down).
    pub localities: Vec<u8>,
}

impl<S: NvStorage> TpmDouble<S> {
    /// A powered-off double over `storage`. `manufacture_seed` becomes the endorsement seed if it manufactures.
    pub fn new(storage: S, mode: DoubleMode, manufacture_seed: [u8; 32]) -> Self {
        TpmDouble {
            storage,
            mode,
            manufacture_seed,
            state: None,
            started: false,
            established: false,
            stopped: false,
            transient: BTreeMap::new(),
            next_handle: FIRST_TRANSIENT,
            stores: 0,
            cancel_requested: false,
            localities: Vec::new(),
        }
    }

    /// The storage (to inspect what was made durable).
    pub fn storage(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Unwraps the storage.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Sets the established flag, as a dynamic root of trust (`_TPM_Hash_Start`) would.
    pub fn assert_established(&mut self) {
        self.established = true;
    }

    /// Whether a cancel was requested since the last command.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    fn persist(&mut self) -> Result<(), EngineError> {
        let encoded = match &self.state {
            Some(s) => s.encode().map_err(|_| {
                EngineError::Persist(StorageError::Corrupt("TPM double state too large".into()))
            })?,
            None => return Err(EngineError::NotPowered),
        };
        match self.storage.store(NvBlob::Permanent, &encoded) {
            Ok(()) => {
                self.stores = self.stores.saturating_add(1);
                Ok(())
            }
            Err(e) => {
                // As the real engine: NV in memory and on disk disagree, so stop serving.
                self.stopped = true;
                self.power_off();
                Err(EngineError::Persist(e))
            }
        }
    }

    fn derive_public(&self, template: &PublicArea) -> Result<PublicArea, MarshalError> {
        let seed = self.state.as_ref().map(|s| s.seed).unwrap_or_default();
        let tmpl = template.marshal()?;
        let expand = |label: u8, len: usize| {
            let mut out = Vec::with_capacity(len);
            let mut counter = 0u32;
            while out.len() < len {
                let mut h = Sha256::new();
                h.update(seed);
                h.update([label]);
                h.update(counter.to_be_bytes());
                h.update(&tmpl);
                out.extend_from_slice(&h.finalize());
                counter = counter.wrapping_add(1);
            }
            out.truncate(len);
            out
        };
        let mut key = template.key.clone();
        match &mut key {
            PublicKey::Rsa { key_bits, modulus, .. } => *modulus = expand(0, usize::from(*key_bits / 8)),
            PublicKey::Ecc { x, y, .. } => {
                *x = expand(1, 32);
                *y = expand(2, 32);
            }
            PublicKey::KeyedHash { unique, .. } | PublicKey::SymCipher { unique, .. } => {
                *unique = expand(3, 32)
            }
        }
        Ok(PublicArea { key, ..template.clone() })
    }

    fn process(&mut self, command: &[u8]) -> Result<Vec<u8>, EngineError> {
        let header = match CommandHeader::parse(command) {
            Ok(h) if h.tag == st::NO_SESSIONS || h.tag == st::SESSIONS => h,
            _ => return Ok(marshal::error_response(0x01E)), // TPM_RC_BAD_TAG / size
        };
        if !self.started && header.code != cc::STARTUP {
            return Ok(marshal::error_response(rc::INITIALIZE));
        }
        let handles = match header.code {
            cc::CREATE_PRIMARY | cc::FLUSH_CONTEXT | cc::NV_DEFINE_SPACE => 1,
            cc::NV_READ_PUBLIC | cc::READ_PUBLIC => 1,
            cc::EVICT_CONTROL | cc::NV_WRITE => 2,
            _ => 0,
        };
        let mut r = Reader::new(command.get(marshal::HEADER_SIZE..).unwrap_or(&[]));
        let parsed = (|| -> Result<(Vec<u32>, Reader<'_>), MarshalError> {
            let hs: Vec<u32> = if header.code == cc::FLUSH_CONTEXT {
                Vec::new() // FlushContext carries its handle as a parameter
            } else {
                (0..handles).map(|_| r.u32()).collect::<Result<_, _>>()?
            };
            if header.tag == st::SESSIONS {
                let n = r.u32()?;
                r.take(usize::try_from(n).map_err(|_| MarshalError::TooLarge)?)?;
            }
            Ok((hs, r.clone()))
        })();
        let Ok((hs, mut p)) = parsed else { return Ok(marshal::error_response(0x095)) }; // TPM_RC_INSUFFICIENT
        match self.dispatch(header.code, header.tag, &hs, &mut p) {
            Ok(resp) => Ok(resp),
            Err(DoubleError::Rc(code)) => Ok(marshal::error_response(code)),
            Err(DoubleError::Malformed) => Ok(marshal::error_response(0x095)),
            Err(DoubleError::Engine(e)) => Err(e),
        }
    }

    fn dispatch(
        &mut self,
        code: u32,
        tag: u16,
        hs: &[u32],
        p: &mut Reader<'_>,
    ) -> Result<Vec<u8>, DoubleError> {
        let h0 = hs.first().copied().unwrap_or(0);
        let h1 = hs.get(1).copied().unwrap_or(0);
        let state = self.state.as_mut().ok_or(DoubleError::Engine(EngineError::NotPowered))?;
        match code {
            cc::STARTUP => {
                let su = p.u16()?;
                if self.started {
                    return Err(DoubleError::Rc(rc::INITIALIZE));
                }
                if su == marshal::su::STATE && !state.saved {
                    return Err(DoubleError::Rc(0x0C4)); // TPM_RC_VALUE | parameter 1
                }
                self.started = true;
                Ok(respond(tag, None, &[])?)
            }
            cc::SHUTDOWN => {
                state.saved = p.u16()? == marshal::su::STATE;
                self.persist()?;
                Ok(respond(tag, None, &[])?)
            }
            cc::GET_RANDOM => {
                let n = usize::from(p.u16()?.min(32));
                let mut h = Sha256::new();
                h.update(state.seed);
                h.update(self.stores.to_be_bytes());
                h.update(self.next_handle.to_be_bytes());
                let mut params = Vec::new();
                marshal::put_tpm2b(&mut params, h.finalize().get(..n).unwrap_or(&[]))?;
                Ok(respond(tag, None, &params)?)
            }
            cc::CREATE_PRIMARY => {
                if h0 != marshal::rh::ENDORSEMENT && h0 != marshal::rh::OWNER && h0 != marshal::rh::PLATFORM {
                    return Err(DoubleError::Rc(RC_HANDLE));
                }
                p.tpm2b()?; // inSensitive
                let template = PublicArea::parse(p.tpm2b()?)?;
                p.tpm2b()?; // outsideInfo
                p.u32()?; // creationPCR count (0 from our builder)
                let public = self.derive_public(&template)?.marshal()?;
                let handle = self.next_handle;
                self.next_handle = self.next_handle.wrapping_add(1);
                let name = name_of(&public)?;
                self.transient.insert(handle, public.clone());
                let mut params = Vec::new();
                marshal::put_tpm2b(&mut params, &public)?;
                marshal::put_tpm2b(&mut params, &[])?; // creationData
                marshal::put_tpm2b(&mut params, &[])?; // creationHash
                params.extend_from_slice(&0x8021u16.to_be_bytes()); // TPM_ST_CREATION
                params.extend_from_slice(&h0.to_be_bytes());
                marshal::put_tpm2b(&mut params, &[])?; // ticket digest
                marshal::put_tpm2b(&mut params, &name)?;
                Ok(respond(tag, Some(handle), &params)?)
            }
            cc::FLUSH_CONTEXT => {
                let handle = p.u32()?;
                self.transient.remove(&handle).ok_or(DoubleError::Rc(RC_HANDLE))?;
                Ok(respond(tag, None, &[])?)
            }
            cc::EVICT_CONTROL => {
                let persistent = p.u32()?;
                let public = self.transient.get(&h1).cloned().ok_or(DoubleError::Rc(RC_HANDLE))?;
                if state.persistent.contains_key(&persistent) {
                    return Err(DoubleError::Rc(0x14C)); // TPM_RC_NV_DEFINED
                }
                state.persistent.insert(persistent, public);
                self.persist()?;
                Ok(respond(tag, None, &[])?)
            }
            cc::NV_DEFINE_SPACE => {
                p.tpm2b()?; // auth
                let public = NvPublic::parse(p.tpm2b()?)?;
                if state.nv.contains_key(&public.index) {
                    return Err(DoubleError::Rc(RC_NV_DEFINED));
                }
                let size = usize::from(public.data_size);
                state.nv.insert(public.index, (public, alloc::vec![0; size]));
                self.persist()?;
                Ok(respond(tag, None, &[])?)
            }
            cc::NV_WRITE => {
                let data = p.tpm2b()?.to_vec();
                let offset = usize::from(p.u16()?);
                let (public, contents) = state.nv.get_mut(&h1).ok_or(DoubleError::Rc(RC_HANDLE))?;
                let end = offset.checked_add(data.len()).filter(|&e| e <= contents.len());
                let range =
                    end.and_then(|e| contents.get_mut(offset..e)).ok_or(DoubleError::Rc(RC_NV_RANGE))?;
                range.copy_from_slice(&data);
                public.attributes |= nv_attr::WRITTEN;
                self.persist()?;
                Ok(respond(tag, None, &[])?)
            }
            cc::NV_READ_PUBLIC => {
                let (public, _) = state.nv.get(&h0).ok_or(DoubleError::Rc(RC_HANDLE))?;
                let bytes = public.marshal()?;
                let mut params = Vec::new();
                marshal::put_tpm2b(&mut params, &bytes)?;
                marshal::put_tpm2b(&mut params, &name_of(&bytes)?)?;
                Ok(respond(tag, None, &params)?)
            }
            cc::READ_PUBLIC => {
                let public = state
                    .persistent
                    .get(&h0)
                    .or_else(|| self.transient.get(&h0))
                    .ok_or(DoubleError::Rc(RC_HANDLE))?;
                let mut params = Vec::new();
                marshal::put_tpm2b(&mut params, public)?;
                marshal::put_tpm2b(&mut params, &name_of(public)?)?;
                marshal::put_tpm2b(&mut params, &name_of(public)?)?; // qualifiedName
                Ok(respond(tag, None, &params)?)
            }
            _ => Err(DoubleError::Rc(rc::COMMAND_CODE)),
        }
    }
}

/// Why a command was not answered with success: a TPM response code, a malformed command (answered with
/// TPM_RC_INSUFFICIENT, as a TPM answers a short parameter area), or an engine failure (no response).
enum DoubleError {
    Rc(u32),
    Malformed,
    Engine(EngineError),
}

impl From<MarshalError> for DoubleError {
    fn from(_: MarshalError) -> Self {
        DoubleError::Malformed
    }
}

impl From<EngineError> for DoubleError {
    fn from(e: EngineError) -> Self {
        DoubleError::Engine(e)
    }
}

/// nameAlg (SHA-256) || SHA-256(public).
fn name_of(public: &[u8]) -> Result<Vec<u8>, MarshalError> {
    let mut name = alg::SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(public));
    Ok(name)
}

/// A success response: the command's tag, an optional output handle, then the parameters (with
/// parameterSize and one empty password-session acknowledgement when the command carried sessions).
fn respond(tag: u16, handle: Option<u32>, params: &[u8]) -> Result<Vec<u8>, MarshalError> {
    let mut out = Vec::with_capacity(marshal::HEADER_SIZE + 16 + params.len());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&rc::SUCCESS.to_be_bytes());
    if let Some(h) = handle {
        out.extend_from_slice(&h.to_be_bytes());
    }
    if tag == st::SESSIONS {
        out.extend_from_slice(
            &u32::try_from(params.len()).map_err(|_| MarshalError::TooLarge)?.to_be_bytes(),
        );
        out.extend_from_slice(params);
        out.extend_from_slice(&[0, 0, 0x01, 0, 0]); // nonceTPM empty, continueSession, hmac empty
    } else {
        out.extend_from_slice(params);
    }
    let size = u32::try_from(out.len()).map_err(|_| MarshalError::TooLarge)?;
    out.get_mut(2..6).ok_or(MarshalError::TooLarge)?.copy_from_slice(&size.to_be_bytes());
    Ok(out)
}

impl<S: NvStorage> TpmEngine for TpmDouble<S> {
    fn power_on(&mut self) -> Result<(), EngineError> {
        if self.state.is_some() {
            return Ok(());
        }
        if self.stopped {
            return Err(EngineError::Stopped);
        }
        let (state, fresh) = match self.storage.load(NvBlob::Permanent).map_err(EngineError::Persist)? {
            Some(blob) => (
                Permanent::decode(&blob)
                    .map_err(|_| EngineError::Persist(StorageError::Corrupt("TPM double state".into())))?,
                false,
            ),
            None if self.mode == DoubleMode::MayManufacture => {
                (Permanent { seed: self.manufacture_seed, ..Permanent::default() }, true)
            }
            None => return Err(EngineError::StateMissing),
        };
        self.state = Some(state);
        self.started = false;
        self.transient.clear();
        self.next_handle = FIRST_TRANSIENT;
        if fresh {
            // Manufacturing writes the new seeds, as libtpms does on its first power-on.
            self.persist()?;
        }
        if let Some(vol) = self.storage.load(NvBlob::Volatile).map_err(EngineError::Persist)? {
            // Resume once: the volatile blob says the TPM was started; it must not be resumed twice.
            self.started = vol.get(..8) == Some(&VOL_MAGIC[..]) && vol.get(8) == Some(&1);
            if let Err(e) = self.storage.delete(NvBlob::Volatile) {
                self.power_off();
                return Err(EngineError::Persist(e));
            }
        }
        Ok(())
    }

    fn power_off(&mut self) {
        self.state = None;
        self.started = false;
        self.transient.clear();
    }

    fn is_powered(&self) -> bool {
        self.state.is_some()
    }

    fn execute(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, EngineError> {
        if self.stopped {
            return Err(EngineError::Stopped);
        }
        if self.state.is_none() {
            return Err(EngineError::NotPowered);
        }
        if command.len() > crate::MAX_TPM_MESSAGE {
            return Err(EngineError::CommandTooLarge(command.len()));
        }
        self.localities.push(locality);
        if core::mem::take(&mut self.cancel_requested) {
            return Ok(marshal::error_response(rc::CANCELED));
        }
        self.process(command)
    }

    fn cancel(&mut self) {
        if self.state.is_some() {
            self.cancel_requested = true;
        }
    }

    fn established(&mut self) -> Result<bool, EngineError> {
        if self.state.is_none() {
            return Err(EngineError::NotPowered);
        }
        Ok(self.established)
    }

    fn reset_established(&mut self, locality: u8) -> Result<(), EngineError> {
        if self.state.is_none() {
            return Err(EngineError::NotPowered);
        }
        // PC Client platform rule: only localities 3 and 4 may reset the flag.
        if locality < 3 {
            return Err(EngineError::Process(RC_LOCALITY));
        }
        self.established = false;
        Ok(())
    }

    fn store_volatile(&mut self) -> Result<(), EngineError> {
        let data = self.volatile_state()?;
        self.storage.store(NvBlob::Volatile, &data).map_err(EngineError::Persist)
    }

    fn volatile_state(&mut self) -> Result<Vec<u8>, EngineError> {
        if self.state.is_none() {
            return Err(EngineError::NotPowered);
        }
        let mut v = VOL_MAGIC.to_vec();
        v.push(u8::from(self.started));
        Ok(v)
    }

    fn set_buffer_size(&mut self, wanted: u32) -> (u32, u32, u32) {
        const MIN: u32 = 2048;
        const MAX: u32 = crate::MAX_TPM_MESSAGE as u32;
        let size = if wanted == 0 { MAX } else { wanted.clamp(MIN, MAX) };
        (size, MIN, MAX)
    }

    fn store_count(&self) -> u64 {
        self.stores
    }
}
