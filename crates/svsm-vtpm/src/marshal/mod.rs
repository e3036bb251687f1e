//! Typed TPM 2.0 command builders and response readers.
//!
//! TPM 2.0 wire format is big-endian. A command is `tag u16 | size u32 | code u32 | handles | [auth area] |
//! parameters`; a response is `tag u16 | size u32 | rc u32 | handles | [parameterSize u32] | parameters |
//! [auth area]`. The builders here produce exactly that from named parts, and [`Reader`] takes it apart with
//! bounds checks, so no code elsewhere indexes into TPM bytes by hand. Split by job: `constants`
//! (one set of TPM constants for the workspace), `reader`, `writer` (with [`cmd`]) and `public` (public
//! areas).

/// Size of a TPM command/response header (tag, size, code/rc).
pub const HEADER_SIZE: usize = 10;

mod constants;
mod public;
mod reader;
mod writer;

pub use constants::{alg, cc, rc, rh, st, su};
pub use public::*;
pub use reader::*;
pub use writer::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MarshalError;
    use alloc::vec;

    #[test]
    fn get_random_matches_the_reference_bytes() {
        let c = cmd::get_random(8).unwrap();
        assert_eq!(c, [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8]);
    }

    #[test]
    fn nv_write_matches_the_reference_layout() {
        let data = [0xAAu8; 64];
        let c = cmd::nv_write(rh::OWNER, 0x0150_0016, &data, 0).unwrap();
        let h = CommandHeader::parse(&c).unwrap();
        assert_eq!((h.tag, h.code, h.size as usize), (st::SESSIONS, cc::NV_WRITE, c.len()));
        let mut r = Reader::new(&c[10..]);
        assert_eq!(r.u32().unwrap(), rh::OWNER);
        assert_eq!(r.u32().unwrap(), 0x0150_0016);
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.take(9).unwrap(), [0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
        assert_eq!(r.tpm2b().unwrap(), &data[..]);
        assert_eq!(r.u16().unwrap(), 0);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn public_area_round_trips() {
        for t in [crate::manufacture::ek_template_rsa2048(), crate::manufacture::ek_template_ecc_p256()] {
            let bytes = t.marshal().unwrap();
            assert_eq!(PublicArea::parse(&bytes).unwrap(), t);
        }
    }

    /// Marshals `area`, checks parse gives it back and re-marshals to the same bytes.
    fn round_trip(area: &PublicArea) -> Vec<u8> {
        let bytes = area.marshal().unwrap();
        let parsed = PublicArea::parse(&bytes).unwrap();
        assert_eq!(&parsed, area);
        assert_eq!(parsed.marshal().unwrap(), bytes);
        bytes
    }

    #[test]
    fn every_object_type_and_scheme_round_trips_byte_for_byte() {
        let base = crate::manufacture::ek_template_rsa2048();
        let with = |key| PublicArea { key, ..base.clone() };
        let sym = Some((alg::AES, 128, alg::CFB));
        let schemes = [
            Scheme::Null,
            Scheme::Rsaes,
            Scheme::Hash { alg: 0x0014, hash: alg::SHA256 }, // RSASSA
            Scheme::Hash { alg: 0x0017, hash: alg::SHA384 }, // OAEP
        ];
        for scheme in schemes {
            round_trip(&with(PublicKey::Rsa {
                symmetric: None,
                scheme,
                key_bits: 3072,
                exponent: 3,
                modulus: vec![7; 384],
            }));
        }
        for (scheme, kdf) in [
            (Scheme::Null, Scheme::Null),
            (Scheme::Hash { alg: 0x0018, hash: alg::SHA256 }, Scheme::Null), // ECDSA
            (Scheme::Ecdaa { hash: alg::SHA256, count: 4 }, Scheme::Hash { alg: 0x0020, hash: alg::SHA256 }),
        ] {
            round_trip(&with(PublicKey::Ecc {
                symmetric: sym,
                scheme,
                curve: 4,
                kdf,
                x: vec![1; 48],
                y: vec![2; 48],
            }));
        }
        for scheme in [
            Scheme::Null,
            Scheme::Hash { alg: 0x0005, hash: alg::SHA256 },
            Scheme::Xor { hash: alg::SHA256, kdf: 0x0022 },
        ] {
            round_trip(&with(PublicKey::KeyedHash { scheme, unique: vec![3; 32] }));
        }
        round_trip(&with(PublicKey::SymCipher { symmetric: sym, unique: vec![4; 32] }));
        // The RSAES id carries no details in an RSA scheme, but a hash in an ECC one (not a valid ECC scheme,
        // but a parse must still consume exactly what the union arm defines).
        let ecc = with(PublicKey::Ecc {
            symmetric: None,
            scheme: Scheme::Hash { alg: alg::RSAES, hash: alg::SHA256 },
            curve: 3,
            kdf: Scheme::Null,
            x: vec![],
            y: vec![],
        });
        round_trip(&ecc);
    }

    #[test]
    fn malformed_public_areas_are_refused_precisely() {
        let t = crate::manufacture::EkKind::Rsa2048.template_bytes();
        for cut in 0..t.len() {
            assert!(matches!(PublicArea::parse(&t[..cut]), Err(MarshalError::Truncated { .. })), "cut {cut}");
        }
        let mut long = t.clone();
        long.push(0);
        assert_eq!(PublicArea::parse(&long), Err(MarshalError::TrailingBytes(1)));
        let mut bad = t;
        bad[0] = 0x77;
        assert_eq!(PublicArea::parse(&bad), Err(MarshalError::UnknownObjectType(0x7701)));
    }

    #[test]
    fn name_is_alg_then_digest() {
        use sha2::{Digest, Sha256};
        let t = crate::manufacture::EkKind::Rsa2048.template_bytes();
        let n = object_name(alg::SHA256, &t).expect("sha256");
        assert_eq!(n.len(), 34);
        assert_eq!(&n[..2], &[0x00, 0x0B]);
        assert_eq!(&n[2..], Sha256::digest(&t).as_slice());
        assert_eq!(object_name(alg::SHA384, &t).map(|n| n.len()), Some(50));
        assert!(object_name(0x0004, &t).is_none());
    }

    #[test]
    fn create_primary_from_matches_reference_framing() {
        let t = crate::manufacture::EkKind::Rsa2048.template_bytes();
        let c = cmd::create_primary_from(rh::ENDORSEMENT, &t, 0x01).expect("frames");
        assert_eq!(c.len(), 10 + 4 + 4 + 9 + 6 + 2 + 314 + 6);
        assert_eq!(u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize, c.len());
        assert_eq!(
            &c[6..33],
            &[
                0x00, 0x00, 0x01, 0x31, 0x40, 0x00, 0x00, 0x0B, 0x00, 0x00, 0x00, 0x09, 0x40, 0x00, 0x00,
                0x09, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00
            ]
        );
        assert_eq!(&c[33..35], &[0x01, 0x3A]);
        assert_eq!(&c[35..35 + 314], &t[..]);
        assert_eq!(
            cmd::create_primary_from(rh::ENDORSEMENT, &vec![0; 70000], 0),
            Err(MarshalError::TooLarge)
        );
        assert_eq!(
            cmd::flush_context(0x8000_0001).unwrap(),
            [0x80, 0x01, 0, 0, 0, 14, 0, 0, 0x01, 0x65, 0x80, 0, 0, 0x01]
        );
    }

    #[test]
    fn get_random_response_gives_exactly_its_bytes() {
        assert_eq!(
            random_bytes(&[0x80, 1, 0, 0, 0, 14, 0, 0, 0, 0, 0, 2, 0xAB, 0xCD]).unwrap(),
            [0xAB, 0xCD]
        );
        assert_eq!(
            random_bytes(&[0x80, 1, 0, 0, 0, 15, 0, 0, 0, 0, 0, 2, 0xAB, 0xCD, 0]),
            Err(MarshalError::TrailingBytes(1))
        );
        assert!(matches!(
            random_bytes(&[0x80, 1, 0, 0, 0, 13, 0, 0, 0, 0, 0, 2, 0xAB]),
            Err(MarshalError::Truncated { .. })
        ));
        assert_eq!(random_bytes(&error_response(rc::FAILURE)), Err(MarshalError::ResponseCode(rc::FAILURE)));
        assert!(matches!(
            random_bytes(&[0x80, 1, 0, 0, 0, 12, 0, 0, 0, 0, 0]),
            Err(MarshalError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn reader_reports_truncation_instead_of_panicking() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert!(matches!(r.tpm2b(), Err(MarshalError::Truncated { .. })));
        assert!(Response::parse(&[0x80, 1, 0, 0, 0, 9, 0, 0, 0], 0).is_err());
        assert_eq!(
            Response::parse(&error_response(rc::FAILURE), 0).unwrap_err(),
            MarshalError::ResponseCode(0x101)
        );
    }
}
