//! The state directory: its layout, its lock, its permissions, and opening files in it without following
//! links.
//!
//! Layout (one image per volume, so each service has its own device):
//!
//! ```text
//! <state-dir>/            0700, owned by the user running svsm-host
//!   lock                  flock: exclusive while a command writes (serve, tpm manufacture, store put...)
//!   dev-store.key         the development key file (0600), if no other key source is used
//!   ledger/               the file ledger (development): one record file per store volume id
//!   vtpm.store            the vTPM's volume
//!   uefi-vars.store       the UEFI variable store's volume (next)
//!   swtpm.sock(.ctrl)     Unix sockets of `serve` (0600, or 0660 with --socket-group)
//!   guest.mem, svsm.sock  the SVSM call interface of `serve --svsm-socket`
//! ```

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::state::api::{KeySource, LedgerSource, VolumeName};
use crate::state::error::StateError;
use crate::state::file_ledger::FileLedgerSource;
use crate::state::key_file::{KeyFile, check_private};
use crate::state::volume::Volume;

/// The lock file's name.
pub const LOCK_FILE: &str = "lock";
/// The file ledger's directory.
pub const LEDGER_DIR: &str = "ledger";
/// The development key file, created on first start when no other key source is given.
pub const DEV_KEY_FILE: &str = "dev-store.key";

/// A state directory that exists, is not a link, belongs to this user and only this user can enter.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens an existing state directory, refusing links, other users' directories and directories group
    /// or others can read, write or enter (with the `chmod` that fixes it).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        let path = path.into();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => return Err(StateError::io("opening state directory", &path, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(StateError::Symlink { path });
        }
        if !meta.is_dir() {
            return Err(StateError::WrongType { path, expected: "directory" });
        }
        check_private(&path, &meta, 0o700)?;
        Ok(StateDir { path })
    }

    /// Opens the state directory, creating it (mode 0700, parents as needed) if it does not exist. Returns
    /// whether it was created.
    pub fn open_or_create(path: impl Into<PathBuf>) -> Result<(Self, bool), StateError> {
        let path = path.into();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&path)
                    .map_err(|e| StateError::io("creating state directory", &path, e))?;
                // The umask may have taken bits away, never added any; but a pre-existing parent chain made
                // by `recursive` does not matter, only this directory.
                Ok((Self::open(path)?, true))
            }
            _ => Ok((Self::open(path)?, false)),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file (or socket) in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The image of `volume`: `<name>.store`.
    pub fn image_path(&self, volume: &VolumeName) -> PathBuf {
        self.path.join(format!("{volume}.store"))
    }

    /// The file ledger's directory.
    pub fn ledger_dir(&self) -> PathBuf {
        self.path.join(LEDGER_DIR)
    }

    /// The development key file.
    pub fn dev_key_path(&self) -> PathBuf {
        self.path.join(DEV_KEY_FILE)
    }

    /// The key source used when none is given: the development key file, created with the first volume.
    pub fn default_keys(&self) -> Arc<dyn KeySource> {
        Arc::new(KeyFile::create_if_missing(self.dev_key_path()))
    }

    /// The ledger source used when none is given: the file ledger in `ledger/`.
    pub fn default_ledgers(&self) -> Arc<dyn LedgerSource> {
        Arc::new(FileLedgerSource::new(self.ledger_dir()))
    }

    /// The volume `name` of this directory, with its key and ledger from the given sources.
    pub fn volume(
        &self,
        name: VolumeName,
        keys: Arc<dyn KeySource>,
        ledgers: Arc<dyn LedgerSource>,
    ) -> Volume {
        let image = self.image_path(&name);
        Volume::new(self.clone(), name, image, keys, ledgers)
    }

    /// Opens (creating if needed, mode 0600) a file in the directory without following a link at its name
    /// and without truncating it: callers size or truncate the descriptor they got, so a link planted at
    /// the name (e.g. `guest.mem -> /home/user/important`) is an error, never a truncated target.
    pub fn open_private_file(&self, name: &str, create: bool) -> Result<File, StateError> {
        let path = self.file(name);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => StateError::Symlink { path: path.clone() },
                _ => StateError::io("opening", &path, e),
            })?;
        let meta = f.metadata().map_err(|e| StateError::io("opening", &path, e))?;
        if !meta.is_file() {
            return Err(StateError::WrongType { path, expected: "regular file" });
        }
        Ok(f)
    }

    fn open_lock_file(&self) -> Result<File, StateError> {
        self.open_private_file(LOCK_FILE, true)
    }

    /// Takes the directory's lock for a command that writes (`holder` says who, e.g. `serve`), or refuses
    /// with the holder's name and pid. Held until the returned guard is dropped (or the process ends).
    pub fn lock_for_write(&self, holder: &str) -> Result<WriteLock, StateError> {
        let file = self.open_lock_file()?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB)
            .map_err(|e| StateError::io("locking", self.file(LOCK_FILE), e))?
        {
            return Err(StateError::Locked { dir: self.path.clone(), holder: self.holder(&file) });
        }
        // Record who holds it, for the message another command prints.
        let note = format!("{holder} (pid {})\n", std::process::id());
        let _ = file.set_len(0).and_then(|()| file.write_all_at(note.as_bytes(), 0));
        Ok(WriteLock { _file: file, dir: self.path.clone() })
    }

    /// For a reading command: a shared lock, so no writer starts while it reads, or `None` if a writer
    /// holds the directory now (the caller then opens its volume detached and says freshness was not checked).
    pub fn lock_for_read(&self) -> Result<Option<ReadLock>, StateError> {
        let file = match self.open_lock_file() {
            Ok(f) => f,
            // A read-only copy of a state directory (a backup) may not let us create the lock file.
            Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if flock(&file, libc::LOCK_SH | libc::LOCK_NB)
            .map_err(|e| StateError::io("locking", self.file(LOCK_FILE), e))?
        {
            Ok(Some(ReadLock { _file: file }))
        } else {
            Ok(None)
        }
    }

    /// Who holds the lock, as its holder recorded it; "another process" when the record is missing or its
    /// process is gone (a reading command holds it, or the note is stale).
    pub fn holder(&self, file: &File) -> String {
        let mut note = String::new();
        let _ = file.take(256).read_to_string(&mut note);
        let note = note.trim();
        let pid = note
            .rsplit_once("(pid ")
            .and_then(|(_, p)| p.strip_suffix(')'))
            .and_then(|p| p.parse::<u32>().ok());
        match pid {
            Some(pid) if Path::new(&format!("/proc/{pid}")).exists() => note.to_string(),
            _ => "another process (a reading command, or one that left no note)".into(),
        }
    }

    /// The holder of the lock now, if a writer holds it (for messages of reading commands).
    pub fn current_writer(&self) -> Option<String> {
        let file = self.open_lock_file().ok()?;
        match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
            Ok(false) => Some(self.holder(&file)),
            _ => None,
        }
    }
}

/// `flock` without blocking: `Ok(false)` when someone else holds a conflicting lock.
fn flock(file: &File, op: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Proof that this process holds a state directory's lock exclusively: commands that write a volume need
/// one. Released on drop.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
    dir: PathBuf,
}

impl WriteLock {
    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A shared lock on a state directory held by a reading command: writers wait for it to finish.
#[derive(Debug)]
pub struct ReadLock {
    _file: File,
}

/// Writes `text` to a new private file in the directory (0600, not through a link, refusing to overwrite).
pub fn write_new_private(dir: &StateDir, name: &str, text: &[u8]) -> Result<(), StateError> {
    let path = dir.file(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| StateError::io("creating", &path, e))?;
    f.write_all(text).map_err(|e| StateError::io("writing", &path, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_new_directory_is_0700_and_an_open_one_is_refused_with_the_fix() {
        let base = tempfile::tempdir().unwrap();
        let p = base.path().join("a/state");
        let (dir, created) = StateDir::open_or_create(&p).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(!StateDir::open_or_create(&p).unwrap().1);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = StateDir::open(&p).unwrap_err();
        assert!(err.to_string().contains(&format!("chmod 700 {}", p.display())), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(StateDir::open(&link), Err(StateError::Symlink { .. })));
    }

    #[test]
    fn the_lock_names_its_holder_and_readers_yield_to_writers() {
        let base = tempfile::tempdir().unwrap();
        let (dir, _) = StateDir::open_or_create(base.path().join("s")).unwrap();
        let w = dir.lock_for_write("serve").unwrap();
        let err = dir.lock_for_write("tpm manufacture").unwrap_err();
        let msg = err.to_string();
        let want =
            format!("svsm-host serve (pid {}) holds {}; stop it", std::process::id(), dir.path().display());
        assert!(msg.starts_with(&want), "{msg}");
        assert!(dir.lock_for_read().unwrap().is_none());
        assert!(dir.current_writer().unwrap().starts_with("serve (pid"));
        drop(w);
        let r1 = dir.lock_for_read().unwrap().unwrap();
        let _r2 = dir.lock_for_read().unwrap().unwrap();
        assert!(dir.current_writer().is_none());
        assert!(matches!(dir.lock_for_write("x"), Err(StateError::Locked { .. })));
        drop((r1, _r2));
        dir.lock_for_write("x").unwrap();
    }

    #[test]
    fn files_are_never_opened_through_links() {
        let base = tempfile::tempdir().unwrap();
        let (dir, _) = StateDir::open_or_create(base.path().join("s")).unwrap();
        let victim = base.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.file("guest.mem")).unwrap();
        assert!(matches!(dir.open_private_file("guest.mem", true), Err(StateError::Symlink { .. })));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let f = dir.open_private_file("new", true).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
}
