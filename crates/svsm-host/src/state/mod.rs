//! The host's state model: one [`StateDir`] holding one [`Volume`] per service (the vTPM today, the UEFI
//! variable store next, each on its own image), each volume's key from a [`KeySource`] and its freshness
//! from a [`LedgerSource`]. Every command (`serve`, `tpm`, `store`) reaches its volumes through this
//! module, so attested key release and a ledger service plug in here without touching the commands.
//!
//! Development sources live beside the traits: [`KeyFile`] (the one key-file format) and
//! [`FileLedgerSource`] (the file ledger). Both are labelled development-only wherever they are used.

pub mod api;
pub mod dir;
pub mod error;
pub mod file_ledger;
pub mod key_file;
pub mod volume;

pub use api::{KeyOrigin, KeyRequest, KeySource, LedgerSource, LedgerTrust, VolumeKey, VolumeName};
pub use dir::{ReadLock, StateDir, WriteLock};
pub use error::StateError;
pub use file_ledger::FileLedgerSource;
pub use key_file::KeyFile;
pub use volume::{BLOCK_SIZE, DetachedStore, Volume, VolumeStore};
