//! The one question this crate answers: which SNP launch digest does an IGVM file produce?
//!
//! Loaders do not agree on every detail of turning IGVM directives into SNP_LAUNCH_UPDATE calls, so the
//! answer depends on the loader's rules. Each rule set is a [`DigestRules`]; see docs/igvm.md for where
//! they differ.

use crate::error::IgvmError;
use crate::image::SnpImage;
use crate::page_info::Digest384;

/// A way of turning a validated IGVM image into the SNP launch digest.
pub trait DigestRules {
    /// Short stable name, as given to `--rules` and written to the reference-value JSON.
    fn name(&self) -> &'static str;
    /// The 48-byte launch digest (the report's MEASUREMENT) of `image`.
    fn launch_digest(&self, image: &SnpImage) -> Result<Digest384, IgvmError>;
}
