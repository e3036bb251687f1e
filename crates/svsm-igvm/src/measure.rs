//! The two rule sets for the launch digest, and the values a verifier needs from an IGVM file.

use igvm_defs::IgvmPageDataType;

use crate::api::DigestRules;
use crate::error::IgvmError;
use crate::image::{IdBlock, LoadKind, PageCounts, SnpImage};
use crate::page_info::{Digest384, LaunchDigest, PAGE_SIZE, PageType};

/// The `igvm` crate's own measurement (`igvm::measurement::generate_snp_measurement`, igvm 0.5): shared
/// pages skipped, every page of a parameter area measured as UNMEASURED, a page without data measured as a
/// NORMAL page of zeros, VMSAs where the file puts them. This is what a loader that follows the directives
/// in order (QEMU's IGVM loader) produces; on KVM it is the hardware value when
/// [`SnpImage::kvm_layout_issues`] is empty. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct IgvmCrateRules;

impl DigestRules for IgvmCrateRules {
    fn name(&self) -> &'static str {
        "igvm-0.5"
    }

    fn launch_digest(&self, image: &SnpImage) -> Result<Digest384, IgvmError> {
        let file = image.file();
        igvm::measurement::generate_snp_measurement(
            file.initializations(),
            file.directives(),
            image.compatibility_mask(),
        )
        .map_err(IgvmError::Measurement)
    }
}

/// The rules of COCONUT-SVSM's `igvmmeasure` (as of igvm 0.4): shared pages measured like private ones, a
/// parameter area measured as one UNMEASURED page at its gPA whatever its size, a page without data measured
/// as a NORMAL page of zeros (or as a ZERO page with `igvmmeasure -n`, [`CoconutRules::zero_pages`]).
/// Computed with this crate's no_std [`LaunchDigest`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CoconutRules {
    /// Measure pages without data as PAGE_TYPE ZERO (`igvmmeasure -n`).
    pub zero_pages: bool,
}

impl DigestRules for CoconutRules {
    fn name(&self) -> &'static str {
        if self.zero_pages { "coconut-igvmmeasure-n" } else { "coconut-igvmmeasure" }
    }

    fn launch_digest(&self, image: &SnpImage) -> Result<Digest384, IgvmError> {
        let mut digest = LaunchDigest::new();
        for load in image.loads() {
            let data = image.data_of(load.directive);
            let page_type = match load.kind {
                LoadKind::Data { data_type, unmeasured, empty, .. } => match data_type {
                    IgvmPageDataType::SECRETS => PageType::Secrets,
                    IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => PageType::Cpuid,
                    _ if unmeasured => PageType::Unmeasured,
                    _ if empty && self.zero_pages => PageType::Zero,
                    _ => PageType::Normal,
                },
                LoadKind::Parameter { .. } => PageType::Unmeasured,
                LoadKind::Vmsa { .. } => PageType::Vmsa,
            };
            if !digest.add_page(page_type, load.gpa, data) {
                return Err(IgvmError::UnsupportedPage {
                    directive: load.directive,
                    what: format!("{} bytes of page data; at most {PAGE_SIZE}", data.len()),
                });
            }
        }
        Ok(digest.value())
    }
}

/// Everything a verifier compares an SNP report with, computed from one IGVM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpLaunchValues {
    /// Which [`DigestRules`] computed `measurement`.
    pub rules: &'static str,
    /// The launch digest (report MEASUREMENT).
    pub measurement: Digest384,
    /// Guest policy (report POLICY).
    pub policy: u64,
    /// The ID block, if any (report ID_KEY_DIGEST, AUTHOR_KEY_DIGEST, FAMILY_ID, IMAGE_ID, GUEST_SVN).
    pub id_block: Option<IdBlock>,
    /// Page counts.
    pub counts: PageCounts,
    /// Why KVM would measure differently (see [`SnpImage::kvm_layout_issues`]).
    pub kvm_issues: Vec<String>,
}

impl SnpLaunchValues {
    /// Report ID_KEY_DIGEST: zero without an ID block.
    pub fn id_key_digest(&self) -> Digest384 {
        self.id_block.as_ref().map_or([0; 48], |b| b.id_key_digest)
    }

    /// Report AUTHOR_KEY_DIGEST: zero without an author key.
    pub fn author_key_digest(&self) -> Digest384 {
        self.id_block.as_ref().and_then(|b| b.author_key_digest).unwrap_or([0; 48])
    }

    /// Report FAMILY_ID: zero without an ID block.
    pub fn family_id(&self) -> [u8; 16] {
        self.id_block.as_ref().map_or([0; 16], |b| b.family_id)
    }

    /// Report IMAGE_ID: zero without an ID block.
    pub fn image_id(&self) -> [u8; 16] {
        self.id_block.as_ref().map_or([0; 16], |b| b.image_id)
    }

    /// Report GUEST_SVN: zero without an ID block.
    pub fn guest_svn(&self) -> u32 {
        self.id_block.as_ref().map_or(0, |b| b.guest_svn)
    }

    /// Whether the ID block's LD equals the computed digest (`None` without an ID block). When it does not,
    /// SNP_LAUNCH_FINISH refuses the launch: the file was changed after it was signed, or the signer used
    /// other rules.
    pub fn id_block_ld_matches(&self) -> Option<bool> {
        self.id_block.as_ref().map(|b| b.ld == self.measurement)
    }
}

/// Measures a validated image with `rules`.
pub fn measure_image(image: &SnpImage, rules: &dyn DigestRules) -> Result<SnpLaunchValues, IgvmError> {
    Ok(SnpLaunchValues {
        rules: rules.name(),
        measurement: rules.launch_digest(image)?,
        policy: image.policy(),
        id_block: image.id_block().cloned(),
        counts: image.counts(),
        kvm_issues: image.kvm_layout_issues().to_vec(),
    })
}

/// Parses, validates and measures the IGVM file in `bytes` with `rules`.
pub fn measure(bytes: &[u8], rules: &dyn DigestRules) -> Result<SnpLaunchValues, IgvmError> {
    measure_image(&SnpImage::parse(bytes)?, rules)
}
