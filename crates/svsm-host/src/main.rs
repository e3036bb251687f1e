//! `svsm-host`: the SVSM persistence and service stack as a Linux process, plus the operator tools.
//!
//! Each command group lives in its own module under `cli/`; this file only wires them to clap and logging.

use clap::{Parser, Subcommand};
use svsm_host::cli;

/// The SVSM persistence and service stack, run as a Linux process ("native platform"), and the tools
/// operators use to create, inspect and check its encrypted volumes.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `debug`, `svsm_store=trace`.
    #[arg(long, global = true, env = "SVSM_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect raw block-device images (no key needed).
    #[command(subcommand)]
    Disk(cli::disk::DiskCommand),
    /// Serve the vTPM (mssim, swtpm and QEMU sockets) on the state in --state-dir; the main job.
    Serve(cli::serve::ServeArgs),
    /// Manufacture and inspect vTPMs offline.
    #[command(subcommand)]
    Tpm(cli::tpm::TpmCommand),
    /// Create, inspect, check, read, write, back up and restore encrypted secure-store volumes.
    #[command(subcommand)]
    Store(cli::store::StoreCommand),
    /// Import, export, list and show the UEFI variables of a state directory's UEFI volume (OVMF varstore
    /// .fd images and virt-fw-vars JSON).
    #[command(subcommand)]
    Uefi(cli::uefi::UefiCommand),
    /// SEV-SNP launch measurement and reference values of IGVM files.
    #[command(subcommand)]
    Igvm(cli::igvm::IgvmCommand),
    /// Produce (on the simulated SNP platform) and verify SVSM service attestations.
    #[command(subcommand)]
    Attest(cli::attest::AttestCommand),
    /// Expose the SVSM call interface on this host: guest memory in a shared file, VMGEXITs as register
    /// frames on a Unix socket, on a simulated SNP platform with svsm-protocol's TPM wire-format double as the
    /// vTPM (no state; `serve --svsm-socket` does the same for the real vTPM).
    SvsmServe {
        /// Unix socket to listen on.
        #[arg(long)]
        svsm_socket: std::path::PathBuf,
        /// Guest-memory file to create (shared with guests).
        #[arg(long)]
        memory: std::path::PathBuf,
        /// Guest memory size in MiB.
        #[arg(long, default_value_t = 8)]
        memory_mib: u64,
        /// Write the simulated ARK (the trust anchor for `attest verify`) here.
        #[arg(long)]
        ark_out: Option<std::path::PathBuf>,
        /// Make the simulated SNP platform report the launch of this IGVM file (its MEASUREMENT, POLICY, ID
        /// and author key digests), as hardware would for a VM launched from it.
        #[arg(long)]
        igvm: Option<std::path::PathBuf>,
        /// Also serve UEFI variables (protocol 4), persisted in `<DIR>/uefi-vars.store` (strict ledger mode,
        /// development key and file ledger of that directory).
        #[arg(long, value_name = "DIR")]
        uefi_state_dir: Option<std::path::PathBuf>,
        /// With --uefi-state-dir: create the UEFI volume if it is missing (a new directory gets one anyway).
        #[arg(long, requires = "uefi_state_dir")]
        uefi_create: bool,
    },
    /// Relay between the SVSM's key-release channel and a Trustee KBS (the untrusted host proxy: it sees the
    /// report, public keys and ciphertext only).
    KbsProxy(cli::kbs::ProxyArgs),
    /// Attested key release, the operator's side: provision a vTPM whose key a KBS holds.
    #[command(subcommand)]
    Kbs(cli::kbs::KbsCommand),
    /// Run the freshness-ledger service on an etcd cluster, and enrol VMs in it (the operator's side).
    #[command(subcommand)]
    Ledger(cli::ledger::LedgerCommand),
    /// Act as a guest against `svsm-host serve`, the way the Linux drivers do.
    #[command(subcommand)]
    Guest(cli::harness::GuestCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Disk(cmd) => cli::disk::run(cmd),
        Command::Serve(args) => cli::serve::run(args),
        Command::Tpm(cmd) => cli::tpm::run(cmd),
        Command::Store(cmd) => cli::store::run(cmd),
        Command::Attest(cmd) => cli::attest::run(cmd),
        Command::Igvm(cmd) => cli::igvm::run(cmd),
        Command::Uefi(cmd) => cli::uefi::run(cmd),
        Command::SvsmServe {
            svsm_socket,
            memory,
            memory_mib,
            ark_out,
            igvm,
            uefi_state_dir,
            uefi_create,
        } => {
            let uefi = uefi_state_dir
                .map(|state_dir| cli::harness::UefiServeArgs { state_dir, create: uefi_create });
            cli::harness::run_serve(&svsm_socket, &memory, memory_mib, ark_out, igvm.as_deref(), uefi)
        }
        Command::Guest(cmd) => cli::harness::run_guest(cmd),
        Command::KbsProxy(args) => cli::kbs::run_proxy(args),
        Command::Kbs(cmd) => cli::kbs::run(cmd),
        Command::Ledger(cmd) => cli::ledger::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
