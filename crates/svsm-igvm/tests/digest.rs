//! The launch digest of built IGVM files, pinned by an independent PAGE_INFO chain written here from the
//! SEV-SNP firmware ABI (SNP_LAUNCH_UPDATE), with the expected page sequence listed by hand for each file.
//! A change in either the crate's rules or this reading of the spec fails these tests.

use sha2::{Digest, Sha384};
use svsm_igvm::testing::{TEST_POLICY, TestImage, pattern, sample_image, test_public_key, test_vmsa};
use svsm_igvm::{CoconutRules, IgvmCrateRules, SnpImage, measure};
use zerocopy::IntoBytes;

const NORMAL: u8 = 1;
const VMSA: u8 = 2;
const ZERO: u8 = 3;
const UNMEASURED: u8 = 4;
const SECRETS: u8 = 5;
const CPUID: u8 = 6;
const KVM_VMSA: u64 = 0xFFFF_FFFF_F000;

/// One expected SNP_LAUNCH_UPDATE page: type, gPA, and for NORMAL/VMSA the bytes (zero-padded to 4 KiB).
struct Page(u8, u64, Vec<u8>);

/// The chain, straight from the ABI: PAGE_INFO = DIGEST_CUR[48] CONTENTS[48] LENGTH=0x70 (u16 LE)
/// PAGE_TYPE IMI_PAGE=0 VMPL3/2/1 perms=0 reserved=0 GPA (u64 LE); DIGEST_CUR := SHA-384(PAGE_INFO).
fn reference_digest(pages: &[Page]) -> [u8; 48] {
    let mut cur = [0u8; 48];
    for Page(ty, gpa, data) in pages {
        let contents: [u8; 48] = if *ty == NORMAL || *ty == VMSA {
            assert!(data.len() <= 4096);
            let mut page = data.clone();
            page.resize(4096, 0);
            Sha384::digest(&page).into()
        } else {
            [0; 48]
        };
        let mut info = Vec::with_capacity(0x70);
        info.extend_from_slice(&cur);
        info.extend_from_slice(&contents);
        info.extend_from_slice(&0x70u16.to_le_bytes());
        info.push(*ty);
        info.push(0);
        info.extend_from_slice(&[0, 0, 0, 0]);
        info.extend_from_slice(&gpa.to_le_bytes());
        assert_eq!(info.len(), 0x70);
        cur = Sha384::digest(&info).into();
    }
    cur
}

fn vmsa_bytes(rip: u64) -> Vec<u8> {
    test_vmsa(rip).as_bytes().to_vec()
}

fn igvm_digest(file: &[u8]) -> [u8; 48] {
    measure(file, &IgvmCrateRules).expect("measure (igvm rules)").measurement
}

fn coconut_digest(file: &[u8], zero_pages: bool) -> [u8; 48] {
    measure(file, &CoconutRules { zero_pages }).expect("measure (coconut rules)").measurement
}

#[test]
fn vmsa_fits_one_page() {
    assert!(vmsa_bytes(0).len() <= 4096, "SevVmsa is {} bytes", vmsa_bytes(0).len());
}

#[test]
fn one_page_and_a_vmsa() {
    let file = TestImage::new(TEST_POLICY).page(0x1000, pattern(9, 4096)).kvm_vmsa().build().unwrap();
    let expected =
        reference_digest(&[Page(NORMAL, 0x1000, pattern(9, 4096)), Page(VMSA, KVM_VMSA, vmsa_bytes(0xFFF0))]);
    assert_eq!(igvm_digest(&file), expected);
    assert_eq!(coconut_digest(&file, false), expected);
}

#[test]
fn sample_under_igvm_rules() {
    let file = sample_image(TEST_POLICY).build().unwrap();
    let expected = reference_digest(&[
        Page(NORMAL, 0x10_0000, pattern(1, 4096)),
        Page(NORMAL, 0x10_1000, b"short page".to_vec()),
        Page(NORMAL, 0x10_2000, Vec::new()),
        Page(UNMEASURED, 0x10_3000, Vec::new()),
        Page(SECRETS, 0x10_4000, Vec::new()),
        Page(CPUID, 0x10_5000, Vec::new()),
        // 0x10_6000 is shared: not private memory, not measured.
        Page(UNMEASURED, 0x20_0000, Vec::new()),
        Page(UNMEASURED, 0x20_1000, Vec::new()),
        Page(UNMEASURED, 0x20_2000, Vec::new()),
        Page(VMSA, KVM_VMSA, vmsa_bytes(0xFFF0)),
    ]);
    assert_eq!(igvm_digest(&file), expected);
}

#[test]
fn sample_under_coconut_rules() {
    let file = sample_image(TEST_POLICY).build().unwrap();
    let pages = |zero_type: u8| {
        vec![
            Page(NORMAL, 0x10_0000, pattern(1, 4096)),
            Page(NORMAL, 0x10_1000, b"short page".to_vec()),
            Page(zero_type, 0x10_2000, Vec::new()),
            Page(UNMEASURED, 0x10_3000, Vec::new()),
            Page(SECRETS, 0x10_4000, Vec::new()),
            Page(CPUID, 0x10_5000, Vec::new()),
            // igvmmeasure measures the shared page like a private one...
            Page(NORMAL, 0x10_6000, pattern(3, 4096)),
            // ...and a parameter area as one page, whatever its size.
            Page(UNMEASURED, 0x20_0000, Vec::new()),
            Page(VMSA, KVM_VMSA, vmsa_bytes(0xFFF0)),
        ]
    };
    assert_eq!(coconut_digest(&file, false), reference_digest(&pages(NORMAL)));
    assert_eq!(coconut_digest(&file, true), reference_digest(&pages(ZERO)));
    assert_ne!(coconut_digest(&file, false), igvm_digest(&file), "the rule sets differ on this file");
}

#[test]
fn one_page_parameter_area_and_no_shared_page_agree_across_rules() {
    let file = TestImage::new(TEST_POLICY)
        .page(0x10_0000, pattern(5, 100))
        .parameter_area(3, 4096, 0x30_0000)
        .kvm_vmsa()
        .build()
        .unwrap();
    let expected = reference_digest(&[
        Page(NORMAL, 0x10_0000, pattern(5, 100)),
        Page(UNMEASURED, 0x30_0000, Vec::new()),
        Page(VMSA, KVM_VMSA, vmsa_bytes(0xFFF0)),
    ]);
    assert_eq!(igvm_digest(&file), expected);
    assert_eq!(coconut_digest(&file, false), expected);
}

#[test]
fn policy_is_reported_but_not_measured() {
    let a = TestImage::new(0x3_0000).page(0, pattern(1, 4096)).kvm_vmsa().build().unwrap();
    let b = TestImage::new(0xB_0000).page(0, pattern(1, 4096)).kvm_vmsa().build().unwrap();
    let (va, vb) = (measure(&a, &IgvmCrateRules).unwrap(), measure(&b, &IgvmCrateRules).unwrap());
    assert_eq!(va.measurement, vb.measurement);
    assert_eq!((va.policy, vb.policy), (0x3_0000, 0xB_0000));
}

#[test]
fn vmsa_placement_changes_the_digest_and_is_flagged() {
    let kvm = TestImage::new(TEST_POLICY).page(0, pattern(1, 4096)).kvm_vmsa().build().unwrap();
    let early = TestImage::new(TEST_POLICY).vmsa(0x5000, 0xFFF0).page(0, pattern(1, 4096)).build().unwrap();
    assert_eq!(
        igvm_digest(&early),
        reference_digest(&[Page(VMSA, 0x5000, vmsa_bytes(0xFFF0)), Page(NORMAL, 0, pattern(1, 4096))])
    );
    assert_ne!(igvm_digest(&early), igvm_digest(&kvm));
    assert!(SnpImage::parse(&kvm).unwrap().kvm_layout_issues().is_empty());
    let issues = SnpImage::parse(&early).unwrap().kvm_layout_issues().to_vec();
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert!(issues.iter().any(|i| i.contains("not the last")), "{issues:?}");
    assert!(issues.iter().any(|i| i.contains("0x5000")), "{issues:?}");
}

#[test]
fn a_page_changed_by_one_byte_changes_the_digest() {
    let mut data = pattern(1, 4096);
    let a = TestImage::new(TEST_POLICY).page(0, data.clone()).kvm_vmsa().build().unwrap();
    data[4095] ^= 1;
    let b = TestImage::new(TEST_POLICY).page(0, data.clone()).kvm_vmsa().build().unwrap();
    assert_ne!(igvm_digest(&a), igvm_digest(&b));
    assert_eq!(
        igvm_digest(&b),
        reference_digest(&[Page(NORMAL, 0, data), Page(VMSA, KVM_VMSA, vmsa_bytes(0xFFF0))])
    );
}

/// SHA-384 of the SEV ABI ECDSA public key: CURVE (u32 LE) at 0, QX at 4, QY at 0x4C, zero up to 0x404.
fn reference_key_digest(seed: u8) -> [u8; 48] {
    let mut key = vec![0u8; 0x404];
    key[0..4].copy_from_slice(&2u32.to_le_bytes());
    key[4..4 + 72].fill(seed);
    key[0x4C..0x4C + 72].fill(seed ^ 0xFF);
    Sha384::digest(&key).into()
}

#[test]
fn id_block_gives_key_digests_ids_and_svn() {
    let base = TestImage::new(TEST_POLICY).page(0, pattern(1, 4096)).kvm_vmsa();
    let ld = igvm_digest(&base.build().unwrap());
    let file = base.clone().id_block(ld, 0x11, Some(0x22)).build().unwrap();
    let v = measure(&file, &IgvmCrateRules).unwrap();
    assert_eq!(v.measurement, ld, "the ID block is not measured");
    assert_eq!(v.id_key_digest(), reference_key_digest(0x11));
    assert_eq!(v.author_key_digest(), reference_key_digest(0x22));
    assert_eq!((v.family_id(), v.image_id(), v.guest_svn()), ([0xFA; 16], [0x1D; 16], 7));
    assert_eq!(v.id_block_ld_matches(), Some(true));
    assert_eq!(test_public_key(0x11).qx, [0x11; 72]);

    let stale = base.clone().page(0x9000, vec![1]).id_block(ld, 0x11, None).build().unwrap();
    let v = measure(&stale, &IgvmCrateRules).unwrap();
    assert_eq!(v.id_block_ld_matches(), Some(false), "LD signed for another file");
    assert_eq!(v.author_key_digest(), [0; 48], "no author key: zero, as in the report");

    let none = measure(&base.build().unwrap(), &IgvmCrateRules).unwrap();
    assert_eq!((none.id_key_digest(), none.id_block_ld_matches()), ([0; 48], None));
}
