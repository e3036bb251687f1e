//! swtpm state import and export against the real swtpm 0.7 and tpm2-tools (Debian `swtpm`, `swtpm-tools`,
//! `tpm2-tools`): a TPM made and used in swtpm keeps its NV data, persistent key, owner auth, EK and EK
//! certificate when imported here, and what we export runs in swtpm again. Damaged, foreign and wrongly keyed
//! state files are refused with precise errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, name_of, require_tpm2_tools, run_ok, svsm_host, tpm2, tpm2_ok};

const NV_INDEX: &str = "0x1500016";
const KEY_HANDLE: &str = "0x81000010";
const OWNER_PASS: &str = "imported-owner-pass";

/// A swtpm_setup configuration whose local CA lives in `work` (not /var/lib/swtpm-localca).
fn swtpm_setup_config(work: &Path) -> PathBuf {
    let ca = work.join("localca");
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::write(
        work.join("swtpm-localca.conf"),
        format!(
            "statedir = {0}\nsigningkey = {0}/signkey.pem\nissuercert = {0}/issuercert.pem\ncertserial = {0}/certserial\n",
            ca.display()
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("swtpm-localca.options"),
        "--platform-manufacturer Test\n--platform-version 2.1\n--platform-model QEMU\n",
    )
    .unwrap();
    let conf = work.join("swtpm_setup.conf");
    std::fs::write(
        &conf,
        format!(
            "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {0}/swtpm-localca.conf\n\
             create_certs_tool_options = {0}/swtpm-localca.options\nactive_pcr_banks = sha256\n",
            work.display()
        ),
    )
    .unwrap();
    conf
}

/// Manufactures a swtpm TPM 2 in `dir` with EKs and EK certificates from swtpm's local CA.
fn swtpm_setup(work: &Path, dir: &Path, key: Option<&Path>) {
    std::fs::create_dir_all(dir).unwrap();
    let conf = swtpm_setup_config(work);
    let mut args: Vec<String> = vec!["--tpm2".into(), "--tpmstate".into(), dir.display().to_string()];
    args.extend([
        "--create-ek-cert".into(),
        "--overwrite".into(),
        "--config".into(),
        conf.display().to_string(),
    ]);
    args.extend(["--logfile".into(), work.join("swtpm_setup.log").display().to_string()]);
    if let Some(k) = key {
        args.extend(["--keyfile".into(), k.display().to_string(), "--cipher".into(), "aes-256-cbc".into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(work, "swtpm_setup", &args);
}

/// A running `swtpm socket` on Unix sockets, stopped (CMD_SHUTDOWN) on drop.
struct Swtpm {
    child: Child,
    ctrl: PathBuf,
    tcti: String,
}

impl Swtpm {
    fn start(work: &Path, dir: &Path, key: Option<&Path>) -> Swtpm {
        let data = work.join("swtpm-data.sock");
        let ctrl = work.join("swtpm-data.sock.ctrl"); // where the swtpm TCTI looks for it
        let _ = std::fs::remove_file(&data);
        let _ = std::fs::remove_file(&ctrl);
        let mut cmd = Command::new("swtpm");
        cmd.args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear", "--tpmstate"])
            .arg(format!("dir={}", dir.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", data.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()));
        if let Some(k) = key {
            cmd.arg("--key").arg(format!("file={},format=hex,mode=aes-256-cbc", k.display()));
        }
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .expect("swtpm (Debian `swtpm`) is not installed: run `make deps`");
        let t0 = Instant::now();
        while !(data.exists() && ctrl.exists()) {
            assert!(t0.elapsed() < Duration::from_secs(20), "swtpm did not create its sockets");
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, ctrl, tcti: format!("swtpm:path={}", data.display()) }
    }

    fn stop(mut self) {
        let ok = Command::new("swtpm_ioctl").arg("--unix").arg(&self.ctrl).arg("-s").status().unwrap();
        assert!(ok.success(), "swtpm_ioctl -s failed");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "swtpm exited with {status}");
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a running TPM: an NV index with data, a persistent signing key, and the owner auth changed. Returns
/// the RSA EK's name.
fn populate(t: &str, work: &Path) -> String {
    tpm2_ok(
        t,
        work,
        &["tpm2_nvdefine", NV_INDEX, "-C", "o", "-s", "32", "-a", "ownerread|ownerwrite|authread|authwrite"],
    );
    tpm2_ok(t, work, &["tpm2_nvwrite", NV_INDEX, "-C", "o", "-i", "nv1.bin"]);
    // No resource manager in between: flush the transient objects each tool leaves loaded.
    tpm2_ok(t, work, &["tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", "prim.ctx"]);
    tpm2_ok(t, work, &["tpm2_flushcontext", "-t"]);
    tpm2_ok(
        t,
        work,
        &[
            "tpm2_create",
            "-C",
            "prim.ctx",
            "-G",
            "ecc256:ecdsa-sha256",
            "-u",
            "k.pub",
            "-r",
            "k.priv",
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
        ],
    );
    tpm2_ok(t, work, &["tpm2_flushcontext", "-t"]);
    tpm2_ok(t, work, &["tpm2_load", "-C", "prim.ctx", "-u", "k.pub", "-r", "k.priv", "-c", "k.ctx"]);
    tpm2_ok(t, work, &["tpm2_evictcontrol", "-C", "o", "-c", "k.ctx", KEY_HANDLE]);
    tpm2_ok(t, work, &["tpm2_flushcontext", "-t"]);
    tpm2_ok(t, work, &["tpm2_readpublic", "-c", KEY_HANDLE, "-f", "pem", "-o", "key.pem"]);
    let ek = ek_name(t, work);
    tpm2_ok(t, work, &["tpm2_changeauth", "-c", "owner", OWNER_PASS]);
    ek
}

fn ek_name(t: &str, work: &Path) -> String {
    tpm2_ok(t, work, &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"]);
    let name = name_of(&tpm2_ok(t, work, &["tpm2_readpublic", "-c", "ek.ctx"]));
    tpm2_ok(t, work, &["tpm2_flushcontext", "-t"]);
    name
}

/// The state made by `populate` is all there: NV data `nv_file`, the key signs (verified by openssl against
/// the public key swtpm exported), the owner auth is the changed one, and the EK is the same.
fn check(t: &str, work: &Path, nv_file: &str, ek: &str) {
    let out = tpm2(
        t,
        work,
        &["tpm2_nvread", NV_INDEX, "-C", "o", "-P", OWNER_PASS, "-s", "32", "-o", "nv-read.bin"],
    );
    assert!(
        out.status.success(),
        "NV read with the changed owner auth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(work.join("nv-read.bin")).unwrap(), std::fs::read(work.join(nv_file)).unwrap());
    let wrong = tpm2(t, work, &["tpm2_nvread", NV_INDEX, "-C", "o", "-P", "not-the-owner-pass", "-s", "32"]);
    assert!(!wrong.status.success(), "a wrong owner auth was accepted");
    std::fs::write(work.join("msg.txt"), b"signed by the persistent key").unwrap();
    tpm2_ok(
        t,
        work,
        &["tpm2_sign", "-c", KEY_HANDLE, "-g", "sha256", "-f", "plain", "-o", "sig.der", "msg.txt"],
    );
    let v = run_ok(
        work,
        "openssl",
        &["dgst", "-sha256", "-verify", "key.pem", "-signature", "sig.der", "msg.txt"],
    );
    assert!(v.contains("Verified OK"), "{v}");
    assert_eq!(ek_name(t, work), ek, "the EK changed");
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn encrypted_swtpm_state_imports_serves_and_exports_back_into_swtpm() {
    require_tpm2_tools();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let key = work.join("swtpm.key");
    std::fs::write(
        &key,
        "a3c1f0e2b4d6987f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899\n"[..64].to_owned() + "\n",
    )
    .unwrap();
    std::fs::write(work.join("nv1.bin"), [0x11u8; 32]).unwrap();
    std::fs::write(work.join("nv2.bin"), [0x22u8; 32]).unwrap();
    let sw_dir = work.join("swtpm-state");
    swtpm_setup(work, &sw_dir, Some(&key));

    // Use the TPM in swtpm.
    let sw = Swtpm::start(work, &sw_dir, Some(&key));
    let ek = populate(&sw.tcti, work);
    tpm2_ok(
        &sw.tcti,
        work,
        &["tpm2_nvread", "0x1c00002", "-C", "o", "-P", OWNER_PASS, "-o", "ekcert-swtpm.der"],
    );
    tpm2_ok(&sw.tcti, work, &["tpm2_shutdown"]);
    sw.stop();

    // Without the key, or with another key, the import is refused before anything is created.
    let state = work.join("state");
    let no_key =
        svsm_host(work, &["tpm", "import-swtpm", "--from", sw_dir.to_str().unwrap(), "--state-dir", "state"]);
    assert!(!no_key.status.success());
    assert!(stderr_of(&no_key).contains("encrypted (256-bit key)"), "{}", stderr_of(&no_key));
    std::fs::write(work.join("other.key"), "00".repeat(32)).unwrap();
    let other = svsm_host(
        work,
        &[
            "tpm",
            "import-swtpm",
            "--from",
            sw_dir.to_str().unwrap(),
            "--key",
            "other.key",
            "--state-dir",
            "state",
        ],
    );
    assert!(!other.status.success());
    assert!(stderr_of(&other).contains("HMAC does not verify"), "{}", stderr_of(&other));
    assert!(!state.exists(), "a refused import created the state directory");

    let out = svsm_host(
        work,
        &[
            "tpm",
            "import-swtpm",
            "--from",
            sw_dir.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--state-dir",
            "state",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("encrypted") && said.contains("imported from swtpm"), "{said}");
    // The import keeps swtpm's EK: the record's RSA EK name is the one swtpm reported.
    assert!(said.contains(&ek), "the recorded EK is not swtpm's ({ek}): {said}");

    // Serve it here: everything is as it was in swtpm, including the EK certificate from swtpm's CA.
    let d = Daemon::start(&state, &[]);
    tpm2_ok(&d.unix_tcti(), work, &["tpm2_startup", "-c"]);
    check(&d.unix_tcti(), work, "nv1.bin", &ek);
    tpm2_ok(
        &d.unix_tcti(),
        work,
        &["tpm2_nvread", "0x1c00002", "-C", "o", "-P", OWNER_PASS, "-o", "ekcert-ours.der"],
    );
    assert_eq!(
        std::fs::read(work.join("ekcert-ours.der")).unwrap(),
        std::fs::read(work.join("ekcert-swtpm.der")).unwrap()
    );
    // A change made here must travel back.
    tpm2_ok(&d.unix_tcti(), work, &["tpm2_nvwrite", NV_INDEX, "-C", "o", "-P", OWNER_PASS, "-i", "nv2.bin"]);
    tpm2_ok(&d.unix_tcti(), work, &["tpm2_shutdown"]);
    // Export refuses while the daemon holds the state.
    let busy = svsm_host(
        work,
        &["tpm", "export-swtpm", "--state-dir", "state", "--to", "back", "--key", key.to_str().unwrap()],
    );
    assert!(!busy.status.success() && stderr_of(&busy).contains("stop the daemon"), "{}", stderr_of(&busy));
    drop(d);

    let out = svsm_host(
        work,
        &["tpm", "export-swtpm", "--state-dir", "state", "--to", "back", "--key", key.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let back = work.join("back");
    let file = std::fs::read(back.join("tpm2-00.permall")).unwrap();
    assert_eq!(&file[..6], &[2, 1, 0, 10, 0, 9], "not an AES-256-encrypted swtpm state file");
    let again = svsm_host(work, &["tpm", "export-swtpm", "--state-dir", "state", "--to", "back"]);
    assert!(
        !again.status.success() && stderr_of(&again).contains("never overwritten"),
        "{}",
        stderr_of(&again)
    );

    // swtpm runs the exported state with the same key.
    let sw = Swtpm::start(work, &back, Some(&key));
    check(&sw.tcti, work, "nv2.bin", &ek);
    sw.stop();
}

#[test]
fn plain_swtpm_state_round_trips_and_damaged_or_foreign_files_are_refused() {
    require_tpm2_tools();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::write(work.join("nv1.bin"), [0x33u8; 32]).unwrap();
    let sw_dir = work.join("swtpm-state");
    swtpm_setup(work, &sw_dir, None);
    let sw = Swtpm::start(work, &sw_dir, None);
    let ek = populate(&sw.tcti, work);
    // Suspend it as QEMU would before a snapshot: CMD_STORE_VOLATILE writes tpm2-00.volatilestate, which
    // carries the PCRs. The import takes it along, so the vTPM resumes with the same PCR 16.
    tpm2_ok(&sw.tcti, work, &["tpm2_pcrextend", &format!("16:sha256={}01", "00".repeat(31))]);
    let pcr = tpm2_ok(&sw.tcti, work, &["tpm2_pcrread", "sha256:16"]);
    assert!(pcr.contains("0x90F4B39548DF55AD6187A1D20D731ECEE78C545B94AFD16F42EF7592D99CD365"), "{pcr}");
    let v = Command::new("swtpm_ioctl").arg("--unix").arg(&sw.ctrl).arg("-v").status().unwrap();
    assert!(v.success(), "swtpm_ioctl -v (CMD_STORE_VOLATILE) failed");
    sw.stop();
    assert!(sw_dir.join("tpm2-00.volatilestate").exists(), "swtpm wrote no volatile state");

    // Damaged and foreign files: each refused with what is wrong, nothing created.
    let permall = std::fs::read(sw_dir.join("tpm2-00.permall")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", permall[..permall.len() - 100].to_vec(), "truncated"),
        ("trailing", [permall.clone(), vec![0; 4]].concat(), "longer than"),
        ("foreign", b"-----BEGIN CERTIFICATE-----\nnot a TPM\n".to_vec(), "swtpm state file"),
        (
            "not-libtpms",
            {
                let mut p = permall.clone();
                p[18] ^= 0xff; // inside the libtpms magic (10-byte header, 6-byte TLV header, 2-byte version)
                p
            },
            "does not hold a libtpms TPM 2 permanent-state blob",
        ),
        (
            "libtpms-damaged",
            {
                let mut p = permall.clone();
                let n = p.len();
                p.truncate(n - 200);
                let tl = (p.len() - 16) as u32;
                p[12..16].copy_from_slice(&tl.to_be_bytes());
                let total = p.len() as u32;
                p[6..10].copy_from_slice(&total.to_be_bytes());
                p
            },
            "libtpms cannot load this swtpm state",
        ),
    ];
    for (name, bytes, expect) in cases {
        let dir = work.join(format!("bad-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tpm2-00.permall"), &bytes).unwrap();
        let st = format!("state-{name}");
        let out =
            svsm_host(work, &["tpm", "import-swtpm", "--from", dir.to_str().unwrap(), "--state-dir", &st]);
        assert!(!out.status.success(), "{name} was imported");
        assert!(stderr_of(&out).contains(expect), "{name}: {}", stderr_of(&out));
        assert!(!work.join(&st).exists(), "{name}: a refused import created the state directory");
    }
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = svsm_host(
        work,
        &["tpm", "import-swtpm", "--from", empty.to_str().unwrap(), "--state-dir", "s-empty"],
    );
    assert!(
        !out.status.success() && stderr_of(&out).contains("holds no tpm2-00.permall"),
        "{}",
        stderr_of(&out)
    );

    let out =
        svsm_host(work, &["tpm", "import-swtpm", "--from", sw_dir.to_str().unwrap(), "--state-dir", "state"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("with volatile state"));
    let d = Daemon::start(&work.join("state"), &[]);
    // Resumed, not restarted: no Startup, and PCR 16 holds what swtpm had.
    assert_eq!(
        tpm2_ok(&d.unix_tcti(), work, &["tpm2_pcrread", "sha256:16"]),
        pcr,
        "the volatile state was not resumed"
    );
    check(&d.unix_tcti(), work, "nv1.bin", &ek);
    drop(d);
    let out = svsm_host(work, &["tpm", "export-swtpm", "--state-dir", "state", "--to", "back"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unencrypted"));
    // libtpms consumes the volatile state once it resumed from it (as in swtpm): the TPM has run since, so
    // the export holds only the permanent state.
    assert!(!work.join("back/tpm2-00.volatilestate").exists(), "a consumed volatile state was exported");
    let sw = Swtpm::start(work, &work.join("back"), None);
    check(&sw.tcti, work, "nv1.bin", &ek);
    sw.stop();
}

#[test]
fn a_swtpm_state_with_an_endorsement_password_imports_without_an_ek_survey() {
    require_tpm2_tools();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let sw_dir = work.join("swtpm-state");
    swtpm_setup(work, &sw_dir, None);
    let sw = Swtpm::start(work, &sw_dir, None);
    let ek = ek_name(&sw.tcti, work);
    tpm2_ok(&sw.tcti, work, &["tpm2_changeauth", "-c", "e", "endorsement-pass"]);
    sw.stop();
    // The EKs cannot be derived offline without the password: the import still happens, and says so.
    let out =
        svsm_host(work, &["tpm", "import-swtpm", "--from", sw_dir.to_str().unwrap(), "--state-dir", "state"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("endorsement hierarchy has a password"), "{said}");
    let d = Daemon::start(&work.join("state"), &[]);
    tpm2_ok(&d.unix_tcti(), work, &["tpm2_startup", "-c"]);
    tpm2_ok(
        &d.unix_tcti(),
        work,
        &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub", "-P", "endorsement-pass"],
    );
    let name = name_of(&tpm2_ok(&d.unix_tcti(), work, &["tpm2_readpublic", "-c", "ek.ctx"]));
    assert_eq!(name, ek, "the EK changed");
}
