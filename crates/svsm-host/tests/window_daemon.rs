//! Window mode in the daemon: the ledger must not lag the image for longer than the window once the vTPM goes
//! idle (serve's ledger timer), and a stop signal closes the volume cleanly, advancing the ledger to the last
//! acknowledged NV write. Both read the ledger's record directly (the state directory's file ledger) and the
//! image's authenticated generation (`store inspect --detached`, which runs beside the daemon).

mod common;
use common::Daemon;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use svsm_store::{FileLedger, Ledger as _, VolumeId};

const INDEX: &str = "0x1500016";

fn tcti(state: &Path) -> String {
    format!("swtpm:path={}", state.join("swtpm.sock").display())
}

fn tpm2_ok(state: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("TPM2TOOLS_TCTI", tcti(state))
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `make deps`)", args[0]));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn nv_write(state: &Path, dir: &Path, byte: u8) {
    std::fs::write(dir.join("data"), [byte; 64]).unwrap();
    tpm2_ok(state, dir, &["tpm2_nvwrite", INDEX, "-C", "o", "-i", "data"]);
}

/// The generation the ledger holds for the volume.
fn ledger(state: &Path, volume: &VolumeId) -> u64 {
    FileLedger::new(state.join("ledger")).unwrap().read(volume).unwrap().expect("no ledger record").generation
}

fn setup(state: &Path, dir: &Path, window: &str) -> Daemon {
    let d = Daemon::start(state, &["--ledger-mode", window]);
    tpm2_ok(state, dir, &["tpm2_startup", "-c"]);
    tpm2_ok(state, dir, &["tpm2_nvdefine", INDEX, "-C", "o", "-s", "64", "-a", "ownerread|ownerwrite"]);
    d
}

/// NV writes until the image is ahead of the ledger (a write can itself be the window's advance).
fn burst_leaving_ledger_behind(state: &Path, dir: &Path) -> (VolumeId, u64) {
    for byte in 1..=10 {
        nv_write(state, dir, byte);
        let (volume, generation) = common::vtpm_image(state);
        if byte >= 3 && ledger(state, &volume) < generation {
            return (volume, generation);
        }
    }
    panic!("every NV write advanced the ledger: the window is not in effect");
}

#[test]
fn an_idle_vtpm_has_its_ledger_advanced_within_the_window() {
    const T: u64 = 2;
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let _d = setup(&state, work.path(), &format!("window:{T}"));
    let (volume, generation) = burst_leaving_ledger_behind(&state, work.path());
    let acknowledged = Instant::now();
    // The ledger last moved at or before the last write, so it must reach that write's generation within T
    // of it, plus one tick of the timer (T/8) and the time to read it.
    let bound = Duration::from_millis(T * 1000 + 1000);
    let caught_up = loop {
        if ledger(&state, &volume) == generation {
            break acknowledged.elapsed();
        }
        assert!(
            acknowledged.elapsed() < bound,
            "the ledger still holds generation {} {:?} after the last NV write (image at {generation}, window \
             {T} s): nothing advances an idle volume",
            ledger(&state, &volume),
            acknowledged.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("ledger caught up with generation {generation} {caught_up:?} after the last NV write");
    assert_eq!(common::vtpm_image(&state).1, generation, "the advance must not commit anything itself");
}

#[test]
fn a_stop_signal_closes_the_vtpm_cleanly_and_advances_the_ledger() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    // A window far longer than the test: only the clean close can move the ledger.
    let mut d = setup(&state, work.path(), "window:600");
    let (volume, generation) = burst_leaving_ledger_behind(&state, work.path());
    let pid = d.child.0.id() as libc::pid_t;
    // SAFETY: kill(2) on the daemon this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = d.child.0.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited with {status} on SIGTERM: {}", d.log());
    assert_eq!(ledger(&state, &volume), generation, "the clean close did not advance the ledger");
    assert_eq!(common::vtpm_image(&state).1, generation);
}
