//! libtpms as a [`svsm_vtpm::TpmEngine`].
//!
//! libtpms keeps the whole TPM in C globals and is not thread-safe, so this crate makes misuse impossible
//! rather than documented: [`LibTpms::new`] succeeds for only one engine per process at a time (a second is
//! [`EngineError::AlreadyInUse`]), every libtpms call goes through `&mut self` of that one value, and the NV
//! callbacks reach the engine's [`NvStorage`] through a process-wide slot that is only locked inside a
//! callback (never around a libtpms call, which would deadlock when the callback runs).
//!
//! Durability: `storedata` commits to the storage before returning success to libtpms, which runs it inside
//! `TPMLIB_Process`, so by the time [`TpmEngine::execute`] returns a response its NV change is durable. If a
//! store fails, the response is withheld ([`EngineError::Persist`]) and the engine refuses further commands
//! ([`EngineError::Stopped`]) until it is recreated from durable state.

mod ffi;

use std::ffi::{CStr, c_char, c_uchar};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use svsm_vtpm::{EngineError, NvBlob, NvStorage, StorageError, TpmEngine};

/// Whether the engine may manufacture a new TPM when storage holds no TPM state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateMode {
    /// Missing state means "manufacture now" (first start, or an offline manufacture into a staging store).
    MayManufacture,
    /// Missing state is [`EngineError::StateMissing`]: a TPM that existed must never be silently replaced.
    RequireExisting,
}

/// The one engine of this process, if any.
static ENGINE_EXISTS: AtomicBool = AtomicBool::new(false);
/// Locality reported to libtpms through `tpm_io_getlocality` during the current call.
static LOCALITY: AtomicU8 = AtomicU8::new(0);
/// What the NV callbacks work on. Locked only inside callbacks and by engine methods between libtpms calls.
static SLOT: Mutex<Option<Slot>> = Mutex::new(None);

struct Slot {
    storage: Box<dyn NvStorage + Send>,
    mode: StateMode,
    /// First error a callback hit during the current libtpms call.
    error: Option<EngineError>,
    stores: u64,
    loaded_volatile: bool,
}

fn slot() -> MutexGuard<'static, Option<Slot>> {
    SLOT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn blob_of(name: *const c_char) -> Option<NvBlob> {
    if name.is_null() {
        return None;
    }
    // SAFETY: libtpms passes a NUL-terminated constant string ("permall", ...) valid for the call.
    let name = unsafe { CStr::from_ptr(name) };
    NvBlob::from_libtpms_name(name.to_bytes())
}

extern "C" fn cb_nvram_init() -> ffi::TpmResult {
    ffi::TPM_SUCCESS
}

extern "C" fn cb_io_init() -> ffi::TpmResult {
    ffi::TPM_SUCCESS
}

extern "C" fn cb_getlocality(loc: *mut u32, _tpm_number: u32) -> ffi::TpmResult {
    if loc.is_null() {
        return ffi::TPM_FAIL;
    }
    // SAFETY: libtpms passes a valid pointer to its locality variable.
    unsafe { *loc = u32::from(LOCALITY.load(Ordering::Relaxed)) };
    ffi::TPM_SUCCESS
}

extern "C" fn cb_getphysicalpresence(pp: *mut ffi::TpmBool, _tpm_number: u32) -> ffi::TpmResult {
    if pp.is_null() {
        return ffi::TPM_FAIL;
    }
    // SAFETY: libtpms passes a valid pointer; a vTPM has no physical-presence input.
    unsafe { *pp = 0 };
    ffi::TPM_SUCCESS
}

extern "C" fn cb_loaddata(
    data: *mut *mut c_uchar,
    length: *mut u32,
    _tpm: u32,
    name: *const c_char,
) -> ffi::TpmResult {
    if data.is_null() || length.is_null() {
        return ffi::TPM_FAIL;
    }
    let mut guard = slot();
    let Some(s) = guard.as_mut() else { return ffi::TPM_FAIL };
    let Some(blob) = blob_of(name) else { return ffi::TPM_RETRY };
    let loaded = match s.storage.load(blob) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(?blob, error = %e, "loading TPM NV state failed");
            s.error.get_or_insert(EngineError::Persist(e));
            return ffi::TPM_FAIL;
        }
    };
    let Some(bytes) = loaded else {
        if blob == NvBlob::Permanent && s.mode == StateMode::RequireExisting {
            s.error.get_or_insert(EngineError::StateMissing);
            return ffi::TPM_FAIL;
        }
        return ffi::TPM_RETRY;
    };
    let Ok(len) = u32::try_from(bytes.len()) else {
        s.error
            .get_or_insert(EngineError::Persist(StorageError::Corrupt("NV blob larger than 4 GiB".into())));
        return ffi::TPM_FAIL;
    };
    let mut buf: *mut c_uchar = std::ptr::null_mut();
    // SAFETY: TPM_Malloc writes a fresh allocation of `len` bytes (libtpms frees it with TPM_Free).
    let rc = unsafe { ffi::TPM_Malloc(&mut buf, len.max(1)) };
    if rc != ffi::TPM_SUCCESS || buf.is_null() {
        return ffi::TPM_FAIL;
    }
    // SAFETY: `buf` holds at least `len` bytes and does not overlap `bytes`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
    // SAFETY: both out-pointers were checked non-null above and point to libtpms' variables.
    unsafe { *data = buf };
    // SAFETY: as above.
    unsafe { *length = len };
    if blob == NvBlob::Volatile {
        s.loaded_volatile = true;
    }
    ffi::TPM_SUCCESS
}

extern "C" fn cb_storedata(
    data: *const c_uchar,
    length: u32,
    _tpm: u32,
    name: *const c_char,
) -> ffi::TpmResult {
    let mut guard = slot();
    let Some(s) = guard.as_mut() else { return ffi::TPM_FAIL };
    let Some(blob) = blob_of(name) else { return ffi::TPM_FAIL };
    let bytes: &[u8] = if length == 0 {
        &[]
    } else if data.is_null() {
        return ffi::TPM_FAIL;
    } else {
        // SAFETY: libtpms passes `length` readable bytes at `data`, valid for the duration of the call.
        unsafe { std::slice::from_raw_parts(data, length as usize) }
    };
    match s.storage.store(blob, bytes) {
        Ok(()) => {
            s.stores = s.stores.saturating_add(1);
            ffi::TPM_SUCCESS
        }
        Err(e) => {
            tracing::error!(?blob, error = %e, "durable store of TPM NV state failed; withholding the response");
            s.error.get_or_insert(EngineError::Persist(e));
            ffi::TPM_FAIL
        }
    }
}

extern "C" fn cb_deletename(_tpm: u32, name: *const c_char, _must_exist: ffi::TpmBool) -> ffi::TpmResult {
    let mut guard = slot();
    let Some(s) = guard.as_mut() else { return ffi::TPM_FAIL };
    let Some(blob) = blob_of(name) else { return ffi::TPM_SUCCESS };
    match s.storage.delete(blob) {
        Ok(()) => ffi::TPM_SUCCESS,
        Err(e) => {
            s.error.get_or_insert(EngineError::Persist(e));
            ffi::TPM_FAIL
        }
    }
}

/// The libtpms TPM 2.0 engine. At most one exists per process.
#[derive(Debug)]
pub struct LibTpms {
    powered: bool,
    stopped: bool,
    resp_buf: *mut c_uchar,
    resp_buf_size: u32,
    /// The command handed to libtpms (which may write to it), reused so a command costs no allocation.
    cmd_buf: Vec<u8>,
}

// SAFETY: libtpms has no thread affinity; what it forbids is concurrent use, which the single-instance guard
// plus `&mut self` on every method prevent. `resp_buf` is owned by this value and only touched through it.
unsafe impl Send for LibTpms {}

impl LibTpms {
    /// Creates the process's engine over `storage`, powered off. Fails with
    /// [`EngineError::AlreadyInUse`] while another engine exists.
    pub fn new(storage: impl NvStorage + Send + 'static, mode: StateMode) -> Result<Self, EngineError> {
        if ENGINE_EXISTS.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Err(EngineError::AlreadyInUse);
        }
        *slot() =
            Some(Slot { storage: Box::new(storage), mode, error: None, stores: 0, loaded_volatile: false });
        Ok(LibTpms {
            powered: false,
            stopped: false,
            resp_buf: std::ptr::null_mut(),
            resp_buf_size: 0,
            cmd_buf: Vec::new(),
        })
    }

    /// The libtpms version as `(major, minor, micro)`.
    pub fn library_version() -> (u8, u8, u8) {
        // SAFETY: a pure getter without preconditions.
        let v = unsafe { ffi::TPMLIB_GetVersion() };
        ((v >> 16) as u8, (v >> 8) as u8, v as u8)
    }

    /// Powers off and returns the storage (e.g. to commit a staged manufacture elsewhere).
    pub fn into_storage(mut self) -> Box<dyn NvStorage + Send> {
        self.power_off();
        let taken = slot().take();
        // Drop still runs (freeing the response buffer and releasing the guard); the slot is now empty.
        match taken {
            Some(s) => s.storage,
            None => Box::new(svsm_vtpm::MemNvStorage::new()),
        }
    }

    /// Runs `f` on the storage between libtpms calls.
    pub fn with_storage<R>(&mut self, f: impl FnOnce(&mut dyn NvStorage) -> R) -> Option<R> {
        let mut guard = slot();
        guard.as_mut().map(|s| f(&mut *s.storage as &mut dyn NvStorage))
    }

    fn take_callback_error() -> Option<EngineError> {
        slot().as_mut().and_then(|s| s.error.take())
    }
}

impl TpmEngine for LibTpms {
    fn power_on(&mut self) -> Result<(), EngineError> {
        if self.powered {
            return Ok(());
        }
        if self.stopped {
            return Err(EngineError::Stopped);
        }
        LOCALITY.store(0, Ordering::Relaxed);
        if let Some(s) = slot().as_mut() {
            s.error = None;
            s.loaded_volatile = false;
        }
        let mut cbs = ffi::LibtpmsCallbacks {
            size_of_struct: std::mem::size_of::<ffi::LibtpmsCallbacks>() as i32,
            tpm_nvram_init: Some(cb_nvram_init),
            tpm_nvram_loaddata: Some(cb_loaddata),
            tpm_nvram_storedata: Some(cb_storedata),
            tpm_nvram_deletename: Some(cb_deletename),
            tpm_io_init: Some(cb_io_init),
            tpm_io_getlocality: Some(cb_getlocality),
            tpm_io_getphysicalpresence: Some(cb_getphysicalpresence),
        };
        // SAFETY: called on the process's only engine, with no other libtpms call in flight.
        let rc = unsafe { ffi::TPMLIB_ChooseTPMVersion(ffi::TPMLIB_TPM_VERSION_2) };
        if rc != ffi::TPM_SUCCESS {
            return Err(EngineError::Init(rc));
        }
        // SAFETY: libtpms copies the struct; the function pointers are 'static.
        let rc = unsafe { ffi::TPMLIB_RegisterCallbacks(&mut cbs) };
        if rc != ffi::TPM_SUCCESS {
            return Err(EngineError::Init(rc));
        }
        // SAFETY: as above; the callbacks it runs lock SLOT, which is not held here.
        let rc = unsafe { ffi::TPMLIB_MainInit() };
        let cb_error = Self::take_callback_error();
        if rc != ffi::TPM_SUCCESS || cb_error.is_some() {
            // SAFETY: undo a partial initialisation; valid in any state.
            unsafe { ffi::TPMLIB_Terminate() };
            return Err(cb_error.unwrap_or(EngineError::Init(rc)));
        }
        self.powered = true;
        // Volatile state is for one resume only: a later power-on must not resume from it again.
        let loaded_volatile = slot().as_ref().is_some_and(|s| s.loaded_volatile);
        if loaded_volatile && let Some(Err(e)) = self.with_storage(|st| st.delete(NvBlob::Volatile)) {
            self.power_off();
            return Err(EngineError::Persist(e));
        }
        Ok(())
    }

    fn power_off(&mut self) {
        if self.powered {
            // SAFETY: the engine is initialised and no other libtpms call is in flight.
            unsafe { ffi::TPMLIB_Terminate() };
            self.powered = false;
        }
    }

    fn is_powered(&self) -> bool {
        self.powered
    }

    fn execute(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, EngineError> {
        if self.stopped {
            return Err(EngineError::Stopped);
        }
        if !self.powered {
            return Err(EngineError::NotPowered);
        }
        if command.len() > svsm_vtpm::MAX_TPM_MESSAGE {
            return Err(EngineError::CommandTooLarge(command.len()));
        }
        let cmd = &mut self.cmd_buf;
        cmd.clear();
        cmd.extend_from_slice(command);
        let cmd_len = u32::try_from(cmd.len()).map_err(|_| EngineError::CommandTooLarge(command.len()))?;
        LOCALITY.store(locality, Ordering::Relaxed);
        let mut resp_size: u32 = 0;
        // SAFETY: libtpms (re)allocates `resp_buf` as needed and records its capacity in `resp_buf_size`;
        // `cmd` is a valid buffer of `cmd_len` bytes. Callbacks lock SLOT, which is not held here.
        let rc = unsafe {
            ffi::TPMLIB_Process(
                &mut self.resp_buf,
                &mut resp_size,
                &mut self.resp_buf_size,
                cmd.as_mut_ptr(),
                cmd_len,
            )
        };
        if let Some(e) = Self::take_callback_error() {
            // NV in memory and NV on disk now disagree: stop serving rather than answer from unsaved state.
            self.stopped = true;
            self.power_off();
            return Err(e);
        }
        if rc != ffi::TPM_SUCCESS {
            return Err(EngineError::Process(rc));
        }
        if self.resp_buf.is_null() || resp_size > self.resp_buf_size {
            return Err(EngineError::Process(ffi::TPM_FAIL));
        }
        // SAFETY: libtpms wrote `resp_size` bytes (checked <= capacity) at `resp_buf`.
        let resp = unsafe { std::slice::from_raw_parts(self.resp_buf, resp_size as usize) };
        Ok(resp.to_vec())
    }

    fn cancel(&mut self) {
        if self.powered {
            // SAFETY: a flag set inside libtpms; the engine is initialised.
            unsafe { ffi::TPMLIB_CancelCommand() };
        }
    }

    fn established(&mut self) -> Result<bool, EngineError> {
        if !self.powered {
            return Err(EngineError::NotPowered);
        }
        let mut bit: ffi::TpmBool = 0;
        // SAFETY: writes one byte to `bit`; the engine is initialised.
        let rc = unsafe { ffi::TPM_IO_TpmEstablished_Get(&mut bit) };
        if rc != ffi::TPM_SUCCESS {
            return Err(EngineError::Process(rc));
        }
        Ok(bit != 0)
    }

    fn reset_established(&mut self, locality: u8) -> Result<(), EngineError> {
        if !self.powered {
            return Err(EngineError::NotPowered);
        }
        LOCALITY.store(locality, Ordering::Relaxed);
        // SAFETY: the engine is initialised; libtpms checks the locality through the callback.
        let rc = unsafe { ffi::TPM_IO_TpmEstablished_Reset() };
        if let Some(e) = Self::take_callback_error() {
            self.stopped = true;
            self.power_off();
            return Err(e);
        }
        if rc != ffi::TPM_SUCCESS {
            return Err(EngineError::Process(rc));
        }
        Ok(())
    }

    fn store_volatile(&mut self) -> Result<(), EngineError> {
        let data = self.volatile_state()?;
        match self.with_storage(|s| s.store(NvBlob::Volatile, &data)) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(EngineError::Persist(e)),
            None => Err(EngineError::Stopped),
        }
    }

    fn volatile_state(&mut self) -> Result<Vec<u8>, EngineError> {
        if !self.powered {
            return Err(EngineError::NotPowered);
        }
        let mut buf: *mut c_uchar = std::ptr::null_mut();
        let mut len: u32 = 0;
        // SAFETY: libtpms allocates `buf` (freed below with TPM_Free) and sets `len`.
        let rc = unsafe { ffi::TPMLIB_VolatileAll_Store(&mut buf, &mut len) };
        if rc != ffi::TPM_SUCCESS || buf.is_null() {
            return Err(EngineError::Process(rc));
        }
        // SAFETY: `buf` holds `len` bytes written by libtpms.
        let data = unsafe { std::slice::from_raw_parts(buf, len as usize) }.to_vec();
        // SAFETY: `buf` came from libtpms' allocator and is not used after this.
        unsafe { ffi::TPM_Free(buf) };
        Ok(data)
    }

    fn set_buffer_size(&mut self, wanted: u32) -> (u32, u32, u32) {
        let mut min = 0u32;
        let mut max = 0u32;
        // SAFETY: writes the two limits; callable in any state.
        let size = unsafe { ffi::TPMLIB_SetBufferSize(wanted, &mut min, &mut max) };
        (size, min, max)
    }

    fn store_count(&self) -> u64 {
        slot().as_ref().map_or(0, |s| s.stores)
    }
}

impl Drop for LibTpms {
    fn drop(&mut self) {
        self.power_off();
        if !self.resp_buf.is_null() {
            // SAFETY: the buffer was allocated by libtpms and libtpms is terminated.
            unsafe { ffi::TPM_Free(self.resp_buf) };
            self.resp_buf = std::ptr::null_mut();
        }
        slot().take();
        ENGINE_EXISTS.store(false, Ordering::Release);
    }
}
