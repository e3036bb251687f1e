//! SVSM call round trips through the harness socket, against the same call dispatched in-process.
//!
//! Rows: VTPM_CMD GetRandom(32) (the vTPM is the protocol crate's wire-format double until the libtpms
//! service lands, so this measures the SVSM path, not TPM work), and ATTEST_SERVICES including the simulated
//! P-384 report signing. The baseline is the identical guest-side call on a `DirectTransport` (no socket,
//! no file I/O), so the ratio is the harness's transport cost.

use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use svsm_attest::SimulatedSnpConfig;
use svsm_attest::chain::SimulatedRoots;
use svsm_benchkit::{Plan, Report, compare};
use svsm_harness::simulated::{CALLING_AREA, GUEST_FREE_START, guest_free_end, simulated_svsm};
use svsm_harness::{FileGuestMemory, SocketTransport, serve};
use svsm_protocol::guest::{DirectTransport, Guest};
use svsm_protocol::{Guid, VecGuestMemory};
use svsm_vtpm::marshal::cmd;

const MEM: u64 = 4 << 20;

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let roots = Arc::new(SimulatedRoots::generate("Milan", &mut rng).expect("roots"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mem_path = dir.path().join("guest.mem");
    FileGuestMemory::create(&mem_path, MEM).expect("memory");
    let served = simulated_svsm(MEM, roots.clone(), SimulatedSnpConfig::default(), &mut rng).expect("svsm");
    let listener = UnixListener::bind(dir.path().join("svsm.sock")).expect("bind");
    let mp = mem_path.clone();
    std::thread::spawn(move || serve(listener, Arc::new(Mutex::new(served)), mp, Some(1)));
    let transport = SocketTransport::connect(&dir.path().join("svsm.sock"), &mem_path).expect("connect");
    let mut via_socket = Guest::new(transport, CALLING_AREA, GUEST_FREE_START, guest_free_end(MEM));

    let direct_svsm = simulated_svsm(MEM, roots, SimulatedSnpConfig::default(), &mut rng).expect("svsm");
    let direct = DirectTransport { svsm: direct_svsm, memory: VecGuestMemory::new(0, MEM as usize) };
    let mut in_process = Guest::new(direct, CALLING_AREA, GUEST_FREE_START, guest_free_end(MEM));

    let cmd = cmd::get_random(32).expect("GetRandom frames");
    let mut report =
        Report::new("svsm-harness: SVSM calls through the harness socket vs in-process dispatch");
    report.push(compare(
        "VTPM_CMD GetRandom(32) round trip",
        Plan::new(20, 200),
        "in-process dispatch",
        || {
            in_process.tpm_command(0x20_0000, &cmd).expect("direct");
        },
        "harness socket + shared file",
        || {
            via_socket.tpm_command(0x20_0000, &cmd).expect("socket");
        },
    ));
    let nonce = [7u8; 64];
    report.push(compare(
        "ATTEST_SERVICES round trip incl. P-384 report signing",
        Plan::new(10, 10),
        "in-process dispatch",
        || {
            in_process.attest(&nonce, Guid::NULL, 0, None).expect("direct");
        },
        "harness socket + shared file",
        || {
            via_socket.attest(&nonce, Guid::NULL, 0, None).expect("socket");
        },
    ));
    report.note("vTPM = svsm-protocol's TPM wire-format double (no libtpms yet): the GetRandom row measures the SVSM path, not TPM work.");
    report.note("The mssim-port comparison the issue asks for needs the libtpms vTPM (branch vtpm); not measured here.");
    report.emit();
}
