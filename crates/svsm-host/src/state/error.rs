//! What can go wrong finding, locking and opening state, each with what to do about it.

use std::path::PathBuf;

/// Errors of the state model. Every message names the file and says what the operator can do next.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A volume name outside `[a-z0-9-]{1,32}`.
    #[error("`{0}` is not a volume name (1 to 32 characters of a-z, 0-9 and -; e.g. vtpm, uefi-vars)")]
    BadVolumeName(String),

    /// A system call on a state file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A state file or directory is a symbolic link: following it could make us write (or truncate) a file
    /// outside the state directory.
    #[error("{} is a symbolic link; state files are never opened through links. Replace it with the real file or directory", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },

    /// A state path is not the kind of file expected (e.g. a directory where a key file should be).
    #[error("{} is not a {expected}", path.display())]
    WrongType {
        /// The path.
        path: PathBuf,
        /// What it should be.
        expected: &'static str,
    },

    /// Group or others may read or write a state directory or key file.
    #[error("{} is accessible by group or others (mode {mode:04o}); only its owner may use it. Fix: chmod {want:o} {}", path.display(), path.display())]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode to set.
        want: u32,
    },

    /// A state directory or key file belongs to another user.
    #[error("{} belongs to uid {owner}, not to this user (uid {me}); run as its owner or use your own --state-dir", path.display())]
    NotOwner {
        /// The file or directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },

    /// Another process holds the state directory's lock.
    #[error("svsm-host {holder} holds {}; stop it, or use a reading command (store inspect, fsck, get, export; tpm info), which opens the volume detached while it runs", dir.display())]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// Who, as recorded in the lock file (e.g. `serve (pid 1234)`), or "another process".
        holder: String,
    },

    /// A key file that does not hold a key in the one key-file format.
    #[error("{}: {reason}. A key file holds 64 hex digits on one line, `#` comment lines allowed; create one with `svsm-host store create --generate-key`", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The key file to use does not exist.
    #[error("key file {} does not exist; {hint}", path.display())]
    KeyMissing {
        /// The key file.
        path: PathBuf,
        /// What to do.
        hint: &'static str,
    },

    /// A key source other than the key file failed (e.g. a key broker refused the release).
    #[error("no key for volume {volume} from {source_name}: {reason}")]
    KeyUnavailable {
        /// The volume.
        volume: String,
        /// The source, as it describes itself.
        source_name: String,
        /// Why, and what to do.
        reason: String,
    },

    /// A ledger source could not give a ledger handle.
    #[error("no ledger for volume {volume} from {source_name}: {reason}")]
    LedgerUnavailable {
        /// The volume.
        volume: String,
        /// The source, as it describes itself.
        source_name: String,
        /// Why, and what to do.
        reason: String,
    },

    /// The volume's image does not exist.
    #[error("{} does not exist; {hint}", path.display())]
    NoImage {
        /// The image.
        path: PathBuf,
        /// What to do.
        hint: String,
    },

    /// The image could not be opened or created as a block device.
    #[error(transparent)]
    Disk(Box<svsm_block::FileDiskError>),

    /// The store refused the image (damaged, tampered, rolled back, wrong key) or failed.
    #[error("{what} {}: {source}", path.display())]
    Store {
        /// What we were doing.
        what: &'static str,
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<svsm_store::StoreError>,
    },
}

impl From<svsm_block::FileDiskError> for StateError {
    fn from(e: svsm_block::FileDiskError) -> Self {
        StateError::Disk(Box::new(e))
    }
}

impl StateError {
    /// A store error with context.
    pub fn store(what: &'static str, path: impl Into<PathBuf>, source: svsm_store::StoreError) -> Self {
        StateError::Store { what, path: path.into(), source: Box::new(source) }
    }

    /// An I/O error with context.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StateError::Io { what, path: path.into(), source }
    }
}
