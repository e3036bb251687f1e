//! `svsm-host uefi ...`: the operator's tools for the UEFI variable volume (`<state-dir>/uefi-vars.store`):
//! import an OVMF varstore (`OVMF_VARS*.fd`) or a virt-fw-vars JSON file, export either format, list the
//! variables, show one.
//!
//! The file formats are `svsm-ovmf-vars`'s; the volume is reached through the state model (its key and
//! ledger sources) and `svsm-uefi`'s persistence API, so what `serve --uefi` serves is exactly what these
//! commands read and write. Readers work while `serve` runs (opened detached, freshness not checked, and they
//! say so); import takes the state directory's write lock, so it refuses while a daemon serves it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use svsm_ovmf_vars::fd::{self, FdLayout};
use svsm_ovmf_vars::{EfiVar, EfiVarAttr, EfiVarId, json};
use svsm_store::{Ledger, LedgerMode, Store};
use svsm_uefi::persist::StoreVariableStorage;
use svsm_uefi::{StoredVariable, VariableStorage as _};

use crate::state::{StateDir, Volume};

/// Variable files the tools read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// An OVMF/edk2 varstore flash image (`OVMF_VARS*.fd`, what QEMU's second pflash device holds).
    Fd,
    /// virt-fw-vars JSON (version 2; also QEMU's `uefi-vars` device's `jsonfile`).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum UefiCommand {
    /// Import the non-volatile variables of an OVMF varstore image (e.g. Debian's
    /// /usr/share/OVMF/OVMF_VARS_4M.ms.fd: Secure Boot keys PK, KEK, db, dbx) or of a virt-fw-vars JSON file
    /// into the UEFI variable volume. The file is checked completely first: a damaged file changes nothing.
    /// Creates the volume (strict ledger mode) if the state directory has none; an existing volume is
    /// replaced only with --force, in one transaction. Stop `serve` first (import needs the write lock).
    Import {
        /// The file to import.
        #[arg(long)]
        from: PathBuf,
        /// Its format (default: JSON if it starts with `{`, else an .fd image).
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        /// State directory (created if missing).
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file (64 hex digits). Default: `<state-dir>/dev-store.key`, created if missing.
        #[arg(long)]
        store_key: Option<PathBuf>,
        /// Replace every variable of an existing UEFI volume with the file's (one atomic commit; the ledger
        /// moves forward, so this is not a rollback).
        #[arg(long)]
        force: bool,
    },
    /// Export the UEFI variable volume's non-volatile variables as an OVMF varstore image (QEMU: `-drive
    /// if=pflash,unit=1,format=raw,file=OUT`) or as virt-fw-vars JSON.
    Export {
        /// Output format.
        #[arg(long, value_enum)]
        format: FileFormat,
        /// Output file (`-` for standard output, JSON only). An existing file is kept unless --force.
        #[arg(long)]
        to: PathBuf,
        /// For `--format fd`: lay the image out like this OVMF_VARS file (e.g. the 2 MiB build's 128 KiB
        /// /usr/share/OVMF/OVMF_VARS.fd). Default: OVMF's 4 MiB build layout (540672 bytes, Debian's
        /// OVMF_VARS_4M.fd, for OVMF_CODE_4M.fd).
        #[arg(long)]
        template: Option<PathBuf>,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
        /// State directory.
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file. Default: `<state-dir>/dev-store.key`.
        #[arg(long)]
        store_key: Option<PathBuf>,
    },
    /// List the UEFI variable volume's non-volatile variables: name, vendor GUID, attributes, size and the
    /// timestamp of time-based authenticated ones.
    List {
        /// State directory.
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file. Default: `<state-dir>/dev-store.key`.
        #[arg(long)]
        store_key: Option<PathBuf>,
    },
    /// Show one variable: attributes, timestamp, and its data as a hex dump (or raw into --output).
    Get {
        /// Variable name, e.g. `PK`, `db`, `Boot0000`.
        name: String,
        /// Vendor GUID, e.g. 8be4df61-93ca-11d2-aa0d-00e098032b8c (EFI_GLOBAL_VARIABLE; also `global`) or
        /// d719b2cb-3d3a-4596-a3bc-dad00e67656f (db/dbx; also `security`).
        guid: String,
        /// Write the raw data to this file instead of printing a hex dump.
        #[arg(long)]
        output: Option<PathBuf>,
        /// State directory.
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Store key file. Default: `<state-dir>/dev-store.key`.
        #[arg(long)]
        store_key: Option<PathBuf>,
    },
}

/// EFI_GLOBAL_VARIABLE, the vendor of PK, KEK, Boot####, ...
const GLOBAL_VARIABLE: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// EFI_IMAGE_SECURITY_DATABASE_GUID, the vendor of db and dbx.
const IMAGE_SECURITY_DATABASE: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

/// The persistence record of `var` (svsm-uefi's type; the variable itself is virtfw-varstore's).
pub fn to_stored(var: &EfiVar) -> StoredVariable {
    StoredVariable {
        name: var.name().to_owned(),
        vendor: svsm_protocol::Guid(var.guid().to_bytes()),
        attributes: u32::from(var.attr()),
        timestamp: var.time().map(svsm_ovmf_vars::efi_time_to_bytes),
        data: var.data().to_vec(),
    }
}

/// The virtfw-varstore variable of a persistence record.
pub fn from_stored(var: &StoredVariable) -> EfiVar {
    EfiVar::new_with_vec_full(
        EfiVarId::new(var.name.clone(), svsm_ovmf_vars::Guid::from_bytes(var.vendor.0)),
        EfiVarAttr::from(var.attributes),
        var.data.clone(),
        var.timestamp.as_ref().map(svsm_ovmf_vars::efi_time_from_bytes),
    )
}

/// Reads and checks a variable file completely.
fn read_file(path: &Path, format: Option<FileFormat>) -> anyhow::Result<(Vec<EfiVar>, FileFormat)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let format = format.unwrap_or_else(|| {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            FileFormat::Json
        } else {
            FileFormat::Fd
        }
    });
    let vars = match format {
        FileFormat::Fd => {
            let image = fd::parse(&bytes).with_context(|| {
                format!("{} is not a usable OVMF varstore image (nothing was imported)", path.display())
            })?;
            tracing::info!(
                file = %path.display(),
                live = image.variables.len(),
                recovered = image.stats.recovered,
                superseded = image.stats.superseded,
                dead = image.stats.dead,
                store_bytes = image.geometry.capacity(),
                "read OVMF varstore"
            );
            image.variables
        }
        FileFormat::Json => json::parse(&bytes).with_context(|| {
            format!("{} is not a usable virt-fw-vars JSON file (nothing was imported)", path.display())
        })?,
    };
    Ok((vars, format))
}

/// Opens the UEFI volume's store for writing (creating it if missing) under the write lock, imports.
fn import(
    from: &Path,
    format: Option<FileFormat>,
    state_dir: &Path,
    store_key: Option<&Path>,
    force: bool,
) -> anyhow::Result<()> {
    // Everything is read and checked before the state directory is touched.
    let (vars, format) = read_file(from, format)?;
    let stored: Vec<StoredVariable> = vars.iter().map(to_stored).collect();
    for var in &stored {
        svsm_uefi::record::check_variable(var).with_context(|| {
            format!("variable {} ({}) cannot be stored; nothing was imported", var.name, var.vendor)
        })?;
    }
    let (dir, _) = StateDir::open_or_create(state_dir)?;
    let lock = dir
        .lock_for_write("uefi import")
        .context("stop the daemon serving this state directory before importing UEFI variables")?;
    let vol = crate::uefi::volume(&dir, store_key, None);
    let name = vol.name().clone();
    let image = vol.image().display().to_string();
    let mut storage = if vol.exists() {
        if !force {
            bail!(
                "the UEFI variable volume `{name}` ({image}) already exists; nothing was imported. Add --force to \
                 replace all of its variables with the file's, or import into a new --state-dir"
            );
        }
        let store = vol
            .open(&lock)
            .with_context(|| format!("opening the UEFI variable volume `{name}` ({image})"))?;
        StoreVariableStorage::open(store)
            .map_err(|e| anyhow::anyhow!("the UEFI variable volume `{name}` ({image}): {e}"))?
    } else {
        let dev_key = dir.dev_key_path();
        let had_key = dev_key.exists();
        let store = vol
            .create(&lock, crate::uefi::UEFI_STORE_BLOCKS, LedgerMode::Strict)
            .with_context(|| format!("creating the UEFI variable volume `{name}` ({image})"))?;
        if !had_key && dev_key.exists() {
            println!("created DEVELOPMENT store key {} (not for production)", dev_key.display());
        }
        println!("created the UEFI variable volume `{name}` ({image}, strict ledger mode)");
        StoreVariableStorage::open(store)
            .map_err(|e| anyhow::anyhow!("the new UEFI variable volume `{name}`: {e}"))?
    };
    if stored.len() > storage.free_slots() + storage.load().map(|v| v.len()).unwrap_or(0) {
        bail!("{} variables do not fit the UEFI volume; nothing was imported", stored.len());
    }
    tracing::info!(variables = stored.len(), volume = %name, "committing");
    storage.replace_all(&stored).map_err(|e| {
        anyhow::anyhow!(
            "committing to the UEFI variable volume `{name}` ({image}): {e}; nothing was imported"
        )
    })?;
    let generation = storage.store().generation();
    let kind = match format {
        FileFormat::Fd => "OVMF varstore",
        FileFormat::Json => "virt-fw-vars JSON",
    };
    println!(
        "imported {} variables from {} ({kind}) into `{name}` ({image}, generation {generation})",
        stored.len(),
        from.display()
    );
    let secure_boot: Vec<&str> =
        ["PK", "KEK", "db", "dbx"].into_iter().filter(|n| stored.iter().any(|v| v.name == *n)).collect();
    if !secure_boot.is_empty() {
        println!("secure boot variables: {}", secure_boot.join(", "));
    }
    Ok(())
}

/// The variables of the UEFI volume, read the way other reading commands read: ledger-checked under the
/// read lock, or detached (and saying so) while a daemon holds the directory.
fn load(state_dir: &Path, store_key: Option<&Path>) -> anyhow::Result<(Volume, Vec<EfiVar>)> {
    let dir = StateDir::open(state_dir).with_context(|| {
        format!(
            "no state directory {0}: create one with `svsm-host uefi import --from VARS.fd --state-dir {0}`",
            state_dir.display()
        )
    })?;
    let vol = crate::uefi::volume(&dir, store_key, None);
    if !vol.exists() {
        bail!(
            "{} has no UEFI variable volume ({} is missing): import one with `svsm-host uefi import --from \
             VARS.fd --state-dir {}`, or start `serve --uefi`",
            state_dir.display(),
            vol.image().display(),
            state_dir.display()
        );
    }
    let vars = match dir.lock_for_read()? {
        Some(_lock) => read_store(&vol, vol.open_read_only().context("opening the UEFI variable volume")?)?,
        None => {
            let holder = dir.current_writer().unwrap_or_else(|| "another process".into());
            eprintln!(
                "note: svsm-host {holder} holds {}; reading detached (freshness NOT checked)",
                dir.path().display()
            );
            read_store(&vol, vol.open_detached().context("opening the UEFI variable volume")?)?
        }
    };
    Ok((vol, vars))
}

fn read_store<L: Ledger>(vol: &Volume, store: Store<svsm_block::FileDisk, L>) -> anyhow::Result<Vec<EfiVar>> {
    if store.objects().next().is_none() {
        return Ok(Vec::new());
    }
    let mut storage = StoreVariableStorage::open(store).map_err(|e| {
        anyhow::anyhow!(
            "the UEFI variable volume `{}` ({}) is unusable: {e}",
            vol.name(),
            vol.image().display()
        )
    })?;
    let vars = storage.load().map_err(|e| anyhow::anyhow!("reading the UEFI variable volume: {e}"))?;
    Ok(vars.iter().map(from_stored).collect())
}

/// Writes `bytes` to `to` (a new file, or replaced with `force`) via a temporary file and a rename, so a
/// failed export never leaves half a file.
fn write_output(to: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    if to == Path::new("-") {
        std::io::stdout().write_all(bytes).context("writing to standard output")?;
        return Ok(());
    }
    if !force && std::fs::symlink_metadata(to).is_ok() {
        bail!("{} exists; add --force to overwrite it", to.display());
    }
    let tmp = to.with_file_name(format!(
        ".{}.tmp-{}",
        to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

fn attribute_flags(attr: u32) -> String {
    let names = [
        (0x01, "NV"),
        (0x02, "BS"),
        (0x04, "RT"),
        (0x08, "HW_ERR"),
        (0x10, "AUTH"),
        (0x20, "TIME_AUTH"),
        (0x40, "APPEND"),
    ];
    names.iter().filter(|(bit, _)| attr & bit != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

fn time_text(var: &EfiVar) -> String {
    match var.time() {
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        None => "-".into(),
    }
}

fn parse_guid(text: &str) -> anyhow::Result<svsm_ovmf_vars::Guid> {
    let text = match text {
        "global" => GLOBAL_VARIABLE,
        "security" => IMAGE_SECURITY_DATABASE,
        other => other,
    };
    svsm_ovmf_vars::Guid::try_parse(text).map_err(|_| {
        anyhow::anyhow!(
            "{text:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, or `global` / `security`)"
        )
    })
}

pub fn run(cmd: UefiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UefiCommand::Import { from, format, state_dir, store_key, force } => {
            import(&from, format, &state_dir, store_key.as_deref(), force)?;
        }
        UefiCommand::Export { format, to, template, force, state_dir, store_key } => {
            let layout = match (&template, format) {
                (Some(_), FileFormat::Json) => bail!("--template applies to --format fd only"),
                (Some(path), FileFormat::Fd) => {
                    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                    fd::parse(&bytes)
                        .with_context(|| format!("{} is not a usable template", path.display()))?;
                    FdLayout::Template(bytes)
                }
                (None, _) => FdLayout::Ovmf4M,
            };
            if format == FileFormat::Fd && to == Path::new("-") {
                bail!("--to - (standard output) is for --format json; give a file for an .fd image");
            }
            let (vol, vars) = load(&state_dir, store_key.as_deref())?;
            let bytes = match format {
                FileFormat::Fd => {
                    fd::write(&vars, &layout).context("laying the variables out as an OVMF varstore")?
                }
                FileFormat::Json => json::to_json(&vars).context("writing virt-fw-vars JSON")?.into_bytes(),
            };
            write_output(&to, &bytes, force)?;
            if to != Path::new("-") {
                println!(
                    "exported {} variables from {} to {}",
                    vars.len(),
                    vol.image().display(),
                    to.display()
                );
            }
        }
        UefiCommand::List { state_dir, store_key } => {
            let (vol, vars) = load(&state_dir, store_key.as_deref())?;
            println!("{} non-volatile variables in {}", vars.len(), vol.image().display());
            println!("{:<24} {:<36} {:<6} {:<22} {:>7}  TIME", "NAME", "GUID", "ATTR", "", "BYTES");
            for var in &vars {
                let attr = u32::from(var.attr());
                println!(
                    "{:<24} {:<36} {:<6} {:<22} {:>7}  {}",
                    var.name(),
                    var.guid(),
                    format!("{attr:#x}"),
                    attribute_flags(attr),
                    var.data().len(),
                    time_text(var)
                );
            }
        }
        UefiCommand::Get { name, guid, output, state_dir, store_key } => {
            let guid = parse_guid(&guid)?;
            let (vol, vars) = load(&state_dir, store_key.as_deref())?;
            let Some(var) = vars.iter().find(|v| v.name() == name && *v.guid() == guid) else {
                bail!(
                    "no variable {name} ({guid}) in {}; `svsm-host uefi list` shows what is there",
                    vol.image().display()
                );
            };
            let attr = u32::from(var.attr());
            println!("name:       {}", var.name());
            println!("guid:       {}", var.guid());
            println!("attributes: {attr:#x} ({})", attribute_flags(attr));
            println!("time:       {}", time_text(var));
            println!("size:       {} bytes", var.data().len());
            match output {
                Some(path) => {
                    write_output(&path, var.data(), true)?;
                    println!("data written to {}", path.display());
                }
                None => {
                    for (i, chunk) in var.data().chunks(16).enumerate() {
                        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                        let ascii: String = chunk
                            .iter()
                            .map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' })
                            .collect();
                        println!("{:08x}  {:<47}  {ascii}", i * 16, hex.join(" "));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
