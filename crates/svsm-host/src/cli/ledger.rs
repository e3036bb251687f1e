//! `svsm-host ledger ...`: the freshness-ledger service and VM enrolment (the operator's side).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use svsm_ledger::{LedgerKey, VmId};
use svsm_store::{OsRandom, RandomSource as _};

use crate::ledger::{DEFAULT_PREFIX, EtcdConfig, Records, Service, keyfile};

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Answer ledger requests (relayed by hosts from their VMs) from records in etcd. Several instances may
    /// serve one cluster at once: every compare-and-set is one etcd transaction.
    Serve(ServeArgs),
    /// Enrol a VM: create its ledger key, store it in etcd, and write it to a file for provisioning the VM.
    Enrol(EnrolArgs),
    /// Read a volume's record through a ledger service, as the VM would (authenticated with its key), and
    /// print it with the service's time.
    Read(ReadArgs),
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The ledger service (`host:port`).
    #[arg(long)]
    service: String,
    /// The VM's id (as `ledger enrol` printed it).
    #[arg(long)]
    vm_id: String,
    /// The VM's ledger key file (as `ledger enrol` wrote it).
    #[arg(long)]
    key_file: PathBuf,
    /// The volume id (as `store info` prints it).
    #[arg(long)]
    volume: String,
}

#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// etcd client URLs, comma-separated (all members of the cluster, so any one may be down).
    #[arg(long, value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// Key prefix in etcd under which VM keys and records live.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    prefix: String,
    /// Deadline for one etcd operation, retries included (ms); past it the VM is told "unavailable" and
    /// reads back later.
    #[arg(long, default_value_t = 5000)]
    etcd_timeout_ms: u64,
}

impl EtcdArgs {
    fn config(&self) -> EtcdConfig {
        EtcdConfig {
            endpoints: self.etcd.clone(),
            prefix: self.prefix.trim_end_matches('/').to_string(),
            op_timeout: Duration::from_millis(self.etcd_timeout_ms),
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// Address to listen on for relayed requests. Loopback by default; a fleet's hosts need an address they
    /// can reach (every reply is authenticated, so the network need not be trusted, only reachable).
    #[arg(long, default_value = "127.0.0.1:7390")]
    listen: SocketAddr,
    /// Print the bound address here once listening (for scripts and tests that pass port 0).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EnrolArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The VM's id (32 hex digits); default: a new random one, printed.
    #[arg(long)]
    vm_id: Option<String>,
    /// Write the VM's new ledger key here (0600; refuses to overwrite). Provision it to the VM: until key
    /// release carries it, this file is the VM's only copy.
    #[arg(long)]
    key_out: PathBuf,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCommand::Serve(args) => runtime()?.block_on(serve(args)),
        LedgerCommand::Enrol(args) => runtime()?.block_on(enrol(args)),
        LedgerCommand::Read(args) => read(args),
    }
}

fn read(args: ReadArgs) -> anyhow::Result<ExitCode> {
    use svsm_store::Ledger as _;
    let vm = VmId(keyfile::parse_id(&args.vm_id)?);
    let volume = svsm_store::VolumeId(keyfile::parse_id(&args.volume)?);
    let key = keyfile::read(&args.key_file)?;
    let transport = svsm_ledger::tcp::TcpTransport::new(&args.service, Duration::from_secs(10));
    let mut client = svsm_ledger::ServiceLedger::new(vm, key, transport, OsRandom);
    let record = client.read(&volume).context("reading the record (is the service up, the VM enrolled?)")?;
    match record {
        None => println!("volume {volume}: no record (never enrolled)"),
        Some(r) => println!(
            "volume {volume}: generation {} superblock {}",
            r.generation,
            hex::encode(r.superblock_hash)
        ),
    }
    if let Some(t) = client.trusted_time_ms() {
        println!("service time: {t} ms since the Unix epoch");
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let records = Records::connect(args.etcd.config()).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {} (is another ledger service on it?)", args.listen))?;
    let bound = listener.local_addr()?;
    if let Some(p) = &args.ready_file {
        std::fs::write(p, format!("{bound}\n")).with_context(|| format!("writing {}", p.display()))?;
    }
    tracing::info!(listen = %bound, etcd = %args.etcd.etcd.join(","), "ledger service ready");
    println!(
        "ledger service on {bound}, records in etcd {} under {}",
        args.etcd.etcd.join(","),
        args.etcd.prefix
    );
    crate::ledger::serve(Arc::new(Service::new(records)), listener).await?;
    Ok(ExitCode::SUCCESS)
}

async fn enrol(args: EnrolArgs) -> anyhow::Result<ExitCode> {
    let vm = match &args.vm_id {
        Some(s) => VmId(keyfile::parse_id(s)?),
        None => {
            let mut id = [0u8; 16];
            OsRandom.fill(&mut id).map_err(|e| anyhow::anyhow!("{e}"))?;
            VmId(id)
        }
    };
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    OsRandom.fill(&mut bytes[..]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = LedgerKey::from_bytes(*bytes);
    let records = Records::connect(args.etcd.config()).await?;
    // Write the file first: a key in etcd that no VM holds is harmless, the reverse would strand the VM.
    keyfile::write_new(&args.key_out, &key)?;
    if !records.enrol(&vm, &key).await? {
        let _ = std::fs::remove_file(&args.key_out);
        anyhow::bail!("VM {vm} is already enrolled; its key stays as it was (pick another --vm-id)");
    }
    println!(
        "enrolled VM {vm}; its ledger key is in {} (provision it to the VM, keep it secret)",
        args.key_out.display()
    );
    Ok(ExitCode::SUCCESS)
}
