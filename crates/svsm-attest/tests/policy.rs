//! The verifier enforces the relying party's [`VerifierPolicy`]: guest policy (DEBUG refused), VMPL, minimum
//! TCB, measurement and HOST_DATA, certificate validity, CA constraints and AMD CRLs. One test per rule, each
//! with the secure default rejecting and a permitting policy accepting the same evidence.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::traits::PublicKeyParts;
use svsm_attest::chain::{SimulatedRoots, Tcb, check_constraints, sign_pss};
use svsm_attest::policy::{POLICY_DEBUG, POLICY_MIGRATE_MA};
use svsm_attest::verify::Evidence;
use svsm_attest::{
    CheckTime, SimulatedSnp, SimulatedSnpConfig, VerifierPolicy, VerifyError, verify_attestation,
};
use svsm_protocol::doubles::VtpmDouble;
use svsm_protocol::guest::{AttestOutput, DirectTransport, Guest};
use svsm_protocol::guid::{CERT_TABLE_ARK_GUID, CERT_TABLE_ASK_GUID, CERT_TABLE_VCEK_GUID};
use svsm_protocol::manifest::parse_certificate_table;
use svsm_protocol::model::{SimulatedRmp, SimulatedVcpus};
use svsm_protocol::{Guid, Svsm, SvsmConfig, VecGuestMemory};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::BasicConstraints;

fn roots() -> Arc<SimulatedRoots> {
    static ROOTS: OnceLock<Arc<SimulatedRoots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            Arc::new(SimulatedRoots::generate("Milan", &mut ChaCha20Rng::seed_from_u64(7)).expect("roots"))
        })
        .clone()
}

fn ek_modulus() -> [u8; 256] {
    static KEY: OnceLock<[u8; 256]> = OnceLock::new();
    *KEY.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut ChaCha20Rng::seed_from_u64(8), 2048).expect("rsa");
        key.n().to_bytes_be().try_into().expect("256 bytes")
    })
}

fn base_config() -> SimulatedSnpConfig {
    SimulatedSnpConfig { measurement: [0x4D; 48], host_data: [0x48; 32], ..Default::default() }
}

struct Attested {
    out: AttestOutput,
    nonce: [u8; 64],
    anchor: Certificate,
    ark: Certificate,
    ask: Certificate,
    vcek: Certificate,
}

impl Attested {
    fn evidence(&self) -> Evidence<'_> {
        Evidence {
            report: &self.out.report,
            manifest: &self.out.manifest,
            nonce: &self.nonce,
            selector: None,
            trusted_ark: &self.anchor,
            ark: &self.ark,
            ask: &self.ask,
            vcek: &self.vcek,
        }
    }

    fn verify(&self, policy: &VerifierPolicy) -> Result<(), VerifyError> {
        verify_attestation(&self.evidence(), policy).map(|_| ())
    }
}

/// Evidence for the vTPM from a simulated SNP platform with `config`.
fn attest(config: SimulatedSnpConfig, seed: u64) -> Attested {
    let snp = SimulatedSnp::new(roots(), config, &mut ChaCha20Rng::seed_from_u64(seed)).expect("platform");
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
    let nonce = [seed as u8; 64];
    let out = guest.attest(&nonce, Guid::NULL, 0, None).expect("attest");
    let table = parse_certificate_table(&out.certificates).expect("table");
    let find =
        |g: Guid| Certificate::from_der(table.iter().find(|e| e.guid == g).expect("entry").data).unwrap();
    let (ark, ask, vcek) = (find(CERT_TABLE_ARK_GUID), find(CERT_TABLE_ASK_GUID), find(CERT_TABLE_VCEK_GUID));
    Attested { out, nonce, anchor: roots().ark.clone(), ark, ask, vcek }
}

fn lax() -> VerifierPolicy {
    VerifierPolicy { allowed_policy_bits: u64::MAX, ..Default::default() }
}

#[test]
fn the_default_policy_accepts_an_ordinary_guest() {
    let a = attest(base_config(), 1);
    a.verify(&VerifierPolicy::default()).expect("VMPL0, SMT only, certificates current");
}

#[test]
fn a_debug_guest_is_refused_by_default() {
    let mut c = base_config();
    c.policy |= POLICY_DEBUG;
    let a = attest(c, 2);
    assert_eq!(
        a.verify(&VerifierPolicy::default()),
        Err(VerifyError::DebugGuest { policy: 0x3_0000 | POLICY_DEBUG })
    );
    a.verify(&lax()).expect("a policy that explicitly allows DEBUG accepts it");
}

#[test]
fn policy_flags_outside_the_allowed_set_are_refused() {
    let mut c = base_config();
    c.policy |= POLICY_MIGRATE_MA | (1 << 40);
    let policy = c.policy;
    let a = attest(c, 3);
    assert_eq!(
        a.verify(&VerifierPolicy::default()),
        Err(VerifyError::GuestPolicy { policy, disallowed: POLICY_MIGRATE_MA | (1 << 40) })
    );
    a.verify(&lax()).expect("allowed when the mask allows them");
}

#[test]
fn vmpl_zero_is_required_by_default() {
    let a = attest(SimulatedSnpConfig { vmpl: 1, ..base_config() }, 4);
    assert_eq!(a.verify(&VerifierPolicy::default()), Err(VerifyError::Vmpl { expected: 0, actual: 1 }));
    a.verify(&VerifierPolicy { required_vmpl: 1, ..Default::default() }).expect("VMPL1 when asked for");
}

#[test]
fn a_tcb_below_the_minimum_is_refused() {
    let t = base_config().tcb;
    let a = attest(base_config(), 5);
    a.verify(&VerifierPolicy { minimum_tcb: t, ..Default::default() }).expect("equal to the minimum");
    for min in [
        Tcb { bootloader: t.bootloader + 1, ..t },
        Tcb { tee: t.tee + 1, ..t },
        Tcb { snp: t.snp + 1, ..t },
        Tcb { microcode: t.microcode + 1, ..t },
    ] {
        assert_eq!(
            a.verify(&VerifierPolicy { minimum_tcb: min, ..Default::default() }),
            Err(VerifyError::TcbBelowMinimum {
                report: [t.bootloader, t.tee, t.snp, t.microcode],
                minimum: [min.bootloader, min.tee, min.snp, min.microcode]
            })
        );
    }
}

#[test]
fn expected_measurement_and_host_data_are_enforced() {
    let a = attest(base_config(), 6);
    let ok = VerifierPolicy {
        expected_measurement: Some([0x4D; 48]),
        expected_host_data: Some([0x48; 32]),
        ..Default::default()
    };
    a.verify(&ok).expect("both match");
    let mut m = [0x4D; 48];
    m[47] ^= 1;
    assert_eq!(
        a.verify(&VerifierPolicy { expected_measurement: Some(m), ..ok.clone() }),
        Err(VerifyError::MeasurementMismatch)
    );
    assert_eq!(
        a.verify(&VerifierPolicy { expected_host_data: Some([0; 32]), ..ok }),
        Err(VerifyError::HostDataMismatch)
    );
}

#[test]
fn certificates_outside_their_validity_period_are_refused() {
    let a = attest(base_config(), 7);
    let at = |secs: u64| VerifierPolicy {
        time: CheckTime::At(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        ..Default::default()
    };
    // 1990: before the simulated chain was issued.
    assert!(matches!(a.verify(&at(631_152_000)), Err(VerifyError::CertificateValidity { which: "ARK", .. })));
    // 2060: after every certificate expired (UTCTime ends in 2049).
    assert!(matches!(
        a.verify(&at(2_840_140_800)),
        Err(VerifyError::CertificateValidity { which: "ARK", .. })
    ));
}

fn resign_with_extensions(
    cert: &Certificate,
    key: &rsa::RsaPrivateKey,
    edit: impl FnOnce(&mut Vec<Extension>),
) -> Certificate {
    let mut tbs = cert.tbs_certificate.clone();
    edit(tbs.extensions.get_or_insert_with(Vec::new));
    sign_pss(key, tbs, &mut ChaCha20Rng::seed_from_u64(99)).expect("sign")
}

#[test]
fn ca_constraints_are_checked_on_every_certificate() {
    let mut a = attest(base_config(), 8);
    let r = roots();
    // An ASK that is not a CA (BasicConstraints removed), properly signed by the ARK.
    let good_ask = a.ask.clone();
    a.ask = resign_with_extensions(&good_ask, r.ark_key(), |e| {
        e.retain(|x| x.extn_id.to_string() != "2.5.29.19")
    });
    assert!(matches!(
        a.verify(&VerifierPolicy::default()),
        Err(VerifyError::CaConstraints { which: "ASK", .. })
    ));
    a.ask = good_ask;
    // A VCEK claiming to be a CA, properly signed by the ASK.
    let bc = BasicConstraints { ca: true, path_len_constraint: None }.to_der().unwrap();
    a.vcek = resign_with_extensions(&a.vcek, r.ask_key(), |e| {
        e.push(Extension {
            extn_id: "2.5.29.19".parse().unwrap(),
            critical: true,
            extn_value: der::asn1::OctetString::new(bc).unwrap(),
        })
    });
    assert!(matches!(
        a.verify(&VerifierPolicy::default()),
        Err(VerifyError::CaConstraints { which: "VCEK", .. })
    ));
    // AMD's real Milan ARK and ASK satisfy the CA rule.
    for (which, c) in [
        ("ARK", sev::certs::snp::builtin::milan::ark().unwrap()),
        ("ASK", sev::certs::snp::builtin::milan::ask().unwrap()),
    ] {
        let c = Certificate::from_der(&c.to_der().unwrap()).unwrap();
        check_constraints(which, &c, true).expect("AMD's CA certificate");
    }
}

#[test]
fn amd_crls_revoke_the_ask_or_the_vcek() {
    let a = attest(base_config(), 9);
    let r = roots();
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let with = |crls: Vec<Vec<u8>>| VerifierPolicy { crls, ..Default::default() };
    let ask_serial = a.ask.tbs_certificate.serial_number.clone();
    let vcek_serial = a.vcek.tbs_certificate.serial_number.clone();
    let other = x509_cert::serial_number::SerialNumber::new(&[0x77]).unwrap();

    let clean_ark_crl = r.issue_crl(false, std::slice::from_ref(&other), 86_400, &mut rng).unwrap();
    let clean_ask_crl = r.issue_crl(true, &[other], 86_400, &mut rng).unwrap();
    a.verify(&with(vec![clean_ark_crl.clone(), clean_ask_crl])).expect("nothing of ours revoked");

    let ark_crl = r.issue_crl(false, &[ask_serial], 86_400, &mut rng).unwrap();
    assert_eq!(a.verify(&with(vec![ark_crl])), Err(VerifyError::Revoked { which: "ASK" }));
    let ask_crl = r.issue_crl(true, &[vcek_serial], 86_400, &mut rng).unwrap();
    assert_eq!(a.verify(&with(vec![ask_crl])), Err(VerifyError::Revoked { which: "VCEK" }));

    // A CRL whose signature does not verify, garbage, and a stale CRL are errors, not "not revoked".
    let mut forged = clean_ark_crl.clone();
    let n = forged.len();
    forged[n - 10] ^= 1;
    assert!(matches!(a.verify(&with(vec![forged])), Err(VerifyError::Crl(_))));
    assert!(matches!(a.verify(&with(vec![vec![0x30, 0x03, 1, 2, 3]])), Err(VerifyError::Crl(_))));
    let stale = VerifierPolicy {
        crls: vec![clean_ark_crl],
        time: CheckTime::At(SystemTime::now() + Duration::from_secs(3 * 86_400)),
        ..Default::default()
    };
    assert!(matches!(a.verify(&stale), Err(VerifyError::Crl(_))));
}
