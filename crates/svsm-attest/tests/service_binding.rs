//! Single-service REPORT_DATA binds the service GUID and manifest version (a documented deviation from
//! SVSM spec 1.00, see docs/svsm-protocols.md): the vTPM's manifest attested for one service cannot be
//! presented as another service's, or as another manifest version.

use std::sync::{Arc, OnceLock};

use der::Decode;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::traits::PublicKeyParts;
use svsm_attest::VerifyError;
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

/// Attests the vTPM through ATTEST_SINGLE_SERVICE (or ATTEST_SERVICES for the null GUID) and verifies the
/// evidence presented as `presented` (service, manifest version, selector), with the default policy.
fn attest_and_verify(
    asked: Guid,
    presented: Option<(Guid, u32, &[u8])>,
) -> Result<Verified, svsm_attest::VerifyError> {
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
    let out = guest.attest(&nonce, asked, 0, None).expect("attest");
    let table = parse_certificate_table(&out.certificates).unwrap();
    let find = |g: Guid| Certificate::from_der(table.iter().find(|e| e.guid == g).unwrap().data).unwrap();
    let (ark, ask, vcek) = (find(CERT_TABLE_ARK_GUID), find(CERT_TABLE_ASK_GUID), find(CERT_TABLE_VCEK_GUID));
    let anchor = roots().ark.clone();
    let ev = Evidence {
        report: &out.report,
        manifest: &out.manifest,
        nonce: &nonce,
        selector: presented,
        trusted_ark: &anchor,
        ark: &ark,
        ask: &ask,
        vcek: &vcek,
    };
    verify_attestation(&ev, &VerifierPolicy::default())
}

/// Some other service's GUID (the UEFI variable service a later SVSM may offer).
const OTHER_SERVICE: Guid = Guid::from_fields(0x1234_5678, 0x9abc, 0xdef0, [1, 2, 3, 4, 5, 6, 7, 8]);

#[test]
fn a_single_service_report_verifies_for_the_service_it_was_requested_for() {
    let v = attest_and_verify(VTPM_SERVICE_GUID, Some((VTPM_SERVICE_GUID, 0, &[]))).expect("vTPM evidence");
    assert_eq!(v.services.len(), 1);
    assert_eq!(v.services[0].0, VTPM_SERVICE_GUID);
    assert!(v.ek.is_some(), "the vTPM EK was not reported");
}

#[test]
fn a_vtpm_report_presented_as_another_services_is_rejected() {
    let r = attest_and_verify(VTPM_SERVICE_GUID, Some((OTHER_SERVICE, 0, &[])));
    assert!(matches!(r, Err(VerifyError::ReportDataMismatch)), "{r:?}");
}

#[test]
fn a_vtpm_report_presented_as_another_manifest_version_is_rejected() {
    let r = attest_and_verify(VTPM_SERVICE_GUID, Some((VTPM_SERVICE_GUID, 1, &[])));
    assert!(matches!(r, Err(VerifyError::ReportDataMismatch)), "{r:?}");
}

#[test]
fn a_services_report_presented_as_a_single_service_one_is_rejected() {
    let r = attest_and_verify(Guid::NULL, Some((VTPM_SERVICE_GUID, 0, &[])));
    assert!(r.is_err(), "an ATTEST_SERVICES report passed as the vTPM's single-service report");
    // ...and it still verifies as what it is.
    let v = attest_and_verify(Guid::NULL, None).expect("services evidence");
    assert!(v.services.iter().any(|(g, _)| *g == VTPM_SERVICE_GUID));
}
