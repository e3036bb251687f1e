//! The state blobs QEMU carries through migration and snapshots (CMD_GET/SET_STATEBLOB), sealed so the
//! untrusted host that stores and forwards them can neither read nor alter them, nor feed one vTPM's state to
//! another.
//!
//! # Format (version 1, integers big-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `SVSB` |
//! | 4 | 2 | version, 1 |
//! | 6 | 2 | blob type (`PTM_BLOB_TYPE_*`: 1 permanent, 2 volatile, 3 savestate) |
//! | 8 | 16 | volume id of the vTPM store the blob was taken from |
//! | 24 | 12 | random nonce |
//! | 36 | n + 16 | AES-256-GCM ciphertext and tag; the 36 header bytes are the associated data |
//!
//! The key is HKDF-SHA256 of the store's root key (salt `svsm-host state blob v1`, info = volume id ‖ blob
//! type), so a blob opens only under the store key of the vTPM it came from, only as its own type, and only
//! for the volume id it names: changing the header changes the key and the associated data. The plaintext of a
//! permanent blob is `u32 len ‖ libtpms permall ‖ u32 len ‖ manufacture record` (the record travels with the
//! state it describes, so a destination store holds both or neither); volatile and savestate blobs are the
//! libtpms blobs as they are.
//!
//! [`StateBlobKey::open`] parses bytes from the host: it is fuzzed (`fuzz/fuzz_targets/stateblob.rs`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use svsm_store::{RandomSource, VolumeId};

use crate::swtpm::blob_type;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"SVSB";
const VERSION: u16 = 1;
const HEADER: usize = 36;
const TAG: usize = 16;
const SALT: &[u8] = b"svsm-host state blob v1";

/// Why a state blob was refused. Each names what the operator should check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// Not one of ours (too short, wrong magic): e.g. a plain swtpm blob.
    #[error("not an svsm-host state blob ({0}); plain or swtpm-encrypted blobs are not accepted")]
    Foreign(&'static str),
    /// A format version this daemon does not know.
    #[error("state blob format version {0} is not supported by this daemon (it writes version 1)")]
    Version(u16),
    /// The header names another blob type than the one it was sent as.
    #[error("state blob is of type {inner} but was sent as type {outer}")]
    TypeMismatch {
        /// Type in the sealed header.
        inner: u32,
        /// Type of the SET_STATEBLOB request.
        outer: u32,
    },
    /// The blob comes from another vTPM than the one this daemon serves or is receiving.
    #[error(
        "state blob belongs to vTPM volume {found}, but this daemon expects volume {expected}; refusing a \
         blob from another vTPM"
    )]
    OtherVtpm {
        /// Volume id in the blob.
        found: VolumeId,
        /// Volume id this daemon accepts.
        expected: VolumeId,
    },
    /// The AEAD tag did not verify.
    #[error(
        "state blob does not authenticate under this daemon's vTPM key: it was sealed under another store \
         key (start the destination with the source's --store-key) or it was altered in transit"
    )]
    Authentication,
    /// The authenticated plaintext does not have the layout of its type (a bug on the sealing side).
    #[error("state blob authenticated but its contents are malformed")]
    Malformed,
    /// The random source failed.
    #[error("no randomness for the state blob nonce: {0}")]
    Random(String),
}

/// What an opened blob carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Volume id of the vTPM the blob was taken from.
    pub volume: VolumeId,
    /// The libtpms blob.
    pub state: Zeroizing<Vec<u8>>,
    /// For a permanent blob: the manufacture record, if the source had one.
    pub manufacture: Option<Vec<u8>>,
}

/// Seals and opens the state blobs of one vTPM: its store root key and its volume id.
pub struct StateBlobKey {
    root: Zeroizing<[u8; 32]>,
    volume: VolumeId,
}

impl core::fmt::Debug for StateBlobKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StateBlobKey").field("volume", &self.volume).finish_non_exhaustive()
    }
}

fn cipher(root: &[u8; 32], volume: &VolumeId, kind: u32) -> Aes256Gcm {
    let hk = Hkdf::<Sha256>::new(Some(SALT), root);
    let mut info = [0u8; 20];
    info[..16].copy_from_slice(&volume.0);
    info[16..].copy_from_slice(&kind.to_be_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    if hk.expand(&info, key.as_mut()).is_err() {
        unreachable!("32 bytes is within HKDF-SHA256's output limit");
    }
    Aes256Gcm::new(&(*key).into())
}

fn header(kind: u32, volume: &VolumeId, nonce: &[u8; 12]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_be_bytes());
    // Blob types are 1..=3; the header field is 16 bits.
    h[6..8].copy_from_slice(&(kind as u16).to_be_bytes());
    h[8..24].copy_from_slice(&volume.0);
    h[24..36].copy_from_slice(nonce);
    h
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

impl StateBlobKey {
    /// The key of the vTPM whose store has root key `root` and volume id `volume`.
    pub fn new(root: Zeroizing<[u8; 32]>, volume: VolumeId) -> Self {
        StateBlobKey { root, volume }
    }

    /// The volume id blobs sealed here carry.
    pub fn volume(&self) -> VolumeId {
        self.volume
    }

    /// Seals one blob of `kind` (`blob_type::*`); for a permanent blob, `manufacture` is the record.
    pub fn seal(
        &self,
        kind: u32,
        state: &[u8],
        manufacture: Option<&[u8]>,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<u8>, BlobError> {
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce).map_err(|e| BlobError::Random(e.to_string()))?;
        let h = header(kind, &self.volume, &nonce);
        let mut plain = Zeroizing::new(Vec::with_capacity(state.len() + 8));
        if kind == blob_type::PERMANENT {
            let record = manufacture.unwrap_or(&[]);
            for part in [state, record] {
                let len = u32::try_from(part.len()).map_err(|_| BlobError::Malformed)?;
                plain.extend_from_slice(&len.to_be_bytes());
                plain.extend_from_slice(part);
            }
        } else {
            plain.extend_from_slice(state);
        }
        let sealed = cipher(&self.root, &self.volume, kind)
            .encrypt(&Nonce::from(nonce), Payload { msg: &plain, aad: &h })
            .map_err(|_| BlobError::Malformed)?;
        let mut out = Vec::with_capacity(HEADER + sealed.len());
        out.extend_from_slice(&h);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a blob sent as `kind`. `expect` is the volume id it must carry, `None` to accept any vTPM sealed
    /// under this root key (a fresh `--incoming` destination, which becomes that vTPM).
    pub fn open(&self, kind: u32, blob: &[u8], expect: Option<VolumeId>) -> Result<Opened, BlobError> {
        if blob.len() < HEADER + TAG {
            return Err(BlobError::Foreign("shorter than a header and tag"));
        }
        let (h, sealed) = blob.split_at(HEADER);
        if &h[..4] != MAGIC {
            return Err(BlobError::Foreign("wrong magic"));
        }
        let version = u16::from_be_bytes([h[4], h[5]]);
        if version != VERSION {
            return Err(BlobError::Version(version));
        }
        let inner = u32::from(u16::from_be_bytes([h[6], h[7]]));
        if inner != kind {
            return Err(BlobError::TypeMismatch { inner, outer: kind });
        }
        let mut vol = [0u8; 16];
        vol.copy_from_slice(&h[8..24]);
        let volume = VolumeId(vol);
        if let Some(expected) = expect
            && expected != volume
        {
            return Err(BlobError::OtherVtpm { found: volume, expected });
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&h[24..36]);
        let plain = Zeroizing::new(
            cipher(&self.root, &volume, kind)
                .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: h })
                .map_err(|_| BlobError::Authentication)?,
        );
        if kind != blob_type::PERMANENT {
            return Ok(Opened { volume, state: plain, manufacture: None });
        }
        let part = |at: usize| -> Result<(&[u8], usize), BlobError> {
            let len = be32(&plain, at).ok_or(BlobError::Malformed)? as usize;
            let start = at + 4;
            let end = start.checked_add(len).ok_or(BlobError::Malformed)?;
            Ok((plain.get(start..end).ok_or(BlobError::Malformed)?, end))
        };
        let (state, next) = part(0)?;
        let (record, end) = part(next)?;
        if end != plain.len() || state.is_empty() {
            return Err(BlobError::Malformed);
        }
        Ok(Opened {
            volume,
            state: Zeroizing::new(state.to_vec()),
            manufacture: (!record.is_empty()).then(|| record.to_vec()),
        })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use svsm_store::OsRandom;

    use super::*;

    fn key(root: u8, vol: u8) -> StateBlobKey {
        StateBlobKey::new(Zeroizing::new([root; 32]), VolumeId([vol; 16]))
    }

    #[test]
    fn blobs_open_only_as_sealed() {
        let k = key(1, 1);
        let perm = k.seal(blob_type::PERMANENT, b"permall", Some(b"record"), &mut OsRandom).unwrap();
        let o = k.open(blob_type::PERMANENT, &perm, Some(k.volume())).unwrap();
        assert_eq!((&o.state[..], o.manufacture.as_deref()), (&b"permall"[..], Some(&b"record"[..])));
        let vol = k.seal(blob_type::VOLATILE, b"volatile", None, &mut OsRandom).unwrap();
        assert_eq!(&k.open(blob_type::VOLATILE, &vol, None).unwrap().state[..], b"volatile");
        // Sent as another type.
        assert_eq!(
            k.open(blob_type::VOLATILE, &perm, None),
            Err(BlobError::TypeMismatch { inner: 1, outer: 2 })
        );
        // Another store key.
        assert_eq!(key(2, 1).open(blob_type::PERMANENT, &perm, None), Err(BlobError::Authentication));
        // Another vTPM under the same key: refused by volume id, and a header rewritten to claim ours fails.
        let other = key(1, 9).seal(blob_type::VOLATILE, b"theirs", None, &mut OsRandom).unwrap();
        assert!(matches!(
            k.open(blob_type::VOLATILE, &other, Some(k.volume())),
            Err(BlobError::OtherVtpm { .. })
        ));
        let mut forged = other.clone();
        forged[8..24].copy_from_slice(&[1; 16]);
        assert_eq!(k.open(blob_type::VOLATILE, &forged, Some(k.volume())), Err(BlobError::Authentication));
        // Plain libtpms/swtpm bytes.
        assert!(matches!(k.open(blob_type::PERMANENT, &[0x02; 100], None), Err(BlobError::Foreign(_))));
    }

    #[test]
    fn every_single_bit_flip_and_truncation_is_refused() {
        let k = key(3, 4);
        let blob = k.seal(blob_type::PERMANENT, b"state bytes", Some(b"rec"), &mut OsRandom).unwrap();
        for i in 0..blob.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = blob.clone();
                b[i] ^= bit;
                assert!(k.open(blob_type::PERMANENT, &b, Some(k.volume())).is_err(), "flip at {i} accepted");
            }
        }
        for n in 0..blob.len() {
            assert!(k.open(blob_type::PERMANENT, &blob[..n], None).is_err(), "truncation to {n} accepted");
        }
    }
}
