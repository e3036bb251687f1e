//! Guest client -> SVSM dispatcher -> attestation of the vTPM (double) on the simulated SNP platform ->
//! verifier; and the chain code against AMD's real Milan chain and the `sev` crate's own verifier.

use std::sync::{Arc, OnceLock};

use der::{Decode, Encode};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::traits::PublicKeyParts;
use svsm_attest::chain::{SimulatedRoots, Tcb, parse_certificate, verify_pss_signed};
use svsm_attest::verify::Evidence;
use svsm_attest::{SimulatedSnp, SimulatedSnpConfig, VerifierPolicy, VerifyError, verify_attestation};
use svsm_protocol::doubles::VtpmDouble;
use svsm_protocol::guest::{AttestOutput, DirectTransport, Guest};
use svsm_protocol::guid::{
    CERT_TABLE_ARK_GUID, CERT_TABLE_ASK_GUID, CERT_TABLE_VCEK_GUID, SERVICES_MANIFEST_GUID, VTPM_SERVICE_GUID,
};
use svsm_protocol::manifest::parse_certificate_table;
use svsm_protocol::model::{SimulatedRmp, SimulatedVcpus};
use svsm_protocol::{Guid, Svsm, SvsmConfig, VecGuestMemory};
use svsm_vtpm::manufacture::{self, EkKind};
use svsm_vtpm::marshal::{self, PublicKey, alg};
use x509_cert::Certificate;

/// One set of RSA-4096 roots per test binary (generation takes seconds).
fn roots() -> Arc<SimulatedRoots> {
    static ROOTS: OnceLock<Arc<SimulatedRoots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            Arc::new(SimulatedRoots::generate("Milan", &mut ChaCha20Rng::seed_from_u64(1)).expect("roots"))
        })
        .clone()
}

fn ek_modulus() -> [u8; 256] {
    static KEY: OnceLock<[u8; 256]> = OnceLock::new();
    *KEY.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut ChaCha20Rng::seed_from_u64(2), 2048).expect("rsa");
        key.n().to_bytes_be().try_into().expect("256 bytes")
    })
}

fn config() -> SimulatedSnpConfig {
    SimulatedSnpConfig { measurement: [0x4D; 48], host_data: [0x48; 32], ..Default::default() }
}

fn guest_with(snp: SimulatedSnp) -> Guest<DirectTransport> {
    let svsm = Svsm::new(
        SvsmConfig { svsm_base: 0x7f_0000, svsm_size: 0x1_0000, initial_caa: 0x1000 },
        Box::new(SimulatedRmp::new()),
        Box::new(SimulatedVcpus::new(1)),
        Some(Box::new(VtpmDouble::new(ek_modulus(), [3; 32]))),
        Box::new(snp),
    );
    Guest::new(
        DirectTransport { svsm, memory: VecGuestMemory::new(0, 8 << 20) },
        0x1000,
        0x10_0000,
        0x40_0000,
    )
}

fn platform(rng_seed: u64) -> SimulatedSnp {
    SimulatedSnp::new(roots(), config(), &mut ChaCha20Rng::seed_from_u64(rng_seed)).expect("platform")
}

struct Chain {
    ark: Certificate,
    ask: Certificate,
    vcek: Certificate,
}

fn chain_from_table(out: &AttestOutput) -> Chain {
    let table = parse_certificate_table(&out.certificates).expect("certificate table");
    let find = |g: Guid| {
        let der = table.iter().find(|e| e.guid == g).expect("entry").data;
        Certificate::from_der(der).expect("DER")
    };
    Chain { ark: find(CERT_TABLE_ARK_GUID), ask: find(CERT_TABLE_ASK_GUID), vcek: find(CERT_TABLE_VCEK_GUID) }
}

fn evidence<'a>(
    out: &'a AttestOutput,
    nonce: &'a [u8],
    chain: &'a Chain,
    anchor: &'a Certificate,
) -> Evidence<'a> {
    Evidence {
        report: &out.report,
        manifest: &out.manifest,
        nonce,
        // A single-service report is bound to the service it was requested for (the vTPM here).
        selector: (!out.manifest.starts_with(SERVICES_MANIFEST_GUID.as_bytes())).then_some((
            VTPM_SERVICE_GUID,
            0,
            &[][..],
        )),
        trusted_ark: anchor,
        ark: &chain.ark,
        ask: &chain.ask,
        vcek: &chain.vcek,
    }
}

#[test]
fn attestation_of_the_vtpm_verifies_end_to_end_and_every_flip_is_rejected() {
    let mut guest = guest_with(platform(10));
    let nonce = [0x5Au8; 64];
    let out = guest.attest(&nonce, Guid::NULL, 0, None).expect("attest");
    assert_eq!(out.report.len(), 1184);
    let chain = chain_from_table(&out);
    let anchor = roots().ark.clone();
    let ok = verify_attestation(&evidence(&out, &nonce, &chain, &anchor), &VerifierPolicy::default())
        .expect("verifies");
    assert_eq!(ok.report.version, 3);
    assert_eq!(ok.report.measurement, [0x4D; 48]);
    assert_eq!(ok.report.host_data, [0x48; 32]);
    let ek = ok.ek.expect("vTPM EK present");
    match &ek.public.key {
        PublicKey::Rsa { modulus, .. } => assert_eq!(modulus.as_slice(), ek_modulus()),
        other => panic!("not RSA: {other:?}"),
    }
    assert_eq!(ek.name, marshal::object_name(alg::SHA256, &ek.tpmt_public).expect("name"));
    assert!(ek.public_key_pem.expect("pem").starts_with("-----BEGIN PUBLIC KEY-----"));

    // A flipped byte anywhere the verdict depends on makes it reject, with the right reason.
    for (what, off, expect) in [
        ("report data", 0x50usize, VerifyError::ReportSignature),
        ("measurement", 0x90, VerifyError::ReportSignature),
        ("vmpl", 0x30, VerifyError::ReportSignature),
        ("signature R", 0x2A0, VerifyError::ReportSignature),
        ("signature S", 0x2E8 + 5, VerifyError::ReportSignature),
        ("signature padding", 0x2A0 + 60, VerifyError::ReportSignature),
    ] {
        let mut bad = out.clone();
        bad.report[off] ^= 0x01;
        assert_eq!(
            verify_attestation(&evidence(&bad, &nonce, &chain, &anchor), &VerifierPolicy::default()).err(),
            Some(expect),
            "{what}"
        );
    }
    for off in [0usize, 20, 30, 100, out.manifest.len() - 1] {
        let mut bad = out.clone();
        bad.manifest[off] ^= 0x80;
        assert_eq!(
            verify_attestation(&evidence(&bad, &nonce, &chain, &anchor), &VerifierPolicy::default()).err(),
            Some(VerifyError::ReportDataMismatch),
            "manifest byte {off}"
        );
    }
    for off in [0usize, 63] {
        let mut n = nonce;
        n[off] ^= 1;
        assert_eq!(
            verify_attestation(&evidence(&out, &n, &chain, &anchor), &VerifierPolicy::default()).err(),
            Some(VerifyError::ReportDataMismatch),
            "nonce byte {off}"
        );
    }
    assert_eq!(
        verify_attestation(&evidence(&out, &nonce[..32], &chain, &anchor), &VerifierPolicy::default()).err(),
        Some(VerifyError::NonceSize(32))
    );
    let mut short = out.clone();
    short.report.truncate(1000);
    assert!(matches!(
        verify_attestation(&evidence(&short, &nonce, &chain, &anchor), &VerifierPolicy::default()),
        Err(VerifyError::ReportFormat(_))
    ));
    let vmpl1 = VerifierPolicy { required_vmpl: 1, ..Default::default() };
    assert_eq!(
        verify_attestation(&evidence(&out, &nonce, &chain, &anchor), &vmpl1).err(),
        Some(VerifyError::Vmpl { expected: 1, actual: 0 })
    );
}

#[test]
fn chain_checks_reject_foreign_roots_swapped_certs_and_tcb_or_chip_mismatch() {
    let mut snp = platform(11);
    let mut guest = guest_with(snp.clone());
    let nonce = [1u8; 64];
    let out = guest.attest(&nonce, VTPM_SERVICE_GUID, 0, None).expect("attest");
    let chain = chain_from_table(&out);
    let anchor = roots().ark.clone();
    verify_attestation(&evidence(&out, &nonce, &chain, &anchor), &VerifierPolicy::default())
        .expect("single-service verifies");

    // AMD's real Milan ARK as anchor: our chain is not trusted.
    let amd_ark =
        Certificate::from_der(&sev::certs::snp::builtin::milan::ark().expect("ark").to_der().expect("der"))
            .expect("parse");
    assert_eq!(
        verify_attestation(&evidence(&out, &nonce, &chain, &amd_ark), &VerifierPolicy::default()).err(),
        Some(VerifyError::UntrustedRoot)
    );
    // ASK and VCEK swapped.
    let swapped = Chain { ark: chain.ark.clone(), ask: chain.vcek.clone(), vcek: chain.ask.clone() };
    assert!(matches!(
        verify_attestation(&evidence(&out, &nonce, &swapped, &anchor), &VerifierPolicy::default()),
        Err(VerifyError::ChainNameMismatch { .. } | VerifyError::CertificateSignature { .. })
    ));
    // A tampered VCEK (TBS byte flipped) fails its signature.
    let mut vcek_der = chain.vcek.to_der().expect("der");
    let n = vcek_der.len();
    vcek_der[n - 600] ^= 1;
    if let Ok(tampered) = Certificate::from_der(&vcek_der) {
        let bad = Chain { ark: chain.ark.clone(), ask: chain.ask.clone(), vcek: tampered };
        assert!(
            verify_attestation(&evidence(&out, &nonce, &bad, &anchor), &VerifierPolicy::default()).is_err()
        );
    }
    // A VCEK for another TCB / chip (same key): the report no longer matches its certificate.
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    snp.reissue_vcek(Tcb { bootloader: 3, tee: 0, snp: 15, microcode: 209 }, &config_chip(), &mut rng)
        .expect("reissue");
    let other = Chain { ark: chain.ark.clone(), ask: chain.ask.clone(), vcek: snp.vcek().clone() };
    assert_eq!(
        verify_attestation(&evidence(&out, &nonce, &other, &anchor), &VerifierPolicy::default()).err(),
        Some(VerifyError::TcbMismatch { report: [3, 0, 14, 209], vcek: [3, 0, 15, 209] })
    );
    snp.reissue_vcek(config().tcb, &[0xEE; 64], &mut rng).expect("reissue");
    let other = Chain { ark: chain.ark.clone(), ask: chain.ask.clone(), vcek: snp.vcek().clone() };
    assert_eq!(
        verify_attestation(&evidence(&out, &nonce, &other, &anchor), &VerifierPolicy::default()).err(),
        Some(VerifyError::ChipIdMismatch)
    );
}

fn config_chip() -> [u8; 64] {
    config().chip_id
}

#[test]
fn our_chain_code_accepts_amds_real_milan_chain() {
    let ark = parse_certificate(
        "ARK",
        &sev::certs::snp::builtin::milan::ark().expect("ark").to_der().expect("der"),
    )
    .expect("ARK");
    let ask = parse_certificate(
        "ASK",
        &sev::certs::snp::builtin::milan::ask().expect("ask").to_der().expect("der"),
    )
    .expect("ASK");
    verify_pss_signed("ARK", &ark, &ark).expect("AMD ARK is self-signed RSASSA-PSS SHA-384");
    verify_pss_signed("ASK", &ark, &ask).expect("AMD ASK is signed by the ARK");
    // And our simulated ARK did not sign AMD's ASK.
    assert!(verify_pss_signed("ASK", &roots().ark, &ask).is_err());
}

#[test]
fn the_sev_crates_own_verifier_accepts_our_chain_and_report() {
    use sev::certs::snp::{Certificate as SevCert, Chain as SevChain, Verifiable, ca};
    use sev::firmware::guest::AttestationReport;
    use sev::parser::ByteParser;
    let mut guest = guest_with(platform(13));
    let out = guest.attest(&[9; 64], Guid::NULL, 0, None).expect("attest");
    let c = chain_from_table(&out);
    let conv = |x: &Certificate| SevCert::from_der(&x.to_der().expect("der")).expect("sev cert");
    let chain = SevChain { ca: ca::Chain { ark: conv(&c.ark), ask: conv(&c.ask) }, vek: conv(&c.vcek) };
    let report = AttestationReport::from_bytes(&out.report).expect("sev parses our report");
    (&chain, &report).verify().expect("sev's verifier accepts the simulated chain and signature");
    let mut bad = out.report.clone();
    bad[0x90] ^= 1;
    let bad = AttestationReport::from_bytes(&bad).expect("parses");
    assert!((&chain, &bad).verify().is_err());
}

#[test]
fn selector_attestation_verifies_with_the_selector_binding() {
    let mut guest = guest_with(platform(14));
    let nonce = [0x33u8; 64];
    let mut selector = 1u64.to_le_bytes().to_vec();
    let mut template = EkKind::Rsa2048.template_bytes();
    template[7] |= 0x40;
    selector.extend_from_slice(&template);
    let out = guest.attest(&nonce, VTPM_SERVICE_GUID, 0, Some(&selector)).expect("attest ex");
    let chain = chain_from_table(&out);
    let anchor = roots().ark.clone();
    let mut ev = evidence(&out, &nonce, &chain, &anchor);
    assert_eq!(
        verify_attestation(&ev, &VerifierPolicy::default()).err(),
        Some(VerifyError::ReportDataMismatch),
        "plain binding must not match"
    );
    ev.selector = Some((VTPM_SERVICE_GUID, 0, &selector));
    let ok = verify_attestation(&ev, &VerifierPolicy::default()).expect("selector binding verifies");
    assert!(ok.ek.is_none(), "a userWithAuth key from the guest's template is not the EK");
    assert_eq!(ok.guest_template_key.expect("key").public.attributes, manufacture::EK_ATTRIBUTES | 0x40);
    let mut other = selector.clone();
    other[20] ^= 1;
    ev.selector = Some((VTPM_SERVICE_GUID, 0, &other));
    assert_eq!(
        verify_attestation(&ev, &VerifierPolicy::default()).err(),
        Some(VerifyError::ReportDataMismatch)
    );
}

#[test]
fn fuzz_verify_seeded_inputs_never_accept_or_panic() {
    use rand::RngCore;
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let mut buf = vec![0u8; 1600];
    for i in 0..300 {
        let len = (i * 13) % buf.len();
        rng.fill_bytes(&mut buf[..len]);
        svsm_attest::fuzzing::verify(&buf[..len]);
    }
    svsm_attest::fuzzing::verify(&[]);
    svsm_attest::fuzzing::verify(&EkKind::Rsa2048.template_bytes());
}
