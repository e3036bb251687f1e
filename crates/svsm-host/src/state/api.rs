//! The two questions every command asks before it touches a volume: where does its key come from, and who
//! remembers its current generation. Each is a trait so the production answers (attested key release from a
//! KBS, a ledger service the host cannot rewind) plug in beside the development ones without any command
//! changing.

use std::borrow::Cow;
use std::fmt;

use svsm_store::{Ledger, StoreKey};

use crate::state::error::StateError;

/// The state model's name for one service's volume: stable, known before the image exists, and the name a
/// key source or ledger source is asked about.
///
/// Not the store's [`svsm_store::VolumeId`]: that one is random, chosen when the image is formatted, and
/// only readable (authenticated) once the key is known. A key source cannot be keyed by it, because the key
/// is needed to format the image in the first place.
///
/// Names are 1..=32 characters of `[a-z0-9-]`, so they are safe as file names and as path segments of a
/// KBS resource URI.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeName(Cow<'static, str>);

impl VolumeName {
    /// The vTPM's volume (`vtpm.store`).
    pub const VTPM: VolumeName = VolumeName(Cow::Borrowed("vtpm"));
    /// The UEFI variable store's volume (`uefi-vars.store`): its own image, i.e. its own device.
    pub const UEFI_VARS: VolumeName = VolumeName(Cow::Borrowed("uefi-vars"));

    /// Validates a name given at run time (e.g. `--volume`).
    pub fn new(name: impl Into<String>) -> Result<Self, StateError> {
        let name = name.into();
        let ok = (1..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(StateError::BadVolumeName(name));
        }
        Ok(VolumeName(Cow::Owned(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VolumeName({})", self.0)
    }
}

impl std::str::FromStr for VolumeName {
    type Err = StateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VolumeName::new(s)
    }
}

/// Where a volume key came from: what a relying party should make of data protected by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The host could read the key (a file, an environment variable, a KBS double): anyone with the host's
    /// privileges can decrypt and forge the volume. For development and tests only.
    Development {
        /// Where it came from, for messages (e.g. the key file's path).
        source: String,
    },
    /// Released by a key broker after it verified an attestation of this SVSM: the host never saw it.
    Attested {
        /// Which broker and resource released it, for messages.
        source: String,
    },
}

impl KeyOrigin {
    /// True unless the key came from an attested release.
    pub fn is_development(&self) -> bool {
        matches!(self, KeyOrigin::Development { .. })
    }
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Development { source } => write!(f, "{source} (DEVELOPMENT key, not for production)"),
            KeyOrigin::Attested { source } => write!(f, "{source} (attested release)"),
        }
    }
}

/// A volume's 32-byte root key and where it came from. The key is zeroized when this is dropped (it is a
/// [`StoreKey`]) and never printed.
#[derive(Debug, Clone)]
pub struct VolumeKey {
    /// The root secret the store derives the volume's keys from.
    pub key: StoreKey,
    /// Where it came from.
    pub origin: KeyOrigin,
}

/// Whether a new volume may get a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRequest {
    /// The volume exists: return its key, or fail. Never invents one (a new key would make the volume
    /// unreadable, which must be a precise error, not a silent replacement).
    Existing,
    /// The volume is being created: return its key, creating one if the source can and none exists yet
    /// (the key file writes a new development key; a KBS source returns the provisioned key or fails).
    ForNewVolume,
}

/// Where volume keys come from.
///
/// Contract for implementations:
/// - `volume_key` returns the root key for the named volume, or a [`StateError`] saying what the operator
///   should do. It never returns a different key than the one the volume was created with: sources that
///   cannot know must fail rather than guess.
/// - The returned [`VolumeKey::origin`] is [`KeyOrigin::Attested`] only if the key was released after an
///   attestation the host could not fake; everything else is [`KeyOrigin::Development`], and commands say so.
/// - Keys are returned in zeroizing storage; an implementation zeroizes every intermediate copy (file text,
///   decoded responses) too.
/// - It may block (network round trips) and is called once per volume open, not per commit.
pub trait KeySource: fmt::Debug + Send + Sync {
    /// The root key of `volume`.
    fn volume_key(&self, volume: &VolumeName, request: KeyRequest) -> Result<VolumeKey, StateError>;

    /// One line for logs and `--help`-style output: where keys come from (never the key).
    fn describe(&self) -> String;
}

/// How far a ledger can be trusted not to be rewound by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerTrust {
    /// The host controls it (a directory on the host): it detects accidents and stale copies, not an
    /// attacker on the host.
    Development,
    /// Kept by a party outside the host's control over an authenticated channel (a ledger service).
    Independent,
}

/// Who remembers each volume's current generation.
///
/// Contract for implementations:
/// - `open_ledger` returns a ledger handle for the named volume's records. The store addresses records in
///   it by the volume's own [`svsm_store::VolumeId`]; several volumes may share one ledger.
/// - The handle's `compare_and_set` is atomic against every other handle on the same records, in this
///   process or any other (two `svsm-host` processes must never both win one generation).
/// - Network sources connect lazily or here; an unreachable service is
///   [`svsm_store::LedgerError::Unavailable`] from the handle or a [`StateError`] from here, never a
///   silently absent record.
pub trait LedgerSource: fmt::Debug + Send + Sync {
    /// A ledger handle for `volume`.
    fn open_ledger(&self, volume: &VolumeName) -> Result<Box<dyn Ledger>, StateError>;

    /// Whether the host can rewind it.
    fn trust(&self) -> LedgerTrust;

    /// One line for logs: where the records live.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_are_file_and_uri_safe() {
        assert_eq!(VolumeName::new("vtpm").unwrap(), VolumeName::VTPM);
        assert_eq!(VolumeName::new("uefi-vars").unwrap(), VolumeName::UEFI_VARS);
        for bad in ["", "../x", "a/b", "UEFI", "a b", &"x".repeat(33)] {
            assert!(VolumeName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
