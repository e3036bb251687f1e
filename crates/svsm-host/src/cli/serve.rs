//! `svsm-host serve`: the main job, a vTPM on durable state, reachable by real TPM clients.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use svsm_libtpms::{LibTpms, StateMode};
use svsm_vtpm::Vtpm;

use crate::cli::tpm::ManufactureArgs;
use crate::sockets::SocketAccess;
use crate::state::StateDir;
use crate::vtpm::{self, server};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// State directory (0700). If it does not exist it is created with a freshly manufactured vTPM; if it
    /// exists it must hold one (a missing or damaged TPM state is an error, never a silent re-manufacture).
    #[arg(long, default_value = "state")]
    state_dir: PathBuf,
    /// Store key file (64 hex digits, `#` comment lines allowed; 0600). Default: `<state-dir>/dev-store.key`,
    /// a DEVELOPMENT key created on first start (0600, labelled not for production).
    #[arg(long)]
    store_key: Option<PathBuf>,
    /// swtpm Unix data socket (the control socket, for QEMU's `-tpmdev emulator`, is `<path>.ctrl`).
    /// Default: `<state-dir>/swtpm.sock`. Mode 0600: only this user can connect (see --socket-group).
    #[arg(long)]
    swtpm_unix: Option<PathBuf>,
    /// Do not serve the swtpm protocol over Unix sockets.
    #[arg(long)]
    no_swtpm_unix: bool,
    /// Let members of this group (name or gid) connect to the Unix sockets too (mode 0660). The default
    /// sockets sit in the 0700 state directory, so put them where the group can reach with --swtpm-unix.
    #[arg(long)]
    socket_group: Option<String>,
    /// Also serve over TCP: the MS simulator protocol (command + platform port) and swtpm (data + control
    /// port). Anyone on this machine can then reset the TPM, change its locality and send commands at any
    /// locality: use only on a single-user machine or for tools that have no Unix-socket transport.
    #[arg(long)]
    tcp: bool,
    /// Address to listen on with --tcp. Loopback by default: the sockets carry no authentication.
    #[arg(long, default_value = "127.0.0.1", requires = "tcp")]
    listen: IpAddr,
    /// MS simulator command port with --tcp (the platform port is this + 1). 0 picks free ports.
    #[arg(long, default_value_t = 2321, requires = "tcp")]
    mssim_port: u16,
    /// swtpm data port with --tcp (the control port is this + 1). 0 picks free ports.
    #[arg(long, default_value_t = 2341, requires = "tcp")]
    swtpm_port: u16,
    /// With --tcp: do not serve the mssim protocol.
    #[arg(long)]
    no_mssim: bool,
    /// With --tcp: do not serve the swtpm protocol over TCP.
    #[arg(long)]
    no_swtpm: bool,
    /// Let clients stop the daemon (mssim TPM_STOP). Off by default so one client cannot stop it for all.
    #[arg(long)]
    allow_remote_stop: bool,
    /// Also expose the SVSM call interface (core, attestation, vTPM protocols) on this Unix socket (0600, or
    /// 0660 with --socket-group), backed by this vTPM and a *simulated* SNP platform; guests use
    /// `svsm-host guest ...` or the harness transport.
    #[arg(long)]
    svsm_socket: Option<PathBuf>,
    /// Guest-memory file for --svsm-socket. Default: `<state-dir>/guest.mem`.
    #[arg(long)]
    svsm_memory: Option<PathBuf>,
    /// Guest memory size in MiB for --svsm-socket.
    #[arg(long, default_value_t = 8)]
    svsm_memory_mib: u64,
    /// Receive this vTPM by migration: create a new, empty state directory (no manufacturing) and take the
    /// TPM state from the first state blobs QEMU sends (`-incoming`). Needs --store-key: the blobs open only
    /// under the source vTPM's store key.
    #[arg(long, requires = "store_key")]
    incoming: bool,
    /// With --svsm-socket: the simulated SNP platform reports the launch of this IGVM file (its MEASUREMENT,
    /// POLICY, ID and author key digests), as hardware would for a VM launched from it.
    #[arg(long, requires = "svsm_socket")]
    igvm: Option<PathBuf>,
    /// With --svsm-socket: also serve UEFI variables (protocol 4), non-volatile ones persisted in their own
    /// volume `<state-dir>/uefi-vars.store` (strict ledger mode; durable before SetVariable returns).
    #[arg(long, requires = "svsm_socket")]
    uefi: bool,
    /// With --uefi: create the UEFI volume if it is missing (a new state directory gets one anyway). Without
    /// it a missing volume is an error: starting from empty variables would drop dbx.
    #[arg(long, requires = "uefi")]
    uefi_create: bool,
    /// Who keeps the freshness records: `file` (the default: `<state-dir>/ledger`, DEVELOPMENT only, the
    /// host can rewind it with the directory) or `service:HOST:PORT` (a `svsm-host ledger serve` instance;
    /// needs --ledger-vm-id and --ledger-key from `ledger enrol`). With the service, a rewound state
    /// directory is refused at start.
    #[arg(long, default_value = "file")]
    ledger: String,
    /// With --ledger service:...: this VM's id, as `ledger enrol` printed it.
    #[arg(long)]
    ledger_vm_id: Option<String>,
    /// With --ledger service:...: this VM's ledger key file, as `ledger enrol` wrote it.
    #[arg(long)]
    ledger_key: Option<PathBuf>,
    #[command(flatten)]
    manufacture: ManufactureArgs,
}

/// The ledger source `--ledger` names (`None`: the state directory's file ledger).
fn ledger_source(args: &ServeArgs) -> anyhow::Result<Option<std::sync::Arc<dyn crate::state::LedgerSource>>> {
    use crate::ledger::{keyfile, source::ServiceLedgerSource};
    if args.ledger == "file" {
        if args.ledger_vm_id.is_some() || args.ledger_key.is_some() {
            bail!("--ledger-vm-id and --ledger-key go with --ledger service:HOST:PORT");
        }
        return Ok(None);
    }
    let Some(addr) = args.ledger.strip_prefix("service:") else {
        bail!("--ledger {:?}: expected `file` or `service:HOST:PORT`", args.ledger);
    };
    let (Some(vm), Some(key)) = (&args.ledger_vm_id, &args.ledger_key) else {
        bail!("--ledger service:... needs --ledger-vm-id and --ledger-key (from `svsm-host ledger enrol`)");
    };
    let vm = svsm_ledger::VmId(keyfile::parse_id(vm)?);
    let key = keyfile::read(key)?;
    Ok(Some(std::sync::Arc::new(ServiceLedgerSource::new(addr, vm, key, std::time::Duration::from_secs(10)))))
}

/// The warning `--tcp` prints.
pub const TCP_WARNING: &str = "--tcp: the TPM is reachable over TCP; anyone on this machine can now drive its \
     platform and control channels (reset PCRs, change the locality of QEMU's channel, send commands at \
     locality 4). Use Unix sockets (the default) unless a tool needs TCP";

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let access = SocketAccess::with_group(args.socket_group.as_deref())?;
    // Before anything is created: a bad --ledger must not leave a half-made state directory behind.
    let ledgers = ledger_source(&args)?;
    if args.no_swtpm_unix && !args.tcp && args.svsm_socket.is_none() {
        bail!("nothing to serve: --no-swtpm-unix without --tcp or --svsm-socket");
    }
    // Measure the IGVM file before anything is created, so a bad file changes nothing.
    let snp_config = crate::cli::harness::simulated_config(args.igvm.as_deref())?;
    // First start means "no state directory yet". A directory without TPM state is damage, not a new TPM:
    // open_manufactured refuses it below instead of silently manufacturing a replacement.
    let first_start = !args.state_dir.exists();
    if args.incoming && !first_start {
        anyhow::bail!(
            "--incoming creates a new vTPM state directory, but {} exists; name a new directory (an existing \
             vTPM restores snapshots and migrations without --incoming)",
            args.state_dir.display()
        );
    }
    if first_start && !args.incoming {
        args.manufacture.issuer()?;
    }
    let (dir, _) = StateDir::open_or_create(&args.state_dir)?;
    let lock = dir.lock_for_write("serve")?;
    let vol = vtpm::volume_with_ledger(&dir, args.store_key.as_deref(), ledgers);
    if first_start && !args.incoming {
        let mut storage = vtpm::create_store(&vol, &lock, args.manufacture.ledger_mode.into())?;
        let record = args
            .manufacture
            .manufacture_into(&args.state_dir, &mut storage)
            .context("manufacturing the vTPM on first start")?;
        println!("first start: manufactured a new vTPM in {}", args.state_dir.display());
        print!("{}", vtpm::describe(&record));
        drop(storage);
    }
    let storage = if args.incoming {
        let storage = vtpm::create_store(&vol, &lock, args.manufacture.ledger_mode.into())?;
        println!(
            "incoming: empty vTPM store in {}; waiting for QEMU's state blobs",
            args.state_dir.display()
        );
        storage
    } else {
        vtpm::open_manufactured(&vol, &lock)?.0
    };
    // The UEFI volume is checked before anything is served: a rolled-back or damaged one stops the start.
    let mut protocols = Vec::new();
    if args.uefi {
        let uefi_vol =
            crate::uefi::volume(&dir, args.store_key.as_deref(), Some(vol.ledger_source().clone()));
        let service = crate::uefi::open_service(&uefi_vol, &lock, first_start || args.uefi_create)?;
        println!(
            "uefi    UEFI variables (protocol 4) on {} ({} non-volatile)",
            uefi_vol.image().display(),
            service.variables().count()
        );
        protocols.push(crate::uefi::protocol(service));
    }
    let blob_key = vtpm::state_blob_key(&vol, &storage)?;
    let mut engine = LibTpms::new(storage, StateMode::RequireExisting)?;
    if !args.incoming {
        svsm_vtpm::TpmEngine::power_on(&mut engine).context("powering on the vTPM")?;
    }
    let shared =
        server::Shared::with_state_blobs(Vtpm::new(engine), args.allow_remote_stop, blob_key, args.incoming);
    let unix = match (&args.swtpm_unix, args.no_swtpm_unix) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => Some(dir.file("swtpm.sock")),
    };
    if args.tcp {
        tracing::warn!("{TCP_WARNING}");
    }
    let listen = server::Listen {
        ip: args.listen,
        mssim_port: (args.tcp && !args.no_mssim).then_some(args.mssim_port),
        swtpm_port: (args.tcp && !args.no_swtpm).then_some(args.swtpm_port),
        swtpm_unix: unix,
        access,
    };
    let bound =
        server::start(&shared, &listen).context("binding the vTPM sockets (is another instance running?)")?;
    if let Some(socket) = &args.svsm_socket {
        let memory = args.svsm_memory.clone().unwrap_or_else(|| dir.file("guest.mem"));
        let ark = dir.file("simulated-ark.pem");
        let vtpm = server::SvsmVtpm(shared.clone());
        crate::cli::harness::start_svsm_interface(
            socket,
            &memory,
            args.svsm_memory_mib,
            &ark,
            access,
            Box::new(vtpm),
            snp_config,
            protocols,
        )?;
        println!(
            "svsm    SVSM calls on {} (guest memory {}; simulated SNP platform, trust anchor {})",
            socket.display(),
            memory.display(),
            ark.display()
        );
    }
    tracing::info!(elapsed_ms = t0.elapsed().as_secs_f64() * 1e3, "vTPM ready");
    let keys = vol.key_source().describe();
    println!(
        "vTPM serving the encrypted store {} (key: {keys}; ledger: {})",
        vol.image().display(),
        vol.ledger_source().describe()
    );
    println!("The TPM is powered on but not started: send TPM2_Startup first (tpm2_startup -c).");
    if let Some((data, ctrl)) = &bound.swtpm_unix {
        println!(
            "swtpm   export TPM2TOOLS_TCTI=swtpm:path={}   (Unix sockets, mode {:o})",
            data.display(),
            access.mode()
        );
        println!(
            "qemu    -chardev socket,id=chrtpm,path={} -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0",
            ctrl.display()
        );
    }
    if let Some(a) = bound.mssim {
        println!("mssim   export TPM2TOOLS_TCTI=mssim:host={},port={}", a.ip(), a.port());
    }
    if let Some(a) = bound.swtpm {
        println!("swtpm   export TPM2TOOLS_TCTI=swtpm:host={},port={}", a.ip(), a.port());
    }
    println!("ready");
    loop {
        std::thread::park();
    }
}
