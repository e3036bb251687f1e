//! `svsm-host svsm-serve` and `svsm-host guest ...`: the SVSM call interface on the host, and a guest that uses it
//! the way the Linux drivers do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use der::EncodePem;
use rand::RngCore;
use svsm_attest::SimulatedSnpConfig;
use svsm_attest::chain::SimulatedRoots;
use svsm_harness::simulated::{CALLING_AREA, GUEST_FREE_START, guest_free_end, simulated_svsm};
use svsm_harness::{FileGuestMemory, SocketTransport, serve};
use svsm_protocol::Guid;
use svsm_protocol::guest::Guest;
use svsm_vtpm::marshal::{self, cmd};

/// Runs the harness: creates the guest-memory file, listens on the socket, serves VMGEXIT frames.
pub fn run_serve(
    socket: &Path,
    memory: &Path,
    memory_mib: u64,
    ark_out: Option<PathBuf>,
    igvm: Option<&Path>,
    uefi: Option<UefiServeArgs>,
) -> anyhow::Result<ExitCode> {
    let size = memory_mib.checked_mul(1 << 20).context("--memory-mib too large")?;
    if size < 4 << 20 {
        bail!("--memory-mib must be at least 4");
    }
    let config = simulated_config(igvm)?;
    let mut rng = rand::rngs::OsRng;
    eprintln!("generating simulated AMD roots (RSA-4096), VCEK and EK; this takes a few seconds");
    let roots = Arc::new(SimulatedRoots::generate("Milan", &mut rng).map_err(|e| anyhow::anyhow!("{e}"))?);
    if let Some(path) = ark_out {
        let pem = roots.ark.to_pem(der::pem::LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::write(&path, pem).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("simulated ARK (trust anchor for `attest verify`) written to {}", path.display());
    }
    let mut svsm = simulated_svsm(size, roots, config, &mut rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Held until the process ends: the UEFI volume is written while serving.
    let mut _lock = None;
    if let Some(uefi) = uefi {
        let (dir, fresh) = crate::state::StateDir::open_or_create(&uefi.state_dir)?;
        let lock = dir.lock_for_write("svsm-serve")?;
        let vol = crate::uefi::volume(&dir, None, None);
        let service = crate::uefi::open_service(&vol, &lock, fresh || uefi.create)?;
        svsm.register_protocol(crate::uefi::protocol(service)).map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!("UEFI variables (protocol 4) on {}", vol.image().display());
        _lock = Some(lock);
    }
    FileGuestMemory::create(memory, size).with_context(|| format!("cannot create {}", memory.display()))?;
    let listener = crate::sockets::bind_unix(socket, crate::sockets::SocketAccess::default())
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    eprintln!(
        "serving SVSM calls on {} with guest memory {} ({} MiB); vTPM = TPM wire-format double (use `serve --svsm-socket` for the real vTPM)",
        socket.display(),
        memory.display(),
        memory_mib
    );
    serve(listener, Arc::new(Mutex::new(svsm)), memory.to_path_buf(), None)?;
    Ok(ExitCode::SUCCESS)
}

/// The simulated platform's report values: those of the IGVM file's launch if one is given, else defaults.
pub fn simulated_config(igvm: Option<&Path>) -> anyhow::Result<SimulatedSnpConfig> {
    match igvm {
        Some(path) => crate::cli::igvm::simulated_launch(path, SimulatedSnpConfig::default()),
        None => Ok(SimulatedSnpConfig::default()),
    }
}

/// What the SVSM interface of `serve` offers besides the core and attestation protocols.
pub struct SvsmServices {
    /// The vTPM behind protocol 2.
    pub vtpm: Box<dyn svsm_protocol::VtpmService + Send>,
    /// Further protocols (UEFI variables, 4).
    pub protocols: Vec<Box<dyn svsm_protocol::ProtocolHandler + Send>>,
}

impl std::fmt::Debug for SvsmServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvsmServices").field("protocols", &self.protocols).finish_non_exhaustive()
    }
}

/// Starts the SVSM call interface for `services` on a background thread (used by `serve --svsm-socket`), on a
/// simulated platform with `roots` (the state directory's persistent simulated identity).
pub fn start_svsm_interface(
    socket: &Path,
    memory: &Path,
    memory_mib: u64,
    roots: Arc<SimulatedRoots>,
    access: crate::sockets::SocketAccess,
    services: SvsmServices,
    config: SimulatedSnpConfig,
) -> anyhow::Result<()> {
    let SvsmServices { vtpm, protocols } = services;
    let size =
        memory_mib.checked_mul(1 << 20).filter(|s| *s >= 4 << 20).context("--svsm-memory-mib must be 4..")?;
    let mut rng = rand::rngs::OsRng;
    let mut svsm = svsm_harness::simulated::simulated_svsm_with(size, roots, config, Some(vtpm), &mut rng)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for protocol in protocols {
        svsm.register_protocol(protocol).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    FileGuestMemory::create(memory, size).with_context(|| format!("cannot create {}", memory.display()))?;
    // The guest memory is shared with the guest process: the same users as the socket, nobody else.
    if let Some(gid) = access.group {
        std::os::unix::fs::lchown(memory, None, Some(gid))
            .with_context(|| format!("giving {} to group {gid}", memory.display()))?;
    }
    std::fs::set_permissions(memory, std::os::unix::fs::PermissionsExt::from_mode(access.mode()))
        .with_context(|| format!("cannot set the mode of {}", memory.display()))?;
    let listener = crate::sockets::bind_unix(socket, access)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let memory = memory.to_path_buf();
    std::thread::spawn(move || {
        if let Err(err) = serve(listener, Arc::new(Mutex::new(svsm)), memory, None) {
            tracing::error!(%err, "SVSM interface stopped");
        }
    });
    Ok(())
}

/// `svsm-serve`'s UEFI options.
#[derive(Debug, Clone)]
pub struct UefiServeArgs {
    /// State directory holding `uefi-vars.store`.
    pub state_dir: PathBuf,
    /// Create the volume if it is missing.
    pub create: bool,
}

/// Where the guest reaches the SVSM.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The SVSM call socket (`serve --svsm-socket` or `svsm-serve`).
    #[arg(long)]
    svsm_socket: PathBuf,
    /// The guest-memory file it serves.
    #[arg(long)]
    memory: PathBuf,
}

/// `guest uefi ...`: UEFI variables through protocol 4, as edk2's VariableSmmRuntimeDxe and
/// VirtMmCommunicationDxe send them (QUERY_PROTOCOL(4,1) probe, one 64 KiB buffer).
#[derive(Debug, Subcommand)]
pub enum GuestUefiCommand {
    /// GetVariable: prints the attributes and the value (hex), or writes the value to --out.
    Get {
        #[command(flatten)]
        connection: Connection,
        /// Variable name (e.g. BootOrder, dbx).
        name: String,
        /// Vendor GUID (e.g. 8be4df61-93ca-11d2-aa0d-00e098032b8c, the EFI global variable GUID).
        guid: String,
        /// Write the value to this file instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// SetVariable: the value from --data-hex or --data-file; --delete removes the variable.
    Set {
        #[command(flatten)]
        connection: Connection,
        /// Variable name.
        name: String,
        /// Vendor GUID.
        guid: String,
        /// EFI_VARIABLE_* attributes (default 0x7 = NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS;
        /// 0x27 adds TIME_BASED_AUTHENTICATED_WRITE_ACCESS: the data then starts with its AUTHENTICATION_2).
        #[arg(long, default_value = "0x7")]
        attributes: String,
        /// The value in hex.
        #[arg(long, conflicts_with_all = ["data_file", "delete"])]
        data_hex: Option<String>,
        /// The value from a file.
        #[arg(long, conflicts_with = "delete")]
        data_file: Option<PathBuf>,
        /// Delete the variable (SetVariable with no data).
        #[arg(long)]
        delete: bool,
    },
    /// GetNextVariableName from the start: prints `GUID NAME` per variable.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// QueryVariableInfo: storage sizes for the given attributes.
    Query {
        #[command(flatten)]
        connection: Connection,
        /// EFI_VARIABLE_* attributes to ask about.
        #[arg(long, default_value = "0x7")]
        attributes: String,
    },
}

fn parse_attributes(text: &str) -> anyhow::Result<u32> {
    let t = text.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    v.with_context(|| format!("--attributes {text:?}: expected a number such as 0x7"))
}

fn parse_vendor(text: &str) -> anyhow::Result<Guid> {
    Guid::parse(text)
        .with_context(|| format!("{text:?} is not a GUID like 8be4df61-93ca-11d2-aa0d-00e098032b8c"))
}

fn uefi_guest(c: &Connection) -> anyhow::Result<svsm_uefi::guest::UefiGuest<SocketTransport>> {
    let guest = connect(&c.svsm_socket, &c.memory)?;
    svsm_uefi::guest::UefiGuest::probe(guest, GUEST_FREE_START).map_err(|e| {
        anyhow::anyhow!(
            "{e} (start the SVSM with `serve --svsm-socket ... --uefi` or `svsm-serve --uefi-state-dir`)"
        )
    })
}

fn run_guest_uefi(cmd: GuestUefiCommand) -> anyhow::Result<()> {
    match cmd {
        GuestUefiCommand::Get { connection, name, guid, out } => {
            let vendor = parse_vendor(&guid)?;
            let (attributes, data) = uefi_guest(&connection)?
                .get_variable(&name, &vendor)
                .map_err(|e| anyhow::anyhow!("GetVariable({name}, {vendor}) failed: {e}"))?;
            println!("attributes 0x{attributes:x} size {}", data.len());
            match out {
                Some(path) => std::fs::write(&path, &data)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => println!("{}", hex::encode(&data)),
            }
        }
        GuestUefiCommand::Set { connection, name, guid, attributes, data_hex, data_file, delete } => {
            let vendor = parse_vendor(&guid)?;
            let attributes = parse_attributes(&attributes)?;
            let data = match (data_hex, data_file, delete) {
                (_, _, true) => Vec::new(),
                (Some(h), None, false) => hex::decode(h.trim()).context("--data-hex must be hex")?,
                (None, Some(p), false) => {
                    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?
                }
                _ => bail!("give --data-hex HEX, --data-file FILE or --delete"),
            };
            if data.is_empty() && !delete {
                bail!("the value is empty (that would delete the variable; say --delete if you mean it)");
            }
            uefi_guest(&connection)?
                .set_variable(&name, &vendor, attributes, &data)
                .map_err(|e| anyhow::anyhow!("SetVariable({name}, {vendor}) failed: {e}"))?;
            println!("{} {name} {vendor}", if delete { "deleted" } else { "set" });
        }
        GuestUefiCommand::List { connection } => {
            for (vendor, name) in uefi_guest(&connection)?.list().map_err(|e| anyhow::anyhow!("{e}"))? {
                println!("{vendor} {name}");
            }
        }
        GuestUefiCommand::Query { connection, attributes } => {
            let attributes = parse_attributes(&attributes)?;
            let info = uefi_guest(&connection)?
                .query_variable_info(attributes)
                .map_err(|e| anyhow::anyhow!("QueryVariableInfo failed: {e}"))?;
            println!(
                "maximum storage {} remaining {} maximum variable {}",
                info.max_storage, info.remaining, info.max_variable
            );
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum GuestCommand {
    /// UEFI variables through the SVSM UEFI MM protocol (4), the way edk2's SVSM variable driver sends them.
    #[command(subcommand)]
    Uefi(GuestUefiCommand),
    /// configfs-tsm style attestation (resize-and-retry like Linux); writes report.bin, manifest.bin,
    /// certs.bin and nonce.bin for `svsm-host attest verify`.
    Attest {
        /// The harness socket.
        #[arg(long)]
        svsm_socket: PathBuf,
        /// The guest-memory file the harness serves.
        #[arg(long)]
        memory: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Nonce (128 hex digits; random if omitted).
        #[arg(long)]
        nonce: Option<String>,
        /// Service GUID (omit for all services, i.e. SVSM_ATTEST_SERVICES).
        #[arg(long)]
        service_guid: Option<String>,
    },
    /// tpm_svsm style TPM command: GetRandom, or any raw command given in hex.
    Tpm {
        /// The harness socket.
        #[arg(long)]
        svsm_socket: PathBuf,
        /// The guest-memory file the harness serves.
        #[arg(long)]
        memory: PathBuf,
        /// Send TPM2_GetRandom for this many bytes.
        #[arg(long, conflicts_with = "command_hex")]
        get_random: Option<u16>,
        /// Send this raw TPM command (hex).
        #[arg(long)]
        command_hex: Option<String>,
    },
}

fn connect(socket: &Path, memory: &Path) -> anyhow::Result<Guest<SocketTransport>> {
    let t = SocketTransport::connect(socket, memory).with_context(|| {
        format!("cannot reach the harness at {} (is `svsm-host svsm-serve` running?)", socket.display())
    })?;
    let end = guest_free_end(t.memory_size());
    Ok(Guest::new(t, CALLING_AREA, GUEST_FREE_START, end))
}

pub fn run_guest(cmd: GuestCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GuestCommand::Uefi(cmd) => run_guest_uefi(cmd)?,
        GuestCommand::Attest { svsm_socket, memory, out, nonce, service_guid } => {
            let nonce: [u8; 64] = match nonce {
                Some(h) => hex::decode(h.trim())
                    .context("--nonce must be hex")?
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("--nonce must be 64 bytes"))?,
                None => {
                    let mut n = [0u8; 64];
                    rand::rngs::OsRng.fill_bytes(&mut n);
                    n
                }
            };
            let service = match service_guid {
                Some(g) => Guid::parse(&g)
                    .context("--service-guid must look like c476f1eb-0123-45a5-9641-b4e7dde5bfe3")?,
                None => Guid::NULL,
            };
            let mut guest = connect(&svsm_socket, &memory)?;
            let ev = guest
                .attest(&nonce, service, 0, None)
                .map_err(|e| anyhow::anyhow!("attestation failed: {e}"))?;
            std::fs::create_dir_all(&out)?;
            for (name, data) in [
                ("report.bin", &ev.report[..]),
                ("manifest.bin", &ev.manifest[..]),
                ("certs.bin", &ev.certificates[..]),
                ("nonce.bin", &nonce[..]),
            ] {
                std::fs::write(out.join(name), data).with_context(|| format!("cannot write {name}"))?;
            }
            println!(
                "report {} bytes, manifest {} bytes, certificates {} bytes, {} retries; written to {}",
                ev.report.len(),
                ev.manifest.len(),
                ev.certificates.len(),
                ev.retries,
                out.display()
            );
        }
        GuestCommand::Tpm { svsm_socket, memory, get_random, command_hex } => {
            let command = match (get_random, command_hex) {
                (Some(n), _) => cmd::get_random(n).expect("GetRandom frames"),
                (None, Some(h)) => hex::decode(h.trim()).context("--command-hex must be hex")?,
                (None, None) => bail!("give --get-random N or --command-hex HEX"),
            };
            let mut guest = connect(&svsm_socket, &memory)?;
            if !guest.vtpm_probe().map_err(|e| anyhow::anyhow!("vTPM query failed: {e}"))? {
                bail!("the SVSM offers no TPM_SEND_COMMAND");
            }
            let resp = guest.tpm_command(GUEST_FREE_START, &command).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", hex::encode(&resp));
            if get_random.is_some() {
                let bytes = marshal::random_bytes(&resp).map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("random: {}", hex::encode(bytes));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
