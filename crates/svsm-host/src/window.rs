//! Keeping the ledger of every volume the daemon holds within its window, and closing them cleanly.
//!
//! In window mode (`docs/store-format.md` §4.2, §6) a commit advances the ledger only if the window has run
//! out; a volume that goes idle after a burst of commits would leave its last commits unprotected until the
//! next commit, however long that takes. [`WindowKeeper`] runs one thread that calls
//! [`Store::advance_if_due`](svsm_store::Store::advance_if_due) on every window-mode volume a few times per
//! window, so the ledger is at most T plus one tick behind the image's last commit. On a stop signal the
//! daemon calls [`WindowKeeper::shutdown`]: the thread stops, then every volume is closed (a clean close
//! advances the ledger in boot-epoch and window mode, so nothing acknowledged can be rolled back after it).
//!
//! Each volume sits in a [`SharedVolume`]: the storage the service commits through and the keeper's handle
//! share one mutex, so an advance never runs inside a commit (the store's ledger state is only touched under
//! that lock). The command path takes the vTPM lock and then, inside the engine's callback, this one; the
//! keeper takes only this one, so the two cannot deadlock.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use svsm_block::FileDisk;
use svsm_store::{Ledger, LedgerMode, StoreError};
use svsm_uefi::persist::StoreVariableStorage;
use svsm_uefi::{UefiError, VariableStorage};
use svsm_vtpm::error::StorageError;
use svsm_vtpm::store_nv::StoreNvStorage;
use svsm_vtpm::{NvBlob, NvData, NvStorage};
use tracing::{error, info, warn};

/// A volume adapter whose store can be advanced and closed.
pub trait WindowVolume: Send + 'static {
    /// The store's ledger mode.
    fn ledger_mode(&self) -> LedgerMode;
    /// The store's current generation.
    fn generation(&self) -> u64;
    /// [`svsm_store::Store::advance_if_due`].
    fn advance_if_due(&mut self) -> Result<bool, StoreError>;
    /// Closes the store cleanly (advancing the ledger where the mode says so).
    fn close(self) -> Result<(), StoreError>;
}

impl WindowVolume for StoreNvStorage<FileDisk, Box<dyn Ledger>> {
    fn ledger_mode(&self) -> LedgerMode {
        self.inner().ledger_mode()
    }
    fn generation(&self) -> u64 {
        self.inner().generation()
    }
    fn advance_if_due(&mut self) -> Result<bool, StoreError> {
        StoreNvStorage::advance_if_due(self)
    }
    fn close(self) -> Result<(), StoreError> {
        self.into_store().close().map(drop)
    }
}

impl WindowVolume for StoreVariableStorage<FileDisk, Box<dyn Ledger>> {
    fn ledger_mode(&self) -> LedgerMode {
        self.store().ledger_mode()
    }
    fn generation(&self) -> u64 {
        self.store().generation()
    }
    fn advance_if_due(&mut self) -> Result<bool, StoreError> {
        StoreVariableStorage::advance_if_due(self)
    }
    fn close(self) -> Result<(), StoreError> {
        self.into_store().close().map(drop)
    }
}

/// A volume's storage shared between the service that commits through it and the [`WindowKeeper`]. After
/// [`Upkeep::close`] every operation fails (the daemon is stopping; nothing is acknowledged any more).
pub struct SharedVolume<S> {
    name: String,
    inner: Arc<Mutex<Option<S>>>,
}

impl<S> Clone for SharedVolume<S> {
    fn clone(&self) -> Self {
        SharedVolume { name: self.name.clone(), inner: self.inner.clone() }
    }
}

impl<S> fmt::Debug for SharedVolume<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedVolume").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<S> SharedVolume<S> {
    /// Shares `storage` of the volume called `name` (for logs).
    pub fn new(name: impl Into<String>, storage: S) -> Self {
        SharedVolume { name: name.into(), inner: Arc::new(Mutex::new(Some(storage))) }
    }

    fn lock(&self) -> MutexGuard<'_, Option<S>> {
        // A panic inside a commit leaves the store as the store leaves it after any failed commit: its own
        // state machine (poisoned or read-back) decides what happens next, so the data is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the storage; `None` once it is closed.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> Option<R> {
        self.lock().as_mut().map(f)
    }
}

const CLOSED: &str = "the volume is closed: the daemon is stopping";

impl<S: NvStorage> NvStorage for SharedVolume<S> {
    fn load(&mut self, blob: NvBlob) -> Result<Option<NvData>, StorageError> {
        self.with(|s| s.load(blob)).unwrap_or_else(|| Err(StorageError::Backend(CLOSED.into())))
    }
    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError> {
        self.with(|s| s.commit(changes)).unwrap_or_else(|| Err(StorageError::Backend(CLOSED.into())))
    }
}

impl<S: VariableStorage> VariableStorage for SharedVolume<S> {
    fn load(&mut self) -> Result<Vec<svsm_uefi::StoredVariable>, UefiError> {
        self.with(|s| s.load()).unwrap_or(Err(UefiError::Poisoned))
    }
    fn apply(&mut self, changes: &[svsm_uefi::VariableChange]) -> Result<(), UefiError> {
        self.with(|s| s.apply(changes)).unwrap_or(Err(UefiError::Poisoned))
    }
    fn is_persistent(&self) -> bool {
        self.lock().as_ref().is_some_and(|s| s.is_persistent())
    }
    fn free_slots(&self) -> usize {
        self.lock().as_ref().map_or(0, |s| s.free_slots())
    }
}

/// What the keeper does with one volume, whatever its adapter.
pub trait Upkeep: Send + Sync {
    /// The volume's name (for logs).
    fn name(&self) -> &str;
    /// The window in seconds if the volume is open in window mode.
    fn window_seconds(&self) -> Option<u32>;
    /// Advances the ledger if due; `Ok(Some(generation))` when it advanced.
    fn tick(&self) -> Result<Option<u64>, StoreError>;
    /// Closes the volume; `Ok(None)` if it was closed already.
    fn close(&self) -> Result<Option<u64>, StoreError>;
}

impl<S: WindowVolume> Upkeep for SharedVolume<S> {
    fn name(&self) -> &str {
        &self.name
    }
    fn window_seconds(&self) -> Option<u32> {
        match self.with(|s| s.ledger_mode()) {
            Some(LedgerMode::Window { seconds }) => Some(seconds),
            _ => None,
        }
    }
    fn tick(&self) -> Result<Option<u64>, StoreError> {
        let Some(r) = self.with(|s| s.advance_if_due().map(|moved| moved.then(|| s.generation()))) else {
            return Ok(None);
        };
        r
    }
    fn close(&self) -> Result<Option<u64>, StoreError> {
        let Some(storage) = self.lock().take() else { return Ok(None) };
        let generation = storage.generation();
        storage.close().map(|()| Some(generation))
    }
}

/// How often the keeper looks at a volume with window `seconds`: eight times per window, between 50 ms and
/// 1 s, so the ledger trails an idle volume's last commit by at most T plus that period.
pub fn tick_period(seconds: u32) -> Duration {
    Duration::from_millis((u64::from(seconds) * 1000 / 8).clamp(50, 1000))
}

/// The thread that advances window-mode volumes when due, and the clean close of all volumes at shutdown.
pub struct WindowKeeper {
    volumes: Vec<Arc<dyn Upkeep>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for WindowKeeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.volumes.iter().map(|v| v.name()).collect();
        f.debug_struct("WindowKeeper").field("volumes", &names).finish_non_exhaustive()
    }
}

impl WindowKeeper {
    /// Takes charge of `volumes`: starts the timer thread if any of them is in window mode.
    pub fn start(volumes: Vec<Arc<dyn Upkeep>>) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let windowed: Vec<(Arc<dyn Upkeep>, Duration)> =
            volumes.iter().filter_map(|v| v.window_seconds().map(|s| (v.clone(), tick_period(s)))).collect();
        let thread = match windowed.iter().map(|(_, p)| *p).min() {
            None => None,
            Some(period) => {
                for (v, p) in &windowed {
                    info!(volume = v.name(), tick_ms = p.as_millis() as u64, "window mode: ledger timer on");
                }
                let stop = stop.clone();
                Some(
                    std::thread::Builder::new()
                        .name("ledger-window".into())
                        .spawn(move || run(&windowed, period, &stop))?,
                )
            }
        };
        Ok(WindowKeeper { volumes, stop, thread })
    }

    /// Stops the timer (waiting for an advance in progress), then closes every volume. Returns the first
    /// close error; the others are logged.
    pub fn shutdown(mut self) -> Result<(), StoreError> {
        {
            let (flag, cv) = &*self.stop;
            *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            error!("the ledger window timer panicked");
        }
        let mut first = None;
        for v in &self.volumes {
            match v.close() {
                Ok(Some(generation)) => info!(volume = v.name(), generation, "closed cleanly"),
                Ok(None) => {}
                Err(e) => {
                    error!(volume = v.name(), error = %e, "clean close failed; the next start decides from the ledger");
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

fn run(volumes: &[(Arc<dyn Upkeep>, Duration)], period: Duration, stop: &(Mutex<bool>, Condvar)) {
    let (flag, cv) = stop;
    let mut failing = vec![false; volumes.len()];
    let mut stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        stopped = cv.wait_timeout(stopped, period).unwrap_or_else(|p| p.into_inner()).0;
        if *stopped {
            return;
        }
        // Not under the stop flag: shutdown must not wait for a ledger round trip to set it.
        drop(stopped);
        for ((v, _), failing) in volumes.iter().zip(failing.iter_mut()) {
            match v.tick() {
                Ok(Some(generation)) => {
                    info!(volume = v.name(), generation, "window mode: ledger advanced (idle volume)");
                    *failing = false;
                }
                Ok(None) => *failing = false,
                Err(e) => {
                    if !*failing {
                        warn!(volume = v.name(), error = %e, "window mode: advancing the ledger failed; retrying");
                    }
                    *failing = true;
                }
            }
        }
        stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it starts afterwards, so that
/// [`wait_for_stop_signal`] can take them. Call before any thread is spawned.
pub fn block_stop_signals() -> std::io::Result<()> {
    let set = stop_signals();
    // SAFETY: `set` is an initialised signal set; the old mask is not requested (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for SIGTERM, SIGINT or SIGHUP (blocked by [`block_stop_signals`]); returns the signal number.
pub fn wait_for_stop_signal() -> std::io::Result<i32> {
    let set = stop_signals();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is an initialised signal set and `sig` a valid place for the result.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(sig)
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value of the plain C type; sigemptyset initialises it below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable signal set.
    unsafe { libc::sigemptyset(&mut set) };
    for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: `set` is an initialised signal set and `s` a valid signal number.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}
