//! `svsm-host tpm ...`: offline vTPM provisioning and inspection.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use svsm_vtpm::manufacture::ManufactureOptions;

use crate::state::StateDir;
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
    /// Ledger mode of the new store (see docs/flush-policy.md): strict detects every rollback.
    #[arg(long, value_enum, default_value = "strict")]
    pub ledger_mode: vtpm::LedgerChoice,
    /// Provisioning CA certificate (PEM). With --ek-ca-key, EK certificates signed by it are written to the
    /// standard NV indices (RSA 0x01C00002, ECC 0x01C0000A) with platform attributes.
    #[arg(long, requires = "ek_ca_key")]
    pub ek_ca: Option<PathBuf>,
    /// The provisioning CA's private key (PEM, ECDSA P-256 or P-384, PKCS#8 or SEC1).
    #[arg(long, requires = "ek_ca")]
    pub ek_ca_key: Option<PathBuf>,
}

impl ManufactureArgs {
    /// The options for the core manufacturing logic.
    pub fn options(&self) -> ManufactureOptions {
        ManufactureOptions { persist_eks: self.persist_ek, write_templates: !self.no_ek_templates }
    }

    /// The CA that signs EK certificates, if one was given.
    pub fn issuer(&self) -> anyhow::Result<Option<vtpm::ekcert::CaIssuer>> {
        match (&self.ek_ca, &self.ek_ca_key) {
            (Some(cert), Some(key)) => Ok(Some(vtpm::ekcert::CaIssuer::load(cert, key)?)),
            _ => Ok(None),
        }
    }

    /// Manufactures into `storage` with these arguments.
    pub fn manufacture_into(
        &self,
        storage: &mut dyn svsm_vtpm::NvStorage,
    ) -> anyhow::Result<svsm_vtpm::manufacture::ManufactureRecord> {
        let mut issuer = self.issuer()?;
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
                .manufacture_into(&mut storage)
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
    }
    Ok(ExitCode::SUCCESS)
}
