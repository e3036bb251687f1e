//! UEFI variables (protocol 4): SetVariable of a 1 KiB non-volatile variable through the SVSM harness
//! (`svsm-serve --uefi-state-dir`, durable: one strict-ledger store commit before the reply) vs a raw store
//! commit of the same bytes on the same file system and ledger; GetVariable through the harness vs the same
//! call dispatched in-process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use svsm_benchkit::{Plan, Report, Target, compare};
use svsm_harness::SocketTransport;
use svsm_harness::simulated::{CALLING_AREA, GUEST_FREE_START, guest_free_end};
use svsm_host::state::{StateDir, VolumeName};
use svsm_protocol::guest::{DirectTransport, Guest};
use svsm_protocol::{Guid, VecGuestMemory};
use svsm_store::LedgerMode;
use svsm_uefi::guest::UefiGuest;

const VENDOR: Guid = Guid::from_fields(0x0bec_0bec, 1, 2, [3, 4, 5, 6, 7, 8, 9, 10]);
const NV_BS_RT: u32 = 7;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("svsm.sock");
    let mem = dir.path().join("guest.mem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .arg("svsm-serve")
        .arg("--svsm-socket")
        .arg(&sock)
        .arg("--memory")
        .arg(&mem)
        .arg("--uefi-state-dir")
        .arg(dir.path().join("uefi"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn svsm-serve");
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        if line.expect("line").contains("serving SVSM calls on") {
            break;
        }
    }
    let t = SocketTransport::connect(&sock, &mem).expect("harness connect");
    let end = guest_free_end(t.memory_size());
    let mut harness =
        UefiGuest::probe(Guest::new(t, CALLING_AREA, GUEST_FREE_START + 0x10_0000, end), GUEST_FREE_START)
            .expect("protocol 4");

    // Baseline: the same store stack on the same file system, strict ledger, file ledger.
    let (raw_dir, _) = StateDir::open_or_create(dir.path().join("raw")).expect("raw dir");
    let lock = raw_dir.lock_for_write("bench").expect("lock");
    let raw_vol = raw_dir.volume(
        VolumeName::new("bench").expect("name"),
        raw_dir.default_keys(),
        raw_dir.default_ledgers(),
    );
    let mut raw =
        raw_vol.create(&lock, svsm_host::uefi::UEFI_STORE_BLOCKS, LedgerMode::Strict).expect("raw store");

    // In-process: the same service on its own volume, called through the dispatcher directly.
    let (local_dir, _) = StateDir::open_or_create(dir.path().join("local")).expect("local dir");
    let local_lock = local_dir.lock_for_write("bench").expect("lock");
    let local_vol = svsm_host::uefi::volume(&local_dir, None, None);
    let service = svsm_host::uefi::open_service(&local_vol, &local_lock, true).expect("service");
    let mut rng = rand::rngs::OsRng;
    let roots =
        std::sync::Arc::new(svsm_attest::chain::SimulatedRoots::generate("Milan", &mut rng).expect("roots"));
    let mut svsm = svsm_harness::simulated::simulated_svsm_with(
        8 << 20,
        roots,
        svsm_attest::SimulatedSnpConfig::default(),
        None,
        &mut rng,
    )
    .expect("svsm");
    svsm.register_protocol(svsm_host::uefi::protocol(service)).expect("register");
    let direct = DirectTransport { svsm, memory: VecGuestMemory::new(0, 8 << 20) };
    let mut local = UefiGuest::probe(
        Guest::new(direct, CALLING_AREA, GUEST_FREE_START + 0x10_0000, guest_free_end(8 << 20)),
        GUEST_FREE_START,
    )
    .expect("protocol 4");

    let mut value = vec![0x5au8; 1024];
    let mut raw_value = vec![0x5au8; 1024];
    let (mut n, mut raw_n) = (0u32, 0u32);
    let mut report = Report::new("UEFI variables (protocol 4, svsm-uefi on virtfw-varstore 0.6.6)");
    let mut set = compare(
        "SetVariable 1 KiB NV, durable (strict ledger)",
        Plan::new(20, 25),
        "raw store put + commit of the same 1 KiB",
        || {
            raw_n = raw_n.wrapping_add(1);
            raw_value[..4].copy_from_slice(&raw_n.to_le_bytes());
            let mut tx = raw.begin();
            tx.put(0x1_0000, &raw_value).expect("put");
            tx.commit().expect("commit");
        },
        "SetVariable via harness socket + shared guest memory",
        || {
            n = n.wrapping_add(1);
            value[..4].copy_from_slice(&n.to_le_bytes());
            harness.set_variable("BenchVar", &VENDOR, NV_BS_RT, &value).expect("SetVariable");
        },
    );
    set.target = Some(Target::AtMost(1.3));
    report.push(set);
    local.set_variable("BenchVar", &VENDOR, NV_BS_RT, &value).expect("SetVariable in-process");
    let mut get = compare(
        "GetVariable 1 KiB NV",
        Plan::new(20, 200),
        "in-process dispatch (Svsm::handle_call, Vec guest memory)",
        || {
            let (_, d) = local.get_variable("BenchVar", &VENDOR).expect("GetVariable");
            assert_eq!(d.len(), 1024);
        },
        "via harness socket + shared guest memory",
        || {
            let (_, d) = harness.get_variable("BenchVar", &VENDOR).expect("GetVariable");
            assert_eq!(d.len(), 1024);
        },
    );
    get.target = Some(Target::AtMost(1.5));
    report.push(get);
    report.note(
        "Both SetVariable sides make one strict-ledger commit (sealed blocks, superblock, one fdatasync, one \
         FileLedger CAS) of the same 1 KiB; the harness side adds the MM framing, virtfw-varstore and the \
         64 KiB guest-buffer copies.",
    );
    report.emit();
    let _ = child.kill();
    let _ = child.wait();
}
