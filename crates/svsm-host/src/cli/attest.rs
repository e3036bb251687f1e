//! `svsm-host attest ...`: produce attestation evidence on the simulated SNP platform, and verify evidence.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use der::{DecodePem, EncodePem};
use rand::RngCore;
use svsm_attest::chain::{SimulatedRoots, parse_certificate, parse_pem_bundle};
use svsm_attest::verify::Evidence;
use svsm_attest::{VerifierPolicy, verify_attestation};
use svsm_harness::simulated::{CALLING_AREA, GUEST_FREE_START, guest_free_end, simulated_svsm};
use svsm_igvm::{ReferenceValues, ReportClaims};
use svsm_protocol::guest::{DirectTransport, Guest};
use svsm_protocol::guid::{
    CERT_TABLE_ARK_GUID, CERT_TABLE_ASK_GUID, CERT_TABLE_VCEK_GUID, SERVICES_MANIFEST_GUID, VTPM_SERVICE_GUID,
};
use svsm_protocol::manifest::parse_certificate_table;
use svsm_protocol::{Guid, VecGuestMemory};
use x509_cert::Certificate;

// Parsed once per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Produce evidence as a guest would get it through SVSM_ATTEST_SERVICES, on the *simulated* SNP
    /// platform (fresh simulated AMD roots and VCEK), so that `attest verify` can be tried without hardware.
    /// The vTPM behind it is the protocol crate's TPM wire-format double until the real vTPM is wired in.
    Simulate {
        /// Directory to write report.bin, manifest.bin, nonce.bin, certs.bin, ark.pem, chain.pem into.
        #[arg(long)]
        out: PathBuf,
        /// The 64-byte nonce as 128 hex digits (random if omitted).
        #[arg(long)]
        nonce: Option<String>,
        /// Ask for the vTPM service alone (ATTEST_SINGLE_SERVICE) instead of all services.
        #[arg(long)]
        single_service: bool,
        /// MEASUREMENT to put in the report (96 hex digits).
        #[arg(long, conflicts_with = "igvm")]
        measurement: Option<String>,
        /// Simulate the launch of this IGVM file: the report carries its MEASUREMENT, POLICY, ID and author
        /// key digests, family and image IDs and guest SVN.
        #[arg(long)]
        igvm: Option<PathBuf>,
        /// HOST_DATA to put in the report (64 hex digits).
        #[arg(long)]
        host_data: Option<String>,
    },
    /// Verify an SVSM services attestation: ARK -> ASK -> VCEK chain against a trusted ARK (signatures,
    /// validity periods, CA constraints, optional AMD CRLs), the report signature and TCB, the guest policy
    /// (DEBUG and MIGRATE_MA guests refused unless allowed), VMPL, the REPORT_DATA binding (SHA-512(nonce ||
    /// manifest) for ATTEST_SERVICES; for a single-service request also the service GUID, manifest version
    /// and selector: give --single-service or --service-guid), the manifest; prints the vTPM's EK public key and EK Name. Exit status 0 = accepted,
    /// 1 = rejected.
    Verify {
        /// The raw 1184-byte attestation report (configfs-tsm outblob).
        #[arg(long)]
        report: PathBuf,
        /// The manifest (configfs-tsm manifestblob).
        #[arg(long)]
        manifest: PathBuf,
        /// The nonce as 128 hex digits.
        #[arg(long, conflicts_with = "nonce_file")]
        nonce: Option<String>,
        /// The nonce as a 64-byte file (configfs-tsm inblob).
        #[arg(long)]
        nonce_file: Option<PathBuf>,
        /// The trusted ARK certificate (PEM). For real hardware this is AMD's ARK for the product.
        #[arg(long)]
        ark: PathBuf,
        /// PEM bundle with the ASK then the VCEK (e.g. from AMD's KDS).
        #[arg(long, conflicts_with = "certs")]
        chain: Option<PathBuf>,
        /// The GHCB certificate table returned with an extended report (configfs-tsm auxblob).
        #[arg(long)]
        certs: Option<PathBuf>,
        /// The evidence came from ATTEST_SINGLE_SERVICE(_EX) for the vTPM service (as `attest simulate
        /// --single-service` or `guest attest --service-guid` with the vTPM GUID produce). This SVSM binds
        /// the service GUID and manifest version into a single-service REPORT_DATA (docs/svsm-protocols.md),
        /// so the verifier must be told what was asked for; without this, `--service-guid` or `--selector`
        /// the evidence must be an ATTEST_SERVICES one.
        #[arg(long, conflicts_with = "service_guid")]
        single_service: bool,
        /// The evidence came from ATTEST_SINGLE_SERVICE(_EX) for this service GUID.
        #[arg(long)]
        service_guid: Option<String>,
        /// The manifest version the single-service request asked for.
        #[arg(long, default_value_t = 0)]
        manifest_version: u32,
        /// Selector file of an ATTEST_SINGLE_SERVICE_EX request (implies --single-service unless
        /// --service-guid names another service).
        #[arg(long)]
        selector: Option<PathBuf>,
        /// Require this VMPL in the report (the SVSM attests at VMPL 0).
        #[arg(long, default_value_t = 0)]
        vmpl: u32,
        /// An AMD CRL (DER, as KDS serves it at /vcek/v1/PRODUCT/crl) revoking ASKs or VCEKs; repeatable.
        /// It must be signed by the chain's ARK or ASK and current.
        #[arg(long)]
        crl: Vec<PathBuf>,
        /// Minimum reported TCB as four SPLs "BL,TEE,SNP,UCODE" (e.g. 3,0,14,209 from AMD's bulletins).
        #[arg(long, value_parser = parse_tcb)]
        min_tcb: Option<svsm_attest::chain::Tcb>,
        /// Accept a guest launched with DEBUG allowed (the host can read its memory: development only).
        #[arg(long)]
        allow_debug: bool,
        /// Require the launch of this IGVM file: MEASUREMENT (its SNP launch digest, igvm-crate rules), and
        /// POLICY, ID_KEY_DIGEST and AUTHOR_KEY_DIGEST equal to the file's.
        #[arg(long, group = "reference_values")]
        igvm: Option<PathBuf>,
        /// Require this MEASUREMENT (96 hex digits).
        #[arg(long, group = "reference_values")]
        measurement: Option<String>,
        /// Require the reference values in this JSON file (`igvm measure --json`, docs/igvm.md).
        #[arg(long, group = "reference_values")]
        reference: Option<PathBuf>,
    },
}

fn parse_tcb(text: &str) -> Result<svsm_attest::chain::Tcb, String> {
    let parts: Vec<u8> = text
        .split(',')
        .map(|p| p.trim().parse::<u8>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [bootloader, tee, snp, microcode] => Ok(svsm_attest::chain::Tcb {
            bootloader: *bootloader,
            tee: *tee,
            snp: *snp,
            microcode: *microcode,
        }),
        _ => Err("give four SPLs: BL,TEE,SNP,UCODE".into()),
    }
}

/// POLICY, MEASUREMENT, ID_KEY_DIGEST and AUTHOR_KEY_DIGEST as the report carries them (`None` if it is too
/// short; the verifier has already refused such a report).
fn report_claims(report: &[u8]) -> Option<ReportClaims<'_>> {
    let digest = |at: usize| -> Option<&[u8; 48]> { report.get(at..at + 48)?.try_into().ok() };
    Some(ReportClaims {
        policy: u64::from_le_bytes(report.get(0x08..0x10)?.try_into().ok()?),
        measurement: digest(0x90)?,
        id_key_digest: digest(0xE0)?,
        author_key_digest: digest(0x110)?,
    })
}

fn hex_array<const N: usize>(what: &str, text: &str) -> anyhow::Result<[u8; N]> {
    let bytes = hex::decode(text.trim()).with_context(|| format!("{what} must be hex"))?;
    bytes.try_into().map_err(|b: Vec<u8>| anyhow::anyhow!("{what} must be {N} bytes, got {}", b.len()))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn run(cmd: AttestCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AttestCommand::Simulate { out, nonce, single_service, measurement, igvm, host_data } => {
            simulate(&out, nonce, single_service, measurement, igvm.as_deref(), host_data)
        }
        AttestCommand::Verify {
            report,
            manifest,
            nonce,
            nonce_file,
            ark,
            chain,
            certs,
            single_service,
            service_guid,
            manifest_version,
            selector,
            vmpl,
            crl,
            min_tcb,
            allow_debug,
            igvm,
            measurement,
            reference,
        } => {
            let mut policy = VerifierPolicy { required_vmpl: vmpl, ..Default::default() };
            if let Some(t) = min_tcb {
                policy.minimum_tcb = t;
            }
            if allow_debug {
                policy.allowed_policy_bits |= svsm_attest::policy::POLICY_DEBUG;
            }
            policy.crls = crl.iter().map(|p| read(p)).collect::<anyhow::Result<_>>()?;
            let reference = match (igvm, reference) {
                (Some(f), _) => Some(ReferenceValues::from_launch(
                    &crate::cli::igvm::measure_file(&f, &svsm_igvm::IgvmCrateRules)?.1,
                )),
                (None, Some(f)) => {
                    let text = String::from_utf8(read(&f)?).context("--reference must be JSON text")?;
                    Some(ReferenceValues::from_json(&text).with_context(|| format!("in {}", f.display()))?)
                }
                (None, None) => None,
            };
            policy.expected_measurement = match (&reference, measurement) {
                (Some(r), _) => Some(r.measurement()?),
                (None, Some(m)) => Some(hex_array("--measurement", &m)?),
                (None, None) => None,
            };
            let service = match service_guid {
                Some(g) => Some(
                    Guid::parse(&g)
                        .context("--service-guid must look like c476f1eb-0123-45a5-9641-b4e7dde5bfe3")?,
                ),
                None if single_service || selector.is_some() => Some(VTPM_SERVICE_GUID),
                None => None,
            };
            let request = Request { service, manifest_version, selector };
            verify(&report, &manifest, nonce, nonce_file, &ark, chain, certs, request, &policy, reference)
        }
    }
}

fn simulate(
    out: &Path,
    nonce: Option<String>,
    single_service: bool,
    measurement: Option<String>,
    igvm: Option<&Path>,
    host_data: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut rng = rand::rngs::OsRng;
    let nonce = match nonce {
        Some(h) => hex_array::<64>("--nonce", &h)?,
        None => {
            let mut n = [0u8; 64];
            rng.fill_bytes(&mut n);
            n
        }
    };
    let mut config = crate::cli::harness::simulated_config(igvm)?;
    if let Some(m) = measurement {
        config.measurement = hex_array("--measurement", &m)?;
    }
    if let Some(h) = host_data {
        config.host_data = hex_array("--host-data", &h)?;
    }
    eprintln!("generating simulated AMD roots (RSA-4096), a VCEK and an EK; this takes a few seconds");
    let roots = Arc::new(SimulatedRoots::generate("Milan", &mut rng).map_err(|e| anyhow::anyhow!("{e}"))?);
    let svsm =
        simulated_svsm(8 << 20, roots.clone(), config, &mut rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let transport = DirectTransport { svsm, memory: VecGuestMemory::new(0, 8 << 20) };
    let mut guest = Guest::new(transport, CALLING_AREA, GUEST_FREE_START, guest_free_end(8 << 20));
    let service = if single_service { VTPM_SERVICE_GUID } else { Guid::NULL };
    let evidence =
        guest.attest(&nonce, service, 0, None).map_err(|e| anyhow::anyhow!("attestation failed: {e}"))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let pem = |c: &Certificate| c.to_pem(der::pem::LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"));
    let write = |name: &str, data: &[u8]| {
        std::fs::write(out.join(name), data)
            .with_context(|| format!("cannot write {}", out.join(name).display()))
    };
    write("report.bin", &evidence.report)?;
    write("manifest.bin", &evidence.manifest)?;
    write("nonce.bin", &nonce)?;
    write("certs.bin", &evidence.certificates)?;
    write("ark.pem", pem(&roots.ark)?.as_bytes())?;
    let table = parse_certificate_table(&evidence.certificates)?;
    let vcek_der = table.iter().find(|e| e.guid == CERT_TABLE_VCEK_GUID).context("no VCEK in table")?.data;
    let vcek = parse_certificate("VCEK", vcek_der)?;
    write("chain.pem", format!("{}{}", pem(&roots.ask)?, pem(&vcek)?).as_bytes())?;
    println!("wrote report.bin, manifest.bin, nonce.bin, certs.bin, ark.pem, chain.pem to {}", out.display());
    println!(
        "try: svsm-host attest verify --report {0}/report.bin --manifest {0}/manifest.bin --nonce-file {0}/nonce.bin --ark {0}/ark.pem --certs {0}/certs.bin{1}",
        out.display(),
        if single_service { " --single-service" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// What the relying party asked the SVSM for: the verifier checks the report is bound to exactly this.
struct Request {
    /// `Some`: ATTEST_SINGLE_SERVICE(_EX) for this service; `None`: ATTEST_SERVICES.
    service: Option<Guid>,
    manifest_version: u32,
    /// The selector file of an EX request.
    selector: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
fn verify(
    report: &Path,
    manifest: &Path,
    nonce: Option<String>,
    nonce_file: Option<PathBuf>,
    ark: &Path,
    chain: Option<PathBuf>,
    certs: Option<PathBuf>,
    request: Request,
    policy: &VerifierPolicy,
    reference: Option<ReferenceValues>,
) -> anyhow::Result<ExitCode> {
    let report = read(report)?;
    let manifest = read(manifest)?;
    let nonce = match (nonce, nonce_file) {
        (Some(h), _) => hex::decode(h.trim()).context("--nonce must be hex")?,
        (None, Some(f)) => read(&f)?,
        (None, None) => bail!("give the nonce with --nonce HEX or --nonce-file FILE"),
    };
    let trusted = Certificate::from_pem(read(ark)?).context("--ark must be a PEM certificate")?;
    let (ask, vcek, chain_ark) = match (chain, certs) {
        (Some(p), _) => {
            let text = String::from_utf8(read(&p)?).context("--chain must be PEM text")?;
            let certs = parse_pem_bundle("chain", &text)?;
            match certs.as_slice() {
                [ask, vcek] => (ask.clone(), vcek.clone(), trusted.clone()),
                [ask, vcek, ark] => (ask.clone(), vcek.clone(), ark.clone()),
                _ => bail!("--chain must hold the ASK then the VCEK (optionally the ARK last)"),
            }
        }
        (None, Some(p)) => {
            let table_bytes = read(&p)?;
            let table =
                parse_certificate_table(&table_bytes).context("--certs is not a GHCB certificate table")?;
            let get = |g: Guid, which: &'static str| -> anyhow::Result<Certificate> {
                let e =
                    table.iter().find(|e| e.guid == g).with_context(|| format!("no {which} in --certs"))?;
                Ok(parse_certificate(which, e.data)?)
            };
            let ark = match table.iter().find(|e| e.guid == CERT_TABLE_ARK_GUID) {
                Some(e) => parse_certificate("ARK", e.data)?,
                None => trusted.clone(),
            };
            (get(CERT_TABLE_ASK_GUID, "ASK")?, get(CERT_TABLE_VCEK_GUID, "VCEK")?, ark)
        }
        (None, None) => bail!("give the ASK and VCEK with --chain PEM or --certs TABLE"),
    };
    let selector = request.selector.as_deref().map(read).transpose()?;
    if request.service.is_none() && !manifest.starts_with(SERVICES_MANIFEST_GUID.as_bytes()) {
        println!(
            "verdict: REJECTED: the manifest is not a services manifest (ATTEST_SERVICES); if the evidence \
             came from a single-service request, say which: --single-service (the vTPM) or --service-guid GUID, \
             and --manifest-version N if not 0"
        );
        return Ok(ExitCode::from(1));
    }
    let evidence = Evidence {
        report: &report,
        manifest: &manifest,
        nonce: &nonce,
        // The report binds the service GUID, manifest version and selector of a single-service request.
        selector: request
            .service
            .map(|guid| (guid, request.manifest_version, selector.as_deref().unwrap_or_default())),
        trusted_ark: &trusted,
        ark: &chain_ark,
        ask: &ask,
        vcek: &vcek,
    };
    let result = verify_attestation(&evidence, policy).map_err(|e| e.to_string()).and_then(|v| {
        // The verifier checked MEASUREMENT; the rest of the file's launch values are compared here.
        match &reference {
            Some(r) => match report_claims(&report) {
                Some(claims) => r.check(&claims).map(|()| v).map_err(|e| e.to_string()),
                None => Err("report too short".to_string()),
            },
            None => Ok(v),
        }
    });
    match result {
        Ok(v) => {
            println!("verdict: ACCEPTED");
            println!(
                "report version {}, VMPL {}, product {}",
                v.report.version, v.report.vmpl, v.vcek.product_name
            );
            println!("measurement: {}", hex::encode(v.report.measurement));
            println!("host_data:   {}", hex::encode(v.report.host_data));
            if reference.is_some() {
                println!(
                    "reference:   MEASUREMENT, POLICY, ID and author key digests match the reference values"
                );
            } else if policy.expected_measurement.is_some() {
                println!("reference:   MEASUREMENT matches --measurement");
            }
            for (guid, data) in &v.services {
                println!("service {guid}: {} bytes", data.len());
            }
            match (v.ek, v.guest_template_key) {
                (Some(ek), _) => {
                    let profile = ek.profile.map(|p| p.profile_label()).unwrap_or("TCG EK profile");
                    println!("vTPM EK Name: {}", hex::encode(&ek.name));
                    println!("vTPM EK template: {profile}");
                    match ek.public_key_pem {
                        Some(pem) => print!("vTPM EK public key:\n{pem}"),
                        None => println!("vTPM EK TPMT_PUBLIC: {}", hex::encode(&ek.tpmt_public)),
                    }
                }
                (None, Some(key)) => {
                    println!(
                        "NOT an EK: key created from the guest's template (objectAttributes {:#010x}, \
                         authPolicy {}); do not bind an AK to it as an EK",
                        key.public.attributes,
                        if key.public.auth_policy.is_empty() {
                            "empty".to_owned()
                        } else {
                            hex::encode(&key.public.auth_policy)
                        }
                    );
                    println!("key Name: {}", hex::encode(&key.name));
                    match key.public_key_pem {
                        Some(pem) => print!("key public key:\n{pem}"),
                        None => println!("key TPMT_PUBLIC: {}", hex::encode(&key.tpmt_public)),
                    }
                }
                (None, None) => println!("no vTPM service in the manifest"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            println!("verdict: REJECTED: {err}");
            Ok(ExitCode::from(1))
        }
    }
}
