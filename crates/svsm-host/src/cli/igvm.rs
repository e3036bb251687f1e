//! `svsm-host igvm ...`: the SNP launch measurement and reference values of an IGVM file, and the simulated
//! launch (`--igvm` on `serve`, `svsm-serve`, `attest simulate`) that reports them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use svsm_attest::SimulatedSnpConfig;
use svsm_igvm::{
    CoconutRules, DigestRules, IgvmCrateRules, MAX_FILE_SIZE, ReferenceValues, SnpImage, SnpLaunchValues,
};

#[derive(Debug, Subcommand)]
pub enum IgvmCommand {
    /// Compute the SEV-SNP launch digest (the report's MEASUREMENT) of an IGVM file, and what else a verifier
    /// compares a report with: guest policy, ID block (ID and author key digests, family and image IDs, guest
    /// SVN). Ends with the reference-value JSON for a KBS resource policy or `attest verify --reference`.
    /// Exit status 0 = measured, 1 = --check-kvm found a layout KVM measures differently, 2 = not measurable.
    Measure {
        /// The IGVM file.
        file: PathBuf,
        /// Platform to measure for. Only SEV-SNP is supported.
        #[arg(long, value_enum, default_value_t = Platform::Snp)]
        platform: Platform,
        /// Print only the reference-value JSON (schema svsm-igvm-reference-values/1, docs/igvm.md).
        #[arg(long)]
        json: bool,
        /// Which loader's rules to follow (docs/igvm.md, "Where the rules differ").
        #[arg(long, value_enum, default_value_t = Rules::Igvm)]
        rules: Rules,
        /// Fail (exit 1) unless KVM would measure the file in directive order: one VMSA, last, at gPA
        /// 0xFFFFFFFFF000, reset-state CR0.
        #[arg(long)]
        check_kvm: bool,
    },
}

/// `--platform`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Platform {
    /// AMD SEV-SNP: SHA-384 PAGE_INFO chain of SNP_LAUNCH_UPDATE.
    Snp,
}

/// `--rules`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Rules {
    /// The igvm crate's measurement module (igvm 0.5), what an in-order loader such as QEMU's produces.
    Igvm,
    /// COCONUT-SVSM `igvmmeasure`.
    Coconut,
    /// COCONUT-SVSM `igvmmeasure -n` (pages without data as ZERO pages).
    CoconutZero,
}

impl Rules {
    fn rules(self) -> Box<dyn DigestRules> {
        match self {
            Rules::Igvm => Box::new(IgvmCrateRules),
            Rules::Coconut => Box::new(CoconutRules { zero_pages: false }),
            Rules::CoconutZero => Box::new(CoconutRules { zero_pages: true }),
        }
    }
}

/// Reads and measures `path`: every failure says which file and why.
pub fn measure_file(path: &Path, rules: &dyn DigestRules) -> anyhow::Result<(SnpImage, SnpLaunchValues)> {
    let t0 = Instant::now();
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if size > MAX_FILE_SIZE {
        anyhow::bail!(
            "{} is {size} bytes; IGVM files over {MAX_FILE_SIZE} bytes are refused",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let image = SnpImage::parse(&bytes).with_context(|| format!("cannot measure {}", path.display()))?;
    let values = svsm_igvm::measure_image(&image, rules)
        .with_context(|| format!("cannot measure {}", path.display()))?;
    tracing::info!(file = %path.display(), bytes = size, elapsed_ms = t0.elapsed().as_secs_f64() * 1e3, "measured");
    Ok((image, values))
}

/// `base` with the launch values of the IGVM file at `path` (igvm-crate rules): MEASUREMENT, POLICY,
/// ID_KEY_DIGEST, AUTHOR_KEY_DIGEST, FAMILY_ID, IMAGE_ID, GUEST_SVN.
pub fn simulated_launch(path: &Path, base: SimulatedSnpConfig) -> anyhow::Result<SimulatedSnpConfig> {
    let (_, v) = measure_file(path, &IgvmCrateRules)?;
    if v.id_block_ld_matches() == Some(false) {
        anyhow::bail!(
            "the ID block of {} was signed for another launch digest; SNP_LAUNCH_FINISH would refuse this launch",
            path.display()
        );
    }
    eprintln!(
        "simulated SNP launch of {}: MEASUREMENT {} POLICY {:#x}",
        path.display(),
        hex::encode(v.measurement),
        v.policy
    );
    Ok(SimulatedSnpConfig {
        measurement: v.measurement,
        policy: v.policy,
        guest_svn: v.guest_svn(),
        family_id: v.family_id(),
        image_id: v.image_id(),
        id_key_digest: v.id_key_digest(),
        author_key_digest: v.id_block.as_ref().and_then(|b| b.author_key_digest),
        ..base
    })
}

fn describe_policy(policy: u64) -> String {
    let bit = |n: u32| if policy >> n & 1 == 1 { "yes" } else { "no" };
    format!(
        "{policy:#018x} (ABI >= {}.{}, SMT {}, migration agent {}, debug {}, single socket {})",
        policy >> 8 & 0xFF,
        policy & 0xFF,
        bit(16),
        bit(18),
        bit(19),
        bit(20)
    )
}

pub fn run(cmd: IgvmCommand) -> anyhow::Result<ExitCode> {
    let IgvmCommand::Measure { file, platform: Platform::Snp, json, rules, check_kvm } = cmd;
    let (image, v) = measure_file(&file, rules.rules().as_ref())?;
    let reference = ReferenceValues::from_launch(&v);
    if json {
        println!("{}", reference.to_json());
    } else {
        let c = v.counts;
        println!("file:          {}", file.display());
        println!("platform:      SEV-SNP (compatibility mask {:#x})", image.compatibility_mask());
        println!("digest rules:  {}", v.rules);
        println!("measurement:   {}", hex::encode(v.measurement));
        println!("guest policy:  {}", describe_policy(v.policy));
        println!(
            "pages:         {} data, {} zero, {} unmeasured, {} secrets, {} cpuid, {} parameter, {} vmsa; {} shared (not measured by igvm rules)",
            c.data, c.zero, c.unmeasured, c.secrets, c.cpuid, c.parameter, c.vmsa, c.shared
        );
        match &v.id_block {
            None => println!("id block:      none (report ID_KEY_DIGEST and AUTHOR_KEY_DIGEST are zero)"),
            Some(b) => {
                println!(
                    "id block:      version {}, guest svn {}, key algorithm {}",
                    b.version, b.guest_svn, b.id_key_algorithm
                );
                println!("  family id:         {}", hex::encode(b.family_id));
                println!("  image id:          {}", hex::encode(b.image_id));
                println!("  id key digest:     {}", hex::encode(b.id_key_digest));
                match b.author_key_digest {
                    Some(d) => println!("  author key digest: {}", hex::encode(d)),
                    None => println!("  author key digest: none"),
                }
                println!(
                    "  signed digest:     {}",
                    if b.ld == v.measurement {
                        "matches".to_string()
                    } else {
                        format!("{} (DIFFERS)", hex::encode(b.ld))
                    }
                );
            }
        }
        if v.kvm_issues.is_empty() {
            println!("kvm layout:    ok (KVM measures the pages in this order)");
        } else {
            for issue in &v.kvm_issues {
                println!("kvm layout:    {issue}");
            }
        }
        println!("reference values (for a KBS resource policy or `attest verify --reference`):");
        println!("{}", reference.to_json());
    }
    if v.id_block_ld_matches() == Some(false) {
        eprintln!(
            "warning: the ID block's launch digest differs from the file's; SNP_LAUNCH_FINISH would refuse it"
        );
    }
    if check_kvm && !v.kvm_issues.is_empty() {
        eprintln!("--check-kvm: KVM would measure this file differently: {}", v.kvm_issues.join("; "));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
