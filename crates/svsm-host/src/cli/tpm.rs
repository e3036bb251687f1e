//! `svsm-host tpm ...`: offline vTPM provisioning and inspection.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use svsm_vtpm::manufacture::{self, ManufactureOptions, ManufactureRecord, Origin, StoredState};
use svsm_vtpm::swtpm_state::{KeyFormat, StateKey};
use svsm_vtpm::{NvBlob, NvStorage as _};

use std::sync::Arc;

use svsm_vtpm::store_nv::StoreNvStorage;

use crate::state::{KeyFile, KeySource, StateDir, VolumeName};
use crate::vtpm;

/// How to manufacture (shared by `tpm manufacture` and a first `serve`).
#[derive(Debug, Clone, Args)]
pub struct ManufactureArgs {
    /// Make the EKs persistent at 0x81010001 (RSA) and 0x81010002 (ECC).
    #[arg(long)]
    pub persist_ek: bool,
    /// Do not write the EK templates to their NV indices (0x01C00004, 0x01C0000C).
    #[arg(long)]
    pub no_ek_templates: bool,
    /// Ledger mode of the new store: `strict` (every commit acknowledged by the ledger: any rollback is
    /// detected), `boot-epoch` (the ledger moves at start and clean stop only) or `window:SECONDS` (as
    /// boot-epoch, plus at least every SECONDS while commits happen: the host can roll back at most the last
    /// SECONDS of commits, never past a start). See docs/store-format.md §6 and docs/flush-policy.md.
    #[arg(long, default_value = "strict")]
    pub ledger_mode: vtpm::LedgerChoice,
    /// Provisioning CA certificate (PEM). With --ek-ca-key, EK certificates signed by it are written to the
    /// standard NV indices (RSA 0x01C00002, ECC 0x01C0000A) with platform attributes. Without it, a
    /// DEVELOPMENT EK CA is created in the state directory (dev-ek-ca.pem / dev-ek-ca.key) and signs them.
    #[arg(long, requires = "ek_ca_key", conflicts_with = "no_ek_certs")]
    pub ek_ca: Option<PathBuf>,
    /// The provisioning CA's private key (PEM, ECDSA P-256 or P-384, PKCS#8 or SEC1).
    #[arg(long, requires = "ek_ca")]
    pub ek_ca_key: Option<PathBuf>,
    /// Write no EK certificates at all (and create no development EK CA).
    #[arg(long)]
    pub no_ek_certs: bool,
}

impl ManufactureArgs {
    /// The options for the core manufacturing logic.
    pub fn options(&self) -> ManufactureOptions {
        ManufactureOptions { persist_eks: self.persist_ek, write_templates: !self.no_ek_templates }
    }

    /// The operator's CA that signs EK certificates, if one was given (loaded up front so a bad `--ek-ca`
    /// fails before anything is written).
    pub fn issuer(&self) -> anyhow::Result<Option<vtpm::ekcert::CaIssuer>> {
        match (&self.ek_ca, &self.ek_ca_key) {
            (Some(cert), Some(key)) => Ok(Some(vtpm::ekcert::CaIssuer::load(cert, key)?)),
            _ => Ok(None),
        }
    }

    /// Manufactures into `storage` with these arguments: EK certificates from the operator's CA, else from
    /// the development CA of `state_dir` (created if missing), unless `--no-ek-certs`.
    pub fn manufacture_into(
        &self,
        state_dir: &std::path::Path,
        storage: &mut dyn svsm_vtpm::NvStorage,
    ) -> anyhow::Result<svsm_vtpm::manufacture::ManufactureRecord> {
        let mut issuer = match self.issuer()? {
            Some(operator) => Some(operator),
            None if self.no_ek_certs => None,
            None => Some(vtpm::ekcert::CaIssuer::development(state_dir)?),
        };
        let issuer = issuer.as_mut().map(|i| i as &mut dyn svsm_vtpm::manufacture::EkCertIssuer);
        vtpm::manufacture_into(storage, self.options(), issuer)
    }
}

#[derive(Debug, Subcommand)]
pub enum TpmCommand {
    /// Manufacture a new vTPM in a state directory: fresh seeds, RSA-2048 and ECC P-256 EKs per the TCG EK
    /// Credential Profile. Refuses if the directory already holds a TPM (a TPM is never re-manufactured).
    Manufacture {
        /// State directory (created if missing).
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file (the key-file format: 64 hex digits, `#` comments). Default: `<state-dir>/dev-store.key`, created if missing.
        #[arg(long)]
        store_key: Option<PathBuf>,
        #[command(flatten)]
        manufacture: ManufactureArgs,
    },
    /// Show what a state directory's vTPM was manufactured with.
    Info {
        /// State directory.
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file. Default: `<state-dir>/dev-store.key`.
        #[arg(long)]
        store_key: Option<PathBuf>,
    },
    /// Import a swtpm TPM 2 state directory (`tpm2-00.permall`, plain or encrypted with swtpm's `--key`) into a
    /// new encrypted vTPM volume: same seeds, EKs, NV indices, persistent keys and hierarchy passwords. The
    /// swtpm directory is only read; stop swtpm first (its state files change while it runs).
    ImportSwtpm {
        /// The swtpm state directory (`swtpm --tpmstate dir=DIR`).
        #[arg(long)]
        from: PathBuf,
        /// swtpm's state key file, if swtpm ran with `--key file=...` (AES-128 or AES-256 by its length).
        #[arg(long)]
        key: Option<PathBuf>,
        /// How the key file is written (swtpm's `format=`).
        #[arg(long, value_enum, default_value = "hex", requires = "key")]
        key_format: KeyFileFormat,
        /// The new vTPM's state directory (must not hold a vTPM yet).
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file (64 hex digits). Default: `<state-dir>/dev-store.key`, created if missing.
        #[arg(long)]
        store_key: Option<PathBuf>,
        /// Ledger mode of the new store: `strict`, `boot-epoch` or `window:SECONDS` (see `tpm manufacture
        /// --help` and docs/store-format.md §6).
        #[arg(long, default_value = "strict")]
        ledger_mode: vtpm::LedgerChoice,
    },
    /// Export this vTPM as a swtpm TPM 2 state directory that `swtpm socket --tpm2 --tpmstate dir=DIR` runs.
    /// Stop the daemon first. Without --key the exported file holds the TPM's seeds in the clear.
    ExportSwtpm {
        /// The directory to write (created if missing; an existing swtpm state in it is never overwritten).
        #[arg(long)]
        to: PathBuf,
        /// Encrypt the files with this swtpm key file; start swtpm with `--key file=FILE,mode=aes-cbc` (16-byte
        /// key) or `mode=aes-256-cbc` (32-byte key), with the same `format=`.
        #[arg(long)]
        key: Option<PathBuf>,
        /// How the key file is written (swtpm's `format=`).
        #[arg(long, value_enum, default_value = "hex", requires = "key")]
        key_format: KeyFileFormat,
        /// The vTPM's state directory.
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file. Default: `<state-dir>/dev-store.key`.
        #[arg(long)]
        store_key: Option<PathBuf>,
    },
}

/// swtpm key file formats (`--key file=...,format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyFileFormat {
    /// Hex digits: 32 (AES-128) or 64 (AES-256).
    Hex,
    /// Raw bytes: 16 or 32.
    Binary,
}

impl From<KeyFileFormat> for KeyFormat {
    fn from(f: KeyFileFormat) -> Self {
        match f {
            KeyFileFormat::Hex => KeyFormat::Hex,
            KeyFileFormat::Binary => KeyFormat::Binary,
        }
    }
}

fn state_key(path: Option<&std::path::Path>, format: KeyFileFormat) -> anyhow::Result<Option<StateKey>> {
    path.map(|p| vtpm::swtpm_files::read_state_key(p, format.into())).transpose()
}

fn import_swtpm(
    from: &std::path::Path,
    key: Option<&StateKey>,
    state_dir: &std::path::Path,
    store_key: Option<&std::path::Path>,
    ledger_mode: vtpm::LedgerChoice,
) -> anyhow::Result<()> {
    // Everything is read and checked before the new state directory is touched.
    let state = vtpm::swtpm_files::read_dir(from, key)?;
    let eks = vtpm::swtpm_files::survey(&state.permanent)?;
    // The new volume is created through the state model (its key and ledger sources decide where the key
    // and the freshness records come from); an existing volume is never overwritten.
    let (dir, _created) = StateDir::open_or_create(state_dir)?;
    let lock = dir.lock_for_write("tpm import-swtpm")?;
    let keys: Arc<dyn KeySource> = match store_key {
        Some(path) => Arc::new(KeyFile::existing(path)),
        None => dir.default_keys(),
    };
    let volume = dir.volume(VolumeName::VTPM, keys, dir.default_ledgers());
    if volume.exists() {
        bail!("{} already holds a vTPM; import into a new --state-dir", volume.image().display());
    }
    let store = volume.create(&lock, vtpm::STORE_BLOCKS, ledger_mode.into())?;
    let mut storage = StoreNvStorage::new(store);
    let record = ManufactureRecord { eks, origin: Origin::ImportedSwtpm, cert_issuer: None };
    let encoded = record.encode().map_err(|e| anyhow::anyhow!("encoding the record: {e}"))?;
    let mut changes: Vec<(NvBlob, Option<&[u8]>)> =
        vec![(NvBlob::Permanent, Some(&state.permanent)), (NvBlob::Manufacture, Some(&encoded))];
    if let Some(v) = &state.volatile {
        changes.push((NvBlob::Volatile, Some(v)));
    }
    storage.commit(&changes).context("committing the imported TPM to the store")?;
    println!(
        "imported the swtpm TPM in {} ({}{}) into {}",
        from.display(),
        if state.encrypted { "encrypted" } else { "plain" },
        if state.volatile.is_some() { ", with volatile state" } else { "" },
        state_dir.display()
    );
    print!("{}", vtpm::describe(&record));
    if record.eks.len() < svsm_vtpm::manufacture::EkKind::ALL.len() {
        println!(
            "note: not every EK could be derived offline (the endorsement hierarchy has a password, or is \
             disabled); the EKs are unchanged, create them with tpm2_createek -P <endorsement password>"
        );
    }
    Ok(())
}

fn export_swtpm(
    to: &std::path::Path,
    key: Option<&StateKey>,
    state_dir: &std::path::Path,
    store_key: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let dir = StateDir::open(state_dir)?;
    // The write lock, though nothing is written: a running daemon holds it, and its volatile state would be
    // newer than the store's.
    let _lock = dir
        .lock_for_write("tpm export-swtpm")
        .context("stop the daemon serving this vTPM before exporting it")?;
    let keys: Arc<dyn KeySource> = match store_key {
        Some(path) => Arc::new(KeyFile::existing(path)),
        None => Arc::new(KeyFile::existing(dir.dev_key_path())),
    };
    let volume = dir.volume(VolumeName::VTPM, keys, dir.default_ledgers());
    let mut storage = StoreNvStorage::new(volume.open_read_only()?);
    match manufacture::inspect(&mut storage)? {
        StoredState::Manufactured(_) => {}
        StoredState::Empty => bail!("{} holds no vTPM to export", volume.image().display()),
    }
    // NvData is zeroizing: the seeds in these buffers are wiped when they go.
    let permanent = storage.load(NvBlob::Permanent)?.context("the store holds no TPM state")?;
    let volatile = storage.load(NvBlob::Volatile)?;
    let written = vtpm::swtpm_files::write_dir(to, &permanent, volatile.as_deref().map(|v| &v[..]), key)?;
    for p in &written {
        println!("wrote {}", p.display());
    }
    match key {
        Some(k) => println!(
            "run it with: swtpm socket --tpm2 --tpmstate dir={} --key file=<key>,mode={} ...",
            to.display(),
            if k.bits() == 256 { "aes-256-cbc" } else { "aes-cbc" }
        ),
        None => println!(
            "WARNING: {} holds this TPM's seeds unencrypted; protect or delete it (use --key to encrypt)",
            to.display()
        ),
    }
    Ok(())
}

pub fn run(cmd: TpmCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TpmCommand::Manufacture { state_dir, store_key, manufacture } => {
            // Load the CA first: a bad --ek-ca must not leave a half-made state directory behind.
            manufacture.issuer()?;
            let (dir, _) = StateDir::open_or_create(&state_dir)?;
            let lock = dir.lock_for_write("tpm manufacture")?;
            let vol = vtpm::volume(&dir, store_key.as_deref());
            if vol.exists() {
                bail!(
                    "{} already holds vTPM state; a TPM is never re-manufactured (its EKs are its identity). \
                     Use a new --state-dir for a new TPM",
                    vol.image().display()
                );
            }
            let mut storage = vtpm::create_store(&vol, &lock, manufacture.ledger_mode.into())?;
            let record = manufacture
                .manufacture_into(&state_dir, &mut storage)
                .with_context(|| format!("manufacturing into {}", vol.image().display()))?;
            println!("manufactured a new vTPM in {}", state_dir.display());
            print!("{}", vtpm::describe(&record));
        }
        TpmCommand::Info { state_dir, store_key } => {
            let dir = StateDir::open(&state_dir)?;
            let vol = vtpm::volume(&dir, store_key.as_deref());
            let (storage, record) = vtpm::open_for_reading(&vol)?;
            let stats = storage.stats();
            let (a, b, c) = svsm_libtpms::LibTpms::library_version();
            println!("vTPM in {} (libtpms {a}.{b}.{c})", state_dir.display());
            let freshness = match storage {
                vtpm::ReadStorage::Checked(_) => "ledger checked",
                vtpm::ReadStorage::Detached(_) => "detached: freshness NOT checked",
            };
            println!(
                "store: {} (volume {}, generation {}, {} objects, ledger {:?}; {freshness})",
                vol.image().display(),
                stats.volume_id,
                stats.generation,
                stats.objects,
                stats.ledger_mode
            );
            println!("key:   {}", vol.key_source().describe());
            print!("{}", vtpm::describe(&record));
        }
        TpmCommand::ImportSwtpm { from, key, key_format, state_dir, store_key, ledger_mode } => {
            let key = state_key(key.as_deref(), key_format)?;
            import_swtpm(&from, key.as_ref(), &state_dir, store_key.as_deref(), ledger_mode)?;
        }
        TpmCommand::ExportSwtpm { to, key, key_format, state_dir, store_key } => {
            let key = state_key(key.as_deref(), key_format)?;
            export_swtpm(&to, key.as_ref(), &state_dir, store_key.as_deref())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
