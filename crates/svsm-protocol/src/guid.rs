//! GUIDs in the byte order the SVSM wire formats use (EFI / mixed endian).

use core::fmt;

/// A GUID stored exactly as it appears on the wire: the first three groups little-endian, the last eight
/// bytes in order (EFI_GUID layout). Keeping the wire bytes avoids converting twice at every boundary.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID (Linux: "no service selected", i.e. SVSM_ATTEST_SERVICES).
    pub const NULL: Guid = Guid([0; 16]);

    /// Builds a GUID from its canonical text fields (`d1-d2-d3-d4[0..2]-d4[2..8]`).
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6],
            d4[7],
        ])
    }

    /// Parses the canonical text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (case-insensitive).
    pub fn parse(text: &str) -> Option<Guid> {
        let b = text.as_bytes();
        if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return None;
        }
        let mut raw = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if b[i] == b'-' {
                i += 1;
                continue;
            }
            let hi = hex_val(*b.get(i)?)?;
            let lo = hex_val(*b.get(i + 1)?)?;
            *raw.get_mut(n)? = (hi << 4) | lo;
            n += 1;
            i += 2;
        }
        if n != 16 {
            return None;
        }
        let d1 = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let d2 = u16::from_be_bytes([raw[4], raw[5]]);
        let d3 = u16::from_be_bytes([raw[6], raw[7]]);
        let mut d4 = [0u8; 8];
        d4.copy_from_slice(&raw[8..16]);
        Some(Guid::from_fields(d1, d2, d3, d4))
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9],
            g[10],
            g[11],
            g[12],
            g[13],
            g[14],
            g[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// The services-manifest header GUID 63849ebb-3d92-4670-a1ff-58f9c94b87bb.
pub const SERVICES_MANIFEST_GUID: Guid =
    Guid::from_fields(0x6384_9ebb, 0x3d92, 0x4670, [0xa1, 0xff, 0x58, 0xf9, 0xc9, 0x4b, 0x87, 0xbb]);
/// The vTPM service GUID c476f1eb-0123-45a5-9641-b4e7dde5bfe3.
pub const VTPM_SERVICE_GUID: Guid =
    Guid::from_fields(0xc476_f1eb, 0x0123, 0x45a5, [0x96, 0x41, 0xb4, 0xe7, 0xdd, 0xe5, 0xbf, 0xe3]);
/// GHCB certificate table: VCEK.
pub const CERT_TABLE_VCEK_GUID: Guid =
    Guid::from_fields(0x63da_758d, 0xe664, 0x4564, [0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd]);
/// GHCB certificate table: VLEK.
pub const CERT_TABLE_VLEK_GUID: Guid =
    Guid::from_fields(0xa807_4bc2, 0xa25a, 0x483e, [0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1]);
/// GHCB certificate table: ASK.
pub const CERT_TABLE_ASK_GUID: Guid =
    Guid::from_fields(0x4ab7_b379, 0xbbac, 0x4fe4, [0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82]);
/// GHCB certificate table: ARK.
pub const CERT_TABLE_ARK_GUID: Guid =
    Guid::from_fields(0xc0b4_06a4, 0xa803, 0x4952, [0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae]);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn vtpm_guid_wire_bytes_match_reference() {
        assert_eq!(
            VTPM_SERVICE_GUID.0,
            [0xeb, 0xf1, 0x76, 0xc4, 0x23, 0x01, 0xa5, 0x45, 0x96, 0x41, 0xb4, 0xe7, 0xdd, 0xe5, 0xbf, 0xe3]
        );
        assert_eq!(
            SERVICES_MANIFEST_GUID.0,
            [0xbb, 0x9e, 0x84, 0x63, 0x92, 0x3d, 0x70, 0x46, 0xa1, 0xff, 0x58, 0xf9, 0xc9, 0x4b, 0x87, 0xbb]
        );
    }

    #[test]
    fn parse_and_display_round_trip() {
        let text = "c476f1eb-0123-45a5-9641-b4e7dde5bfe3";
        let g = Guid::parse(text).expect("valid");
        assert_eq!(g, VTPM_SERVICE_GUID);
        assert_eq!(g.to_string(), text);
        assert_eq!(Guid::parse("C476F1EB-0123-45A5-9641-B4E7DDE5BFE3"), Some(g));
        assert_eq!(Guid::parse("c476f1eb-0123-45a5-9641-b4e7dde5bfe"), None);
        assert_eq!(Guid::parse("c476f1eb00123-45a5-9641-b4e7dde5bfe3"), None);
        assert_eq!(Guid::parse("g476f1eb-0123-45a5-9641-b4e7dde5bfe3"), None);
    }
}
