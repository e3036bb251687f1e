//! A state file written by the real swtpm 0.7.1 (see tests/data/README.md): decoded, and re-encoded byte for
//! byte with the same IV, so our reader and writer agree with swtpm's padding, HMAC and layout.

use svsm_vtpm::swtpm_state::{self, BlobKind, KeyFormat, Payload, StateKey};

const FILE: &[u8] = include_bytes!("data/swtpm-0.7.1-aes256.permall");
const KEY_HEX: &[u8] = b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

#[test]
fn a_real_swtpm_aes256_file_with_key_length_padding_decodes_and_re_encodes_identically() {
    let key = StateKey::from_key_file(KEY_HEX, KeyFormat::Hex).unwrap();
    let (blob, encrypted) = swtpm_state::decode(FILE, BlobKind::Permanent, Some(&key)).unwrap();
    assert!(encrypted);
    let Payload::Encrypted { ivec, ciphertext, .. } = swtpm_state::parse(FILE).unwrap().payload else {
        panic!("not encrypted")
    };
    // 30 bytes of padding: more than one AES block, so swtpm pads to the 32-byte key length.
    assert_eq!(ciphertext.len() - blob.len(), 30);
    let again = swtpm_state::encode_encrypted(&blob, BlobKind::Permanent, &key, ivec).unwrap();
    assert_eq!(again, FILE, "our encoding differs from swtpm's");
}
