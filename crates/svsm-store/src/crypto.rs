//! Key hierarchy and block sealing.
//!
//! One 32-byte root secret per volume (released by the KBS in production, a key file in development) is
//! stretched with HKDF-SHA256 into independent keys per purpose. The volume's algorithm ids, format major
//! version and incompat features are part of the HKDF `info`, so a header edited to name a weaker algorithm or
//! drop a feature derives different keys and simply fails to verify: downgrade becomes a wrong-key failure.

use aes::Aes256;
use aes::cipher::BlockCipherEncrypt;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zerocopy::IntoBytes;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::api::RandomSource;
use crate::error::StoreError;
use crate::format::{BLOCK_SIZE, BlockAad, SUPERBLOCK_MAC_OFFSET, Superblock};

/// The 32-byte root secret of a volume. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// Wraps a root secret.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StoreKey(bytes)
    }

    /// Parses a key from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, StoreError> {
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| StoreError::InvalidKeyLength { len: bytes.len() })?;
        Ok(StoreKey(arr))
    }

    /// The secret itself, for deriving keys bound to this volume for other purposes (the vTPM's sealed
    /// migration blobs). Never log or persist it; copy it only into zeroizing storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// The parameters a volume key is bound to (all from the superblock's plaintext header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyContext<'a> {
    pub volume_id: &'a [u8; 16],
    pub kdf_salt: &'a [u8; 32],
    pub format_major: u16,
    pub aead_alg: u16,
    pub kdf_alg: u16,
    pub block_size_log2: u8,
    pub incompat: u64,
    pub key_epoch: u32,
}

/// The derived keys of one open volume. Zeroized on drop (the AES key schedules zeroize themselves).
pub(crate) struct VolumeKeys {
    sb_mac: Zeroizing<[u8; 32]>,
    key_check: [u8; 16],
    meta: Aes256Gcm,
    data: Aes256Gcm,
    meta_tag: TagOnly,
    data_tag: TagOnly,
    #[allow(dead_code)]
    ledger: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for VolumeKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("VolumeKeys(<redacted>)")
    }
}

fn expand(vol: &Hkdf<Sha256>, label: &[u8], epoch: Option<u32>) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let epoch_bytes = epoch.map(u32::to_le_bytes);
    let info: [&[u8]; 3] = [b"svsm-store/v1 ", label, epoch_bytes.as_ref().map_or(&[][..], |e| &e[..])];
    // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit, so expand cannot fail.
    if vol.expand_multi_info(&info, out.as_mut()).is_err() {
        unreachable!("HKDF output length is fixed at 32 bytes");
    }
    out
}

impl VolumeKeys {
    /// Derives every key of a volume from the root secret and the volume's header parameters.
    pub(crate) fn derive(root: &StoreKey, ctx: &KeyContext<'_>) -> Self {
        let mut salt = Zeroizing::new([0u8; 48]);
        salt[..32].copy_from_slice(ctx.kdf_salt);
        salt[32..].copy_from_slice(ctx.volume_id);
        let prk = Wiped::new(Hkdf::<Sha256>::new(Some(&salt[..]), root.as_bytes()));
        let mut info = [0u8; 13 + 2 + 2 + 2 + 1 + 8];
        info[..13].copy_from_slice(b"svsm-store/v1");
        info[13..15].copy_from_slice(&ctx.format_major.to_le_bytes());
        info[15..17].copy_from_slice(&ctx.aead_alg.to_le_bytes());
        info[17..19].copy_from_slice(&ctx.kdf_alg.to_le_bytes());
        info[19] = ctx.block_size_log2;
        info[20..28].copy_from_slice(&ctx.incompat.to_le_bytes());
        let mut k_vol = Zeroizing::new([0u8; 32]);
        if prk.expand(&info, k_vol.as_mut()).is_err() {
            unreachable!("HKDF output length is fixed at 32 bytes");
        }
        let vol = match Hkdf::<Sha256>::from_prk(k_vol.as_ref()) {
            Ok(v) => Wiped::new(v),
            Err(_) => unreachable!("a 32-byte PRK is always long enough for SHA-256"),
        };
        let sb_mac = expand(&vol, b"sb-mac", None);
        let check_key = expand(&vol, b"key-check", None);
        let meta_key = expand(&vol, b"meta", Some(ctx.key_epoch));
        let data_key = expand(&vol, b"data", Some(ctx.key_epoch));
        let ledger = expand(&vol, b"ledger", None);
        let mut key_check = [0u8; 16];
        key_check.copy_from_slice(&hmac(&check_key, &[b"svsm-store key check"])[..16]);
        VolumeKeys {
            sb_mac,
            key_check,
            meta: Aes256Gcm::new(&(*meta_key).into()),
            data: Aes256Gcm::new(&(*data_key).into()),
            meta_tag: TagOnly::new(&meta_key),
            data_tag: TagOnly::new(&data_key),
            ledger,
        }
    }

    /// The value stored in the header's `key_check` field.
    pub(crate) fn key_check(&self) -> [u8; 16] {
        self.key_check
    }

    /// HMAC of a superblock's authenticated prefix.
    pub(crate) fn superblock_mac(&self, sb: &Superblock) -> [u8; 32] {
        hmac(&self.sb_mac, &[&sb.as_bytes()[..SUPERBLOCK_MAC_OFFSET]])
    }

    /// Verifies a superblock MAC in constant time.
    pub(crate) fn verify_superblock(&self, sb: &Superblock) -> bool {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.sb_mac.as_ref()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(&sb.as_bytes()[..SUPERBLOCK_MAC_OFFSET]);
        mac.verify_slice(&sb.mac).is_ok()
    }

    fn cipher(&self, node_type: u8) -> &Aes256Gcm {
        if node_type == crate::format::node_type::DATA { &self.data } else { &self.meta }
    }

    /// Encrypts one 4 KiB block in place under a fresh random nonce; returns `(nonce, tag)`.
    pub(crate) fn seal(
        &self,
        rng: &mut dyn RandomSource,
        aad: &BlockAad,
        block: &mut [u8; BLOCK_SIZE],
    ) -> Result<([u8; 12], [u8; 16]), StoreError> {
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce).map_err(StoreError::Random)?;
        let tag = self
            .cipher(aad.node_type)
            .encrypt_inout_detached(&Nonce::from(nonce), aad.as_bytes(), block.as_mut_slice().into())
            .map_err(|_| StoreError::Internal("AES-GCM refused a 4 KiB block"))?;
        Ok((nonce, tag.into()))
    }

    /// Encrypts `plain` into `out` (no plaintext copy) under a fresh random nonce; returns `(nonce, tag)`.
    pub(crate) fn seal_into(
        &self,
        rng: &mut dyn RandomSource,
        aad: &BlockAad,
        plain: &[u8; BLOCK_SIZE],
        out: &mut [u8; BLOCK_SIZE],
    ) -> Result<([u8; 12], [u8; 16]), StoreError> {
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce).map_err(StoreError::Random)?;
        let buf = aes_gcm::aead::inout::InOutBuf::new(plain.as_slice(), out.as_mut_slice())
            .map_err(|_| StoreError::Internal("in/out lengths differ"))?;
        let tag = self
            .cipher(aad.node_type)
            .encrypt_inout_detached(&Nonce::from(nonce), aad.as_bytes(), buf)
            .map_err(|_| StoreError::Internal("AES-GCM refused a 4 KiB block"))?;
        Ok((nonce, tag.into()))
    }

    /// Authenticates a sealed block without decrypting it (the buffer is left as ciphertext).
    pub(crate) fn verify(
        &self,
        aad: &BlockAad,
        nonce: &[u8; 12],
        tag: &[u8; 16],
        block: &[u8; BLOCK_SIZE],
    ) -> bool {
        let t = if aad.node_type == crate::format::node_type::DATA { &self.data_tag } else { &self.meta_tag };
        t.verify(aad.as_bytes(), nonce, tag, block)
    }

    /// Decrypts one block in place; `false` if the tag does not verify (the block content is then garbage
    /// and must not be used).
    pub(crate) fn open(
        &self,
        aad: &BlockAad,
        nonce: &[u8; 12],
        tag: &[u8; 16],
        block: &mut [u8; BLOCK_SIZE],
    ) -> bool {
        self.cipher(aad.node_type)
            .decrypt_inout_detached(
                &Nonce::from(*nonce),
                aad.as_bytes(),
                block.as_mut_slice().into(),
                &Tag::from(*tag),
            )
            .is_ok()
    }
}

/// Holds a value of a RustCrypto type that carries key material but implements no `Zeroize` (the HKDF and
/// HMAC states of the digest-0.10 generation: the PRK's inner/outer padded-key states) and overwrites its
/// bytes with zeros, by volatile writes, when dropped. Only for types that own no heap memory and need no
/// `Drop` (the value is wiped instead of dropped).
pub(crate) struct Wiped<T>(core::mem::MaybeUninit<T>);

impl<T> Wiped<T> {
    pub(crate) fn new(value: T) -> Self {
        Wiped(core::mem::MaybeUninit::new(value))
    }

    fn wipe(&mut self) {
        self.0.zeroize();
    }
}

impl<T> core::ops::Deref for Wiped<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the only constructor initialises the value, and it is wiped only in `drop`, after which
        // no reference can exist.
        unsafe { self.0.assume_init_ref() }
    }
}

impl<T> Drop for Wiped<T> {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// AES-GCM tag verification without decryption: GHASH over AAD and ciphertext, masked with `E_K(J0)`
/// (NIST SP 800-38D, 96-bit IV). Authenticating a block that is not going to be read (open, fsck) then costs
/// one GHASH pass instead of GHASH plus CTR, and no plaintext ever exists in memory.
struct TagOnly {
    aes: Aes256,
    ghash: GHash,
}

impl TagOnly {
    fn new(key: &[u8; 32]) -> Self {
        let aes = Aes256::new(&(*key).into());
        let mut h = ghash::Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        // H = E_K(0) is the GHASH key: as secret as K for forging tags. GHash zeroizes its own copy.
        h.as_mut_slice().zeroize();
        TagOnly { aes, ghash }
    }

    fn verify(&self, aad: &[u8], nonce: &[u8; 12], tag: &[u8; 16], ciphertext: &[u8]) -> bool {
        let mut g = self.ghash.clone();
        g.update_padded(aad);
        g.update_padded(ciphertext);
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&((ciphertext.len() as u64) * 8).to_be_bytes());
        g.update(&[lengths]);
        let s = g.finalize();
        let mut j0 = ghash::Block::default();
        j0[..12].copy_from_slice(nonce);
        j0[15] = 1;
        self.aes.encrypt_block(&mut j0);
        // Constant-time comparison: accumulate differences, decide once.
        let diff = s.iter().zip(j0.iter()).zip(tag.iter()).fold(0u8, |acc, ((a, b), t)| acc | (a ^ b ^ t));
        core::hint::black_box(diff) == 0
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of a superblock: the value the ledger records and the next generation chains to.
pub fn superblock_hash(sb: &Superblock) -> [u8; 32] {
    Sha256::digest(sb.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRandom;
    use zerocopy::FromZeros;

    #[test]
    fn wiped_hkdf_state_is_zero_after_wipe() {
        let secret = [0xAB; 32];
        let mut w = Wiped::new(Hkdf::<Sha256>::new(Some(b"salt"), &secret));
        let bytes = |w: &Wiped<Hkdf<Sha256>>| {
            // SAFETY: called only after `wipe`, which wrote every byte of the storage (padding included).
            unsafe {
                core::slice::from_raw_parts(w.0.as_ptr().cast::<u8>(), core::mem::size_of::<Hkdf<Sha256>>())
                    .to_vec()
            }
        };
        let mut okm = [0u8; 32];
        w.expand(b"x", &mut okm).unwrap();
        w.wipe();
        // (Before the wipe the storage may hold padding, which must not be read.)
        assert!(bytes(&w).iter().all(|b| *b == 0), "the PRK state is wiped");
    }

    #[test]
    fn tag_only_verification_agrees_with_gcm_decryption() {
        let root = StoreKey::from_bytes([3; 32]);
        let ctx = KeyContext {
            volume_id: &[1; 16],
            kdf_salt: &[2; 32],
            format_major: 1,
            aead_alg: 1,
            kdf_alg: 1,
            block_size_log2: 12,
            incompat: 0,
            key_epoch: 0,
        };
        let keys = VolumeKeys::derive(&root, &ctx);
        let mut rng = SeededRandom::new(5);
        for i in 0..200u64 {
            let mut aad = BlockAad::new_zeroed();
            aad.node_type =
                if i % 2 == 0 { crate::format::node_type::DATA } else { crate::format::node_type::INDEX };
            aad.addr = (i + 2).into();
            let mut block = [0u8; BLOCK_SIZE];
            rng.fill(&mut block).unwrap();
            let (nonce, tag) = keys.seal(&mut rng, &aad, &mut block).unwrap();
            assert!(keys.verify(&aad, &nonce, &tag, &block));
            let mut flipped = block;
            flipped[(i as usize * 37) % BLOCK_SIZE] ^= 1 << (i % 8);
            assert!(!keys.verify(&aad, &nonce, &tag, &flipped));
            let mut bad_tag = tag;
            bad_tag[(i % 16) as usize] ^= 0x80;
            assert!(!keys.verify(&aad, &nonce, &bad_tag, &block));
            let mut other = aad;
            other.position = 1.into();
            assert!(!keys.verify(&other, &nonce, &tag, &block));
            assert!(keys.open(&aad, &nonce, &tag, &mut block));
        }
    }
}
