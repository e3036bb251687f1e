//! Protocol behaviour as a guest sees it: result codes, the Linux retry contract, and layout against the
//! reference byte tables.

use std::sync::{Arc, Mutex, OnceLock};

use rand::SeedableRng;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha512};
use svsm_protocol::api::{
    PageSize, PageStatePlatform, PvalidateFailure, SnpPlatform, SnpReportResponse, VtpmService,
};
use svsm_protocol::attest::{report_data, report_data_with_selector};
use svsm_protocol::doubles::{UnsignedReportDouble, VtpmDouble};
use svsm_protocol::error::*;
use svsm_protocol::guest::{DirectTransport, Guest, GuestError};
use svsm_protocol::guid::{CERT_TABLE_VCEK_GUID, VTPM_SERVICE_GUID};
use svsm_protocol::manifest::{build_certificate_table, parse_services_manifest};
use svsm_protocol::model::{SimulatedRmp, SimulatedVcpus};
use svsm_protocol::wire::*;
use svsm_protocol::*;
use svsm_vtpm::manufacture::{self, EkKind};
use svsm_vtpm::marshal::{self, PublicArea, PublicKey, alg, cc, cmd};

const MEM_SIZE: usize = 8 << 20;
const SVSM_BASE: u64 = 0x7f_0000;
const CAA: u64 = 0x1000;
const FREE_START: u64 = 0x10_0000;
const FREE_END: u64 = 0x20_0000;
const SCRATCH: u64 = 0x8000; // ops placed by hand

/// One real RSA-2048 key per test binary (the EK the vTPM double reports).
fn ek_modulus() -> [u8; 256] {
    static KEY: OnceLock<[u8; 256]> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa keygen");
        let n = key.n().to_bytes_be();
        n.try_into().expect("256-byte modulus")
    })
}

#[derive(Clone)]
struct Shared<T>(Arc<Mutex<T>>);
impl PageStatePlatform for Shared<SimulatedRmp> {
    fn pvalidate(&mut self, gpa: u64, size: PageSize, validate: bool) -> Result<(), PvalidateFailure> {
        self.0.lock().expect("lock").pvalidate(gpa, size, validate)
    }
}
impl VtpmService for Shared<VtpmDouble> {
    fn send_command(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, VtpmError> {
        self.0.lock().expect("lock").send_command(locality, command)
    }
}
impl SnpPlatform for Shared<UnsignedReportDouble> {
    fn request_report(
        &mut self,
        rd: &[u8; 64],
        c: CertificateRequest,
    ) -> Result<SnpReportResponse, PlatformError> {
        self.0.lock().expect("lock").request_report(rd, c)
    }
}

struct World {
    guest: Guest<DirectTransport>,
    rmp: Shared<SimulatedRmp>,
    vtpm: Shared<VtpmDouble>,
    snp: Shared<UnsignedReportDouble>,
}

fn world_with(vtpm_present: bool, certs: Vec<u8>) -> World {
    let rmp = Shared(Arc::new(Mutex::new(SimulatedRmp::new())));
    let vtpm = Shared(Arc::new(Mutex::new(VtpmDouble::new(ek_modulus(), [1; 32]))));
    let snp =
        Shared(Arc::new(Mutex::new(UnsignedReportDouble { certificates: certs, ..Default::default() })));
    let svsm = Svsm::new(
        SvsmConfig { svsm_base: SVSM_BASE, svsm_size: 0x1_0000, initial_caa: CAA },
        Box::new(rmp.clone()),
        Box::new(SimulatedVcpus::new(4)),
        if vtpm_present { Some(Box::new(vtpm.clone())) } else { None },
        Box::new(snp.clone()),
    );
    let transport = DirectTransport { svsm, memory: VecGuestMemory::new(0, MEM_SIZE) };
    World { guest: Guest::new(transport, CAA, FREE_START, FREE_END), rmp, vtpm, snp }
}

fn world() -> World {
    world_with(true, Vec::new())
}

impl World {
    fn call(&mut self, rax: u64, rcx: u64, rdx: u64, r8: u64) -> Registers {
        let mut regs = Registers { rax, rcx, rdx, r8, r9: 0 };
        let _ = self.guest.call(&mut regs);
        regs
    }
    fn mem(&mut self) -> &mut VecGuestMemory {
        &mut self.guest.transport.memory
    }
    fn write(&mut self, gpa: u64, data: &[u8]) {
        self.mem().write(gpa, data).expect("write");
    }
    fn read(&mut self, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.mem().read(gpa, &mut b).expect("read");
        b
    }
    /// A well-formed ATTEST_SERVICES op at SCRATCH with buffers at 0x20000.. and the nonce at 0x11000.
    fn services_op(&mut self) -> AttestServicesOp {
        self.write(0x11000, &[0x42; 64]);
        AttestServicesOp {
            report_gpa: 0x20000,
            report_size: 4096,
            nonce_gpa: 0x11000,
            nonce_size: 64,
            manifest_gpa: 0x21000,
            manifest_size: 4096,
            certificates_gpa: 0x22000,
            certificates_size: 0x4000,
            ..Default::default()
        }
    }
    fn attest_raw(&mut self, call: u32, op: &[u8]) -> Registers {
        self.write(SCRATCH, op);
        self.call(call_rax(1, call), SCRATCH, u64::MAX, u64::MAX)
    }
}

type Mutator = Box<dyn Fn(&mut AttestServicesOp)>;

fn code(r: &Registers) -> u32 {
    r.rax as u32
}

#[test]
fn op_structs_encode_fields_at_reference_offsets() {
    let op = AttestServicesOp {
        report_gpa: 0x1111_1111_1111_1000,
        report_size: 0x2222_2222,
        reserved0: 0x3333_3333,
        nonce_gpa: 0x4444_4444_4444_4444,
        nonce_size: 0x5555,
        reserved1: [0x66; 6],
        manifest_gpa: 0x7777_7777_7777_7777,
        manifest_size: 0x8888_8888,
        reserved2: 0x9999_9999,
        certificates_gpa: 0xAAAA_AAAA_AAAA_AAAA,
        certificates_size: 0xBBBB_BBBB,
        reserved3: 0xCCCC_CCCC,
    };
    let b = op.encode();
    let expect: &[(usize, &[u8])] = &[
        (0x00, &0x1111_1111_1111_1000u64.to_le_bytes()),
        (0x08, &[0x22; 4]),
        (0x0C, &[0x33; 4]),
        (0x10, &[0x44; 8]),
        (0x18, &[0x55; 2]),
        (0x1A, &[0x66; 6]),
        (0x20, &[0x77; 8]),
        (0x28, &[0x88; 4]),
        (0x2C, &[0x99; 4]),
        (0x30, &[0xAA; 8]),
        (0x38, &[0xBB; 4]),
        (0x3C, &[0xCC; 4]),
    ];
    for (off, bytes) in expect {
        assert_eq!(&b[*off..*off + bytes.len()], *bytes, "offset {off:#x}");
    }
    assert_eq!(AttestServicesOp::decode(&b), op);
    let single = AttestSingleServiceOp {
        base: op,
        service_guid: [0xDD; 16],
        manifest_version: 0xEEEE_EEEE,
        reserved: 0x0F0F_0F0F,
    };
    let s = single.encode();
    assert_eq!(&s[0x40..0x50], &[0xDD; 16]);
    assert_eq!(&s[0x50..0x54], &[0xEE; 4]);
    assert_eq!(&s[0x54..0x58], &[0x0F; 4]);
    assert_eq!(AttestSingleServiceOp::decode(&s), single);
    let ex = AttestSingleServiceExOp {
        single,
        selector_gpa: 0x0102_0304_0506_0708,
        selector_size: 0x1357_9BDF,
        reserved: 0x2468_ACE0,
    };
    let e = ex.encode();
    assert_eq!(&e[0x58..0x60], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(&e[0x60..0x64], &0x1357_9BDFu32.to_le_bytes());
    assert_eq!(&e[0x64..0x68], &0x2468_ACE0u32.to_le_bytes());
    assert_eq!(AttestSingleServiceExOp::decode(&e), ex);
    let h = PvalidateListHeader { num_entries: 0x0102, next: 0x0304, reserved: 0x0506_0708 };
    assert_eq!(h.encode(), [0x02, 0x01, 0x04, 0x03, 0x08, 0x07, 0x06, 0x05]);
    assert_eq!(pvalidate_entry::encode(0x20_0000, true, true, true), 0x20_0000 | 1 | 4 | 8);
    assert_eq!(call_rax(2, 1), 0x0000_0002_0000_0001);
}

#[test]
fn linux_nonce_len_u32_is_compatible_with_u16_nonce_size() {
    // Linux writes `u32 len` at 0x18; its high half must land in reserved bytes that are zero.
    let mut w = world();
    let op = w.services_op();
    let mut bytes = op.encode();
    bytes[0x18..0x1C].copy_from_slice(&64u32.to_le_bytes());
    let r = w.attest_raw(0, &bytes);
    assert_eq!(code(&r), SVSM_SUCCESS);
}

#[test]
fn query_protocol_advertises_supported_versions() {
    let mut w = world();
    assert_eq!(w.guest.query_protocol(0, 1), Ok(Some((1, 1))));
    assert_eq!(w.guest.query_protocol(0, 2), Ok(None));
    assert_eq!(w.guest.query_protocol(1, 1), Ok(Some((2, 1))));
    assert_eq!(w.guest.query_protocol(1, 2), Ok(Some((2, 1))));
    assert_eq!(w.guest.query_protocol(1, 3), Ok(None));
    assert_eq!(w.guest.query_protocol(2, 1), Ok(Some((1, 1))));
    assert_eq!(w.guest.query_protocol(3, 1), Ok(None));
    assert_eq!(w.guest.query_protocol(0, 0), Ok(None));
    let mut nov = world_with(false, Vec::new());
    assert_eq!(nov.guest.query_protocol(2, 1), Ok(None));
    let r = nov.call(call_rax(2, 0), 0, 0, 0);
    assert_eq!(code(&r), SVSM_ERR_UNSUPPORTED_PROTOCOL);
}

#[test]
fn unknown_protocols_and_calls_have_precise_codes() {
    let mut w = world();
    for (rax, expect) in [
        (call_rax(9, 0), SVSM_ERR_UNSUPPORTED_PROTOCOL),
        (call_rax(3, 0), SVSM_ERR_UNSUPPORTED_PROTOCOL),
        (call_rax(0, 4), SVSM_ERR_UNSUPPORTED_CALL),
        (call_rax(0, 5), SVSM_ERR_UNSUPPORTED_CALL),
        (call_rax(0, 8), SVSM_ERR_UNSUPPORTED_CALL),
        (call_rax(1, 3), SVSM_ERR_UNSUPPORTED_CALL),
        (call_rax(2, 2), SVSM_ERR_UNSUPPORTED_CALL),
        (call_rax(0, 7), SVSM_ERR_INVALID_REQUEST), // CONFIGURE_VTOM set
    ] {
        let r = w.call(rax, 0, 0, 0);
        assert_eq!(code(&r), expect, "rax {rax:#x}");
    }
    let r = w.call(call_rax(0, 7), 1, 0, 0);
    assert_eq!((code(&r), r.rcx), (SVSM_SUCCESS, 0));
}

#[test]
fn call_pending_clear_means_not_serviced() {
    let mut w = world();
    let mut regs = Registers { rax: call_rax(0, 6), rcx: 1u64 << 32 | 1, ..Default::default() };
    let DirectTransport { svsm, memory } = &mut w.guest.transport;
    assert!(!svsm.service_vmgexit(memory, &mut regs));
    assert_eq!(regs.rcx, 1u64 << 32 | 1, "nothing ran");
}

#[test]
fn attest_services_end_to_end_with_exact_sizes() {
    let certs = build_certificate_table(&[(CERT_TABLE_VCEK_GUID, &[9u8; 1000][..])]).expect("table");
    let mut w = world_with(true, certs.clone());
    let nonce = [0x17u8; 64];
    let out = w.guest.attest(&nonce, Guid::NULL, 0, None).expect("attest");
    assert_eq!(out.retries, 0);
    assert_eq!(out.report.len(), SNP_REPORT_SIZE);
    assert_eq!(out.certificates, certs, "exactly the table, not 16 KiB");
    let services = parse_services_manifest(&out.manifest).expect("manifest parses");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].guid, VTPM_SERVICE_GUID);
    let ek = PublicArea::parse(services[0].data).expect("EK TPMT_PUBLIC");
    match ek.key {
        PublicKey::Rsa { key_bits, modulus, .. } => {
            assert_eq!(key_bits, 2048);
            assert_eq!(modulus, ek_modulus());
        }
        other => panic!("EK is not RSA: {other:?}"),
    }
    assert_eq!(ek.attributes, manufacture::EK_ATTRIBUTES);
    let expected: [u8; 64] = Sha512::new().chain_update(nonce).chain_update(&out.manifest).finalize().into();
    assert_eq!(&out.report[0x50..0x90], &expected);
    assert_eq!(report_data(&nonce, &out.manifest), expected);
    // The EK is created once and cached; no transient object leaks.
    let again = w.guest.attest(&nonce, Guid::NULL, 0, None).expect("attest");
    assert_eq!(again.manifest, out.manifest);
    let v = w.vtpm.0.lock().expect("lock");
    assert_eq!(v.commands.iter().filter(|c| **c == cc::CREATE_PRIMARY).count(), 1);
    assert_eq!(v.loaded_objects(), 0);
}

#[test]
fn single_service_returns_the_ek_tpmt_public_alone() {
    let mut w = world();
    let nonce = [3u8; 64];
    let out = w.guest.attest(&nonce, VTPM_SERVICE_GUID, 0, None).expect("attest");
    assert!(out.certificates.is_empty(), "no certificates on this host");
    let ek = PublicArea::parse(&out.manifest).expect("TPMT_PUBLIC");
    assert_eq!(ek.name_alg, alg::SHA256);
    // REPORT_DATA binds the service GUID and manifest version (a deviation from spec 1.00's
    // SHA-512(nonce || manifest), docs/svsm-protocols.md).
    assert_eq!(
        &out.report[0x50..0x90],
        &report_data_with_selector(&nonce, VTPM_SERVICE_GUID, 0, &[], &out.manifest)
    );
    assert_ne!(&out.report[0x50..0x90], &report_data(&nonce, &out.manifest));
}

#[test]
fn too_small_buffers_return_all_sizes_and_linux_retries_once() {
    // A 20000-byte certificate table exceeds Linux's 16 KiB: one INVALID_PARAMETER round with RDX = 20480.
    let certs = build_certificate_table(&[(CERT_TABLE_VCEK_GUID, &[5u8; 19000][..])]).expect("table");
    let mut w = world_with(true, certs.clone());
    let out = w.guest.attest(&[1; 64], Guid::NULL, 0, None).expect("attest");
    assert_eq!(out.retries, 1);
    assert_eq!(out.certificates, certs);
    assert_eq!(w.guest.calls, 2);

    // By hand: a 512-byte report buffer and a 16-byte manifest buffer.
    let mut w = world();
    let mut op = w.services_op();
    op.report_size = 512;
    op.manifest_size = 16;
    let r = w.attest_raw(0, &op.encode());
    assert_eq!(code(&r), SVSM_ERR_INVALID_PARAMETER);
    assert_eq!(r.r8, SNP_REPORT_SIZE as u64);
    assert_eq!(r.rcx, 24 + 24 + 314);
    assert_eq!(r.rdx, 0);
    assert!(w.read(0x20000, 16).iter().all(|b| *b == 0), "nothing written on failure");
}

fn expect_untouched_sizes(r: &Registers, expect: u32) {
    assert_eq!(code(r), expect);
    assert_eq!((r.rcx, r.rdx, r.r8), (SCRATCH, u64::MAX, u64::MAX), "size registers must be untouched");
}

#[test]
fn every_reserved_field_is_rejected_without_sizes() {
    let mut w = world();
    let base = w.services_op();
    let reserved: Vec<usize> = (0x0C..0x10).chain(0x1A..0x20).chain(0x2C..0x30).chain(0x3C..0x40).collect();
    for off in &reserved {
        let mut b = base.encode();
        b[*off] = 1;
        expect_untouched_sizes(&w.attest_raw(0, &b), SVSM_ERR_INVALID_PARAMETER);
    }
    let single =
        AttestSingleServiceOp { base, service_guid: VTPM_SERVICE_GUID.0, manifest_version: 0, reserved: 0 };
    for off in reserved.iter().copied().chain(0x54..0x58) {
        let mut b = single.encode();
        b[off] = 0x80;
        expect_untouched_sizes(&w.attest_raw(1, &b), SVSM_ERR_INVALID_PARAMETER);
    }
    let ex = AttestSingleServiceExOp { single, selector_gpa: 0, selector_size: 0, reserved: 0 };
    for off in reserved.iter().copied().chain(0x54..0x58).chain(0x64..0x68) {
        let mut b = ex.encode();
        b[off] = 2;
        expect_untouched_sizes(&w.attest_raw(2, &b), SVSM_ERR_INVALID_PARAMETER);
    }
    // Sanity: the clean ops succeed.
    assert_eq!(code(&w.attest_raw(0, &base.encode())), SVSM_SUCCESS);
    assert_eq!(code(&w.attest_raw(1, &single.encode())), SVSM_SUCCESS);
    assert_eq!(code(&w.attest_raw(2, &ex.encode())), SVSM_SUCCESS);
}

#[test]
fn misaligned_buffers_and_bad_nonces_are_invalid_parameter() {
    let mut w = world();
    let base = w.services_op();
    let cases: Vec<(&str, Mutator)> = vec![
        ("report misaligned", Box::new(|o| o.report_gpa += 8)),
        ("manifest misaligned", Box::new(|o| o.manifest_gpa += 0x800)),
        ("certs misaligned", Box::new(|o| o.certificates_gpa += 1)),
        ("nonce 32 bytes", Box::new(|o| o.nonce_size = 32)),
        ("nonce 0 bytes", Box::new(|o| o.nonce_size = 0)),
        ("nonce 65 bytes", Box::new(|o| o.nonce_size = 65)),
        ("nonce crosses page", Box::new(|o| o.nonce_gpa = 0x11fc8)),
        ("nonce crosses page by one", Box::new(|o| o.nonce_gpa = 0x11fc1)),
    ];
    for (what, f) in cases {
        let mut op = base;
        f(&mut op);
        let r = w.attest_raw(0, &op.encode());
        assert_eq!(code(&r), SVSM_ERR_INVALID_PARAMETER, "{what}");
        assert_eq!((r.rdx, r.r8), (u64::MAX, u64::MAX), "{what}: sizes untouched");
    }
    // A nonce ending exactly at the page end, and a misaligned cert buffer with size 0, are fine.
    let mut op = base;
    op.nonce_gpa = 0x11fc0;
    assert_eq!(code(&w.attest_raw(0, &op.encode())), SVSM_SUCCESS);
    let mut op = base;
    op.certificates_gpa = 0x123;
    op.certificates_size = 0;
    let r = w.attest_raw(0, &op.encode());
    assert_eq!((code(&r), r.rdx), (SVSM_SUCCESS, 0));
}

#[test]
fn out_of_memory_and_svsm_memory_are_invalid_address() {
    let mut w = world();
    let base = w.services_op();
    for (what, f) in [
        (
            "report in SVSM memory",
            Box::new(|o: &mut AttestServicesOp| o.report_gpa = SVSM_BASE)
                as Box<dyn Fn(&mut AttestServicesOp)>,
        ),
        ("manifest beyond memory", Box::new(|o| o.manifest_gpa = MEM_SIZE as u64)),
        ("nonce beyond memory", Box::new(|o| o.nonce_gpa = 1 << 40)),
        ("certs overlapping SVSM", Box::new(|o| o.certificates_gpa = SVSM_BASE - 0x1000)),
    ] {
        let mut op = base;
        f(&mut op);
        assert_eq!(code(&w.attest_raw(0, &op.encode())), SVSM_ERR_INVALID_ADDRESS, "{what}");
    }
    let r = w.call(call_rax(1, 0), MEM_SIZE as u64 - 8, u64::MAX, u64::MAX);
    assert_eq!(code(&r), SVSM_ERR_INVALID_ADDRESS, "op struct crossing the end of memory");
    let r = w.call(call_rax(1, 0), u64::MAX - 4, u64::MAX, u64::MAX);
    assert_eq!(code(&r), SVSM_ERR_INVALID_ADDRESS, "op gPA wrapping");
}

#[test]
fn unknown_guid_and_version_fail_without_linux_retrying() {
    let mut w = world();
    let other = Guid::parse("a4453a59-9e1b-4787-a033-1986d6adbe55").expect("guid");
    assert_eq!(
        w.guest.attest(&[0; 64], other, 0, None),
        Err(GuestError::Svsm(SVSM_ERR_UNSUPPORTED_PROTOCOL))
    );
    assert_eq!(w.guest.calls, 1);
    assert_eq!(
        w.guest.attest(&[0; 64], VTPM_SERVICE_GUID, 1, None),
        Err(GuestError::Svsm(SVSM_ERR_INVALID_PARAMETER))
    );
    assert_eq!(w.guest.calls, 2, "INVALID_PARAMETER without larger sizes: Linux gives up at once");
    let mut nov = world_with(false, Vec::new());
    assert_eq!(
        nov.guest.attest(&[0; 64], VTPM_SERVICE_GUID, 0, None),
        Err(GuestError::Svsm(SVSM_ERR_UNSUPPORTED_PROTOCOL))
    );
    // Without a vTPM the services manifest is empty but valid.
    let out = nov.guest.attest(&[0; 64], Guid::NULL, 0, None).expect("attest");
    assert_eq!(parse_services_manifest(&out.manifest).expect("parses").len(), 0);
}

#[test]
fn report_request_failure_is_protocol_code_0x80001000() {
    let mut w = world();
    w.snp.0.lock().expect("lock").fail = true;
    assert_eq!(
        w.guest.attest(&[0; 64], Guid::NULL, 0, None),
        Err(GuestError::Svsm(SVSM_ATTEST_REPORT_FAILED))
    );
    assert_eq!(w.guest.calls, 1);
}

fn selector(kind: u64, template: &[u8]) -> Vec<u8> {
    let mut s = kind.to_le_bytes().to_vec();
    s.extend_from_slice(template);
    s
}

#[test]
fn selector_extension_creates_the_requested_primary_and_binds_it() {
    let mut w = world();
    let nonce = [0x77u8; 64];
    // A different RSA-2048 template (storage key style: userWithAuth added).
    let mut template = EkKind::Rsa2048.template_bytes();
    template[7] |= 0x40;
    let sel = selector(1, &template);
    let out = w.guest.attest(&nonce, VTPM_SERVICE_GUID, 0, Some(&sel)).expect("attest ex");
    let public = PublicArea::parse(&out.manifest).expect("TPMT_PUBLIC");
    assert_eq!(public.attributes, manufacture::EK_ATTRIBUTES | 0x40);
    assert_eq!(
        &out.report[0x50..0x90],
        &report_data_with_selector(&nonce, VTPM_SERVICE_GUID, 0, &sel, &out.manifest)
    );
    assert_ne!(&out.report[0x50..0x90], &report_data(&nonce, &out.manifest));
    assert_eq!(w.vtpm.0.lock().expect("lock").loaded_objects(), 0, "transient object flushed");
    // Selector size 0 behaves exactly like SINGLE_SERVICE.
    let plain = w.guest.attest(&nonce, VTPM_SERVICE_GUID, 0, Some(&[])).expect("ex without selector");
    let single = w.guest.attest(&nonce, VTPM_SERVICE_GUID, 0, None).expect("single");
    assert_eq!(plain.manifest, single.manifest);
    assert_eq!(plain.report, single.report);
    // Repeated EX calls never exhaust transient slots.
    for _ in 0..5 {
        w.guest.attest(&nonce, VTPM_SERVICE_GUID, 0, Some(&sel)).expect("repeat");
    }
}

#[test]
fn selector_errors_are_never_invalid_parameter() {
    let mut w = world();
    let nonce = [0u8; 64];
    let mut rsa3072 = EkKind::Rsa2048.template_bytes();
    rsa3072[50..52].copy_from_slice(&3072u16.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("unknown kind", selector(2, &EkKind::Rsa2048.template_bytes()), SVSM_ATTEST_SELECTOR_INVALID),
        ("kind 0", selector(0, &[]), SVSM_ATTEST_SELECTOR_INVALID),
        ("shorter than kind", vec![1, 0, 0, 0], SVSM_ATTEST_SELECTOR_INVALID),
        (
            "truncated template",
            selector(1, &EkKind::Rsa2048.template_bytes()[..100]),
            SVSM_ATTEST_SELECTOR_INVALID,
        ),
        (
            "trailing bytes",
            selector(1, &[EkKind::Rsa2048.template_bytes(), vec![0]].concat()),
            SVSM_ATTEST_SELECTOR_INVALID,
        ),
        ("too large", vec![0u8; 65544], SVSM_ATTEST_SELECTOR_INVALID),
        (
            "ECC refused by this TPM",
            selector(1, &EkKind::EccP256.template_bytes()),
            SVSM_ATTEST_TPM_RC_BASE + 0xA6,
        ),
        ("RSA-3072 refused by this TPM", selector(1, &rsa3072), SVSM_ATTEST_TPM_RC_BASE + 0x87),
    ];
    for (what, sel, expect) in cases {
        let before = w.guest.calls;
        assert_eq!(
            w.guest.attest(&nonce, VTPM_SERVICE_GUID, 0, Some(&sel)),
            Err(GuestError::Svsm(expect)),
            "{what}"
        );
        assert_eq!(w.guest.calls, before + 1, "{what}: exactly one call, no retry");
        assert_ne!(expect, SVSM_ERR_INVALID_PARAMETER);
    }
    // A selector outside guest memory is an address error.
    let mut op = AttestSingleServiceExOp {
        single: AttestSingleServiceOp {
            base: w.services_op(),
            service_guid: VTPM_SERVICE_GUID.0,
            manifest_version: 0,
            reserved: 0,
        },
        selector_gpa: MEM_SIZE as u64 - 4,
        selector_size: 16,
        reserved: 0,
    };
    assert_eq!(code(&w.attest_raw(2, &op.encode())), SVSM_ERR_INVALID_ADDRESS);
    // Any alignment is fine for the selector.
    let sel = selector(1, &EkKind::Rsa2048.template_bytes());
    w.write(0x30003, &sel);
    op.selector_gpa = 0x30003;
    op.selector_size = sel.len() as u32;
    assert_eq!(code(&w.attest_raw(2, &op.encode())), SVSM_SUCCESS);
}

#[test]
fn vtpm_query_and_get_random_through_the_tpm_svsm_path() {
    let mut w = world();
    assert_eq!(w.guest.vtpm_probe(), Ok(true));
    let r = w.call(call_rax(2, 0), 0, 7, 0);
    assert_eq!((code(&r), r.rcx, r.rdx), (SVSM_SUCCESS, 0x100, 0));
    let resp =
        w.guest.tpm_command(0x40000, &cmd::get_random(32).expect("GetRandom frames")).expect("GetRandom");
    let bytes = marshal::random_bytes(&resp).expect("response parses");
    assert_eq!(bytes.len(), 32);
    let resp2 = w
        .guest
        .tpm_command(0x40123, &cmd::get_random(32).expect("GetRandom frames"))
        .expect("unaligned buffer is fine");
    assert_ne!(marshal::random_bytes(&resp2).expect("parses"), bytes);
    // TPM-level errors travel in the response with SVSM_SUCCESS.
    let resp = w.guest.tpm_command(0x40000, &[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x99]).expect("sent");
    assert_eq!(marshal::response_code(&resp).expect("hdr"), 0x143);
}

#[test]
fn vtpm_cmd_rejections_have_precise_codes() {
    let mut w = world();
    let req = |w: &mut World, platform: u32, locality: u8, size: u32| {
        let mut b = platform.to_le_bytes().to_vec();
        b.push(locality);
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&cmd::get_random(8).expect("GetRandom frames"));
        w.write(0x40000, &b);
        code(&w.call(call_rax(2, 1), 0x40000, 0, 0))
    };
    assert_eq!(req(&mut w, 8, 0, 12), SVSM_SUCCESS);
    assert_eq!(req(&mut w, 1, 0, 12), SVSM_ERR_UNSUPPORTED_CALL, "POWER_ON exists but is not offered");
    assert_eq!(req(&mut w, 11, 0, 12), SVSM_ERR_UNSUPPORTED_CALL);
    assert_eq!(req(&mut w, 99, 0, 12), SVSM_ERR_INVALID_PARAMETER);
    assert_eq!(req(&mut w, 8, 1, 12), SVSM_ERR_INVALID_PARAMETER, "locality");
    assert_eq!(req(&mut w, 8, 0, 4088), SVSM_ERR_INVALID_PARAMETER, "oversize");
    assert_eq!(req(&mut w, 8, 0, u32::MAX), SVSM_ERR_INVALID_PARAMETER, "oversize");
    assert_eq!(code(&w.call(call_rax(2, 1), 0, 0, 0)), SVSM_ERR_INVALID_PARAMETER, "null buffer");
    assert_eq!(code(&w.call(call_rax(2, 1), MEM_SIZE as u64 - 4095, 0, 0)), SVSM_ERR_INVALID_ADDRESS);
    assert_eq!(code(&w.call(call_rax(2, 1), SVSM_BASE, 0, 0)), SVSM_ERR_INVALID_ADDRESS);
    assert_eq!(
        w.guest.tpm_command(0x40000, &[0u8; 4088]),
        Err(GuestError::Invalid("TPM command longer than 4087 bytes"))
    );
}

#[test]
fn remap_ca_validates_and_moves_the_calling_area() {
    let mut w = world();
    assert_eq!(code(&w.call(call_rax(0, 0), 0x5008, 0, 0)), SVSM_ERR_INVALID_PARAMETER);
    assert_eq!(code(&w.call(call_rax(0, 0), MEM_SIZE as u64, 0, 0)), SVSM_ERR_INVALID_ADDRESS);
    assert_eq!(code(&w.call(call_rax(0, 0), SVSM_BASE, 0, 0)), SVSM_ERR_INVALID_ADDRESS);
    w.write(0x5000, &[0xEE; 4096]);
    assert_eq!(code(&w.call(call_rax(0, 0), 0x5000, 0, 0)), SVSM_SUCCESS);
    assert!(w.read(0x5000, 4096).iter().all(|b| *b == 0), "new CA zeroed");
    assert_eq!(w.guest.transport.svsm.calling_area(), 0x5000);
    // The old CA no longer works; the new one does.
    assert_eq!(w.guest.query_protocol(0, 1), Err(GuestError::NotServiced));
    w.guest.caa = 0x5000;
    assert_eq!(w.guest.query_protocol(0, 1), Ok(Some((1, 1))));
}

fn write_list(w: &mut World, gpa: u64, num: u16, next: u16, reserved: u32, entries: &[u64]) {
    let mut b = PvalidateListHeader { num_entries: num, next, reserved }.encode().to_vec();
    for e in entries {
        b.extend_from_slice(&e.to_le_bytes());
    }
    w.write(gpa, &b);
}

fn next_of(w: &mut World, gpa: u64) -> u16 {
    let b = w.read(gpa + 2, 2);
    u16::from_le_bytes([b[0], b[1]])
}

#[test]
fn pvalidate_list_rules_and_next_index() {
    let mut w = world();
    let list = CAA + 8;
    let v = |gpa: u64| pvalidate_entry::encode(gpa, false, true, false);
    let pv = |w: &mut World, gpa: u64| code(&w.call(call_rax(0, 1), gpa, 0, 0));
    write_list(&mut w, list, 3, 0, 0xDEAD_BEEF, &[v(0x30_0000), v(0x30_1000), v(0x30_2000)]);
    assert_eq!(pv(&mut w, list), SVSM_SUCCESS, "garbage in the header's reserved word is ignored (Linux)");
    assert_eq!(next_of(&mut w, list), 3);
    assert!(w.rmp.0.lock().expect("lock").is_validated(0x30_1000));

    assert_eq!(pv(&mut w, list + 4), SVSM_ERR_INVALID_PARAMETER, "misaligned list");
    write_list(&mut w, list, 0, 0, 0, &[]);
    assert_eq!(pv(&mut w, list), SVSM_ERR_INVALID_PARAMETER, "no entries");
    write_list(&mut w, list, 2, 2, 0, &[v(0x31_0000), v(0x31_1000)]);
    assert_eq!(pv(&mut w, list), SVSM_ERR_INVALID_PARAMETER, "next == num");
    write_list(&mut w, 0x6ff8, 1, 0, 0, &[v(0x31_0000)]);
    assert_eq!(pv(&mut w, 0x6ff8), SVSM_ERR_INVALID_PARAMETER, "list crosses a page");
    write_list(&mut w, list, 511, 0, 0, &[]);
    assert_eq!(pv(&mut w, list), SVSM_ERR_INVALID_PARAMETER, "511 entries do not fit in the CA");

    // Entry errors stop at the failing entry and write its index back.
    for (what, bad, expect) in [
        ("reserved bit 4", v(0x32_1000) | 0x10, SVSM_ERR_INVALID_PARAMETER),
        ("reserved bit 11", v(0x32_1000) | 0x800, SVSM_ERR_INVALID_PARAMETER),
        ("page size 2", v(0x32_1000) | 2, SVSM_ERR_INVALID_PARAMETER),
        ("page size 3", v(0x32_1000) | 3, SVSM_ERR_INVALID_PARAMETER),
        ("2M misaligned", pvalidate_entry::encode(0x32_1000, true, true, false), SVSM_ERR_INVALID_PARAMETER),
        ("outside memory", v(MEM_SIZE as u64), SVSM_ERR_INVALID_ADDRESS),
        ("SVSM memory", v(SVSM_BASE), SVSM_ERR_INVALID_ADDRESS),
        ("already validated", v(0x30_0000), SVSM_PVALIDATE_FAIL_UNCHANGED),
    ] {
        let fresh = v(0x10_0000 + u64::from(w.guest.calls) * 0x1000);
        write_list(&mut w, list, 3, 0, 0, &[fresh, bad, v(0x33_0000)]);
        assert_eq!(pv(&mut w, list), expect, "{what}");
        assert_eq!(next_of(&mut w, list), 1, "{what}: next = failing entry");
    }
    // ignore_cf turns "unchanged" into success; processing resumes at `next`.
    write_list(
        &mut w,
        list,
        2,
        1,
        0,
        &[0xFFFF_FFFF_FFFF_FFFF, pvalidate_entry::encode(0x30_0000, false, true, true)],
    );
    assert_eq!(pv(&mut w, list), SVSM_SUCCESS);
    assert_eq!(next_of(&mut w, list), 2);
    // A 4K entry inside a 2M-validated page is a size mismatch.
    write_list(&mut w, list, 1, 0, 0, &[pvalidate_entry::encode(0x60_0000, true, true, false)]);
    assert_eq!(pv(&mut w, list), SVSM_ERR_INVALID_ADDRESS, "2M page reaching into SVSM memory");
    write_list(&mut w, list, 1, 0, 0, &[pvalidate_entry::encode(0x40_0000, true, true, false)]);
    assert_eq!(pv(&mut w, list), SVSM_SUCCESS);
    write_list(&mut w, list, 1, 0, 0, &[pvalidate_entry::encode(0x40_1000, false, false, false)]);
    assert_eq!(pv(&mut w, list), SVSM_PVALIDATE_FAIL_SIZEMISMATCH);
}

#[test]
fn linux_falls_back_to_4k_on_size_mismatch() {
    let mut w = world();
    w.rmp.0.lock().expect("lock").host_uses_4k_entries(0x40_0000);
    let pages = [(0x20_0000, true), (0x40_0000, true), (0x60_0000, false)];
    w.guest.pvalidate(&pages, true).expect("pvalidate");
    let rmp = w.rmp.0.lock().expect("lock");
    for gpa in (0x20_0000..0x60_0000).step_by(0x1000) {
        assert!(rmp.is_validated(gpa), "{gpa:#x}");
    }
    assert!(rmp.is_validated(0x60_0000));
    assert!(!rmp.is_validated(0x60_1000));
    let mismatches = rmp.log.iter().filter(|e| e.3 == Err(PvalidateFailure::Hardware(6))).count();
    assert_eq!(mismatches, 1);
    assert_eq!(rmp.log.iter().filter(|e| e.1 == PageSize::Size4K).count(), 513);
}

fn vmsa_page(vmpl: u8, efer: u64, features: u64) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[vmsa::VMPL] = vmpl;
    p[vmsa::EFER..vmsa::EFER + 8].copy_from_slice(&efer.to_le_bytes());
    p[vmsa::SEV_FEATURES..vmsa::SEV_FEATURES + 8].copy_from_slice(&features.to_le_bytes());
    p
}

#[test]
fn create_and_delete_vcpu_validation() {
    let mut w = world();
    let create =
        |w: &mut World, vmsa: u64, caa: u64, apic: u64| code(&w.call(call_rax(0, 2), vmsa, caa, apic));
    w.write(0x50000, &vmsa_page(2, vmsa::EFER_SVME, 1));
    assert_eq!(create(&mut w, 0x50008, 0x51000, 1), SVSM_ERR_INVALID_ADDRESS, "VMSA misaligned");
    assert_eq!(create(&mut w, 0x50000, 0x51800, 1), SVSM_ERR_INVALID_ADDRESS, "CA misaligned");
    assert_eq!(create(&mut w, 0x50000, 0x50000, 1), SVSM_ERR_INVALID_ADDRESS, "overlap");
    assert_eq!(create(&mut w, SVSM_BASE, 0x51000, 1), SVSM_ERR_INVALID_ADDRESS, "SVSM memory");
    assert_eq!(create(&mut w, 0x50000, MEM_SIZE as u64, 1), SVSM_ERR_INVALID_ADDRESS, "outside memory");
    assert_eq!(create(&mut w, 0x50000, 0x51000, 9), SVSM_ERR_INVALID_PARAMETER, "unknown APIC ID");
    for (what, page) in [
        ("wrong VMPL", vmsa_page(1, vmsa::EFER_SVME, 1)),
        ("SVME clear", vmsa_page(2, 0, 1)),
        ("SEV features differ", vmsa_page(2, vmsa::EFER_SVME, 3)),
    ] {
        w.write(0x52000, &page);
        assert_eq!(create(&mut w, 0x52000, 0x53000, 1), SVSM_ERR_INVALID_PARAMETER, "{what}");
    }
    assert_eq!(create(&mut w, 0x50000, 0x51000, 1), SVSM_SUCCESS);
    assert_eq!(create(&mut w, 0x50000, 0x54000, 2), SVSM_ERR_INVALID_ADDRESS, "VMSA already in use");
    assert_eq!(code(&w.call(call_rax(0, 3), 0x52000, 0, 0)), SVSM_ERR_INVALID_PARAMETER, "not a VMSA");
    assert_eq!(code(&w.call(call_rax(0, 3), 0x50000, 0, 0)), SVSM_SUCCESS);
    assert_eq!(code(&w.call(call_rax(0, 3), 0x50000, 0, 0)), SVSM_ERR_INVALID_PARAMETER, "deleted twice");
}

#[test]
fn fuzz_dispatch_seeded_and_hand_made_inputs() {
    use rand::RngCore;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut buf = vec![0u8; 1024];
    for i in 0..3000 {
        let len = (i * 7) % buf.len();
        rng.fill_bytes(&mut buf[..len]);
        svsm_protocol::fuzzing::dispatch(&buf[..len]);
        svsm_protocol::fuzzing::parse_tables(&buf[..len]);
    }
    // Hand-made: each attestation call with an op in the CA and zeroed memory.
    for call in 0..3u8 {
        let mut d = vec![0u8; 400];
        d[0] = 1;
        d[1] = call;
        d[12] = 3; // rcx = CA + 8
        svsm_protocol::fuzzing::dispatch(&d);
    }
    let m = svsm_protocol::manifest::build_services_manifest(&[(
        VTPM_SERVICE_GUID,
        &EkKind::Rsa2048.template_bytes()[..],
    )])
    .expect("manifest");
    svsm_protocol::fuzzing::parse_tables(&m);
}

#[test]
fn the_cached_ek_is_recreated_after_change_eps() {
    let mut w = world();
    let nonce = [0x21u8; 64];
    w.guest.attest(&nonce, Guid::NULL, 0, None).expect("attest");
    // TPM2_ChangeEPS(TPM_RH_PLATFORM) with an empty password session: a new endorsement seed, a new EK.
    let mut change_eps = vec![0x80, 0x02, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x24, 0x40, 0x00, 0x00, 0x0C];
    change_eps.extend_from_slice(&[0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 1, 0, 0]);
    let len = change_eps.len() as u32;
    change_eps[2..6].copy_from_slice(&len.to_be_bytes());
    w.guest.tpm_command(0x40000, &change_eps).expect("sent");
    w.guest.attest(&nonce, Guid::NULL, 0, None).expect("attest");
    let v = w.vtpm.0.lock().expect("lock");
    assert_eq!(
        v.commands.iter().filter(|c| **c == cc::CREATE_PRIMARY).count(),
        2,
        "after ChangeEPS the SVSM must re-derive the EK instead of serving the cached one"
    );
}

/// A vTPM whose every response is `len` bytes (a TPM may answer up to 4096; the SVSM buffer holds 4092).
struct FixedResponse(usize);
impl VtpmService for FixedResponse {
    fn send_command(&mut self, _locality: u8, _command: &[u8]) -> Result<Vec<u8>, VtpmError> {
        let mut r = vec![0u8; self.0];
        r[..2].copy_from_slice(&[0x80, 0x01]);
        r[2..6].copy_from_slice(&(self.0 as u32).to_be_bytes());
        Ok(r)
    }
}

#[test]
fn a_response_too_large_for_the_buffer_is_a_tpm_size_error_not_a_failed_call() {
    for len in [4092usize, 4093, 4096] {
        let svsm = Svsm::new(
            SvsmConfig { svsm_base: SVSM_BASE, svsm_size: 0x1_0000, initial_caa: CAA },
            Box::new(SimulatedRmp::new()),
            Box::new(SimulatedVcpus::new(1)),
            Some(Box::new(FixedResponse(len))),
            Box::new(UnsignedReportDouble::default()),
        );
        let mut guest = Guest::new(
            DirectTransport { svsm, memory: VecGuestMemory::new(0, MEM_SIZE) },
            CAA,
            FREE_START,
            FREE_END,
        );
        let resp = guest
            .tpm_command(0x40000, &cmd::get_random(8).expect("GetRandom frames"))
            .expect("the call succeeds");
        if len <= 4092 {
            assert_eq!(resp.len(), len);
        } else {
            // The command ran; the guest learns that its response did not fit, as from a TPM.
            assert_eq!(resp, svsm_protocol::vtpm::TPM_RC_SIZE_RESPONSE, "len {len}");
        }
    }
}

/// Which ms-tpm platform commands SVSM_VTPM_CMD serves, knows but does not offer, or refuses as unknown:
/// pinned for every number up to 64 and a few far beyond, so moving the page parser cannot change what a
/// guest sees.
#[test]
fn vtpm_cmd_answers_every_platform_command_as_before() {
    let mut w = world();
    const UNSUPPORTED: [u32; 22] =
        [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 25, 30];
    let command = cmd::get_random(8).expect("GetRandom frames");
    for platform in (0u32..=64).chain([100, 0x100, 0x8000_0008, u32::MAX]) {
        let mut b = platform.to_le_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(&(command.len() as u32).to_le_bytes());
        b.extend_from_slice(&command);
        w.write(0x40000, &b);
        let got = code(&w.call(call_rax(2, 1), 0x40000, 0, 0));
        let expected = if platform == 8 {
            SVSM_SUCCESS
        } else if UNSUPPORTED.contains(&platform) {
            SVSM_ERR_UNSUPPORTED_CALL
        } else {
            SVSM_ERR_INVALID_PARAMETER
        };
        assert_eq!(got, expected, "platform command {platform}");
        if platform == 8 {
            let resp = w.read(0x40000, 4 + 10 + 2 + 8);
            // GetRandom(8): header, TPM2B of 8 bytes.
            assert_eq!(&resp[..4], &20u32.to_le_bytes(), "response size");
            assert_eq!(&resp[4..10], &[0x80, 0x01, 0, 0, 0, 20], "GetRandom response header");
        }
    }
}
