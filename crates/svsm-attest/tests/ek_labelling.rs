//! The verifier calls an attested vTPM key "the EK" only if it is a TCG EK Credential Profile key: a key a
//! guest had created from its own template (ATTEST_SINGLE_SERVICE_EX) is reported as such, never as the EK.

use std::sync::{Arc, OnceLock};

use der::Decode;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::traits::PublicKeyParts;
use svsm_attest::chain::SimulatedRoots;
use svsm_attest::verify::{Evidence, Verified};
use svsm_attest::{SimulatedSnp, SimulatedSnpConfig, VerifierPolicy, verify_attestation};
use svsm_protocol::doubles::VtpmDouble;
use svsm_protocol::guest::{DirectTransport, Guest};
use svsm_protocol::guid::{
    CERT_TABLE_ARK_GUID, CERT_TABLE_ASK_GUID, CERT_TABLE_VCEK_GUID, VTPM_SERVICE_GUID,
};
use svsm_protocol::manifest::parse_certificate_table;
use svsm_protocol::model::{SimulatedRmp, SimulatedVcpus};
use svsm_protocol::{Guid, Svsm, SvsmConfig, VecGuestMemory};
use svsm_vtpm::manufacture::{self, EkKind};
use svsm_vtpm::marshal::alg;
use x509_cert::Certificate;

fn roots() -> Arc<SimulatedRoots> {
    static ROOTS: OnceLock<Arc<SimulatedRoots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            Arc::new(SimulatedRoots::generate("Milan", &mut ChaCha20Rng::seed_from_u64(3)).expect("roots"))
        })
        .clone()
}

fn ek_modulus() -> [u8; 256] {
    static KEY: OnceLock<[u8; 256]> = OnceLock::new();
    *KEY.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut ChaCha20Rng::seed_from_u64(4), 2048).expect("rsa");
        key.n().to_bytes_be().try_into().expect("256 bytes")
    })
}

/// Attests the vTPM (with `selector` through SINGLE_SERVICE_EX) and verifies with the default policy.
fn attest_and_verify(selector: Option<&[u8]>) -> Verified {
    let snp = SimulatedSnp::new(roots(), SimulatedSnpConfig::default(), &mut ChaCha20Rng::seed_from_u64(5))
        .unwrap();
    let svsm = Svsm::new(
        SvsmConfig { svsm_base: 0x7f_0000, svsm_size: 0x1_0000, initial_caa: 0x1000 },
        Box::new(SimulatedRmp::new()),
        Box::new(SimulatedVcpus::new(1)),
        Some(Box::new(VtpmDouble::new(ek_modulus(), [3; 32]))),
        Box::new(snp),
    );
    let mut guest = Guest::new(
        DirectTransport { svsm, memory: VecGuestMemory::new(0, 8 << 20) },
        0x1000,
        0x10_0000,
        0x40_0000,
    );
    let nonce = [0x42u8; 64];
    let out = guest.attest(&nonce, VTPM_SERVICE_GUID, 0, selector).expect("attest");
    let table = parse_certificate_table(&out.certificates).unwrap();
    let find = |g: Guid| Certificate::from_der(table.iter().find(|e| e.guid == g).unwrap().data).unwrap();
    let (ark, ask, vcek) = (find(CERT_TABLE_ARK_GUID), find(CERT_TABLE_ASK_GUID), find(CERT_TABLE_VCEK_GUID));
    let anchor = roots().ark.clone();
    let ev = Evidence {
        report: &out.report,
        manifest: &out.manifest,
        nonce: &nonce,
        selector: Some((VTPM_SERVICE_GUID, 0, selector.unwrap_or_default())),
        trusted_ark: &anchor,
        ark: &ark,
        ask: &ask,
        vcek: &vcek,
    };
    verify_attestation(&ev, &VerifierPolicy::default()).expect("the evidence itself is authentic")
}

fn selector(template: &[u8]) -> Vec<u8> {
    let mut s = 1u64.to_le_bytes().to_vec();
    s.extend_from_slice(template);
    s
}

/// An unrestricted decryption key usable with an empty password: fixedTPM | fixedParent |
/// sensitiveDataOrigin | userWithAuth | decrypt, empty authPolicy, no symmetric, no scheme, RSA-2048.
fn unrestricted_decrypt_template() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&alg::RSA.to_be_bytes());
    t.extend_from_slice(&alg::SHA256.to_be_bytes());
    t.extend_from_slice(&0x0002_0072u32.to_be_bytes());
    t.extend_from_slice(&0u16.to_be_bytes());
    t.extend_from_slice(&alg::NULL.to_be_bytes());
    t.extend_from_slice(&alg::NULL.to_be_bytes());
    t.extend_from_slice(&2048u16.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&256u16.to_be_bytes());
    t.extend_from_slice(&[0; 256]);
    t
}

#[test]
fn the_services_manifest_key_is_the_tcg_ek() {
    let v = attest_and_verify(None);
    let ek = v.ek.expect("the L-1 EK is reported as the EK");
    assert_eq!(ek.public.attributes, manufacture::EK_ATTRIBUTES);
    assert_eq!(ek.profile, Some(EkKind::Rsa2048));
    assert!(v.guest_template_key.is_none());
}

#[test]
fn a_selector_with_the_profile_template_yields_the_ek() {
    let v = attest_and_verify(Some(&selector(&EkKind::Rsa2048.template_bytes())));
    assert_eq!(v.ek.expect("the guest asked for exactly template L-1").profile, Some(EkKind::Rsa2048));
}

#[test]
fn a_key_from_an_unrestricted_decrypt_template_is_not_called_the_ek() {
    let v = attest_and_verify(Some(&selector(&unrestricted_decrypt_template())));
    assert!(v.ek.is_none(), "an unrestricted userWithAuth decryption key was labelled the vTPM EK");
    let k = v.guest_template_key.expect("reported as a key from the guest's template");
    assert_eq!(k.public.attributes, 0x0002_0072);
    assert_eq!(k.profile, None);
}

#[test]
fn a_key_from_an_ek_template_with_user_with_auth_is_not_called_the_ek() {
    let mut template = EkKind::Rsa2048.template_bytes();
    template[7] |= 0x40; // userWithAuth
    let v = attest_and_verify(Some(&selector(&template)));
    assert!(v.ek.is_none(), "an EK-like key usable with an empty password was labelled the vTPM EK");
    assert_eq!(v.guest_template_key.expect("guest key").public.attributes, manufacture::EK_ATTRIBUTES | 0x40);
}

#[test]
fn a_key_from_the_profile_template_with_a_guest_chosen_unique_is_not_called_the_ek() {
    let mut template = EkKind::Rsa2048.template_bytes();
    let n = template.len();
    template[n - 1] = 1; // the profile's unique is all zero
    let v = attest_and_verify(Some(&selector(&template)));
    assert!(v.ek.is_none(), "a key from a non-profile unique was labelled the vTPM EK");
    assert!(v.guest_template_key.is_some());
}

#[test]
fn profile_matching_covers_l2_and_refuses_other_shapes() {
    // L-2 as created: the profile template with a point in `unique` (x, y: 32 bytes each).
    let mut created = EkKind::EccP256.template_bytes();
    let n = created.len();
    for b in &mut created[n - 32..] {
        *b = 0xA5;
    }
    for b in &mut created[n - 66..n - 34] {
        *b = 0x5A;
    }
    assert_eq!(EkKind::of_created(&created), Some(EkKind::EccP256));
    assert_eq!(EkKind::of_created(&EkKind::Rsa2048.template_bytes()), Some(EkKind::Rsa2048));
    let mut other_policy = EkKind::Rsa2048.template_bytes();
    other_policy[12] ^= 1; // inside authPolicy
    assert_eq!(EkKind::of_created(&other_policy), None);
    assert_eq!(EkKind::of_created(&unrestricted_decrypt_template()), None);
    assert_eq!(EkKind::of_created(&[1, 2, 3]), None);
}
