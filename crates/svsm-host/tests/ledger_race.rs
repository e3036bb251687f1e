//! Two ledger-service instances on one 3-member etcd cluster, two clients racing compare-and-set on the same
//! volume: exactly one wins each generation, and the loser is told the winner's record.

mod common;
use common::ledger::*;
use std::sync::{Arc, Barrier};
use svsm_store::{Ledger as _, LedgerError, VolumeId};

#[test]
fn racing_compare_and_set_through_two_services_has_one_winner_per_generation() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (vm, key) = enrol(&cluster, dir.path(), "0123456789abcdef0123456789abcdef");
    let a = Service::start(&cluster, dir.path(), "a");
    let b = Service::start(&cluster, dir.path(), "b");
    let volume = VolumeId([0x5a; 16]);
    let mut current = None;
    let mut wins = [0u32; 2];
    const GENERATIONS: u64 = 40;
    for g in 1..=GENERATIONS {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [(a.addr.clone(), 0xA0u8), (b.addr.clone(), 0xB0u8)]
            .into_iter()
            .map(|(addr, salt)| {
                let barrier = barrier.clone();
                let key = key.clone();
                std::thread::spawn(move || {
                    let mut c = client(&addr, vm, &key);
                    c.read(&volume).unwrap(); // connect before the race
                    barrier.wait();
                    c.compare_and_set(&volume, current.as_ref(), &record(g, salt))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "generation {g}: {results:?}");
        let w = winners[0];
        wins[w] += 1;
        let winner = record(g, if w == 0 { 0xA0 } else { 0xB0 });
        match &results[1 - w] {
            Err(LedgerError::Conflict { current: Some(r) }) => assert_eq!(*r, winner, "generation {g}"),
            other => panic!("generation {g}: the loser got {other:?}, not a conflict naming the winner"),
        }
        for addr in [&a.addr, &b.addr] {
            assert_eq!(client(addr, vm, &key).read(&volume).unwrap(), Some(winner), "generation {g}");
        }
        if g == GENERATIONS {
            // The operator's view through the CLI agrees.
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_svsm-host"))
                .args(["ledger", "read", "--service", &a.addr, "--vm-id", "0123456789abcdef0123456789abcdef"])
                .arg("--key-file")
                .arg(dir.path().join("0123456789abcdef0123456789abcdef.key"))
                .args(["--volume", &volume.to_string()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("generation {g} superblock {}", hex::encode(winner.superblock_hash))),
                "{text}"
            );
        }
        current = Some(winner);
    }
    eprintln!("wins: service a {}, service b {}", wins[0], wins[1]);
    assert_eq!(wins[0] + wins[1], GENERATIONS as u32);
}

#[test]
fn an_unenrolled_vm_and_a_wrong_key_are_refused() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (vm, _key) = enrol(&cluster, dir.path(), "fedcba9876543210fedcba9876543210");
    let svc = Service::start(&cluster, dir.path(), "a");
    let volume = VolumeId([1; 16]);
    let wrong = svsm_ledger::LedgerKey::from_bytes([0; 32]);
    match client(&svc.addr, vm, &wrong).read(&volume) {
        Err(LedgerError::Unavailable(m)) => assert!(m.contains("fails authentication"), "{m}"),
        other => panic!("{other:?}"),
    }
    let stranger = svsm_ledger::VmId([9; 16]);
    match client(&svc.addr, stranger, &wrong).read(&volume) {
        Err(LedgerError::Unavailable(m)) => assert!(m.contains("no ledger key enrolled"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Enrolling the same VM again is refused and leaves its key alone.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .args([
            "ledger",
            "enrol",
            "--etcd",
            &cluster.endpoints(),
            "--vm-id",
            "fedcba9876543210fedcba9876543210",
        ])
        .arg("--key-out")
        .arg(dir.path().join("again.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already enrolled"));
    assert!(!dir.path().join("again.key").exists());
}
