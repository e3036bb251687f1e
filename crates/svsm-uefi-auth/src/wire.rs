//! Wire layouts (UEFI 2.10 §8.2 and §32.4), all little-endian and packed, pinned by compile-time asserts.
//!
//! ```text
//! EFI_TIME (16)                 Year u16 @0, Month @2, Day @3, Hour @4, Minute @5, Second @6, Pad1 @7,
//!                               Nanosecond u32 @8, TimeZone i16 @12, Daylight @14, Pad2 @15
//! EFI_VARIABLE_AUTHENTICATION_2 TimeStamp EFI_TIME @0, AuthInfo WIN_CERTIFICATE_UEFI_GUID @16
//! WIN_CERTIFICATE_UEFI_GUID     dwLength u32 @0 (whole certificate incl. this header), wRevision u16 @4 = 0x0200,
//!                               wCertificateType u16 @6 = 0x0EF1, CertType GUID @8 = EFI_CERT_TYPE_PKCS7,
//!                               CertData @24 (DER PKCS#7 SignedData, dwLength - 24 bytes)
//! new variable value            follows CertData directly
//! EFI_SIGNATURE_LIST (28)       SignatureType GUID @0, SignatureListSize u32 @16, SignatureHeaderSize u32 @20,
//!                               SignatureSize u32 @24, header, then entries of SignatureSize bytes each:
//! EFI_SIGNATURE_DATA            SignatureOwner GUID @0, SignatureData @16
//! ```

use zerocopy::little_endian::{I16, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `EFI_TIME`, as carried in the authentication descriptor and kept with the variable.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct EfiTime {
    /// 1900..9999.
    pub year: U16,
    /// 1..12.
    pub month: u8,
    /// 1..31.
    pub day: u8,
    /// 0..23.
    pub hour: u8,
    /// 0..59.
    pub minute: u8,
    /// 0..59.
    pub second: u8,
    /// Must be zero in an authentication descriptor.
    pub pad1: u8,
    /// Must be zero in an authentication descriptor.
    pub nanosecond: U32,
    /// Must be zero in an authentication descriptor.
    pub time_zone: I16,
    /// Must be zero in an authentication descriptor.
    pub daylight: u8,
    /// Must be zero in an authentication descriptor.
    pub pad2: u8,
}

/// Size of [`EfiTime`] on the wire.
pub const EFI_TIME_SIZE: usize = 16;
const _: () = assert!(core::mem::size_of::<EfiTime>() == EFI_TIME_SIZE);

impl EfiTime {
    /// A time from its calendar fields (everything the spec requires to be zero is zero).
    pub fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Self {
        EfiTime { year: year.into(), month, day, hour, minute, second, ..Default::default() }
    }

    /// The time from its 16 wire bytes.
    pub fn from_wire(bytes: [u8; EFI_TIME_SIZE]) -> Self {
        // An array of exactly the struct's size always converts.
        Self::read_from_bytes(&bytes).unwrap_or_default()
    }

    /// The 16 wire bytes.
    pub fn to_wire(&self) -> [u8; EFI_TIME_SIZE] {
        let mut out = [0u8; EFI_TIME_SIZE];
        out.copy_from_slice(self.as_bytes());
        out
    }

    /// True when Pad1, Nanosecond, TimeZone, Daylight and Pad2 are all zero, as §8.2.2 requires of the
    /// descriptor's TimeStamp.
    pub fn is_descriptor_form(&self) -> bool {
        self.pad1 == 0
            && self.nanosecond.get() == 0
            && self.time_zone.get() == 0
            && self.daylight == 0
            && self.pad2 == 0
    }

    /// The fields compared for ordering, most significant first.
    fn key(&self) -> (u16, u8, u8, u8, u8, u8, u32) {
        (self.year.get(), self.month, self.day, self.hour, self.minute, self.second, self.nanosecond.get())
    }

    /// True when `self` is strictly later than `other` (calendar order; no normalisation, as in the spec's
    /// comparison of the stored and the new TimeStamp).
    pub fn is_later_than(&self, other: &EfiTime) -> bool {
        self.key() > other.key()
    }

    /// The later of two times (`self` on a tie).
    pub fn later_of(self, other: EfiTime) -> EfiTime {
        if other.is_later_than(&self) { other } else { self }
    }
}

/// `WIN_CERTIFICATE_UEFI_GUID` without its `CertData`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct WinCertificateUefiGuid {
    /// Length of the whole certificate, this header included.
    pub length: U32,
    /// `WIN_CERT_REVISION_2_0` = 0x0200.
    pub revision: U16,
    /// `WIN_CERT_TYPE_EFI_GUID` = 0x0EF1.
    pub certificate_type: U16,
    /// `EFI_CERT_TYPE_PKCS7_GUID`.
    pub cert_type: [u8; 16],
}

/// Size of [`WinCertificateUefiGuid`] (the offset of `CertData` within the certificate).
pub const WIN_CERTIFICATE_UEFI_GUID_SIZE: usize = 24;
const _: () = assert!(core::mem::size_of::<WinCertificateUefiGuid>() == WIN_CERTIFICATE_UEFI_GUID_SIZE);

/// `WIN_CERT_REVISION_2_0`.
pub const WIN_CERT_REVISION_2_0: u16 = 0x0200;
/// `WIN_CERT_TYPE_EFI_GUID`.
pub const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0EF1;

/// `EFI_VARIABLE_AUTHENTICATION_2` without `CertData`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct VariableAuthentication2 {
    /// The signed timestamp.
    pub time_stamp: EfiTime,
    /// The certificate header.
    pub auth_info: WinCertificateUefiGuid,
}

/// Size of [`VariableAuthentication2`] (the offset of the PKCS#7 data in a SetVariable buffer).
pub const VARIABLE_AUTHENTICATION_2_SIZE: usize = 40;
const _: () = assert!(core::mem::size_of::<VariableAuthentication2>() == VARIABLE_AUTHENTICATION_2_SIZE);

/// `EFI_SIGNATURE_LIST` header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SignatureListHeader {
    /// What the entries are (`EFI_CERT_*_GUID`).
    pub signature_type: [u8; 16],
    /// Size of the whole list, this header included.
    pub signature_list_size: U32,
    /// Size of the type-specific header between this header and the entries (0 for every defined type).
    pub signature_header_size: U32,
    /// Size of each entry, its 16-byte owner GUID included.
    pub signature_size: U32,
}

/// Size of [`SignatureListHeader`].
pub const SIGNATURE_LIST_HEADER_SIZE: usize = 28;
const _: () = assert!(core::mem::size_of::<SignatureListHeader>() == SIGNATURE_LIST_HEADER_SIZE);
/// Size of `EFI_SIGNATURE_DATA`'s owner GUID.
pub const SIGNATURE_OWNER_SIZE: usize = 16;

// Field offsets the format description above promises.
const _: () = assert!(core::mem::offset_of!(EfiTime, nanosecond) == 8);
const _: () = assert!(core::mem::offset_of!(EfiTime, time_zone) == 12);
const _: () = assert!(core::mem::offset_of!(WinCertificateUefiGuid, cert_type) == 8);
const _: () = assert!(core::mem::offset_of!(VariableAuthentication2, auth_info) == 16);
const _: () = assert!(core::mem::offset_of!(SignatureListHeader, signature_size) == 24);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_orders_by_calendar_fields() {
        let a = EfiTime::new(2026, 12, 1, 23, 59, 59);
        let b = EfiTime::new(2026, 12, 2, 0, 0, 0);
        assert!(b.is_later_than(&a));
        assert!(!a.is_later_than(&b));
        assert!(!a.is_later_than(&a));
        assert_eq!(a.later_of(b), b);
        assert_eq!(EfiTime::from_wire(a.to_wire()), a);
        let mut c = a;
        c.time_zone = 60.into();
        assert!(!c.is_descriptor_form());
        assert!(a.is_descriptor_form());
    }
}
