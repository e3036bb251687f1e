//! Malformed IGVM files: each is refused with a precise error, never a panic and never a digest.

use igvm::IgvmDirectiveHeader;
use igvm_defs::{IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM, IgvmPlatformType};
use svsm_igvm::testing::{SNP_MASK, TEST_POLICY, TestImage, pattern, reseal_checksum, sample_image};
use svsm_igvm::{IgvmCrateRules, IgvmError, MAX_FILE_SIZE, measure};

fn err(file: &[u8]) -> IgvmError {
    match measure(file, &IgvmCrateRules) {
        Ok(v) => panic!("measured a bad file: {}", hex::encode(v.measurement)),
        Err(e) => e,
    }
}

fn valid() -> TestImage {
    TestImage::new(TEST_POLICY).page(0x1000, pattern(1, 4096)).kvm_vmsa()
}

#[test]
fn every_truncation_is_refused() {
    let file = sample_image(TEST_POLICY).build().unwrap();
    assert!(measure(&file, &IgvmCrateRules).is_ok());
    for len in 0..file.len() {
        let e = err(&file[..len]);
        assert!(
            matches!(e, IgvmError::Parse(_) | IgvmError::BadFileOffset { .. }),
            "prefix of {len} bytes: {e:?}"
        );
    }
}

#[test]
fn bad_magic_and_bad_checksum_are_parse_errors() {
    let file = valid().build().unwrap();
    let mut magic = file.clone();
    magic[0] ^= 0xFF;
    assert!(matches!(err(&magic), IgvmError::Parse(igvm::Error::InvalidFixedHeader)), "{:?}", err(&magic));
    let mut sum = file.clone();
    sum[30] ^= 0x01; // inside the variable headers
    assert!(matches!(err(&sum), IgvmError::Parse(igvm::Error::InvalidChecksum { .. })), "{:?}", err(&sum));
}

#[test]
fn random_header_corruption_never_panics() {
    let file = sample_image(TEST_POLICY).build().unwrap();
    let noise = pattern(7, 3 * 4000);
    let (mut refused, mut measured) = (0, 0);
    for chunk in noise.chunks(3) {
        let mut f = file.clone();
        // Corrupt one byte of the headers (where the structure is) and reseal the checksum so the corruption
        // reaches the header checks.
        let at = 24 + (usize::from(chunk[0]) << 8 | usize::from(chunk[1])) % 600;
        f[at] ^= chunk[2] | 1;
        reseal_checksum(&mut f);
        match measure(&f, &IgvmCrateRules) {
            Ok(_) => measured += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0 && measured > 0, "refused {refused}, measured {measured}");
}

#[test]
fn file_offset_inside_the_headers_is_refused() {
    let mut file = valid().build().unwrap();
    // The first directive is the page data; point its file offset at the fixed header.
    let offset = u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize;
    let mut at = offset;
    while u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) != 0x302 {
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 8 + len.div_ceil(8) * 8;
    }
    file[at + 8 + 12..at + 8 + 16].copy_from_slice(&8u32.to_le_bytes());
    reseal_checksum(&mut file);
    assert!(
        matches!(err(&file), IgvmError::BadFileOffset { typ: 0x302, file_offset: 8, .. }),
        "{:?}",
        err(&file)
    );
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let huge = vec![0u8; MAX_FILE_SIZE as usize + 1];
    assert!(matches!(err(&huge), IgvmError::FileTooLarge { .. }));
}

#[test]
fn overlapping_pages_are_refused() {
    let twice = valid().page(0x1000, vec![1]).build().unwrap();
    assert!(matches!(err(&twice), IgvmError::OverlappingPages { gpa: 0x1000, .. }), "{:?}", err(&twice));
    let into_area = valid().parameter_area(0, 2 * 4096, 0x0000).build().unwrap();
    assert!(matches!(err(&into_area), IgvmError::OverlappingPages { gpa: 0x1000, .. }));
    let vmsa_on_page = valid().vmsa(0x1000, 0).build().unwrap();
    assert!(matches!(err(&vmsa_on_page), IgvmError::OverlappingPages { gpa: 0x1000, .. }));
}

#[test]
fn file_without_snp_platform_is_refused() {
    let mut image = TestImage::without_policy().page(0x1000, vec![1]);
    image.platforms = vec![igvm::IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: SNP_MASK,
        highest_vtl: 0,
        platform_type: IgvmPlatformType::TDX,
        platform_version: 1,
        shared_gpa_boundary: 0,
    })];
    let file = image.build().unwrap();
    match err(&file) {
        IgvmError::NoSnpPlatform { found } => assert_eq!(found, "TDX"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_policy_and_missing_vmsa_are_refused() {
    let no_policy = TestImage::without_policy().page(0, vec![1]).kvm_vmsa().build().unwrap();
    assert!(matches!(err(&no_policy), IgvmError::MissingGuestPolicy));
    let no_vmsa = TestImage::new(TEST_POLICY).page(0, vec![1]).build().unwrap();
    assert!(matches!(err(&no_vmsa), IgvmError::NoVmsa));
}

#[test]
fn bad_parameter_areas_are_refused() {
    let too_big = valid().parameter_area(0, (16 << 20) + 4096, 0x100_0000).build().unwrap();
    assert!(matches!(err(&too_big), IgvmError::BadParameterArea { .. }), "{:?}", err(&too_big));
    let wraps = valid().parameter_area(0, 2 * 4096, 0xFFFF_FFFF_FFFF_F000).build().unwrap();
    assert!(matches!(err(&wraps), IgvmError::BadParameterArea { .. }), "{:?}", err(&wraps));
    // A parameter area that is not page-sized: the igvm crate or this crate refuses it, either way precisely.
    if let Ok(odd) = valid().parameter_area(0, 100, 0x100_0000).build() {
        assert!(matches!(err(&odd), IgvmError::BadParameterArea { .. }), "{:?}", err(&odd));
    }
}

#[test]
fn unaligned_gpas_are_refused() {
    let cases = [
        valid().page(0x2001, vec![1]),
        valid().vmsa(0x3010, 0),
        valid()
            .directive(IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: 4096,
                parameter_area_index: 0,
                initial_data: Vec::new(),
            })
            .directive(IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
                gpa: 0x4800,
                compatibility_mask: SNP_MASK,
                parameter_area_index: 0,
            })),
    ];
    for case in cases {
        // The igvm crate refuses some of these when building; what it lets through, this crate refuses.
        if let Ok(file) = case.build() {
            assert!(
                matches!(err(&file), IgvmError::UnalignedGpa { .. } | IgvmError::Parse(_)),
                "{:?}",
                err(&file)
            );
        }
    }
}

#[test]
fn duplicate_id_blocks_are_refused() {
    let file = valid().id_block([0; 48], 1, None).id_block([0; 48], 2, None).build().unwrap();
    assert!(matches!(err(&file), IgvmError::DuplicateIdBlock));
}
