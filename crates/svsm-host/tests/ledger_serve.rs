//! `svsm-host serve --ledger service:...`: the vTPM's store anchored at the ledger service on a real 3-member
//! etcd cluster, driven by tpm2-tools. NV writes survive restarts; the state directory rewound as a whole
//! (image, keys, every local file) is refused at start, naming both generations.

mod ledger_common;
use ledger_common::*;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const VM: &str = "5e5e5e5e000011112222333344445555";
const INDEX: &str = "0x1500016";

struct Serve {
    child: Child,
    tcti: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(state: &Path, work: &Path, svc: &str) -> Result<Serve, String> {
    let err_path = work.join("serve.stderr");
    let stderr = std::fs::File::create(&err_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .args(["serve", "--tcp", "--mssim-port", "0", "--swtpm-port", "0", "--no-swtpm-unix", "--state-dir"])
        .arg(state)
        .args(["--ledger", &format!("service:{svc}"), "--ledger-vm-id", VM, "--ledger-key"])
        .arg(work.join(format!("{VM}.key")))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut tcti = None;
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l == "ready" => break,
            Ok(l) if l.starts_with("mssim") => {
                tcti =
                    l.split_whitespace().find_map(|w| w.strip_prefix("TPM2TOOLS_TCTI=")).map(str::to_string)
            }
            Ok(_) => {}
            Err(_) => {
                let status = child.wait().unwrap();
                return Err(format!(
                    "serve exited ({status}): {}",
                    std::fs::read_to_string(&err_path).unwrap()
                ));
            }
        }
    }
    Ok(Serve { child, tcti: tcti.expect("no mssim line") })
}

fn tpm2(s: &Serve, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("TPM2TOOLS_TCTI", &s.tcti)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_index(s: &Serve, dir: &Path, byte: u8) {
    std::fs::write(dir.join("data"), [byte; 64]).unwrap();
    tpm2(s, dir, &["tpm2_nvwrite", INDEX, "-C", "o", "-i", "data"]);
}

fn read_index(s: &Serve, dir: &Path) -> Vec<u8> {
    tpm2(s, dir, &["tpm2_nvread", INDEX, "-C", "o", "-s", "64", "-o", "out"]);
    std::fs::read(dir.join("out")).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    assert!(Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success());
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
