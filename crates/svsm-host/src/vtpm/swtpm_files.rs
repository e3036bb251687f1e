//! Moving a TPM between a swtpm state directory and this vTPM: reading `tpm2-00.permall` (and
//! `tpm2-00.volatilestate`, if a suspended swtpm left one) plain or `--key`-encrypted, checking that libtpms
//! can run it, and writing a directory `swtpm --tpmstate dir=` runs. The format is in
//! [`svsm_vtpm::swtpm_state`].

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rand::RngCore as _;
use svsm_libtpms::{LibTpms, StateMode};
use svsm_vtpm::manufacture::{self, EkRecord};
use svsm_vtpm::swtpm_state::{self, BlobKind, KeyFormat, StateKey};
use svsm_vtpm::{MemNvStorage, NvBlob, NvStorage, TpmEngine};
use zeroize::Zeroizing;

/// Reads a swtpm `--key` file (`format=hex` or `binary`; AES-128 or AES-256 by its length).
pub fn read_state_key(path: &Path, format: KeyFormat) -> anyhow::Result<StateKey> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("reading swtpm key file {}", path.display()))?,
    );
    StateKey::from_key_file(&bytes, format)
        .with_context(|| format!("{} is not a swtpm key file", path.display()))
}

/// The libtpms blobs of a swtpm state directory.
#[derive(Debug)]
pub struct SwtpmState {
    /// `tpm2-00.permall`'s blob.
    pub permanent: Zeroizing<Vec<u8>>,
    /// `tpm2-00.volatilestate`'s blob, if present.
    pub volatile: Option<Zeroizing<Vec<u8>>>,
    /// Whether the files were encrypted.
    pub encrypted: bool,
}

fn read_file(
    dir: &Path,
    kind: BlobKind,
    key: Option<&StateKey>,
) -> anyhow::Result<Option<(Zeroizing<Vec<u8>>, bool)>> {
    let path = dir.join(kind.file_name());
    let bytes = match std::fs::read(&path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let decoded =
        swtpm_state::decode(&bytes, kind, key).with_context(|| format!("refusing {}", path.display()))?;
    Ok(Some(decoded))
}

/// Reads a swtpm TPM 2 state directory. A damaged, foreign or wrongly keyed file is a precise error.
pub fn read_dir(dir: &Path, key: Option<&StateKey>) -> anyhow::Result<SwtpmState> {
    let Some((permanent, encrypted)) = read_file(dir, BlobKind::Permanent, key)? else {
        bail!(
            "{} holds no {} (is it a swtpm TPM 2 state directory? TPM 1.2 states are not supported)",
            dir.display(),
            swtpm_state::PERMALL_FILE
        );
    };
    if key.is_some() && !encrypted {
        tracing::warn!(dir = %dir.display(), "the swtpm state is not encrypted; the --key given was not needed");
    }
    let volatile = read_file(dir, BlobKind::Volatile, key)?.map(|(b, _)| b);
    Ok(SwtpmState { permanent, volatile, encrypted })
}

/// Runs the permanent state in a scratch libtpms (nothing is kept) and surveys its EKs: proves libtpms can
/// run it and gives the record the store keeps.
pub fn survey(permanent: &[u8]) -> anyhow::Result<Vec<EkRecord>> {
    let mut scratch = MemNvStorage::new();
    scratch.store(NvBlob::Permanent, permanent)?;
    let mut engine = LibTpms::new(scratch, StateMode::RequireExisting)?;
    engine.power_on().context(
        "libtpms cannot load this swtpm state (written by an incompatible libtpms version, or damaged)",
    )?;
    let eks = manufacture::survey(&mut engine)
        .context("the imported TPM does not answer as expected (surveying its EKs failed)")?;
    engine.power_off();
    Ok(eks)
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes a swtpm state directory (created 0700 if missing) that `swtpm socket --tpmstate dir=DIR` runs,
/// encrypted with `key` if given (then start swtpm with the same `--key`). Refuses to overwrite a state.
pub fn write_dir(
    dir: &Path,
    permanent: &[u8],
    volatile: Option<&[u8]>,
    key: Option<&StateKey>,
) -> anyhow::Result<Vec<PathBuf>> {
    use std::os::unix::fs::DirBuilderExt as _;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    for kind in [BlobKind::Permanent, BlobKind::Volatile] {
        let path = dir.join(kind.file_name());
        if path.exists() {
            bail!(
                "{} already exists; export into an empty directory (a TPM state is never overwritten)",
                path.display()
            );
        }
    }
    let encode = |blob: &[u8], kind: BlobKind| -> anyhow::Result<Vec<u8>> {
        Ok(match key {
            Some(key) => {
                let mut ivec = vec![0u8; usize::from(key.bits() / 8)];
                rand::rngs::OsRng.fill_bytes(&mut ivec);
                swtpm_state::encode_encrypted(blob, kind, key, &ivec)?
            }
            None => swtpm_state::encode_plain(blob, kind)?,
        })
    };
    let mut written = Vec::new();
    if let Some(v) = volatile {
        write_atomically(dir, swtpm_state::VOLATILE_FILE, &encode(v, BlobKind::Volatile)?)?;
        written.push(dir.join(swtpm_state::VOLATILE_FILE));
    }
    // The permanent state last: a directory without it is not a TPM, so a crash mid-export leaves nothing runnable.
    write_atomically(
        dir,
        swtpm_state::PERMALL_FILE,
        &Zeroizing::new(encode(permanent, BlobKind::Permanent)?),
    )?;
    written.push(dir.join(swtpm_state::PERMALL_FILE));
    Ok(written)
}
