//! Store keys from the released secret: one independent key per (volume, purpose), so a volume's key says
//! nothing about another's and the released secret itself never keys anything.
//!
//! `key = HKDF-SHA256(salt = "svsm-kbs key root v1", ikm = secret,
//!                    info = "svsm-store-key v1" || u16be(len) || purpose || u16be(len) || volume_id)`
//! (length-prefixed so no two (purpose, volume) pairs share an info string).

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::client::ReleasedSecret;

const SALT: &[u8] = b"svsm-kbs key root v1";
const LABEL: &[u8] = b"svsm-store-key v1";

/// What a derived key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The vTPM's NV store volume.
    VtpmStore,
    /// The UEFI variable store volume.
    UefiVarStore,
}

impl Purpose {
    /// The label that goes into the derivation.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::VtpmStore => "vtpm-store",
            Purpose::UefiVarStore => "uefi-var-store",
        }
    }
}

/// The 32-byte store key for `volume_id` and `purpose`. `volume_id` is at most 65535 bytes (longer ids are
/// truncated to their first 65535 bytes; callers use short names).
pub fn derive_volume_key(secret: &ReleasedSecret, volume_id: &[u8], purpose: Purpose) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(SALT), secret.as_bytes());
    let volume_id = &volume_id[..volume_id.len().min(u16::MAX as usize)];
    let purpose = purpose.label().as_bytes();
    let mut key = Zeroizing::new([0u8; 32]);
    let plen = (purpose.len() as u16).to_be_bytes();
    let vlen = (volume_id.len() as u16).to_be_bytes();
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = hk.expand_multi_info(&[LABEL, &plen, purpose, &vlen, volume_id], key.as_mut_slice());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn secret(b: u8) -> ReleasedSecret {
        ReleasedSecret::from_bytes(Zeroizing::new(vec![b; 32])).unwrap()
    }

    #[test]
    fn keys_are_separated_and_stable() {
        let s = secret(7);
        let a = derive_volume_key(&s, b"vtpm", Purpose::VtpmStore);
        assert_eq!(*a, *derive_volume_key(&s, b"vtpm", Purpose::VtpmStore));
        assert_ne!(*a, *derive_volume_key(&s, b"vtpm", Purpose::UefiVarStore));
        assert_ne!(*a, *derive_volume_key(&s, b"vtpm2", Purpose::VtpmStore));
        assert_ne!(*a, *derive_volume_key(&secret(8), b"vtpm", Purpose::VtpmStore));
        assert_ne!(a.as_slice(), s.as_bytes());
    }

    #[test]
    fn matches_rfc5869_construction() {
        // Independent computation with hmac directly (RFC 5869: PRK = HMAC(salt, IKM); T1 = HMAC(PRK, info||1)).
        use hmac::{Hmac, Mac};
        let s = secret(1);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(SALT).unwrap();
        m.update(s.as_bytes());
        let prk = m.finalize().into_bytes();
        let mut t = <Hmac<Sha256> as Mac>::new_from_slice(&prk).unwrap();
        t.update(b"svsm-store-key v1\x00\x0avtpm-store\x00\x04vtpm\x01");
        assert_eq!(
            derive_volume_key(&s, b"vtpm", Purpose::VtpmStore).as_slice(),
            t.finalize().into_bytes().as_slice()
        );
    }
}
