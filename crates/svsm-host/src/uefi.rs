//! The UEFI variable service on the host: its volume (`uefi-vars.store`, its own image next to the vTPM's),
//! opened under the state directory's lock, and the protocol-4 handler `serve --uefi` and
//! `svsm-serve --uefi-state-dir` register with their SVSM.
//!
//! The volume is formatted in the store's strict ledger mode: every SetVariable of a non-volatile variable
//! is compare-and-set at the ledger before the guest is answered, so an image rolled back to any earlier
//! commit (an older dbx) is refused at the next start, naming the volume. A missing image is created only
//! on a new state directory or with `--uefi-create`: silently starting from an empty store would be a
//! rollback too (dbx, db, KEK and PK gone).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use svsm_block::FileDisk;
use svsm_store::{Ledger, LedgerMode};
use svsm_uefi::persist::StoreVariableStorage;
use svsm_uefi::{UefiConfig, UefiProtocol, UefiVariables};

use crate::state::{KeySource, StateDir, Volume, VolumeName, WriteLock};

/// The UEFI variable volume's storage, shared with the daemon's [`crate::window::WindowKeeper`] (which
/// advances a window-mode volume's ledger when it goes idle, and closes it cleanly at shutdown).
pub type UefiStorage = crate::window::SharedVolume<StoreVariableStorage<FileDisk, Box<dyn Ledger>>>;
/// The service `serve --uefi` runs.
pub type UefiService = UefiVariables<UefiStorage>;

/// Size of a new UEFI variable volume: 4 MiB (the store's copy-on-write headroom over the 256 KiB of
/// variables the service accepts).
pub const UEFI_STORE_BLOCKS: u64 = 1024;

/// The UEFI volume of `dir`, keyed like the vTPM's (`--store-key` or the development key file).
pub fn volume(
    dir: &StateDir,
    store_key: Option<&Path>,
    ledgers: Option<Arc<dyn crate::state::LedgerSource>>,
) -> Volume {
    let keys: Arc<dyn KeySource> = match store_key {
        Some(path) => Arc::new(crate::state::KeyFile::existing(path)),
        None => dir.default_keys(),
    };
    dir.volume(VolumeName::UEFI_VARS, keys, ledgers.unwrap_or_else(|| dir.default_ledgers()))
}

/// Opens the UEFI volume for serving (creating it first if `create` and it does not exist) and loads the
/// variables. Every refusal names the volume and says what to do.
pub fn open_service(vol: &Volume, lock: &WriteLock, create: bool) -> anyhow::Result<UefiService> {
    let name = vol.name();
    let image = vol.image().display().to_string();
    let store = if vol.exists() {
        vol.open(lock).map_err(|e| match e {
            crate::state::StateError::Store { source, .. } => anyhow::anyhow!(
                "refusing to start: the UEFI variable volume `{name}` ({image}) failed verification ({source}); \
                 it was tampered with, rolled back (an older dbx?) or damaged. Restore a current copy; the \
                 variables are never reset implicitly"
            ),
            other => anyhow::Error::new(other).context(format!("opening the UEFI variable volume `{name}`")),
        })?
    } else if create {
        let store = vol
            .create(lock, UEFI_STORE_BLOCKS, LedgerMode::Strict)
            .with_context(|| format!("creating the UEFI variable volume `{name}` ({image})"))?;
        println!("created the UEFI variable volume `{name}` ({image}, strict ledger mode)");
        store
    } else {
        anyhow::bail!(
            "the UEFI variable volume `{name}` ({image}) does not exist. If this VM never had UEFI variables, \
             add --uefi-create; if it should exist, restore it from a backup (an empty store would drop dbx)"
        );
    };
    let storage = StoreVariableStorage::open(store).map_err(|e| {
        anyhow::anyhow!("refusing to start: the UEFI variable volume `{name}` ({image}) is unusable: {e}")
    })?;
    let storage = crate::window::SharedVolume::new(name.to_string(), storage);
    UefiVariables::open(storage, UefiConfig::default()).map_err(|e| {
        anyhow::anyhow!("refusing to start: loading the UEFI variable volume `{name}` ({image}): {e}")
    })
}

/// The protocol-4 handler for the SVSM.
pub fn protocol(service: UefiService) -> Box<dyn svsm_protocol::ProtocolHandler + Send> {
    Box::new(UefiProtocol::new(service))
}
