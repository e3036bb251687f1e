//! `svsm-host serve --ledger service:...`: the vTPM's store anchored at the ledger service on a real 3-member
//! etcd cluster, driven by tpm2-tools. NV writes survive restarts; the state directory rewound as a whole
//! (image, keys, every local file) is refused at start, naming both generations.

mod common;
use common::ledger::*;
use common::{Daemon, Serve, copy_dir};
use std::path::Path;

const VM: &str = "5e5e5e5e000011112222333344445555";
const INDEX: &str = "0x1500016";

/// serve on the ledger service `svc`, mssim on loopback TCP, no swtpm Unix sockets.
fn serve(state: &Path, work: &Path, svc: &str) -> Result<Daemon, String> {
    let key = work.join(format!("{VM}.key"));
    Serve::new(state)
        .tcp()
        .args([
            "--no-swtpm-unix",
            "--ledger",
            &format!("service:{svc}"),
            "--ledger-vm-id",
            VM,
            "--ledger-key",
        ])
        .args([key])
        .try_start()
}

fn tpm2(s: &Daemon, dir: &Path, args: &[&str]) -> String {
    common::tpm2_ok(&s.mssim_tcti(), dir, args)
}

fn write_index(s: &Daemon, dir: &Path, byte: u8) {
    std::fs::write(dir.join("data"), [byte; 64]).unwrap();
    tpm2(s, dir, &["tpm2_nvwrite", INDEX, "-C", "o", "-i", "data"]);
}

fn read_index(s: &Daemon, dir: &Path) -> Vec<u8> {
    tpm2(s, dir, &["tpm2_nvread", INDEX, "-C", "o", "-s", "64", "-o", "out"]);
    std::fs::read(dir.join("out")).unwrap()
}

#[test]
fn the_vtpm_on_the_ledger_service_survives_restarts_and_refuses_a_rewound_state_dir() {
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    enrol(&cluster, w, VM);
    let svc = Service::start(&cluster, w, "svc");
    let state = w.join("state");
    let backup = w.join("backup");

    let s = serve(&state, w, &svc.addr).unwrap();
    tpm2(&s, w, &["tpm2_startup", "-c"]);
    tpm2(&s, w, &["tpm2_nvdefine", INDEX, "-C", "o", "-s", "64", "-a", "ownerread|ownerwrite"]);
    write_index(&s, w, 1);
    drop(s);
    copy_dir(&state, &backup); // the host keeps everything as of NV = 1

    let s = serve(&state, w, &svc.addr).unwrap();
    tpm2(&s, w, &["tpm2_startup", "-c"]);
    assert_eq!(read_index(&s, w), vec![1; 64]);
    write_index(&s, w, 2);
    drop(s);

    copy_dir(&backup, &state); // ... and puts it back
    let err = serve(&state, w, &svc.addr).err().expect("serve started on a rewound state directory");
    assert!(err.contains("refusing to start") && err.contains("rollback detected"), "{err}");
    let names_both = err.split("generation is ").nth(1).and_then(|r| r.split(',').next()).is_some()
        && err.contains("the ledger expects ");
    assert!(names_both, "the message must name both generations: {err}");
    eprintln!("{err}");
    assert!(!state.join("ledger").exists(), "the file ledger was used instead of the service");
}
