//! The key file: the development key source, and the one key-file format every command reads and writes.
//!
//! Format (UTF-8 text): exactly one line of 64 hexadecimal digits (the 32-byte root key, either case),
//! optionally surrounded by whitespace; any number of blank lines and comment lines whose first non-blank
//! character is `#`. Nothing else. The writer puts a comment header labelling the key as development-only
//! above the hex line, so a key file found on a disk explains itself. The file is owned by the user and
//! mode 0600; a key file others can read is refused (it no longer protects anything).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use svsm_store::{OsRandom, RandomSource as _, StoreKey};
use zeroize::Zeroizing;

use crate::state::api::{KeyOrigin, KeyRequest, KeySource, VolumeKey, VolumeName};
use crate::state::error::StateError;

/// The comment header of every key file `svsm-host` writes.
pub const DEV_KEY_HEADER: &str = "\
# svsm-host DEVELOPMENT store key -- NOT FOR PRODUCTION.
# Anyone who can read this file can decrypt and forge the volumes it protects. A production SVSM gets its
# store keys from attestation-gated key release, never from a file beside the data.
";

/// Longest key file accepted (a header, a key and some comments): anything larger is not a key file.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Parses key-file text (see the module docs). `Err` carries the reason, without any key material.
pub fn parse_key_text(raw: &[u8]) -> Result<StoreKey, String> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(if raw.len() == 32 {
            "it holds 32 raw bytes; key files are hex text now: convert it with `xxd -p -c 32 FILE`".into()
        } else {
            "it is not text".into()
        });
    };
    let mut key_line = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if key_line.replace(line).is_some() {
            return Err("it holds more than one non-comment line".into());
        }
    }
    let Some(line) = key_line else {
        return Err("it holds no key line".into());
    };
    if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(if raw.len() == 32 {
            "it holds 32 raw bytes; key files are hex text now: convert it with `xxd -p -c 32 FILE`".into()
        } else {
            format!("its key line is {} characters, not 64 hex digits", line.len())
        });
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (k, pair) in key.iter_mut().zip(line.as_bytes().chunks_exact(2)) {
        *k = (hex_val(pair[0]) << 4) | hex_val(pair[1]);
    }
    Ok(StoreKey::from_bytes(*key))
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Checks that a state file or directory is its user's alone: owned by this user, not a symlink (the caller
/// opened it with `O_NOFOLLOW`), and no permission bits for group or others.
pub(crate) fn check_private(path: &Path, meta: &std::fs::Metadata, want: u32) -> Result<(), StateError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(StateError::NotOwner { path: path.to_path_buf(), owner: meta.uid(), me });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StateError::Permissions { path: path.to_path_buf(), mode, want });
    }
    Ok(())
}

/// Reads and parses a key file, refusing links, other users' files and files others can read.
pub fn read_key_file(path: &Path) -> Result<StoreKey, StateError> {
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(StateError::Symlink { path: path.to_path_buf() });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StateError::KeyMissing {
                path: path.to_path_buf(),
                hint: "give the right --store-key / -k, or restore the key file from where you keep it",
            });
        }
        Err(e) => return Err(StateError::io("opening key file", path, e)),
    };
    let meta = f.metadata().map_err(|e| StateError::io("reading key file", path, e))?;
    if !meta.is_file() {
        return Err(StateError::WrongType { path: path.to_path_buf(), expected: "regular file" });
    }
    check_private(path, &meta, 0o600)?;
    if meta.len() > MAX_KEY_FILE {
        return Err(StateError::KeyFile {
            path: path.to_path_buf(),
            reason: format!("it is {} bytes, far more than a key file", meta.len()),
        });
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    (&mut f)
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| StateError::io("reading key file", path, e))?;
    parse_key_text(&raw).map_err(|reason| StateError::KeyFile { path: path.to_path_buf(), reason })
}

/// Writes a new random key to `path` (which must not exist): the development header, the hex line, mode
/// 0600, synced, directory entry synced. Returns the key.
pub fn write_new_key_file(path: &Path) -> Result<StoreKey, StateError> {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRandom.fill(&mut key[..]).map_err(|e| StateError::KeyFile {
        path: path.to_path_buf(),
        reason: format!("no random key could be made: {e}"),
    })?;
    let mut text = Zeroizing::new(String::with_capacity(DEV_KEY_HEADER.len() + 65));
    text.push_str(DEV_KEY_HEADER);
    for b in key.iter() {
        text.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        text.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => StateError::io(
                "refusing to overwrite the existing key file (a new key would lock you out of its volumes)",
                path,
                e,
            ),
            _ => StateError::io("creating key file", path, e),
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| StateError::io("writing key file", path, e))?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("syncing the directory of", path, e))?;
    Ok(StoreKey::from_bytes(*key))
}

/// Keys from one key file, for every volume (the store derives a distinct key per volume from the root
/// key and the volume's random id, so sharing one root key across volumes does not share their keys).
///
/// Always [`KeyOrigin::Development`]: the host can read the file.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
    may_create: bool,
}

impl KeyFile {
    /// The key in `path`, which must exist.
    pub fn existing(path: impl Into<PathBuf>) -> Self {
        KeyFile { path: path.into(), may_create: false }
    }

    /// The key in `path`; when a volume is created and the file does not exist yet, a new development key
    /// is written there (the state directory's `dev-store.key`).
    pub fn create_if_missing(path: impl Into<PathBuf>) -> Self {
        KeyFile { path: path.into(), may_create: true }
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KeySource for KeyFile {
    fn volume_key(&self, _volume: &VolumeName, request: KeyRequest) -> Result<VolumeKey, StateError> {
        let origin = KeyOrigin::Development { source: format!("key file {}", self.path.display()) };
        let key = match read_key_file(&self.path) {
            Err(StateError::KeyMissing { .. }) if self.may_create && request == KeyRequest::ForNewVolume => {
                let key = write_new_key_file(&self.path)?;
                tracing::warn!(path = %self.path.display(), "created a DEVELOPMENT store key (not for production)");
                key
            }
            other => other?,
        };
        Ok(VolumeKey { key, origin })
    }

    fn describe(&self) -> String {
        format!("key file {} (development)", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        p
    }

    #[test]
    fn the_writer_and_the_reader_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let written = write_new_key_file(&p).unwrap();
        let read = read_key_file(&p).unwrap();
        let (a, b) = (format!("{written:?}"), format!("{read:?}"));
        assert_eq!(a, b); // both redacted; compare the real bytes through a store below
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# svsm-host DEVELOPMENT"), "{text}");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        // Same key: a volume formatted with one opens with the other.
        let img = dir.path().join("img");
        let disk = svsm_block::FileDisk::create(&img, 4096, 64).unwrap();
        let params = svsm_store::FormatParams::new(svsm_store::LedgerMode::BootEpoch, Box::new(OsRandom));
        svsm_store::Store::<_, svsm_store::Detached>::format(disk, &written, params).unwrap();
        let options = svsm_store::OpenOptions::new(Box::new(OsRandom));
        let disk = svsm_block::FileDisk::open(&img, 4096, true).unwrap();
        svsm_store::Store::open_detached(disk, &read, options).unwrap();
        assert!(write_new_key_file(&p).is_err(), "must not overwrite");
    }

    #[test]
    fn comments_blank_lines_and_case_are_accepted() {
        let key = "Ab".repeat(32);
        for text in [
            key.clone(),
            format!("{key}\n"),
            format!("# c\n\n  {key}  \n# trailing\n"),
            format!("{DEV_KEY_HEADER}{key}\n"),
        ] {
            assert!(parse_key_text(text.as_bytes()).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_a_precise_error() {
        let key = "ab".repeat(32);
        for (text, needle) in [
            (b"short".to_vec(), "not 64 hex"),
            (b"# only a comment\n".to_vec(), "no key line"),
            (format!("{key}\n{key}\n").into_bytes(), "more than one"),
            (format!("{}zz", &key[..62]).into_bytes(), "not 64 hex"),
            (vec![0xFFu8; 32], "32 raw bytes"),
            ([7u8; 32].to_vec(), "32 raw bytes"),
            (vec![0xC3u8; 10], "not text"),
        ] {
            let err = parse_key_text(&text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn files_others_can_read_links_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = format!("{}\n", "ab".repeat(32));
        let p = private_file(dir.path(), "k", key.as_bytes());
        assert!(read_key_file(&p).is_ok());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&p).unwrap_err();
        assert!(matches!(err, StateError::Permissions { mode: 0o644, want: 0o600, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(read_key_file(&link), Err(StateError::Symlink { .. })));
        assert!(matches!(read_key_file(dir.path()), Err(StateError::WrongType { .. })));
        assert!(matches!(read_key_file(&dir.path().join("none")), Err(StateError::KeyMissing { .. })));
    }

    #[test]
    fn the_source_creates_only_for_new_volumes_and_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev.key");
        let v = VolumeName::VTPM;
        assert!(KeyFile::existing(&p).volume_key(&v, KeyRequest::ForNewVolume).is_err());
        assert!(KeyFile::create_if_missing(&p).volume_key(&v, KeyRequest::Existing).is_err());
        assert!(!p.exists());
        let k = KeyFile::create_if_missing(&p).volume_key(&v, KeyRequest::ForNewVolume).unwrap();
        assert!(k.origin.is_development());
        assert!(p.exists());
        KeyFile::existing(&p).volume_key(&v, KeyRequest::Existing).unwrap();
    }
}
