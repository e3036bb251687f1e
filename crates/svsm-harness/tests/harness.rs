//! Guest client -> harness socket -> SVSM -> attestation of the vTPM -> verifier.

use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex, OnceLock};

use der::Decode;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use svsm_attest::chain::SimulatedRoots;
use svsm_attest::verify::Evidence;
use svsm_attest::{SimulatedSnpConfig, VerifierPolicy, VerifyError, verify_attestation};
use svsm_harness::simulated::{CALLING_AREA, GUEST_FREE_START, guest_free_end, simulated_svsm};
use svsm_harness::{FileGuestMemory, RegisterFrame, SocketTransport, serve};
use svsm_protocol::Guid;
use svsm_protocol::guest::{Guest, GuestError};
use svsm_protocol::guid::{CERT_TABLE_ARK_GUID, CERT_TABLE_ASK_GUID, CERT_TABLE_VCEK_GUID};
use svsm_protocol::manifest::parse_certificate_table;
use svsm_vtpm::marshal::{self, cmd};
use x509_cert::Certificate;

const MEM: u64 = 4 << 20;

fn roots() -> Arc<SimulatedRoots> {
    static R: OnceLock<Arc<SimulatedRoots>> = OnceLock::new();
    R.get_or_init(|| {
        Arc::new(SimulatedRoots::generate("Milan", &mut ChaCha20Rng::seed_from_u64(5)).expect("roots"))
    })
    .clone()
}

struct Running {
    dir: tempfile::TempDir,
    server: std::thread::JoinHandle<std::io::Result<()>>,
}

fn start(connections: usize) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let mem_path = dir.path().join("guest.mem");
    FileGuestMemory::create(&mem_path, MEM).expect("memory file");
    let svsm =
        simulated_svsm(MEM, roots(), SimulatedSnpConfig::default(), &mut ChaCha20Rng::seed_from_u64(6))
            .expect("svsm");
    let listener = UnixListener::bind(dir.path().join("svsm.sock")).expect("bind");
    let server =
        std::thread::spawn(move || serve(listener, Arc::new(Mutex::new(svsm)), mem_path, Some(connections)));
    Running { dir, server }
}

fn guest(r: &Running) -> Guest<SocketTransport> {
    let t = SocketTransport::connect(&r.dir.path().join("svsm.sock"), &r.dir.path().join("guest.mem"))
        .expect("connect");
    let end = guest_free_end(t.memory_size());
    Guest::new(t, CALLING_AREA, GUEST_FREE_START, end)
}

#[test]
fn attestation_through_the_harness_verifies_and_tampering_is_rejected() {
    let running = start(2);
    let mut g = guest(&running);
    assert_eq!(g.query_protocol(1, 2), Ok(Some((2, 1))));
    assert_eq!(g.vtpm_probe(), Ok(true));
    let nonce = [0xA7u8; 64];
    let out = g.attest(&nonce, Guid::NULL, 0, None).expect("attest through the socket");
    let table = parse_certificate_table(&out.certificates).expect("certificate table");
    let cert = |gd: Guid| {
        Certificate::from_der(table.iter().find(|e| e.guid == gd).expect("cert").data).expect("der")
    };
    let (ark, ask, vcek) = (cert(CERT_TABLE_ARK_GUID), cert(CERT_TABLE_ASK_GUID), cert(CERT_TABLE_VCEK_GUID));
    let anchor = roots().ark.clone();
    let ev = |report: &[u8], manifest: &[u8], nonce: &[u8]| {
        verify_attestation(
            &Evidence {
                report,
                manifest,
                nonce,
                selector: None,
                trusted_ark: &anchor,
                ark: &ark,
                ask: &ask,
                vcek: &vcek,
            },
            &VerifierPolicy::default(),
        )
    };
    let ok = ev(&out.report, &out.manifest, &nonce).expect("verifier accepts");
    assert!(ok.ek.is_some());
    let mut report = out.report.clone();
    report[0x60] ^= 4;
    assert_eq!(ev(&report, &out.manifest, &nonce).err(), Some(VerifyError::ReportSignature));
    let mut manifest = out.manifest.clone();
    manifest[200] ^= 4;
    assert_eq!(ev(&out.report, &manifest, &nonce).err(), Some(VerifyError::ReportDataMismatch));
    let mut n = nonce;
    n[10] ^= 4;
    assert_eq!(ev(&out.report, &out.manifest, &n).err(), Some(VerifyError::ReportDataMismatch));

    // The tpm_svsm path through the same socket, from a second connection.
    let mut g2 = guest(&running);
    let resp = g2.tpm_command(0x20_0000, &cmd::get_random(16).expect("GetRandom frames")).expect("GetRandom");
    assert_eq!(marshal::random_bytes(&resp).expect("parses").len(), 16);
    drop(g);
    drop(g2);
    running.server.join().expect("join").expect("server ran");
}

#[test]
fn a_malformed_frame_closes_only_that_connection() {
    use std::io::{Read, Write};
    let running = start(2);
    let mut raw =
        std::os::unix::net::UnixStream::connect(running.dir.path().join("svsm.sock")).expect("connect");
    raw.write_all(&[0xFF; 48]).expect("write");
    let mut buf = [0u8; 48];
    assert_eq!(raw.read(&mut buf).expect("read"), 0, "connection closed without a reply");
    let mut g = guest(&running);
    assert_eq!(g.query_protocol(0, 1), Ok(Some((1, 1))));
    drop(g);
    running.server.join().expect("join").expect("server ran");
}

#[test]
fn a_dead_socket_means_the_call_was_not_serviced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mem_path = dir.path().join("guest.mem");
    FileGuestMemory::create(&mem_path, MEM).expect("memory file");
    // An "SVSM" that accepts the connection and hangs up without servicing anything.
    let listener = UnixListener::bind(dir.path().join("dead.sock")).expect("bind");
    let t = std::thread::spawn(move || drop(listener.accept().expect("accept")));
    let transport = SocketTransport::connect(&dir.path().join("dead.sock"), &mem_path).expect("connect");
    t.join().expect("join");
    let mut g = Guest::new(transport, CALLING_AREA, GUEST_FREE_START, guest_free_end(MEM));
    assert_eq!(g.query_protocol(0, 1), Err(GuestError::NotServiced));
}

#[test]
fn frames_round_trip_and_reject_garbage() {
    let regs = svsm_protocol::Registers { rax: 1, rcx: 2, rdx: 3, r8: 4, r9: 5 };
    let f = RegisterFrame::new(1, &regs);
    let b = f.encode();
    assert_eq!(&b[0..4], b"SVSM");
    assert_eq!(RegisterFrame::decode(&b, 1).expect("decodes").registers(), regs);
    assert!(RegisterFrame::decode(&b, 2).is_err());
    let mut bad = b;
    bad[4] = 9;
    assert!(RegisterFrame::decode(&bad, 1).is_err());
}
