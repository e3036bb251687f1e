//! Builders for IGVM test files (feature `testing`), so tests, benchmarks and fuzzing need no external image.

use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision};
use igvm_defs::{
    IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY, IGVM_VHS_SNP_ID_BLOCK_SIGNATURE,
    IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
};
use zerocopy::FromZeros;

use crate::page_info::KVM_VMSA_GPA;

/// Compatibility mask of the SNP platform in built files.
pub const SNP_MASK: u32 = 1;
/// A policy with SMT allowed, the reserved-one bit, ABI 0.0.
pub const TEST_POLICY: u64 = 0x3_0000;

/// An IGVM file under construction: one SNP platform (mask [`SNP_MASK`]) and the headers added so far.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// Platform headers.
    pub platforms: Vec<IgvmPlatformHeader>,
    /// Initialization headers.
    pub inits: Vec<IgvmInitializationHeader>,
    /// Directive headers.
    pub directives: Vec<IgvmDirectiveHeader>,
}

/// An SNP VMSA in the reset state KVM expects (CR0 0x31), starting at `rip`.
pub fn test_vmsa(rip: u64) -> Box<SevVmsa> {
    let mut vmsa = SevVmsa::new_box_zeroed().expect("allocating a VMSA");
    vmsa.cr0 = 0x31;
    vmsa.rip = rip;
    vmsa.efer = 0x1000;
    vmsa
}

/// An ID-block public key whose coordinates are `seed` repeated (curve 2 = P-384).
pub fn test_public_key(seed: u8) -> Box<IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY> {
    Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
        curve: 2,
        reserved: 0,
        qx: [seed; 72],
        qy: [seed ^ 0xFF; 72],
    })
}

impl TestImage {
    /// A file for the SNP platform with guest policy `policy`.
    pub fn new(policy: u64) -> Self {
        let mut image = Self::without_policy();
        image.inits.push(IgvmInitializationHeader::GuestPolicy { policy, compatibility_mask: SNP_MASK });
        image
    }

    /// A file for the SNP platform without a guest policy (invalid for SNP).
    pub fn without_policy() -> Self {
        TestImage {
            platforms: vec![IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
                compatibility_mask: SNP_MASK,
                highest_vtl: 0,
                platform_type: IgvmPlatformType::SEV_SNP,
                platform_version: 1,
                shared_gpa_boundary: 0,
            })],
            inits: Vec::new(),
            directives: Vec::new(),
        }
    }

    /// Adds any directive.
    pub fn directive(mut self, d: IgvmDirectiveHeader) -> Self {
        self.directives.push(d);
        self
    }

    /// Adds a page of data with explicit type and flags.
    pub fn page_with(
        self,
        gpa: u64,
        data: Vec<u8>,
        data_type: IgvmPageDataType,
        unmeasured: bool,
        shared: bool,
    ) -> Self {
        self.directive(IgvmDirectiveHeader::PageData {
            gpa,
            compatibility_mask: SNP_MASK,
            flags: IgvmPageDataFlags::new().with_unmeasured(unmeasured).with_shared(shared),
            data_type,
            data,
        })
    }

    /// Adds a NORMAL page of data (at most 4 KiB; shorter is zero-padded).
    pub fn page(self, gpa: u64, data: Vec<u8>) -> Self {
        self.page_with(gpa, data, IgvmPageDataType::NORMAL, false, false)
    }

    /// Adds a page without data (a zero page).
    pub fn zero_page(self, gpa: u64) -> Self {
        self.page(gpa, Vec::new())
    }

    /// Declares parameter area `index` of `bytes` bytes and inserts it at `gpa`.
    pub fn parameter_area(self, index: u32, bytes: u64, gpa: u64) -> Self {
        self.directive(IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: bytes,
            parameter_area_index: index,
            initial_data: Vec::new(),
        })
        .directive(IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa,
            compatibility_mask: SNP_MASK,
            parameter_area_index: index,
        }))
    }

    /// Adds VP 0's VMSA at `gpa`.
    pub fn vmsa(self, gpa: u64, rip: u64) -> Self {
        self.directive(IgvmDirectiveHeader::SnpVpContext {
            gpa,
            compatibility_mask: SNP_MASK,
            vp_index: 0,
            vmsa: test_vmsa(rip),
        })
    }

    /// Adds VP 0's VMSA where KVM measures it.
    pub fn kvm_vmsa(self) -> Self {
        self.vmsa(KVM_VMSA_GPA, 0xFFF0)
    }

    /// Adds an ID block (signatures are dummies: nothing here checks them).
    pub fn id_block(self, ld: [u8; 48], id_key_seed: u8, author_key_seed: Option<u8>) -> Self {
        let zero_sig = || Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE { r_comp: [0; 72], s_comp: [0; 72] });
        self.directive(IgvmDirectiveHeader::SnpIdBlock {
            compatibility_mask: SNP_MASK,
            author_key_enabled: u8::from(author_key_seed.is_some()),
            reserved: [0; 3],
            ld,
            family_id: [0xFA; 16],
            image_id: [0x1D; 16],
            version: 1,
            guest_svn: 7,
            id_key_algorithm: 1,
            author_key_algorithm: u32::from(author_key_seed.is_some()),
            id_key_signature: zero_sig(),
            id_public_key: test_public_key(id_key_seed),
            author_key_signature: zero_sig(),
            author_public_key: match author_key_seed {
                Some(s) => test_public_key(s),
                None => Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
                    curve: 0,
                    reserved: 0,
                    qx: [0; 72],
                    qy: [0; 72],
                }),
            },
        })
    }

    /// Serializes the file (the `igvm` crate validates it first).
    pub fn build(&self) -> Result<Vec<u8>, igvm::Error> {
        let file = IgvmFile::new(
            IgvmRevision::V1,
            self.platforms.clone(),
            self.inits.clone(),
            self.directives.clone(),
        )?;
        let mut out = Vec::new();
        file.serialize(&mut out)?;
        Ok(out)
    }
}

/// `n` bytes of deterministic, non-repeating test data.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A file with every kind of page: data (full and short), a zero page, unmeasured, secrets and CPUID pages, a
/// shared page, a 3-page parameter area, and a VMSA last at KVM's gPA.
pub fn sample_image(policy: u64) -> TestImage {
    TestImage::new(policy)
        .page(0x10_0000, pattern(1, 4096))
        .page(0x10_1000, b"short page".to_vec())
        .zero_page(0x10_2000)
        .page_with(0x10_3000, pattern(2, 4096), IgvmPageDataType::NORMAL, true, false)
        .page_with(0x10_4000, Vec::new(), IgvmPageDataType::SECRETS, false, false)
        .page_with(0x10_5000, Vec::new(), IgvmPageDataType::CPUID_DATA, false, false)
        .page_with(0x10_6000, pattern(3, 4096), IgvmPageDataType::NORMAL, false, true)
        .parameter_area(0, 3 * 4096, 0x20_0000)
        .kvm_vmsa()
}

/// A file of `bytes` bytes of page data (rounded up to whole pages) and a VMSA, for benchmarks.
pub fn large_image(bytes: usize) -> TestImage {
    let pages = bytes.div_ceil(4096);
    let data = pattern(42, pages * 4096);
    let mut image = TestImage::new(TEST_POLICY);
    for (i, page) in data.chunks(4096).enumerate() {
        image = image.page(0x10_0000 + i as u64 * 4096, page.to_vec());
    }
    image.kvm_vmsa()
}

/// Recomputes the fixed header's CRC32 checksum after a test or fuzzer changed the headers, so the change
/// reaches the header validation instead of stopping at the checksum. Does nothing to input too short to
/// have headers.
pub fn reseal_checksum(file: &mut [u8]) {
    let word = |f: &[u8], at: usize| f.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(offset), Some(size)) = (word(file, 8), word(file, 12)) else { return };
    let (offset, size) = (offset as usize, size as usize);
    let Some(end) = offset.checked_add(size).filter(|e| *e <= file.len() && offset >= 24) else { return };
    let mut h = crc32fast::Hasher::new();
    let mut fixed = [0u8; 24];
    fixed.copy_from_slice(&file[..24]);
    fixed[20..24].fill(0);
    h.update(&fixed);
    h.update(&file[offset..end]);
    file[20..24].copy_from_slice(&h.finalize().to_le_bytes());
}
