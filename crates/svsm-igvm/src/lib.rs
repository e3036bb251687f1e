//! SEV-SNP launch measurement of IGVM files, and the reference values a relying party compares reports with.
//!
//! - [`page_info`]: the SNP_LAUNCH_UPDATE PAGE_INFO structure and the SHA-384 launch-digest chain. `no_std`,
//!   no `alloc`: firmware can measure what it loads with it.
//! - [`image`] (feature `std`): an IGVM file parsed with the `igvm` crate and checked for an SNP launch
//!   (platform, guest policy, ID block, overlapping or malformed pages).
//! - [`mod@measure`]: the digest under the `igvm` crate's rules (its `measurement` module, the default) or
//!   COCONUT `igvmmeasure`'s, behind the [`DigestRules`] trait in [`api`].
//! - [`mod@reference`]: the reference-value JSON (schema `svsm-igvm-reference-values/1`, docs/igvm.md).
//!
//! Feature `testing` adds [`testing`], builders for IGVM test files.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod page_info;

#[cfg(feature = "std")]
pub mod api;
#[cfg(feature = "std")]
pub mod error;
#[cfg(feature = "std")]
pub mod image;
#[cfg(feature = "std")]
pub mod measure;
#[cfg(feature = "std")]
pub mod reference;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "std")]
pub use api::DigestRules;
#[cfg(feature = "std")]
pub use error::IgvmError;
#[cfg(feature = "std")]
pub use image::{MAX_FILE_SIZE, MAX_PARAMETER_AREA, SnpImage};
#[cfg(feature = "std")]
pub use measure::{CoconutRules, IgvmCrateRules, SnpLaunchValues, measure, measure_image};
#[cfg(feature = "std")]
pub use reference::{ReferenceValues, ReportClaims};
