//! The SEV-SNP launch digest: the PAGE_INFO structure of SNP_LAUNCH_UPDATE and the SHA-384 chain over it.
//!
//! This module needs neither `std` nor `alloc`, so an SVSM kernel (or any firmware that measures what it
//! loads) can use it as is. Format (SEV-SNP firmware ABI, SNP_LAUNCH_UPDATE, "PAGE_INFO", 0x70 bytes):
//!
//! | offset | size | field                                                               |
//! |--------|------|---------------------------------------------------------------------|
//! | 0x00   | 48   | DIGEST_CUR: the launch digest so far (all zero before the first page) |
//! | 0x30   | 48   | CONTENTS: SHA-384 of the 4 KiB page (NORMAL, VMSA), else zero        |
//! | 0x60   | 2    | LENGTH = 0x70 (little-endian)                                        |
//! | 0x62   | 1    | PAGE_TYPE                                                            |
//! | 0x63   | 1    | IMI_PAGE (0: not an in-migration page)                               |
//! | 0x64   | 4    | VMPL3, VMPL2, VMPL1 permissions, reserved (all zero at launch)       |
//! | 0x68   | 8    | GPA of the page (little-endian)                                      |
//!
//! After each page, DIGEST_CUR := SHA-384(PAGE_INFO). The final value is the report's MEASUREMENT.

use sha2::{Digest as _, Sha384};
use zerocopy::little_endian::{U16, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// The only page size SNP_LAUNCH_UPDATE measures page by page (a 2 MiB page is measured as 512 of these).
pub const PAGE_SIZE: usize = 4096;
/// Length of a SHA-384 digest: the launch digest, the page contents digest, ID/author key digests.
pub const DIGEST_LEN: usize = 48;
/// A SHA-384 digest.
pub type Digest384 = [u8; DIGEST_LEN];

/// gPA at which KVM measures every VMSA (it does not know the gPA the IGVM file gives it).
pub const KVM_VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// PAGE_TYPE of SNP_LAUNCH_UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PageType {
    /// Data the guest sees as loaded; CONTENTS = SHA-384 of the page.
    Normal = 1,
    /// A vCPU save area; CONTENTS = SHA-384 of the 4 KiB VMSA page.
    Vmsa = 2,
    /// A page the firmware zeroes; CONTENTS = 0.
    Zero = 3,
    /// A page whose contents are not measured (parameter areas, host-provided data); CONTENTS = 0.
    Unmeasured = 4,
    /// The SNP secrets page (the firmware fills it); CONTENTS = 0.
    Secrets = 5,
    /// The CPUID page (the firmware checks it); CONTENTS = 0.
    Cpuid = 6,
}

impl PageType {
    /// Whether the page's contents enter the digest (CONTENTS = SHA-384 of the page).
    pub fn measures_contents(self) -> bool {
        matches!(self, PageType::Normal | PageType::Vmsa)
    }

    /// Lower-case name, as printed by `svsm-host igvm measure`.
    pub fn name(self) -> &'static str {
        match self {
            PageType::Normal => "normal",
            PageType::Vmsa => "vmsa",
            PageType::Zero => "zero",
            PageType::Unmeasured => "unmeasured",
            PageType::Secrets => "secrets",
            PageType::Cpuid => "cpuid",
        }
    }
}

/// PAGE_INFO of SNP_LAUNCH_UPDATE, byte for byte.
#[derive(Debug, Clone, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PageInfo {
    /// Launch digest before this page.
    pub digest_cur: Digest384,
    /// SHA-384 of the page for NORMAL and VMSA pages, zero otherwise.
    pub contents: Digest384,
    /// Always 0x70.
    pub length: U16,
    /// [`PageType`] as its byte.
    pub page_type: u8,
    /// 1 for in-migration pages; 0 at launch.
    pub imi_page: u8,
    /// VMPL3 permissions (0 at launch: the pages belong to VMPL0).
    pub vmpl3_perms: u8,
    /// VMPL2 permissions.
    pub vmpl2_perms: u8,
    /// VMPL1 permissions.
    pub vmpl1_perms: u8,
    /// Reserved, zero.
    pub reserved: u8,
    /// Guest-physical address of the page.
    pub gpa: U64,
}

const _: () = assert!(size_of::<PageInfo>() == 0x70);
const _: () = assert!(core::mem::offset_of!(PageInfo, contents) == 0x30);
const _: () = assert!(core::mem::offset_of!(PageInfo, length) == 0x60);
const _: () = assert!(core::mem::offset_of!(PageInfo, page_type) == 0x62);
const _: () = assert!(core::mem::offset_of!(PageInfo, imi_page) == 0x63);
const _: () = assert!(core::mem::offset_of!(PageInfo, gpa) == 0x68);

static ZERO_PAGE: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// SHA-384 of `data` zero-padded to one page, or `None` if `data` is larger than a page.
pub fn page_digest(data: &[u8]) -> Option<Digest384> {
    let pad = PAGE_SIZE.checked_sub(data.len())?;
    let mut h = Sha384::new();
    h.update(data);
    h.update(&ZERO_PAGE[..pad]);
    Some(h.finalize().into())
}

/// SHA-384 of arbitrary bytes (ID and author key digests).
pub fn sha384(data: &[u8]) -> Digest384 {
    Sha384::digest(data).into()
}

/// The running launch digest: what the SNP firmware keeps between SNP_LAUNCH_START and SNP_LAUNCH_FINISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchDigest {
    current: Digest384,
    pages: u64,
}

impl Default for LaunchDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchDigest {
    /// The digest at SNP_LAUNCH_START: all zero.
    pub fn new() -> Self {
        LaunchDigest { current: [0; DIGEST_LEN], pages: 0 }
    }

    /// Extends the digest by one page whose CONTENTS field is already known.
    pub fn extend(&mut self, page_type: PageType, gpa: u64, contents: &Digest384) {
        let info = PageInfo {
            digest_cur: self.current,
            contents: *contents,
            length: U16::new(size_of::<PageInfo>() as u16),
            page_type: page_type as u8,
            imi_page: 0,
            vmpl3_perms: 0,
            vmpl2_perms: 0,
            vmpl1_perms: 0,
            reserved: 0,
            gpa: U64::new(gpa),
        };
        self.current = sha384(info.as_bytes());
        self.pages += 1;
    }

    /// Extends the digest by one page: for NORMAL and VMSA pages `data` (at most a page, zero-padded) is
    /// hashed into CONTENTS; for the other types it is ignored and CONTENTS is zero. Returns `false`, leaving
    /// the digest unchanged, if `data` is larger than a page.
    #[must_use]
    pub fn add_page(&mut self, page_type: PageType, gpa: u64, data: &[u8]) -> bool {
        let contents = if page_type.measures_contents() {
            match page_digest(data) {
                Some(d) => d,
                None => return false,
            }
        } else {
            [0; DIGEST_LEN]
        };
        self.extend(page_type, gpa, &contents);
        true
    }

    /// Pages measured so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The digest so far (after the last page: the MEASUREMENT).
    pub fn value(&self) -> Digest384 {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_info_bytes_are_the_abi_layout() {
        let info = PageInfo {
            digest_cur: [0x11; 48],
            contents: [0x22; 48],
            length: U16::new(0x70),
            page_type: PageType::Vmsa as u8,
            imi_page: 0,
            vmpl3_perms: 0,
            vmpl2_perms: 0,
            vmpl1_perms: 0,
            reserved: 0,
            gpa: U64::new(0x0102_0304_0506_0708),
        };
        let b = info.as_bytes();
        assert_eq!(&b[..48], &[0x11; 48]);
        assert_eq!(&b[48..96], &[0x22; 48]);
        assert_eq!(&b[0x60..0x64], &[0x70, 0x00, 0x02, 0x00]);
        assert_eq!(&b[0x68..], &[8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn short_data_is_zero_padded_and_oversized_data_refused() {
        assert_eq!(page_digest(&[]), page_digest(&[0; PAGE_SIZE]));
        assert_eq!(
            page_digest(b"ab"),
            page_digest(&{
                let mut p = [0u8; PAGE_SIZE];
                p[..2].copy_from_slice(b"ab");
                p
            })
        );
        assert_eq!(page_digest(&[0; PAGE_SIZE + 1]), None);
        let mut d = LaunchDigest::new();
        assert!(!d.add_page(PageType::Normal, 0, &[0; PAGE_SIZE + 1]));
        assert_eq!(d, LaunchDigest::new());
    }

    #[test]
    fn unmeasured_types_ignore_data() {
        let (mut a, mut b) = (LaunchDigest::new(), LaunchDigest::new());
        assert!(a.add_page(PageType::Zero, 0x1000, b"ignored"));
        assert!(b.add_page(PageType::Zero, 0x1000, &[]));
        assert_eq!(a, b);
        assert!(b.add_page(PageType::Normal, 0x2000, &[]));
        assert_ne!(a.value(), b.value());
        assert_eq!(b.pages(), 2);
    }
}
