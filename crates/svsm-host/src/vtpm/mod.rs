//! The vTPM as a host service: its state directory, manufacturing, and the socket servers.

pub mod ekcert;
pub mod server;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use svsm_block::FileDisk;
use svsm_libtpms::{LibTpms, StateMode};
use svsm_store::{FileLedger, FormatParams, LedgerMode, OpenOptions, OsRandom, Store, StoreKey};
use svsm_vtpm::manufacture::{self, EkCertIssuer, ManufactureOptions, ManufactureRecord, StoredState};
use svsm_vtpm::store_nv::StoreNvStorage;
use svsm_vtpm::{MemNvStorage, NvBlob, NvStorage, TpmEngine};

/// The encrypted store image in the state directory.
pub const STORE_FILE: &str = "vtpm.store";
/// The ledger directory (file ledger: development only, the host controls it).
pub const LEDGER_DIR: &str = "ledger";
/// The development key file created on first start when no `--store-key` is given.
pub const DEV_KEY_FILE: &str = "dev-store.key";
/// Store size in 4 KiB blocks (4 MiB: the vTPM's objects are a few KiB, the rest is copy-on-write room).
pub const STORE_BLOCKS: u64 = 1024;

/// The vTPM's NV storage: its objects in the secure store on a file, with a file ledger.
pub type VtpmStorage = StoreNvStorage<FileDisk, FileLedger>;

/// How a new store uses its ledger (fixed at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerChoice {
    /// Every NV commit is acknowledged by the ledger: any rollback, even of one write, is detected.
    Strict,
    /// The ledger advances at start and clean stop only: cheaper commits, but the host can still choose among
    /// the states committed since the ledger last moved (any commit of the current run; after a crash, any
    /// run that started from the same record). Images older than the ledger, and forks of an earlier run that
    /// a later run superseded, are refused.
    BootEpoch,
}

impl From<LedgerChoice> for LedgerMode {
    fn from(c: LedgerChoice) -> Self {
        match c {
            LedgerChoice::Strict => LedgerMode::Strict,
            LedgerChoice::BootEpoch => LedgerMode::BootEpoch,
        }
    }
}

/// Path of the store image in a state directory.
pub fn store_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STORE_FILE)
}

/// The key file to use: the operator's, or the development key in the state directory.
pub fn key_path(state_dir: &Path, key_file: Option<&Path>) -> PathBuf {
    key_file.map_or_else(|| state_dir.join(DEV_KEY_FILE), Path::to_path_buf)
}

const DEV_KEY_HEADER: &str = "\
# svsm-host DEVELOPMENT store key -- NOT FOR PRODUCTION.
# Anyone who can read this file can decrypt and forge this vTPM's state. A production SVSM gets its store
# key from attestation-gated key release, never from a file beside the data.
";

/// Creates a development key file (0600, labelled) with a fresh random key.
fn create_dev_key(path: &Path) -> anyhow::Result<StoreKey> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut key = [0u8; 32];
    svsm_store::RandomSource::fill(&mut OsRandom, &mut key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    f.write_all(format!("{DEV_KEY_HEADER}{}\n", hex(&key)).as_bytes())?;
    f.sync_all()?;
    Ok(StoreKey::from_bytes(key))
}

/// Reads a key file: 64 hex digits, `#` comment lines ignored.
pub fn read_key(path: &Path) -> anyhow::Result<StoreKey> {
    use std::os::unix::fs::PermissionsExt as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading store key {}", path.display()))?;
    if std::fs::metadata(path)?.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "store key file is readable by group or others; chmod 600 it");
    }
    let hexkey: String = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<String>();
    let hexkey = hexkey.trim();
    if hexkey.len() != 64 || !hexkey.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{} does not hold a 256-bit key as 64 hex digits", path.display());
    }
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&hexkey[2 * i..2 * i + 2], 16)?;
    }
    Ok(StoreKey::from_bytes(key))
}

/// Creates the encrypted store of a new vTPM (format + ledger enrolment), and the development key if no key
/// file exists yet.
pub fn create_store(
    state_dir: &Path,
    key_file: Option<&Path>,
    mode: LedgerMode,
) -> anyhow::Result<VtpmStorage> {
    let path = store_path(state_dir);
    let kpath = key_path(state_dir, key_file);
    let key = if kpath.exists() {
        read_key(&kpath)?
    } else if key_file.is_none() {
        let k = create_dev_key(&kpath)?;
        println!("created DEVELOPMENT store key {} (not for production)", kpath.display());
        k
    } else {
        bail!("store key file {} does not exist", kpath.display());
    };
    let disk = FileDisk::create(&path, 4096, STORE_BLOCKS)
        .with_context(|| format!("creating {} (existing stores are never overwritten)", path.display()))?;
    Store::<FileDisk, FileLedger>::format(disk, &key, FormatParams::new(mode, Box::new(OsRandom)))
        .context("formatting the vTPM store")?;
    let disk = FileDisk::open(&path, 4096, false)?;
    let ledger = FileLedger::new(state_dir.join(LEDGER_DIR))?;
    let options = OpenOptions { enroll: true, ..OpenOptions::default() };
    let store = Store::open(disk, &key, ledger, options).context("enrolling the new store in the ledger")?;
    Ok(StoreNvStorage::new(store))
}

/// Opens the encrypted store of an existing vTPM; a tampered, rolled-back or foreign store is refused.
pub fn open_store(state_dir: &Path, key_file: Option<&Path>, read_only: bool) -> anyhow::Result<VtpmStorage> {
    let path = store_path(state_dir);
    if !path.exists() {
        bail!(
            "{} has no vTPM state ({} is missing). If this is a new TPM, run `svsm-host tpm manufacture \
             --state-dir {}`; if it should exist, restore it from a backup",
            state_dir.display(),
            path.display(),
            state_dir.display()
        );
    }
    let key = read_key(&key_path(state_dir, key_file))?;
    let disk = FileDisk::open(&path, 4096, read_only)?;
    let ledger = FileLedger::new(state_dir.join(LEDGER_DIR))?;
    let options = OpenOptions { read_only, ..OpenOptions::default() };
    let store = Store::open(disk, &key, ledger, options).map_err(|e| {
        anyhow::anyhow!(
            "refusing to start: the vTPM store {} failed verification ({e}); it was tampered with, rolled back \
             or damaged. Restore a current copy; the TPM is never re-manufactured implicitly",
            path.display()
        )
    })?;
    Ok(StoreNvStorage::new(store))
}

/// Takes an exclusive lock on the state directory for this process's lifetime, so two daemons never serve
/// (and fork) the same TPM.
pub fn lock_state_dir(state_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd as _;
    let path = state_dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!("{} is in use by another svsm-host process (one daemon per TPM)", state_dir.display());
    }
    Ok(f)
}

/// Creates the state directory (0700) if needed.
pub fn ensure_state_dir(state_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if !state_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .with_context(|| format!("creating state directory {}", state_dir.display()))?;
    }
    Ok(())
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

/// Opens an existing state directory's store and checks it holds a manufactured TPM.
pub fn open_manufactured(
    state_dir: &Path,
    key_file: Option<&Path>,
    read_only: bool,
) -> anyhow::Result<(VtpmStorage, ManufactureRecord)> {
    let mut storage = open_store(state_dir, key_file, read_only)?;
    match manufacture::inspect(&mut storage).context("refusing to start")? {
        StoredState::Manufactured(rec) => Ok((storage, rec)),
        StoredState::Empty => bail!(
            "refusing to start: the store in {} holds no manufactured TPM (it will not be manufactured \
             implicitly); run `svsm-host tpm manufacture` on a new state directory if this is intended",
            state_dir.display()
        ),
    }
}

/// Prints a manufacture record for humans.
pub fn describe(record: &ManufactureRecord) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
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
