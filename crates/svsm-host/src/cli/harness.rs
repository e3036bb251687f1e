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
use svsm_protocol::guest::Guest;
use svsm_protocol::{Guid, tpm};

/// Runs the harness: creates the guest-memory file, listens on the socket, serves VMGEXIT frames.
pub fn run_serve(
    socket: &Path,
    memory: &Path,
    memory_mib: u64,
    ark_out: Option<PathBuf>,
    igvm: Option<&Path>,
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
    let svsm = simulated_svsm(size, roots, config, &mut rng).map_err(|e| anyhow::anyhow!("{e}"))?;
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

/// Starts the SVSM call interface for `vtpm` on a background thread (used by `serve --svsm-socket`), on a
/// simulated platform with `roots` (the state directory's persistent simulated identity).
pub fn start_svsm_interface(
    socket: &Path,
    memory: &Path,
    memory_mib: u64,
    roots: Arc<SimulatedRoots>,
    access: crate::sockets::SocketAccess,
    vtpm: Box<dyn svsm_protocol::VtpmService + Send>,
    config: SimulatedSnpConfig,
) -> anyhow::Result<()> {
    let size =
        memory_mib.checked_mul(1 << 20).filter(|s| *s >= 4 << 20).context("--svsm-memory-mib must be 4..")?;
    let mut rng = rand::rngs::OsRng;
    let svsm = svsm_harness::simulated::simulated_svsm_with(size, roots, config, Some(vtpm), &mut rng)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
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

#[derive(Debug, Subcommand)]
pub enum GuestCommand {
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
                (Some(n), _) => tpm::get_random_command(n),
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
                let bytes = tpm::parse_get_random_response(&resp).map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("random: {}", hex::encode(bytes));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
