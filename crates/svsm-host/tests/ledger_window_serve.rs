//! `serve --ledger service:... --ledger-mode window:2` on a real 3-member etcd cluster, driven by tpm2-tools,
//! killed with SIGKILL. The acceptance rule of docs/store-format.md §4.3 step 5 (boot-epoch and window): an
//! image is accepted only at the ledger's record `(L, H)` or newer and anchored exactly at it. So:
//! * a copy of the state directory from before the last ledger advance (newest generation `< L`) is refused
//!   at start, `Rollback`, naming the ledger's generation and the image's;
//! * the unmodified directory restarts with every acknowledged write, including the last advance's;
//! * after that restart (its boot commit moved the ledger), even a copy taken right at the old record
//!   (generation `= L`, acceptable before) is refused: nothing rolls back across a boot.

mod common;

use common::Daemon;
use common::ledger::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use svsm_ledger::{LedgerKey, VmId};
use svsm_store::{Ledger as _, VolumeId};

const VM: &str = "77771111222233334444555566667777";
const INDEX: &str = "0x1500016";
const T: u64 = 2;

struct Setup<'a> {
    work: &'a Path,
    svc: String,
    vm: VmId,
    key: LedgerKey,
}

impl Setup<'_> {
    fn start(&self, state: &Path) -> Result<Daemon, String> {
        let key = self.work.join(format!("{VM}.key"));
        let svc = format!("service:{}", self.svc);
        Daemon::try_start(
            state,
            &[
                "--ledger-mode",
                &format!("window:{T}"),
                "--ledger",
                &svc,
                "--ledger-vm-id",
                VM,
                "--ledger-key",
                key.to_str().unwrap(),
            ],
        )
    }

    fn ledger(&self, volume: &VolumeId) -> u64 {
        client(&self.svc, self.vm, &self.key).read(volume).unwrap().expect("no record").generation
    }

    /// Waits (at most T plus a margin) until the ledger holds the image's generation: serve's window timer.
    fn wait_advanced(&self, state: &Path) -> u64 {
        let (volume, generation) = common::vtpm_image(state);
        let t0 = Instant::now();
        while self.ledger(&volume) != generation {
            assert!(
                t0.elapsed() < Duration::from_secs(T + 2),
                "the ledger did not reach generation {generation}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        generation
    }
}

fn tpm2_ok(state: &Path, dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("TPM2TOOLS_TCTI", format!("swtpm:path={}", state.join("swtpm.sock").display()))
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `make deps`)", args[0]));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn nv_write(state: &Path, dir: &Path, byte: u8) {
    std::fs::write(dir.join("data"), [byte; 64]).unwrap();
    tpm2_ok(state, dir, &["tpm2_nvwrite", INDEX, "-C", "o", "-i", "data"]);
}

fn nv_read(state: &Path, dir: &Path) -> Vec<u8> {
    tpm2_ok(state, dir, &["tpm2_nvread", INDEX, "-C", "o", "-s", "64", "-o", "out"]);
    std::fs::read(dir.join("out")).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    assert!(Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success());
}

fn refusal(s: &Setup<'_>, state: &Path) -> String {
    match s.start(state) {
        Ok(d) => panic!("serve started on a rewound state directory:\n{}", d.log()),
        Err(e) => common::strip_ansi(&e),
    }
}

#[test]
fn window_mode_on_the_ledger_service_refuses_a_directory_from_before_the_last_advance() {
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (vm, key) = enrol(&cluster, w, VM);
    let svc = Service::start(&cluster, w, "svc");
    let s = Setup { work: w, svc: svc.addr.clone(), vm, key };
    let state = w.join("state");
    let (before, at_record, killed) = (w.join("before"), w.join("at-record"), w.join("killed"));

    let d = s.start(&state).unwrap();
    tpm2_ok(&state, w, &["tpm2_startup", "-c"]);
    tpm2_ok(&state, w, &["tpm2_nvdefine", INDEX, "-C", "o", "-s", "64", "-a", "ownerread|ownerwrite"]);
    nv_write(&state, w, 1);
    let first = s.wait_advanced(&state);
    copy_dir(&state, &before); // the host keeps a copy (a live copy: the daemon is running)
    nv_write(&state, w, 2);
    let last_advance = s.wait_advanced(&state);
    assert!(last_advance > first);
    copy_dir(&state, &at_record);
    nv_write(&state, w, 3); // acknowledged after the last advance
    let (volume, newest) = common::vtpm_image(&state);
    drop(d); // SIGKILL: no clean close
    copy_dir(&state, &killed);
    let ledger_at_kill = s.ledger(&volume);
    // Write 3 came well within T of the advance, so it is not protected: the host may roll it back.
    assert_eq!(ledger_at_kill, last_advance, "image at {newest}");
    assert!(newest > last_advance);

    // A copy from before the last advance: its newest generation is older than the ledger's record.
    let older = common::vtpm_image(&before).1;
    assert!(older < last_advance, "copy at {older}, advance at {last_advance}");
    copy_dir(&before, &state);
    let err = refusal(&s, &state);
    assert!(err.contains("refusing to start") && err.contains("rollback detected"), "{err}");
    assert!(
        err.contains(&format!("newest valid generation is {older}, the ledger expects {ledger_at_kill}")),
        "must name the image's generation {older} and the ledger's {ledger_at_kill}: {err}"
    );
    assert_eq!(s.ledger(&volume), ledger_at_kill, "a refused start must not move the ledger");

    // The unmodified directory: every acknowledged write is there, the last one included.
    copy_dir(&killed, &state);
    let d = s.start(&state).unwrap();
    let (_, reopened) = common::vtpm_image(&state);
    assert_eq!(reopened, newest + 1, "the start's boot commit follows the newest image");
    assert_eq!(s.ledger(&volume), reopened, "the start advances the ledger to its boot commit");
    tpm2_ok(&state, w, &["tpm2_startup", "-c"]);
    assert_eq!(nv_read(&state, w), vec![3; 64]);
    drop(d);

    // The copy taken at the old record would have been accepted before that start; now it is refused.
    let ledger_now = s.ledger(&volume);
    assert_eq!(common::vtpm_image(&at_record).1, last_advance);
    copy_dir(&at_record, &state);
    let err = refusal(&s, &state);
    assert!(err.contains("refusing to start") && err.contains("rollback detected"), "{err}");
    assert!(
        err.contains(&format!("newest valid generation is {last_advance}, the ledger expects {ledger_now}")),
        "{err}"
    );
}
