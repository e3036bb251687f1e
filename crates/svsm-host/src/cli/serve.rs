//! `svsm-host serve`: the main job, a vTPM on durable state, reachable by real TPM clients.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use svsm_libtpms::{LibTpms, StateMode};
use svsm_vtpm::Vtpm;

use crate::cli::tpm::ManufactureArgs;
use crate::vtpm::{self, server};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// State directory. If it does not exist it is created with a freshly manufactured vTPM; if it exists
    /// it must hold one (a missing or damaged TPM state is an error, never a silent re-manufacture).
    #[arg(long, default_value = "state")]
    state_dir: PathBuf,
    /// Store key file (64 hex digits). Default: `<state-dir>/dev-store.key`, a DEVELOPMENT key created on
    /// first start (0600, labelled not for production).
    #[arg(long)]
    store_key: Option<PathBuf>,
    /// Address to listen on. Loopback by default: the sockets carry no authentication.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// MS simulator command port (the platform port is this + 1). 0 picks free ports.
    #[arg(long, default_value_t = 2321)]
    mssim_port: u16,
    /// swtpm data port (the control port is this + 1). 0 picks free ports.
    #[arg(long, default_value_t = 2341)]
    swtpm_port: u16,
    /// Do not serve the mssim protocol.
    #[arg(long)]
    no_mssim: bool,
    /// Do not serve the swtpm protocol over TCP.
    #[arg(long)]
    no_swtpm: bool,
    /// swtpm Unix data socket (the control socket, for QEMU's `-tpmdev emulator`, is `<path>.ctrl`).
    /// Default: `<state-dir>/swtpm.sock`.
    #[arg(long)]
    swtpm_unix: Option<PathBuf>,
    /// Do not serve the swtpm protocol over Unix sockets.
    #[arg(long)]
    no_swtpm_unix: bool,
    /// Let clients stop the daemon (mssim TPM_STOP). Off by default so one client cannot stop it for all.
    #[arg(long)]
    allow_remote_stop: bool,
    /// Also expose the SVSM call interface (core, attestation, vTPM protocols) on this Unix socket, backed by
    /// this vTPM and a *simulated* SNP platform; guests use `svsm-host guest ...` or the harness transport.
    #[arg(long)]
    svsm_socket: Option<PathBuf>,
    /// Guest-memory file for --svsm-socket. Default: `<state-dir>/guest.mem`.
    #[arg(long)]
    svsm_memory: Option<PathBuf>,
    /// Guest memory size in MiB for --svsm-socket.
    #[arg(long, default_value_t = 8)]
    svsm_memory_mib: u64,
    /// With --svsm-socket: the simulated SNP platform reports the launch of this IGVM file (its MEASUREMENT,
    /// POLICY, ID and author key digests), as hardware would for a VM launched from it.
    #[arg(long, requires = "svsm_socket")]
    igvm: Option<PathBuf>,
    #[command(flatten)]
    manufacture: ManufactureArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    // Measure the IGVM file before anything is created, so a bad file changes nothing.
    let snp_config = crate::cli::harness::simulated_config(args.igvm.as_deref())?;
    // First start means "no state directory yet". A directory without TPM state is damage, not a new TPM:
    // open_manufactured refuses it below instead of silently manufacturing a replacement.
    let first_start = !args.state_dir.exists();
    if first_start {
        args.manufacture.issuer()?;
        vtpm::ensure_state_dir(&args.state_dir)?;
    }
    let _lock = vtpm::lock_state_dir(&args.state_dir)?;
    if first_start {
        let mut storage = vtpm::create_store(
            &args.state_dir,
            args.store_key.as_deref(),
            args.manufacture.ledger_mode.into(),
        )?;
        let record = args
            .manufacture
            .manufacture_into(&mut storage)
            .context("manufacturing the vTPM on first start")?;
        println!("first start: manufactured a new vTPM in {}", args.state_dir.display());
        print!("{}", vtpm::describe(&record));
        drop(storage);
    }
    let (storage, _record) = vtpm::open_manufactured(&args.state_dir, args.store_key.as_deref(), false)?;
    let mut engine = LibTpms::new(storage, StateMode::RequireExisting)?;
    svsm_vtpm::TpmEngine::power_on(&mut engine).context("powering on the vTPM")?;
    let shared = server::Shared::new(Vtpm::new(engine), args.allow_remote_stop);
    let unix = match (&args.swtpm_unix, args.no_swtpm_unix) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => Some(args.state_dir.join("swtpm.sock")),
    };
    let listen = server::Listen {
        ip: args.listen,
        mssim_port: (!args.no_mssim).then_some(args.mssim_port),
        swtpm_port: (!args.no_swtpm).then_some(args.swtpm_port),
        swtpm_unix: unix,
    };
    let bound =
        server::start(&shared, &listen).context("binding the vTPM sockets (is another instance running?)")?;
    if let Some(socket) = &args.svsm_socket {
        let memory = args.svsm_memory.clone().unwrap_or_else(|| args.state_dir.join("guest.mem"));
        let ark = args.state_dir.join("simulated-ark.pem");
        let vtpm = server::SvsmVtpm(shared.clone());
        crate::cli::harness::start_svsm_interface(
            socket,
            &memory,
            args.svsm_memory_mib,
            &ark,
            Box::new(vtpm),
            snp_config,
        )?;
        println!(
            "svsm    SVSM calls on {} (guest memory {}; simulated SNP platform, trust anchor {})",
            socket.display(),
            memory.display(),
            ark.display()
        );
    }
    tracing::info!(elapsed_ms = t0.elapsed().as_secs_f64() * 1e3, "vTPM ready");
    println!(
        "vTPM serving the encrypted store in {} (ledger: {}/ledger; the file ledger and a key file in the \
         state directory are for development only)",
        args.state_dir.display(),
        args.state_dir.display()
    );
    println!("The TPM is powered on but not started: send TPM2_Startup first (tpm2_startup -c).");
    if let Some(a) = bound.mssim {
        println!("mssim   export TPM2TOOLS_TCTI=mssim:host={},port={}", a.ip(), a.port());
    }
    if let Some(a) = bound.swtpm {
        println!("swtpm   export TPM2TOOLS_TCTI=swtpm:host={},port={}", a.ip(), a.port());
    }
    if let Some((data, ctrl)) = &bound.swtpm_unix {
        println!("swtpm   export TPM2TOOLS_TCTI=swtpm:path={}   (Unix sockets)", data.display());
        println!(
            "qemu    -chardev socket,id=chrtpm,path={} -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0",
            ctrl.display()
        );
    }
    println!("ready");
    loop {
        std::thread::park();
    }
}
