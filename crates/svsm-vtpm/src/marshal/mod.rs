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
