//! The vTPM as a host service: its state directory, manufacturing, and the socket servers.

pub mod ekcert;
pub mod server;
pub mod swtpm_files;

pub use svsm_vtpm::stateblob;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use svsm_block::{BlockDevice, FileDisk};
use svsm_libtpms::{LibTpms, StateMode};
use svsm_store::{Ledger, LedgerMode};
use svsm_vtpm::manufacture::{self, EkCertIssuer, ManufactureOptions, ManufactureRecord, StoredState};
use svsm_vtpm::store_nv::StoreNvStorage;
use svsm_vtpm::{MemNvStorage, NvBlob, NvStorage, TpmEngine};

use crate::state::{KeyFile, KeySource, StateDir, Volume, VolumeName, WriteLock};

/// Store size in 4 KiB blocks (4 MiB: the vTPM's objects are a few KiB, the rest is copy-on-write room).
pub const STORE_BLOCKS: u64 = 1024;

/// The vTPM's NV storage: its objects in its volume, with the volume's ledger.
pub type VtpmStorage = StoreNvStorage<FileDisk, Box<dyn Ledger>>;

/// How a new store uses its ledger (fixed at creation). On the command line: `strict`, `boot-epoch` or
/// `window:SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerChoice {
    /// Every NV commit is acknowledged by the ledger: any rollback, even of one write, is detected.
    Strict,
    /// The ledger advances at start and clean stop only: cheaper commits, but the host can still choose among
    /// the states committed since the ledger last moved (any commit of the current run; after a crash, any
    /// run that started from the same record). Images older than the ledger, and forks of an earlier run that
    /// a later run superseded, are refused.
    BootEpoch,
    /// The ledger advances at start, at clean stop, and with the first commit made SECONDS or more after it
    /// last moved: the host can roll back at most the commits of the last SECONDS of the current run, never
    /// past a start (docs/store-format.md, "The window guarantee").
    Window(u32),
}

impl std::str::FromStr for LedgerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(LedgerChoice::Strict),
            "boot-epoch" => Ok(LedgerChoice::BootEpoch),
            _ => {
                let Some(secs) = s.strip_prefix("window:") else {
                    return Err(format!("{s:?}: expected `strict`, `boot-epoch` or `window:SECONDS`"));
                };
                let max = svsm_store::format::MAX_WINDOW_SECONDS;
                match secs.parse::<u32>() {
                    Ok(n @ 1..) if n <= max => Ok(LedgerChoice::Window(n)),
                    _ => Err(format!(
                        "window:{secs}: the window is a whole number of seconds from 1 to {max} \
                         (for no window at all use `strict`)"
                    )),
                }
            }
        }
    }
}

impl From<LedgerChoice> for LedgerMode {
    fn from(c: LedgerChoice) -> Self {
        match c {
            LedgerChoice::Strict => LedgerMode::Strict,
            LedgerChoice::BootEpoch => LedgerMode::BootEpoch,
            LedgerChoice::Window(seconds) => LedgerMode::Window { seconds },
        }
    }
}

/// The vTPM's volume in `dir`: key from `store_key` (which must exist) if given, else the directory's
/// development key file; ledger: the directory's file ledger.
pub fn volume(dir: &StateDir, store_key: Option<&Path>) -> Volume {
    volume_with_ledger(dir, store_key, None)
}

/// [`volume`] with the ledger from `ledgers` (`None`: the state directory's file ledger).
pub fn volume_with_ledger(
    dir: &StateDir,
    store_key: Option<&Path>,
    ledgers: Option<Arc<dyn crate::state::LedgerSource>>,
) -> Volume {
    let keys: Arc<dyn KeySource> = match store_key {
        Some(path) => Arc::new(KeyFile::existing(path)),
        None => dir.default_keys(),
    };
    dir.volume(VolumeName::VTPM, keys, ledgers.unwrap_or_else(|| dir.default_ledgers()))
}

/// The key that seals this vTPM's migration and snapshot state blobs: the volume's root key and the store's
/// volume id. The one place that decides what a state blob is bound to.
pub fn state_blob_key(vol: &Volume, storage: &VtpmStorage) -> anyhow::Result<stateblob::StateBlobKey> {
    let key = vol.key().context("reading the vTPM's key for its state blobs")?;
    let mut root = zeroize::Zeroizing::new([0u8; 32]);
    root.copy_from_slice(key.key.as_bytes());
    Ok(stateblob::StateBlobKey::new(root, storage.inner().volume_id()))
}

/// Creates the encrypted store of a new vTPM (format + ledger enrolment), and the development key if the
/// key source makes one.
pub fn create_store(vol: &Volume, lock: &WriteLock, mode: LedgerMode) -> anyhow::Result<VtpmStorage> {
    let dev_key = vol.state_dir().dev_key_path();
    let had_key = dev_key.exists();
    let store = vol.create(lock, STORE_BLOCKS, mode).context("creating the vTPM store")?;
    if !had_key && dev_key.exists() {
        println!("created DEVELOPMENT store key {} (not for production)", dev_key.display());
    }
    Ok(StoreNvStorage::new(store))
}

/// The "no state" message: a missing image is never a reason to manufacture a new TPM implicitly.
fn missing(vol: &Volume) -> anyhow::Error {
    let dir = vol.state_dir().path().display();
    anyhow::anyhow!(
        "{dir} has no vTPM state ({} is missing). If this is a new TPM, run `svsm-host tpm manufacture \
         --state-dir {dir}`; if it should exist, restore it from a backup",
        vol.image().display(),
    )
}

fn refused(vol: &Volume, e: crate::state::StateError) -> anyhow::Error {
    use crate::state::StateError;
    match e {
        StateError::Store { source, .. } => anyhow::anyhow!(
            "refusing to start: the vTPM store {} failed verification ({source}); it was tampered with, rolled \
             back or damaged. Restore a current copy; the TPM is never re-manufactured implicitly",
            vol.image().display()
        ),
        other => anyhow::Error::new(other),
    }
}

/// Opens an existing vTPM's store for writing; a tampered, rolled-back or foreign store is refused.
pub fn open_store(vol: &Volume, lock: &WriteLock) -> anyhow::Result<VtpmStorage> {
    if !vol.exists() {
        return Err(missing(vol));
    }
    Ok(StoreNvStorage::new(vol.open(lock).map_err(|e| refused(vol, e))?))
}

/// Checks that a store holds a manufactured TPM and returns its record.
pub fn manufactured<D: BlockDevice, L: Ledger>(
    vol: &Volume,
    storage: &mut StoreNvStorage<D, L>,
) -> anyhow::Result<ManufactureRecord> {
    match manufacture::inspect(storage).context("refusing to start")? {
        StoredState::Manufactured(rec) => Ok(rec),
        StoredState::Empty => bail!(
            "refusing to start: the store in {} holds no manufactured TPM (it will not be manufactured \
             implicitly); run `svsm-host tpm manufacture` on a new state directory if this is intended",
            vol.state_dir().path().display()
        ),
    }
}

/// Opens an existing vTPM for serving: writable, under the lock, and manufactured.
pub fn open_manufactured(vol: &Volume, lock: &WriteLock) -> anyhow::Result<(VtpmStorage, ManufactureRecord)> {
    let mut storage = open_store(vol, lock)?;
    let record = manufactured(vol, &mut storage)?;
    Ok((storage, record))
}

/// Opens an existing vTPM read-only for a reading command: freshness checked if no writer holds the state
/// directory, else detached (and says so on stderr).
pub fn open_for_reading(vol: &Volume) -> anyhow::Result<(ReadStorage, ManufactureRecord)> {
    if !vol.exists() {
        return Err(missing(vol));
    }
    let dir = vol.state_dir();
    match dir.lock_for_read()? {
        Some(_lock) => {
            let mut s = StoreNvStorage::new(vol.open_read_only().map_err(|e| refused(vol, e))?);
            let rec = manufactured(vol, &mut s)?;
            Ok((ReadStorage::Checked(s), rec))
        }
        None => {
            let holder = dir.current_writer().unwrap_or_else(|| "another process".into());
            eprintln!(
                "note: svsm-host {holder} holds {}; reading detached (freshness NOT checked)",
                dir.path().display()
            );
            let mut s = StoreNvStorage::new(vol.open_detached().map_err(|e| refused(vol, e))?);
            let rec = manufactured(vol, &mut s)?;
            Ok((ReadStorage::Detached(s), rec))
        }
    }
}

/// A vTPM store opened by a reading command.
#[derive(Debug)]
pub enum ReadStorage {
    /// Freshness checked against the ledger.
    Checked(VtpmStorage),
    /// Opened without the ledger because a writer holds the state directory.
    Detached(StoreNvStorage<FileDisk, svsm_store::Detached>),
}

impl ReadStorage {
    /// The store's statistics.
    pub fn stats(&self) -> svsm_store::StoreStats {
        match self {
            ReadStorage::Checked(s) => s.inner().stats(),
            ReadStorage::Detached(s) => s.inner().stats(),
        }
    }
}

/// Manufactures a TPM in RAM, then commits its NV state and record to `target` in one durable transaction.
pub fn manufacture_into(
    target: &mut dyn NvStorage,
    options: ManufactureOptions,
    issuer: Option<&mut dyn EkCertIssuer>,
) -> anyhow::Result<ManufactureRecord> {
    let mut engine = LibTpms::new(MemNvStorage::new(), StateMode::MayManufacture)?;
    engine.power_on().context("powering on a fresh TPM for manufacturing")?;
    let record = manufacture::manufacture(&mut engine, options, issuer)?;
    let mut staged = engine.into_storage();
    let permanent = staged.load(NvBlob::Permanent)?.context("manufacturing produced no TPM state")?;
    let encoded = record.encode().map_err(|e| anyhow::anyhow!("encoding manufacture record: {e}"))?;
    target
        .commit(&[(NvBlob::Permanent, Some(&permanent)), (NvBlob::Manufacture, Some(&encoded))])
        .context("committing the manufactured TPM to the store")?;
    Ok(record)
}

/// Prints a manufacture record for humans.
pub fn describe(record: &ManufactureRecord) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if record.origin == manufacture::Origin::ImportedSwtpm {
        let _ = writeln!(s, "origin: imported from swtpm state (seeds, EKs and NV are swtpm's)");
    }
    match &record.cert_issuer {
        Some(issuer) if issuer.development => {
            let _ = writeln!(
                s,
                "EK certificates signed by the {} -- DEVELOPMENT ONLY, not evidence of a genuine TPM",
                issuer.description
            );
        }
        Some(issuer) => {
            let _ = writeln!(s, "EK certificates signed by the {}", issuer.description);
        }
        None => {}
    }
    for ek in &record.eks {
        let _ = writeln!(s, "EK {}:", ek.kind.label());
        let _ = writeln!(s, "  name:              {}", hex(&ek.name));
        match ek.persistent_handle {
            Some(h) => {
                let _ = writeln!(s, "  persistent handle: {h:#010x}");
            }
            None => {
                let _ = writeln!(s, "  persistent handle: none (recreate with tpm2_createek)");
            }
        }
        match ek.cert_len {
            Some(n) => {
                let _ =
                    writeln!(s, "  certificate:       {n} bytes at NV index {:#010x}", ek.kind.cert_index());
            }
            None => {
                let _ = writeln!(s, "  certificate:       none");
            }
        }
        if ek.template_written {
            let _ = writeln!(s, "  template:          NV index {:#010x}", ek.kind.template_index());
        }
    }
    s
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod ledger_choice_tests {
    use super::*;

    #[test]
    fn ledger_modes_parse_and_bad_windows_are_refused() {
        assert_eq!("strict".parse::<LedgerChoice>(), Ok(LedgerChoice::Strict));
        assert_eq!("boot-epoch".parse::<LedgerChoice>(), Ok(LedgerChoice::BootEpoch));
        assert_eq!("window:30".parse::<LedgerChoice>(), Ok(LedgerChoice::Window(30)));
        assert_eq!(LedgerMode::from(LedgerChoice::Window(30)), LedgerMode::Window { seconds: 30 });
        for bad in ["window:0", "window:", "window:-1", "window:x", "window:604801", "epoch", "Strict"] {
            assert!(bad.parse::<LedgerChoice>().is_err(), "{bad} accepted");
        }
    }
}
