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
    /// Where the store keys come from: `file` (--store-key or the DEVELOPMENT key file) or `kbs` (released by
    /// a KBS after attestation, through `svsm-host kbs-proxy` at --kbs-proxy). With `kbs` serve only OPENS an
    /// existing vTPM (`svsm-host kbs provision` formats it); a refused release is an error, never a file key.
    #[arg(long, value_enum, default_value = "file")]
    key_source: KeySourceChoice,
    /// With --key-source kbs: the proxy's socket (a Unix socket path, or `tcp:127.0.0.1:PORT`).
    #[arg(long, required_if_eq("key_source", "kbs"))]
    kbs_proxy: Option<svsm_kbs::stream::ProxyAddress>,
    /// With --key-source kbs: the KBS resource holding the secret, `<repository>/<type>/<tag>`.
    #[arg(long, default_value = crate::cli::kbs::DEFAULT_RESOURCE)]
    kbs_resource: String,
    /// With --key-source kbs: release attempts before giving up (transient failures only; a KBS verdict such
    /// as PolicyDeny is final). Backoff doubles from 250 ms, at most 4 s.
    #[arg(long, default_value_t = 4)]
    kbs_attempts: u32,
    /// With --key-source kbs: which evidence to present. `snp` = the simulated SNP platform (this host has no
    /// SEV-SNP; only a KBS that trusts the simulated ARK, i.e. the KBS double, accepts it). `sample` =
    /// Trustee's sample TEE, DEVELOPMENT ONLY: proves nothing, for exercising the path against an unmodified
    /// Trustee configured to allow sample evidence.
    #[arg(long, value_enum, default_value = "snp")]
    tee: TeeChoice,
    /// The simulated SNP platform identity (DEVELOPMENT ONLY; simulated ARK/ASK and VCEK keys, 0600).
    /// Default: `<state-dir>/simulated-snp-platform.pem`, made by `kbs provision` (or on first use of
    /// --svsm-socket). Its public ARK is `simulated-ark.pem` beside it: the trust anchor to give a KBS double.
    #[arg(long)]
    sim_platform: Option<PathBuf>,
    #[command(flatten)]
    manufacture: ManufactureArgs,
}

/// `--key-source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeySourceChoice {
    /// A key file (development unless the file came from somewhere trustworthy).
    File,
    /// An attested release from a KBS through the host proxy.
    Kbs,
}

/// `--tee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TeeChoice {
    /// SNP evidence (here: from the simulated platform).
    Snp,
    /// Trustee's sample TEE: DEVELOPMENT ONLY, proves nothing.
    Sample,
}

/// The key source for `--key-source kbs`.
fn kbs_keys(
    args: &ServeArgs,
    config: &svsm_attest::SimulatedSnpConfig,
) -> anyhow::Result<std::sync::Arc<dyn crate::state::KeySource>> {
    use crate::kbs::platform::{PLATFORM_FILE, SimulatedPlatformIdentity};
    use crate::kbs::{KbsKeySource, RetryPolicy};
    let Some(proxy) = args.kbs_proxy.clone() else { bail!("--key-source kbs needs --kbs-proxy") };
    crate::kbs::admin::check_resource_path(&args.kbs_resource)?;
    let platform: Box<dyn svsm_kbs::EvidenceProvider + Send> = match args.tee {
        TeeChoice::Snp => {
            let path = args.sim_platform.clone().unwrap_or_else(|| args.state_dir.join(PLATFORM_FILE));
            let identity = SimulatedPlatformIdentity::load(&path)?;
            Box::new(svsm_kbs::snp::SimulatedSnpEvidence { snp: identity.platform(config.clone())? })
        }
        TeeChoice::Sample => {
            tracing::warn!(
                "--tee sample: DEVELOPMENT ONLY. Sample evidence proves nothing; a KBS that releases keys for \
                 it releases them to anyone"
            );
            Box::new(svsm_kbs::sample::SampleEvidence { svn: "1".into() })
        }
    };
    let retry = RetryPolicy { attempts: args.kbs_attempts.max(1), ..RetryPolicy::default() };
    Ok(std::sync::Arc::new(KbsKeySource::new(proxy, &args.kbs_resource, platform, true, retry)))
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
    // Before any thread exists, so every thread inherits the mask and the stop signals reach only the
    // sigwait at the end of this function (which closes the volumes cleanly).
    crate::window::block_stop_signals().context("blocking the stop signals")?;
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
    let kbs = args.key_source == KeySourceChoice::Kbs;
    if kbs {
        if args.store_key.is_some() || args.incoming {
            bail!("--key-source kbs takes its key from the KBS: drop --store-key / --incoming");
        }
        if first_start {
            bail!(
                "{} does not exist: with --key-source kbs, serve only opens a provisioned vTPM. Create it with \
                 `svsm-host kbs provision --state-dir {}` (it registers the secret at the KBS and formats the \
                 store)",
                args.state_dir.display(),
                args.state_dir.display()
            );
        }
    }
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
    let vol = if kbs {
        let keys = kbs_keys(&args, &snp_config)?;
        dir.volume(crate::state::VolumeName::VTPM, keys, ledgers.unwrap_or_else(|| dir.default_ledgers()))
    } else {
        vtpm::volume_with_ledger(&dir, args.store_key.as_deref(), ledgers)
    };
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
    let mut volumes: Vec<std::sync::Arc<dyn crate::window::Upkeep>> = Vec::new();
    if args.uefi {
        let uefi_vol =
            crate::uefi::volume(&dir, args.store_key.as_deref(), Some(vol.ledger_source().clone()));
        let service = crate::uefi::open_service(&uefi_vol, &lock, first_start || args.uefi_create)?;
        println!(
            "uefi    UEFI variables (protocol 4) on {} ({} non-volatile)",
            uefi_vol.image().display(),
            service.variables().count()
        );
        volumes.push(std::sync::Arc::new(service.storage().clone()));
        protocols.push(crate::uefi::protocol(service));
    }
    let blob_key = vtpm::state_blob_key(&vol, &storage)?;
    let storage = crate::window::SharedVolume::new(crate::state::VolumeName::VTPM.to_string(), storage);
    volumes.insert(0, std::sync::Arc::new(storage.clone()));
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
        use crate::kbs::platform::{ARK_FILE, PLATFORM_FILE, SimulatedPlatformIdentity};
        let id_path = args.sim_platform.clone().unwrap_or_else(|| dir.file(PLATFORM_FILE));
        let (identity, _) = SimulatedPlatformIdentity::load_or_create(&id_path)?;
        let ark = id_path.parent().map(|p| p.join(ARK_FILE)).unwrap_or_else(|| dir.file(ARK_FILE));
        std::fs::write(&ark, identity.ark_pem()?).with_context(|| format!("writing {}", ark.display()))?;
        let vtpm = server::SvsmVtpm(shared.clone());
        crate::cli::harness::start_svsm_interface(
            socket,
            &memory,
            args.svsm_memory_mib,
            identity.roots(),
            access,
            crate::cli::harness::SvsmServices { vtpm: Box::new(vtpm), protocols },
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
    // Window-mode volumes get their ledger advanced when due even while idle; all of them are closed
    // cleanly (ledger advanced) when a stop signal arrives.
    let keeper = crate::window::WindowKeeper::start(volumes).context("starting the ledger window timer")?;
    println!("ready");
    let signal = crate::window::wait_for_stop_signal().context("waiting for a stop signal")?;
    tracing::info!(signal, "stop signal: powering off and closing the volumes");
    shared.power_off_for_shutdown();
    keeper.shutdown().context("closing the volumes")?;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}
