//! Reference values: the JSON a relying party (a KBS resource policy, `attest verify`) compares SNP reports
//! with. The shape is documented in docs/igvm.md and is stable: version 1 fields keep their names and
//! meaning; new fields may be added, so readers must ignore fields they do not know.

use serde::{Deserialize, Serialize};

use crate::error::IgvmError;
use crate::measure::SnpLaunchValues;
use crate::page_info::Digest384;

/// The `schema` value of version 1.
pub const SCHEMA_V1: &str = "svsm-igvm-reference-values/1";

/// Reference values for one IGVM file on SEV-SNP. Hex is lower case without `0x`, except `policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceValues {
    /// Always [`SCHEMA_V1`].
    pub schema: String,
    /// Always `"sev-snp"`.
    pub platform: String,
    /// The digest rules used (`"igvm-0.5"`, `"coconut-igvmmeasure"`, `"coconut-igvmmeasure-n"`).
    pub digest_rules: String,
    /// Report MEASUREMENT: 96 hex digits.
    pub measurement: String,
    /// Report POLICY: `0x` and 16 hex digits.
    pub policy: String,
    /// Report ID_KEY_DIGEST (96 hex digits), or null when the file has no ID block.
    pub id_key_digest: Option<String>,
    /// Report AUTHOR_KEY_DIGEST (96 hex digits), or null when the ID block has no author key.
    pub author_key_digest: Option<String>,
    /// Report FAMILY_ID (32 hex digits), or null without an ID block.
    pub family_id: Option<String>,
    /// Report IMAGE_ID (32 hex digits), or null without an ID block.
    pub image_id: Option<String>,
    /// Report GUEST_SVN, or null without an ID block.
    pub guest_svn: Option<u32>,
}

/// The report fields reference values are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportClaims<'a> {
    /// MEASUREMENT.
    pub measurement: &'a Digest384,
    /// POLICY.
    pub policy: u64,
    /// ID_KEY_DIGEST.
    pub id_key_digest: &'a Digest384,
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: &'a Digest384,
}

fn hex_field<const N: usize>(name: &str, text: &str) -> Result<[u8; N], IgvmError> {
    let bytes =
        hex::decode(text).map_err(|e| IgvmError::ReferenceValues(format!("{name} is not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| IgvmError::ReferenceValues(format!("{name} is {} bytes, not {N}", b.len())))
}

impl ReferenceValues {
    /// The reference values of a measured file.
    pub fn from_launch(values: &SnpLaunchValues) -> Self {
        let id = values.id_block.as_ref();
        ReferenceValues {
            schema: SCHEMA_V1.into(),
            platform: "sev-snp".into(),
            digest_rules: values.rules.into(),
            measurement: hex::encode(values.measurement),
            policy: format!("{:#018x}", values.policy),
            id_key_digest: id.map(|b| hex::encode(b.id_key_digest)),
            author_key_digest: id.and_then(|b| b.author_key_digest).map(hex::encode),
            family_id: id.map(|b| hex::encode(b.family_id)),
            image_id: id.map(|b| hex::encode(b.image_id)),
            guest_svn: id.map(|b| b.guest_svn),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses and checks reference values (schema, platform, every field's length).
    pub fn from_json(text: &str) -> Result<Self, IgvmError> {
        let v: ReferenceValues = serde_json::from_str(text)
            .map_err(|e| IgvmError::ReferenceValues(format!("not valid JSON: {e}")))?;
        if v.schema != SCHEMA_V1 {
            return Err(IgvmError::ReferenceValues(format!("schema {:?}, expected {SCHEMA_V1:?}", v.schema)));
        }
        if v.platform != "sev-snp" {
            return Err(IgvmError::ReferenceValues(format!(
                "platform {:?}, expected \"sev-snp\"",
                v.platform
            )));
        }
        v.measurement()?;
        v.policy()?;
        v.id_key_digest()?;
        v.author_key_digest()?;
        if let Some(f) = &v.family_id {
            hex_field::<16>("family_id", f)?;
        }
        if let Some(f) = &v.image_id {
            hex_field::<16>("image_id", f)?;
        }
        Ok(v)
    }

    /// MEASUREMENT as bytes.
    pub fn measurement(&self) -> Result<Digest384, IgvmError> {
        hex_field("measurement", &self.measurement)
    }

    /// POLICY as a number.
    pub fn policy(&self) -> Result<u64, IgvmError> {
        let digits = self.policy.strip_prefix("0x").unwrap_or(&self.policy);
        u64::from_str_radix(digits, 16).map_err(|e| {
            IgvmError::ReferenceValues(format!("policy {:?} is not a hex u64: {e}", self.policy))
        })
    }

    /// ID_KEY_DIGEST as bytes, if given.
    pub fn id_key_digest(&self) -> Result<Option<Digest384>, IgvmError> {
        self.id_key_digest.as_deref().map(|h| hex_field("id_key_digest", h)).transpose()
    }

    /// AUTHOR_KEY_DIGEST as bytes, if given.
    pub fn author_key_digest(&self) -> Result<Option<Digest384>, IgvmError> {
        self.author_key_digest.as_deref().map(|h| hex_field("author_key_digest", h)).transpose()
    }

    /// Compares a report's claims with these values: MEASUREMENT and POLICY must be equal; ID_KEY_DIGEST and
    /// AUTHOR_KEY_DIGEST must be equal when given and zero when null. Returns the first difference.
    pub fn check(&self, claims: &ReportClaims<'_>) -> Result<(), IgvmError> {
        let mismatch = |what: &str, want: String, got: String| {
            Err(IgvmError::ReferenceValues(format!("report {what} {got} differs from the reference {want}")))
        };
        let m = self.measurement()?;
        if &m != claims.measurement {
            return mismatch("MEASUREMENT", hex::encode(m), hex::encode(claims.measurement));
        }
        let p = self.policy()?;
        if p != claims.policy {
            return mismatch("POLICY", format!("{p:#x}"), format!("{:#x}", claims.policy));
        }
        let id = self.id_key_digest()?.unwrap_or([0; 48]);
        if &id != claims.id_key_digest {
            return mismatch("ID_KEY_DIGEST", hex::encode(id), hex::encode(claims.id_key_digest));
        }
        let author = self.author_key_digest()?.unwrap_or([0; 48]);
        if &author != claims.author_key_digest {
            return mismatch("AUTHOR_KEY_DIGEST", hex::encode(author), hex::encode(claims.author_key_digest));
        }
        Ok(())
    }
}
