//! The vTPM as a host service: its state directory, manufacturing, and the socket servers.

pub mod ekcert;
pub mod server;
pub mod slot_file;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use svsm_libtpms::{LibTpms, StateMode};
use svsm_vtpm::manufacture::{self, EkCertIssuer, ManufactureOptions, ManufactureRecord, StoredState};
use svsm_vtpm::{MemNvStorage, NvBlob, NvStorage, TpmEngine};

/// File in the state directory that holds the vTPM's NV state.
pub const NV_FILE: &str = "vtpm-nv.slots";

/// Path of the NV file in a state directory.
pub fn nv_path(state_dir: &Path) -> PathBuf {
    state_dir.join(NV_FILE)
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

/// Opens the NV file of an existing state directory and checks it holds a manufactured TPM.
pub fn open_manufactured(state_dir: &Path) -> anyhow::Result<(slot_file::SlotFile, ManufactureRecord)> {
    let path = nv_path(state_dir);
    if !path.exists() {
        bail!(
            "{} has no vTPM state ({} is missing). If this is a new TPM, run `svsm-host tpm manufacture \
             --state-dir {}`; if it should exist, restore it from a backup",
            state_dir.display(),
            path.display(),
            state_dir.display()
        );
    }
    let mut storage = slot_file::SlotFile::open(&path)
        .with_context(|| format!("refusing to start: the vTPM state in {} is damaged", path.display()))?;
    match manufacture::inspect(&mut storage).context("refusing to start")? {
        StoredState::Manufactured(rec) => Ok((storage, rec)),
        StoredState::Empty => bail!(
            "refusing to start: {} holds no manufactured TPM (it will not be manufactured implicitly); \
             run `svsm-host tpm manufacture --state-dir {}` if this is intended",
            path.display(),
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
