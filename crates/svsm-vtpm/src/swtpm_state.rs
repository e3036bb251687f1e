//! swtpm's state-file format (`tpm2-00.permall`, `tpm2-00.volatilestate` in a `--tpmstate dir=`), plain or
//! encrypted with swtpm's `--key`, so a TPM can move between swtpm and this vTPM in both directions.
//!
//! The format, as swtpm 0.7.1 writes it (checked byte for byte against files `swtpm_setup` produced):
//!
//! ```text
//! header (10 bytes, big-endian): version u8 = 2 | min_version u8 = 1 | hdrsize u16 = 10 | flags u16 | totlen u32
//! then TLVs from offset hdrsize: tag u16 | length u32 | data          (totlen = the whole file, header included)
//!
//! plain:      flags 0x0000, one TLV DATA(1) = the libtpms blob
//! encrypted:  flags 0x0001 (AES-128-CBC) or 0x0009 (| ENCRYPTED_256BIT_KEY, AES-256-CBC),
//!             TLVs ENCRYPTED_DATA(2) = AES-CBC(key, IV, pad(libtpms blob)), padded PKCS#7-style to a multiple
//!                                      of the KEY length (16 or 32 bytes: up to 32 bytes of padding with AES-256),
//!                  HMAC(3)           = HMAC-SHA256(key, ciphertext || ivec)  (32 bytes),
//!                  IVEC_ENCRYPTED_DATA(6) = ivec, key-length random bytes; the IV is its first 16
//! ```
//!
//! The libtpms blob inside starts with `version u16 | magic u32` (permall 0xab364723, volatile 0x45637889).
//! Control-channel (migration) blobs use the same header with flag MIGRATION_DATA; they are not state files
//! and are refused here.
//!
//! Everything here is a pure function over untrusted bytes (fuzzed by `fuzz_targets/swtpm_state.rs`): any
//! deviation is a precise [`SwtpmStateError`], never a panic and never silently accepted data.

use alloc::vec::Vec;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeDecrypt as _, BlockModeEncrypt as _, KeyIvInit as _};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::{Zeroize as _, Zeroizing};

/// File name of the permanent state in a swtpm TPM 2 state directory.
pub const PERMALL_FILE: &str = "tpm2-00.permall";
/// File name of the volatile state (present after CMD_STORE_VOLATILE, e.g. a suspended VM).
pub const VOLATILE_FILE: &str = "tpm2-00.volatilestate";

/// Size of the header swtpm writes.
pub const HEADER_LEN: usize = 10;
/// Header version swtpm 0.7 writes.
pub const VERSION: u8 = 2;
/// Oldest reader version the files written here need.
pub const MIN_VERSION: u8 = 1;
/// Largest state file accepted (swtpm's own limit on state blobs is 512 KiB; libtpms' permall is a few KiB).
pub const MAX_STATE_FILE: usize = 512 * 1024;

/// Header flags.
pub mod flag {
    /// The data is encrypted with the state key (`--key`).
    pub const ENCRYPTED: u16 = 0x01;
    /// Migration blob encrypted with the migration key (control channel only).
    pub const MIGRATION_ENCRYPTED: u16 = 0x02;
    /// A control-channel migration blob, not a state file.
    pub const MIGRATION_DATA: u16 = 0x04;
    /// The state key is 256 bits (AES-256-CBC); otherwise 128 bits.
    pub const ENCRYPTED_256BIT_KEY: u16 = 0x08;
    /// The migration key is 256 bits.
    pub const MIGRATION_256BIT_KEY: u16 = 0x10;
}

/// TLV tags.
pub mod tag {
    /// Plain libtpms blob.
    pub const DATA: u16 = 1;
    /// Encrypted libtpms blob.
    pub const ENCRYPTED_DATA: u16 = 2;
    /// HMAC-SHA256 over ciphertext and IV.
    pub const HMAC: u16 = 3;
    /// Migration wrapper (control channel).
    pub const MIGRATION_DATA: u16 = 4;
    /// Encrypted migration data (control channel).
    pub const ENCRYPTED_MIGRATION_DATA: u16 = 5;
    /// IV of the encrypted data.
    pub const IVEC_ENCRYPTED_DATA: u16 = 6;
    /// IV of the encrypted migration data.
    pub const IVEC_ENCRYPTED_MIGRATION_DATA: u16 = 7;
}

/// Magic of libtpms' TPM 2 permanent-state blob.
pub const PERMALL_MAGIC: u32 = 0xab36_4723;
/// Magic of libtpms' TPM 2 volatile-state blob.
pub const VOLATILE_MAGIC: u32 = 0x4563_7889;

const HMAC_LEN: usize = 32;
const AES_BLOCK: usize = 16;

/// Which libtpms blob a state file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// `tpm2-00.permall`.
    Permanent,
    /// `tpm2-00.volatilestate`.
    Volatile,
}

impl BlobKind {
    /// The magic its libtpms blob carries.
    pub fn magic(self) -> u32 {
        match self {
            BlobKind::Permanent => PERMALL_MAGIC,
            BlobKind::Volatile => VOLATILE_MAGIC,
        }
    }

    /// The swtpm file name.
    pub fn file_name(self) -> &'static str {
        match self {
            BlobKind::Permanent => PERMALL_FILE,
            BlobKind::Volatile => VOLATILE_FILE,
        }
    }
}

/// What is wrong with a state file or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwtpmStateError {
    /// Shorter than its header or than it says it is.
    #[error("truncated swtpm state file: {0}")]
    Truncated(&'static str),
    /// Larger than any TPM state.
    #[error("swtpm state file of {0} bytes is larger than the {MAX_STATE_FILE}-byte limit")]
    TooLarge(usize),
    /// Written for a reader newer than this one.
    #[error(
        "swtpm state file needs a reader of version {min_version} (file version {version}); this reads \
         version {VERSION}: it was written by a newer swtpm"
    )]
    Version {
        /// The file's version.
        version: u8,
        /// The oldest reader it allows.
        min_version: u8,
    },
    /// The header's own fields disagree with the file.
    #[error("damaged swtpm state file: {0}")]
    Damaged(&'static str),
    /// Flags this reader does not know, or a migration blob instead of a state file.
    #[error("not a swtpm TPM state file: {0}")]
    Foreign(&'static str),
    /// The file is encrypted and no key was given.
    #[error("the swtpm state file is encrypted ({0}-bit key): pass the key swtpm was started with (--key)")]
    KeyRequired(u16),
    /// The key has the wrong size for the file.
    #[error("the swtpm state file is encrypted with a {file}-bit key but the given key has {key} bits")]
    KeySize {
        /// Bits the file says.
        file: u16,
        /// Bits of the key.
        key: u16,
    },
    /// The HMAC does not match: wrong key, or the file was altered.
    #[error(
        "the swtpm state file's HMAC does not verify: the key is not the one swtpm used, or the file was \
         altered"
    )]
    Authentication,
    /// A malformed key file.
    #[error("bad swtpm key: {0}")]
    Key(&'static str),
    /// The blob inside is not the libtpms state it should be.
    #[error("the swtpm state file does not hold a libtpms TPM 2 {expected} blob ({found})")]
    NotLibtpms {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
}

/// swtpm's state key (`--key file=...,mode=aes-cbc|aes-256-cbc`): AES-128 or AES-256, zeroized on drop.
#[derive(Clone)]
pub struct StateKey {
    bytes: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "StateKey({} bits, redacted)", self.bits())
    }
}

/// How a swtpm key file is written (`format=` of swtpm's `--key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// Hex digits (32 for AES-128, 64 for AES-256), surrounding whitespace ignored.
    Hex,
    /// Raw bytes (16 or 32).
    Binary,
}

impl StateKey {
    /// A key of 16 (AES-128) or 32 (AES-256) bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SwtpmStateError> {
        if bytes.len() != 16 && bytes.len() != 32 {
            return Err(SwtpmStateError::Key("an AES-128 or AES-256 key has 16 or 32 bytes"));
        }
        Ok(StateKey { bytes: Zeroizing::new(bytes.to_vec()) })
    }

    /// Parses the contents of a swtpm key file.
    pub fn from_key_file(contents: &[u8], format: KeyFormat) -> Result<Self, SwtpmStateError> {
        match format {
            KeyFormat::Binary => Self::from_bytes(contents),
            KeyFormat::Hex => {
                let text = contents.trim_ascii();
                if text.len() != 32 && text.len() != 64 {
                    return Err(SwtpmStateError::Key("a hex key file holds 32 or 64 hex digits"));
                }
                let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 2));
                for pair in text.chunks_exact(2) {
                    let digit = |c: u8| -> Result<u8, SwtpmStateError> {
                        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok()).ok_or(
                            SwtpmStateError::Key("the key file holds a character that is not a hex digit"),
                        )
                    };
                    bytes.push((digit(pair[0])? << 4) | digit(pair[1])?);
                }
                Self::from_bytes(&bytes)
            }
        }
    }

    /// 128 or 256.
    pub fn bits(&self) -> u16 {
        if self.bytes.len() == 32 { 256 } else { 128 }
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; the key sizes here are 16 or 32 bytes.
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.bytes).unwrap_or_else(|_| unreachable!())
    }
}

/// The data part of a parsed state file (borrowed from the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A plain libtpms blob.
    Plain(&'a [u8]),
    /// An encrypted libtpms blob.
    Encrypted {
        /// Key size the header announces (128 or 256).
        key_bits: u16,
        /// AES-CBC ciphertext.
        ciphertext: &'a [u8],
        /// HMAC-SHA256 over ciphertext || ivec.
        hmac: &'a [u8],
        /// The IV TLV (its first 16 bytes are the IV).
        ivec: &'a [u8],
    },
}

/// A parsed (not yet decrypted) state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateFile<'a> {
    /// The header flags.
    pub flags: u16,
    /// The data.
    pub payload: Payload<'a>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses a state file's header and TLVs. Each tag may occur once; unknown tags, trailing bytes and
/// migration blobs are refused.
pub fn parse(file: &[u8]) -> Result<StateFile<'_>, SwtpmStateError> {
    if file.len() > MAX_STATE_FILE {
        return Err(SwtpmStateError::TooLarge(file.len()));
    }
    if file.len() < HEADER_LEN {
        return Err(SwtpmStateError::Truncated("shorter than the 10-byte header"));
    }
    let (version, min_version) = (file[0], file[1]);
    if min_version > VERSION || version < min_version || min_version == 0 {
        return Err(SwtpmStateError::Version { version, min_version });
    }
    let hdrsize = usize::from(be16(file, 2));
    let flags = be16(file, 4);
    let totlen = usize::try_from(be32(file, 6)).map_err(|_| SwtpmStateError::Damaged("total length"))?;
    if hdrsize < HEADER_LEN {
        return Err(SwtpmStateError::Damaged("header size smaller than 10"));
    }
    if totlen != file.len() {
        return Err(if totlen > file.len() {
            SwtpmStateError::Truncated("the header's total length exceeds the file")
        } else {
            SwtpmStateError::Damaged("the file is longer than the header's total length")
        });
    }
    if hdrsize > totlen {
        return Err(SwtpmStateError::Damaged("header size larger than the file"));
    }
    if flags & (flag::MIGRATION_DATA | flag::MIGRATION_ENCRYPTED | flag::MIGRATION_256BIT_KEY) != 0 {
        return Err(SwtpmStateError::Foreign(
            "this is a control-channel migration blob (CMD_GET_STATEBLOB), not a state-directory file",
        ));
    }
    if flags & !(flag::ENCRYPTED | flag::ENCRYPTED_256BIT_KEY) != 0 {
        return Err(SwtpmStateError::Foreign("unknown header flags"));
    }
    if flags & flag::ENCRYPTED_256BIT_KEY != 0 && flags & flag::ENCRYPTED == 0 {
        return Err(SwtpmStateError::Damaged("256-bit key flag without the encrypted flag"));
    }

    let mut tlvs: [Option<&[u8]>; 8] = [None; 8];
    let mut at = hdrsize;
    while at < file.len() {
        if file.len() - at < 6 {
            return Err(SwtpmStateError::Truncated("a TLV header runs past the end"));
        }
        let t = be16(file, at);
        let len = usize::try_from(be32(file, at + 2)).map_err(|_| SwtpmStateError::Damaged("TLV length"))?;
        let start = at + 6;
        if len > file.len() - start {
            return Err(SwtpmStateError::Truncated("a TLV's data runs past the end"));
        }
        let slot = match t {
            tag::DATA | tag::ENCRYPTED_DATA | tag::HMAC | tag::IVEC_ENCRYPTED_DATA => usize::from(t),
            tag::MIGRATION_DATA | tag::ENCRYPTED_MIGRATION_DATA | tag::IVEC_ENCRYPTED_MIGRATION_DATA => {
                return Err(SwtpmStateError::Foreign("migration TLVs in a state file"));
            }
            _ => return Err(SwtpmStateError::Foreign("unknown TLV tag")),
        };
        if tlvs[slot].is_some() {
            return Err(SwtpmStateError::Damaged("a TLV tag occurs twice"));
        }
        tlvs[slot] = Some(&file[start..start + len]);
        at = start + len;
    }

    let payload = if flags & flag::ENCRYPTED == 0 {
        if tlvs[usize::from(tag::ENCRYPTED_DATA)].is_some()
            || tlvs[usize::from(tag::HMAC)].is_some()
            || tlvs[usize::from(tag::IVEC_ENCRYPTED_DATA)].is_some()
        {
            return Err(SwtpmStateError::Damaged("encryption TLVs in a file not flagged encrypted"));
        }
        Payload::Plain(tlvs[usize::from(tag::DATA)].ok_or(SwtpmStateError::Damaged("no DATA TLV"))?)
    } else {
        if tlvs[usize::from(tag::DATA)].is_some() {
            return Err(SwtpmStateError::Damaged("plain DATA TLV in a file flagged encrypted"));
        }
        let key_bits = if flags & flag::ENCRYPTED_256BIT_KEY != 0 { 256 } else { 128 };
        let ciphertext = tlvs[usize::from(tag::ENCRYPTED_DATA)]
            .ok_or(SwtpmStateError::Damaged("no ENCRYPTED_DATA TLV"))?;
        let hmac = tlvs[usize::from(tag::HMAC)].ok_or(SwtpmStateError::Damaged("no HMAC TLV"))?;
        let ivec = tlvs[usize::from(tag::IVEC_ENCRYPTED_DATA)]
            .ok_or(SwtpmStateError::Foreign("no IV TLV (files of swtpm before 0.2 are not supported)"))?;
        if hmac.len() != HMAC_LEN {
            return Err(SwtpmStateError::Damaged("the HMAC TLV is not 32 bytes"));
        }
        if ivec.len() < AES_BLOCK {
            return Err(SwtpmStateError::Damaged("the IV TLV is shorter than one AES block"));
        }
        if ciphertext.is_empty() || ciphertext.len() % AES_BLOCK != 0 {
            return Err(SwtpmStateError::Damaged("the ciphertext is not a whole number of AES blocks"));
        }
        Payload::Encrypted { key_bits, ciphertext, hmac, ivec }
    };
    Ok(StateFile { flags, payload })
}

/// Checks that `blob` is a libtpms TPM 2 blob of `kind` (its version and magic prefix).
pub fn check_libtpms_blob(blob: &[u8], kind: BlobKind) -> Result<(), SwtpmStateError> {
    let expected = match kind {
        BlobKind::Permanent => "permanent-state",
        BlobKind::Volatile => "volatile-state",
    };
    if blob.len() < 8 {
        return Err(SwtpmStateError::NotLibtpms { expected, found: "fewer than 8 bytes" });
    }
    let magic = be32(blob, 2);
    if magic == kind.magic() {
        return Ok(());
    }
    let found = match magic {
        PERMALL_MAGIC => "a permanent-state blob",
        VOLATILE_MAGIC => "a volatile-state blob",
        _ => "an unknown magic number; a TPM 1.2 state or not libtpms at all",
    };
    Err(SwtpmStateError::NotLibtpms { expected, found })
}

/// Decodes a state file of `kind` to the libtpms blob inside it, decrypting and authenticating it with `key`
/// if it is encrypted. Returns the blob and whether the file was encrypted.
pub fn decode(
    file: &[u8],
    kind: BlobKind,
    key: Option<&StateKey>,
) -> Result<(Zeroizing<Vec<u8>>, bool), SwtpmStateError> {
    let parsed = parse(file)?;
    let (blob, encrypted) = match parsed.payload {
        Payload::Plain(data) => (Zeroizing::new(data.to_vec()), false),
        Payload::Encrypted { key_bits, ciphertext, hmac, ivec } => {
            let key = key.ok_or(SwtpmStateError::KeyRequired(key_bits))?;
            if key.bits() != key_bits {
                return Err(SwtpmStateError::KeySize { file: key_bits, key: key.bits() });
            }
            let mut mac = key.hmac();
            mac.update(ciphertext);
            mac.update(ivec);
            mac.verify_slice(hmac).map_err(|_| SwtpmStateError::Authentication)?;
            if ciphertext.len() % key.bytes.len() != 0 {
                return Err(SwtpmStateError::Damaged(
                    "the ciphertext is not a whole number of key-length blocks",
                ));
            }
            let iv = &ivec[..AES_BLOCK];
            let plain = match key.bits() {
                256 => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key.bytes, iv)
                    .map_err(|_| SwtpmStateError::Key("key or IV length"))?
                    .decrypt_padded_vec::<NoPadding>(ciphertext),
                _ => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key.bytes, iv)
                    .map_err(|_| SwtpmStateError::Key("key or IV length"))?
                    .decrypt_padded_vec::<NoPadding>(ciphertext),
            };
            let mut plain = Zeroizing::new(
                plain.map_err(|_| SwtpmStateError::Damaged("the ciphertext is not whole AES blocks"))?,
            );
            let pad = usize::from(*plain.last().ok_or(SwtpmStateError::Damaged("empty ciphertext"))?);
            if pad == 0
                || pad > key.bytes.len()
                || plain[plain.len() - pad..].iter().any(|&b| usize::from(b) != pad)
            {
                return Err(SwtpmStateError::Damaged("bad padding after decryption"));
            }
            let n = plain.len() - pad;
            plain.truncate(n);
            (plain, true)
        }
    };
    check_libtpms_blob(&blob, kind)?;
    Ok((blob, encrypted))
}

fn header(flags: u16, total: usize) -> Result<Vec<u8>, SwtpmStateError> {
    let total32 = u32::try_from(total).map_err(|_| SwtpmStateError::TooLarge(total))?;
    if total > MAX_STATE_FILE {
        return Err(SwtpmStateError::TooLarge(total));
    }
    let mut out = Vec::with_capacity(total);
    out.push(VERSION);
    out.push(MIN_VERSION);
    out.extend_from_slice(&(HEADER_LEN as u16).to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&total32.to_be_bytes());
    Ok(out)
}

fn put_tlv(out: &mut Vec<u8>, t: u16, data: &[u8]) -> Result<(), SwtpmStateError> {
    let len = u32::try_from(data.len()).map_err(|_| SwtpmStateError::TooLarge(data.len()))?;
    out.extend_from_slice(&t.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Encodes a libtpms blob of `kind` as a plain swtpm state file.
pub fn encode_plain(blob: &[u8], kind: BlobKind) -> Result<Vec<u8>, SwtpmStateError> {
    check_libtpms_blob(blob, kind)?;
    let mut out = header(0, HEADER_LEN + 6 + blob.len())?;
    put_tlv(&mut out, tag::DATA, blob)?;
    Ok(out)
}

/// Encodes a libtpms blob of `kind` as a swtpm state file encrypted with `key`. `ivec` must be fresh random
/// bytes, as many as the key has (swtpm's IV TLV); the IV is its first 16.
pub fn encode_encrypted(
    blob: &[u8],
    kind: BlobKind,
    key: &StateKey,
    ivec: &[u8],
) -> Result<Vec<u8>, SwtpmStateError> {
    check_libtpms_blob(blob, kind)?;
    if ivec.len() != key.bytes.len() {
        return Err(SwtpmStateError::Key("the IV TLV must be as long as the key"));
    }
    let iv = &ivec[..AES_BLOCK];
    // PKCS#7-style padding to a multiple of the key length, as swtpm pads (1..=16 or 1..=32 bytes).
    let unit = key.bytes.len();
    let pad = unit - blob.len() % unit;
    let mut padded = Zeroizing::new(Vec::with_capacity(blob.len() + pad));
    padded.extend_from_slice(blob);
    padded.resize(blob.len() + pad, pad as u8);
    let ciphertext = match key.bits() {
        256 => cbc::Encryptor::<aes::Aes256>::new_from_slices(&key.bytes, iv)
            .map_err(|_| SwtpmStateError::Key("key or IV length"))?
            .encrypt_padded_vec::<NoPadding>(&padded),
        _ => cbc::Encryptor::<aes::Aes128>::new_from_slices(&key.bytes, iv)
            .map_err(|_| SwtpmStateError::Key("key or IV length"))?
            .encrypt_padded_vec::<NoPadding>(&padded),
    };
    let mut mac = key.hmac();
    mac.update(&ciphertext);
    mac.update(ivec);
    let mut tag_bytes = mac.finalize().into_bytes();
    let flags = flag::ENCRYPTED | if key.bits() == 256 { flag::ENCRYPTED_256BIT_KEY } else { 0 };
    let total = HEADER_LEN + 6 * 3 + ciphertext.len() + HMAC_LEN + ivec.len();
    let mut out = header(flags, total)?;
    put_tlv(&mut out, tag::ENCRYPTED_DATA, &ciphertext)?;
    put_tlv(&mut out, tag::HMAC, &tag_bytes)?;
    put_tlv(&mut out, tag::IVEC_ENCRYPTED_DATA, ivec)?;
    tag_bytes.zeroize();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn permall() -> Vec<u8> {
        let mut b = vec![0x00, 0x03, 0xab, 0x36, 0x47, 0x23, 0x00, 0x03];
        b.extend((0..1291u32).map(|i| (i * 7) as u8));
        b
    }

    #[test]
    fn plain_files_have_swtpms_layout_and_round_trip() {
        let blob = permall();
        let file = encode_plain(&blob, BlobKind::Permanent).unwrap();
        // As swtpm 0.7.1 writes it: 0201 000a 0000 <totlen> | 0001 <len> | blob.
        assert_eq!(&file[..6], &[2, 1, 0, 10, 0, 0]);
        assert_eq!(be32(&file, 6) as usize, file.len());
        assert_eq!(&file[10..16], &[0, 1, 0, 0, 0x05, 0x13]);
        let (back, enc) = decode(&file, BlobKind::Permanent, None).unwrap();
        assert_eq!(*back, blob);
        assert!(!enc);
        assert!(matches!(decode(&file, BlobKind::Volatile, None), Err(SwtpmStateError::NotLibtpms { .. })));
    }

    #[test]
    fn encrypted_files_round_trip_and_refuse_wrong_keys_and_tampering() {
        let blob = permall();
        for bits in [128usize, 256] {
            let key = StateKey::from_bytes(&vec![0x5a; bits / 8]).unwrap();
            let ivec = vec![0x11; bits / 8];
            let file = encode_encrypted(&blob, BlobKind::Permanent, &key, &ivec).unwrap();
            let flags = if bits == 256 { 0x09 } else { 0x01 };
            assert_eq!(be16(&file, 4), flags);
            let (back, enc) = decode(&file, BlobKind::Permanent, Some(&key)).unwrap();
            assert_eq!(*back, blob);
            assert!(enc);
            assert_eq!(
                decode(&file, BlobKind::Permanent, None).unwrap_err(),
                SwtpmStateError::KeyRequired(bits as u16)
            );
            let other = StateKey::from_bytes(&vec![0x5b; bits / 8]).unwrap();
            assert_eq!(
                decode(&file, BlobKind::Permanent, Some(&other)).unwrap_err(),
                SwtpmStateError::Authentication
            );
            // Every single-byte change after the header is caught (HMAC, or a structural check).
            for at in HEADER_LEN..file.len() {
                let mut bad = file.clone();
                bad[at] ^= 0x01;
                assert!(decode(&bad, BlobKind::Permanent, Some(&key)).is_err(), "flip at {at} accepted");
            }
        }
        let k128 = StateKey::from_bytes(&[1; 16]).unwrap();
        let k256 = StateKey::from_bytes(&[1; 32]).unwrap();
        let file = encode_encrypted(&blob, BlobKind::Permanent, &k256, &[2; 32]).unwrap();
        assert_eq!(
            decode(&file, BlobKind::Permanent, Some(&k128)).unwrap_err(),
            SwtpmStateError::KeySize { file: 256, key: 128 }
        );
    }

    #[test]
    fn damaged_and_foreign_files_are_refused_precisely() {
        let file = encode_plain(&permall(), BlobKind::Permanent).unwrap();
        for cut in 0..file.len() {
            assert!(parse(&file[..cut]).is_err(), "prefix {cut} accepted");
        }
        let mut long = file.clone();
        long.push(0);
        assert!(matches!(parse(&long), Err(SwtpmStateError::Damaged(_))));
        let mut newer = file.clone();
        newer[1] = 3;
        assert!(matches!(parse(&newer), Err(SwtpmStateError::Version { .. })));
        let mut migration = file.clone();
        migration[5] = 0x04;
        assert!(matches!(parse(&migration), Err(SwtpmStateError::Foreign(_))));
        let mut unknown_tag = file.clone();
        unknown_tag[11] = 9;
        assert!(matches!(parse(&unknown_tag), Err(SwtpmStateError::Foreign(_))));
        assert!(matches!(
            decode(b"not a state file at all", BlobKind::Permanent, None),
            Err(SwtpmStateError::Version { .. }
                | SwtpmStateError::Damaged(_)
                | SwtpmStateError::Truncated(_))
        ));
    }

    #[test]
    fn key_files_in_hex_and_binary() {
        let k = StateKey::from_key_file(b"000102030405060708090a0b0c0d0e0f\n", KeyFormat::Hex).unwrap();
        assert_eq!(k.bits(), 128);
        assert_eq!(&k.bytes[..], &(0u8..16).collect::<Vec<_>>()[..]);
        assert_eq!(StateKey::from_key_file(&[7; 32], KeyFormat::Binary).unwrap().bits(), 256);
        assert!(StateKey::from_key_file(b"0g0102030405060708090a0b0c0d0e0f", KeyFormat::Hex).is_err());
        assert!(StateKey::from_key_file(b"0001", KeyFormat::Hex).is_err());
        assert!(StateKey::from_key_file(&[7; 24], KeyFormat::Binary).is_err());
    }
}
