//! A volume: one service's encrypted store on its own image file, with its key and ledger sources.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use svsm_block::{BlockDevice as _, FileDisk, WriteMode};
use svsm_store::{Detached, FormatParams, Ledger, LedgerMode, OpenOptions, PooledOsRandom, Store};

use crate::state::api::{KeyRequest, KeySource, LedgerSource, VolumeKey, VolumeName};
use crate::state::dir::{StateDir, WriteLock};
use crate::state::error::StateError;

/// The block size of every volume image.
pub const BLOCK_SIZE: u32 = 4096;

/// A store opened with its ledger (read-only or writable).
pub type VolumeStore = Store<FileDisk, Box<dyn Ledger>>;

/// A store opened without its ledger (freshness not checked).
pub type DetachedStore = Store<FileDisk, Detached>;

/// One service's volume. Every command reaches a store through one of these, so where keys and ledger
/// records come from is decided in one place (the sources it was built with) and writing needs the state
/// directory's [`WriteLock`].
#[derive(Debug, Clone)]
pub struct Volume {
    dir: StateDir,
    name: VolumeName,
    image: PathBuf,
    keys: Arc<dyn KeySource>,
    ledgers: Arc<dyn LedgerSource>,
}

fn rng() -> Box<dyn svsm_store::RandomSource> {
    Box::new(PooledOsRandom::new())
}

impl Volume {
    /// A volume of `dir` whose image is at `image` (normally [`StateDir::image_path`]).
    pub fn new(
        dir: StateDir,
        name: VolumeName,
        image: PathBuf,
        keys: Arc<dyn KeySource>,
        ledgers: Arc<dyn LedgerSource>,
    ) -> Self {
        Volume { dir, name, image, keys, ledgers }
    }

    /// Its name.
    pub fn name(&self) -> &VolumeName {
        &self.name
    }

    /// Its image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// Its state directory.
    pub fn state_dir(&self) -> &StateDir {
        &self.dir
    }

    /// Where its key comes from.
    pub fn key_source(&self) -> &Arc<dyn KeySource> {
        &self.keys
    }

    /// Where its ledger records live.
    pub fn ledger_source(&self) -> &Arc<dyn LedgerSource> {
        &self.ledgers
    }

    /// Whether the image exists (a link at its name counts: opening it is then refused).
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(&self.image).is_ok()
    }

    /// The volume's key (for an existing volume).
    pub fn key(&self) -> Result<VolumeKey, StateError> {
        let key = self.keys.volume_key(&self.name, KeyRequest::Existing)?;
        if key.origin.is_development() {
            tracing::debug!(volume = %self.name, origin = %key.origin, "development key");
        }
        Ok(key)
    }

    fn check_lock(&self, lock: &WriteLock) -> Result<(), StateError> {
        if lock.dir() != self.dir.path() {
            return Err(StateError::Locked {
                dir: self.dir.path().to_path_buf(),
                holder: format!("(this command locked {} instead)", lock.dir().display()),
            });
        }
        Ok(())
    }

    fn disk(&self, read_only: bool) -> Result<FileDisk, StateError> {
        let meta = std::fs::symlink_metadata(&self.image).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NoImage {
                    path: self.image.clone(),
                    hint: format!(
                        "the {} volume has not been created (or was lost: restore it from a backup with `svsm-host store import`)",
                        self.name
                    ),
                }
            } else {
                StateError::io("opening", &self.image, e)
            }
        })?;
        // The state directory is the user's alone, so nobody else can swap the name between this check
        // and the open below.
        if meta.file_type().is_symlink() {
            return Err(StateError::Symlink { path: self.image.clone() });
        }
        Ok(FileDisk::open(&self.image, BLOCK_SIZE, read_only)?)
    }

    /// Creates the image (`blocks` blocks, every block allocated now), formats it with the key source's key
    /// for a new volume, and enrols it in the ledger. Refuses an existing image.
    pub fn create(&self, lock: &WriteLock, blocks: u64, mode: LedgerMode) -> Result<VolumeStore, StateError> {
        self.check_lock(lock)?;
        let key = self.keys.volume_key(&self.name, KeyRequest::ForNewVolume)?;
        let mut disk = FileDisk::create(&self.image, BLOCK_SIZE, blocks)?;
        // Allocate every block now: a sparse image would make each first write allocate and journal metadata.
        let zeros = vec![0u8; 1 << 20];
        let per_chunk = zeros.len() as u64 / u64::from(BLOCK_SIZE);
        let mut lba = 0;
        let store_err = |what, source| StateError::store(what, &self.image, source);
        let disk_err = |e: svsm_block::BlockError| store_err("allocating", svsm_store::StoreError::from(e));
        while lba < disk.num_blocks() {
            let n = per_chunk.min(disk.num_blocks() - lba);
            disk.write_blocks(lba, &zeros[..(n * u64::from(BLOCK_SIZE)) as usize], WriteMode::Cached)
                .map_err(disk_err)?;
            lba += n;
        }
        disk.flush().map_err(disk_err)?;
        Store::<FileDisk, Detached>::format(disk, &key.key, FormatParams::new(mode, rng()))
            .map_err(|e| store_err("formatting", e))?;
        let ledger = self.ledgers.open_ledger(&self.name)?;
        let options = OpenOptions { enroll: true, ..OpenOptions::new(rng()) };
        Store::open(self.disk(false)?, &key.key, ledger, options)
            .map_err(|e| store_err("enrolling the new volume", e))
    }

    /// Opens the volume for writing, its freshness checked against the ledger.
    pub fn open(&self, lock: &WriteLock) -> Result<VolumeStore, StateError> {
        self.check_lock(lock)?;
        self.open_checked(false)
    }

    /// Opens the volume read-only, its freshness checked against the ledger. The caller should hold a
    /// [`crate::state::ReadLock`] so no writer moves the ledger meanwhile (or use [`Volume::open_detached`]).
    pub fn open_read_only(&self) -> Result<VolumeStore, StateError> {
        self.open_checked(true)
    }

    fn open_checked(&self, read_only: bool) -> Result<VolumeStore, StateError> {
        let key = self.key()?;
        let disk = self.disk(read_only)?;
        let ledger = self.ledgers.open_ledger(&self.name)?;
        let mut options = OpenOptions::new(rng());
        options.read_only = read_only;
        Store::open(disk, &key.key, ledger, options).map_err(|source| {
            StateError::store(
                "verifying (tampered with, rolled back, damaged, or the wrong key?)",
                &self.image,
                source,
            )
        })
    }

    /// Opens the volume read-only without its ledger: authenticity checked, freshness NOT checked. For
    /// backups, and for reading while another process serves the volume.
    pub fn open_detached(&self) -> Result<DetachedStore, StateError> {
        let key = self.key()?;
        let disk = self.disk(true)?;
        Store::open_detached(disk, &key.key, OpenOptions::new(rng())).map_err(|source| {
            StateError::store("verifying (damaged, or the wrong key?)", &self.image, source)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::dir::StateDir;

    #[test]
    fn a_volume_is_created_written_under_the_lock_and_reopened_all_three_ways() {
        let base = tempfile::tempdir().unwrap();
        let (dir, _) = StateDir::open_or_create(base.path().join("s")).unwrap();
        let vol = dir.volume(VolumeName::VTPM, dir.default_keys(), dir.default_ledgers());
        let lock = dir.lock_for_write("test").unwrap();
        let mut s = vol.create(&lock, 64, LedgerMode::Strict).unwrap();
        assert!(dir.dev_key_path().exists());
        let mut tx = s.begin();
        tx.put(1, b"x").unwrap();
        tx.commit().unwrap();
        drop(s);
        assert!(vol.create(&lock, 64, LedgerMode::Strict).is_err(), "an existing image is never reformatted");
        vol.open(&lock).unwrap();
        drop(lock);
        assert_eq!(vol.open_read_only().unwrap().get(1).unwrap().unwrap().as_slice(), b"x");
        assert_eq!(vol.open_detached().unwrap().get(1).unwrap().unwrap().as_slice(), b"x");
        // A second volume of the same directory has its own image and the same key and ledger sources.
        let uefi = dir.volume(VolumeName::UEFI_VARS, dir.default_keys(), dir.default_ledgers());
        assert_eq!(uefi.image(), dir.file("uefi-vars.store"));
        assert!(matches!(uefi.open_read_only(), Err(StateError::NoImage { .. })));
        let lock = dir.lock_for_write("test").unwrap();
        uefi.create(&lock, 64, LedgerMode::BootEpoch).unwrap();
        assert!(vol.open(&lock).is_ok() && uefi.open(&lock).is_ok());
    }

    #[test]
    fn a_lock_of_another_directory_does_not_authorise_writes() {
        let base = tempfile::tempdir().unwrap();
        let (a, _) = StateDir::open_or_create(base.path().join("a")).unwrap();
        let (b, _) = StateDir::open_or_create(base.path().join("b")).unwrap();
        let vol = a.volume(VolumeName::VTPM, a.default_keys(), a.default_ledgers());
        let other = b.lock_for_write("test").unwrap();
        assert!(matches!(vol.create(&other, 64, LedgerMode::Strict), Err(StateError::Locked { .. })));
    }
}
