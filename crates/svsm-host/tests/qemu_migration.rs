//! Migration with real QEMU (`-accel tcg`, SeaBIOS): a guest whose firmware started the vTPM, a PCR extended
//! over the daemon's data socket, `migrate "exec:cat > F"` on the source, a second QEMU with
//! `-incoming "exec:cat F"` on a second daemon (`serve --incoming`, same store key): the PCR reads back the
//! same there. A destination with another store key refuses the blobs and QEMU's incoming migration fails.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Killed, key_file, pcr_extend_sha256, pcr_read, qemu, wait_for};

const SHA256: u16 = 0x000B;

/// A QMP connection: one JSON object per line; events are skipped.
struct Qmp(BufReader<UnixStream>);

impl Qmp {
    fn connect(path: &Path) -> Qmp {
        let s = wait_for(Duration::from_secs(30), || UnixStream::connect(path).ok()).expect("QMP socket");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut q = Qmp(BufReader::new(s));
        q.line(); // greeting
        q.call(r#"{"execute":"qmp_capabilities"}"#);
        q
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.0.read_line(&mut l).unwrap();
        l
    }

    fn call(&mut self, json: &str) -> String {
        self.0.get_mut().write_all(format!("{json}\n").as_bytes()).unwrap();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "QMP connection closed");
            if l.contains("\"return\"") || l.contains("\"error\"") {
                return l;
            }
        }
    }
}

fn vm(d: &Daemon, dir: &Path, name: &str, extra: &[&str]) -> Killed {
    let qmp = dir.join(format!("{name}.qmp"));
    let mut args = vec![
        "-qmp".to_owned(),
        format!("unix:{},server=on,wait=off", qmp.display()),
        "-serial".to_owned(),
        "none".to_owned(),
        "-boot".to_owned(),
        "reboot-timeout=-1".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    qemu(&d.ctrl_path(), "tpm-tis", &args, &dir.join(format!("{name}.err")))
}

#[test]
fn migration_to_a_file_restores_the_vtpm_on_a_second_daemon() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = key_file(dir, "vtpm.key", 0x5A);
    let k = key.to_str().unwrap();
    let src = Daemon::start(&dir.join("src"), &["--store-key", k]);
    let _qa = vm(&src, dir, "a", &[]);
    // SeaBIOS sends TPM2_Startup; then a PCR the firmware leaves alone gets a value only this test knows.
    let mut data = src.data();
    wait_for(Duration::from_secs(60), || pcr_read(&mut data, SHA256, 16))
        .expect("SeaBIOS never started the TPM");
    pcr_extend_sha256(&mut data, 16, [0xC3; 32]);
    let pcr = pcr_read(&mut data, SHA256, 16).unwrap();
    assert_ne!(pcr, vec![0; 32]);
    drop(data);

    let mut qmp = Qmp::connect(&dir.join("a.qmp"));
    let file = dir.join("vm.migration");
    let r = qmp
        .call(&format!(r#"{{"execute":"migrate","arguments":{{"uri":"exec:cat > {}"}}}}"#, file.display()));
    assert!(r.contains("\"return\""), "migrate refused: {r}{}", src.log());
    let status = wait_for(Duration::from_secs(60), || {
        let r = qmp.call(r#"{"execute":"query-migrate"}"#);
        (r.contains("\"completed\"") || r.contains("\"failed\"")).then_some(r)
    })
    .expect("migration did not finish in 60 s");
    assert!(status.contains("\"completed\""), "migration failed: {status}\n{}", src.log());
    drop(qmp);
    drop(_qa);

    // Destination: a new vTPM state directory, the same store key.
    let dst = Daemon::start(&dir.join("dst"), &["--incoming", "--store-key", k]);
    let incoming = format!("exec:cat {}", file.display());
    let _qb = vm(&dst, dir, "b", &["-incoming", &incoming]);
    let mut data = dst.data();
    let got = wait_for(Duration::from_secs(60), || pcr_read(&mut data, SHA256, 16));
    assert_eq!(
        got.as_ref(),
        Some(&pcr),
        "PCR 16 after migration\nqemu: {}\ndaemon: {}",
        std::fs::read_to_string(dir.join("b.err")).unwrap_or_default(),
        dst.log()
    );
    assert!(dst.log().contains("TPM state restored from state blobs and stored"));

    // A destination with another store key refuses; QEMU's incoming migration fails and it exits.
    let other_key = key_file(dir, "other.key", 0x77);
    let bad = Daemon::start(&dir.join("bad"), &["--incoming", "--store-key", other_key.to_str().unwrap()]);
    let mut qc = vm(&bad, dir, "c", &["-incoming", &incoming]);
    let exit = wait_for(Duration::from_secs(60), || qc.0.try_wait().unwrap());
    let err = std::fs::read_to_string(dir.join("c.err")).unwrap_or_default();
    assert!(exit.is_some_and(|s| !s.success()), "QEMU accepted a migration the vTPM refused: {err}");
    assert!(err.contains("stateblob"), "QEMU did not name the TPM state: {err}");
    assert!(bad.log().contains("does not authenticate under this daemon's vTPM key"), "{}", bad.log());
    eprintln!(
        "migration test: {:.1} s; QEMU on the wrong-key destination: {}",
        t0.elapsed().as_secs_f64(),
        err.trim()
    );
}
