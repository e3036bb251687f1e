//! `serve --uefi` with Secure Boot key databases, driven by `svsm-host guest uefi set` with updates signed by
//! the real `sbvarsign` (keys from `openssl`, lists from `sbsiglist`): PK and KEK enrolled, a signed dbx
//! append accepted in user mode and durable across SIGKILL + restart; a dbx update signed by another key, an
//! unsigned one and a replayed older one get EFI_SECURITY_VIOLATION and change nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, Serve, guest_uefi as guest};

const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
const DB_GUID: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (Makefile APT_PACKAGES)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn start(state: &Path) -> Daemon {
    Serve::new(state).unix_only().uefi().start()
}

struct Keys(PathBuf);

impl Keys {
    fn p(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }

    fn key(&self, n: &str) {
        run(Command::new("openssl")
            .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30"])
            .arg("-keyout")
            .arg(self.p(&format!("{n}.key")))
            .arg("-out")
            .arg(self.p(&format!("{n}.crt")))
            .args(["-subj", &format!("/CN=svsm-host uefi e2e {n}/")]));
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(self.p(&format!("{n}.crt")))
            .arg("-out")
            .arg(self.p(&format!("{n}.der"))));
    }

    fn esl(&self, kind: &str, input: &Path, out: &str) -> PathBuf {
        let out = self.p(out);
        run(Command::new("sbsiglist")
            .args(["--owner", "11111111-2222-3333-4444-555555555555", "--type", kind, "--output"])
            .arg(&out)
            .arg(input));
        out
    }

    fn cert_list(&self, n: &str) -> PathBuf {
        self.esl("x509", &self.p(&format!("{n}.der")), &format!("{n}.esl"))
    }

    fn hash_list(&self, byte: u8) -> PathBuf {
        let f = self.p(&format!("h{byte}.bin"));
        std::fs::write(&f, [byte; 32]).expect("digest");
        self.esl("sha256", &f, &format!("h{byte}.esl"))
    }

    /// sbvarsign output file for `value`, signed by `signer`.
    fn sign(&self, var: &str, value: &Path, signer: &str, append: bool, out: &str) -> String {
        let out = self.p(out);
        let mut attrs = String::from(
            "NON_VOLATILE,BOOTSERVICE_ACCESS,RUNTIME_ACCESS,TIME_BASED_AUTHENTICATED_WRITE_ACCESS",
        );
        if append {
            attrs.push_str(",APPEND_WRITE");
        }
        run(Command::new("sbvarsign")
            .args(["--attr", &attrs, "--key"])
            .arg(self.p(&format!("{signer}.key")))
            .arg("--cert")
            .arg(self.p(&format!("{signer}.crt")))
            .arg("--output")
            .arg(&out)
            .arg(var)
            .arg(value));
        out.to_str().expect("utf-8").to_owned()
    }
}

fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

#[test]
fn signed_dbx_append_is_durable_and_forged_unsigned_replayed_updates_are_refused() {
    let base = tempfile::tempdir().expect("tmp");
    let state = base.path().join("state");
    let k = Keys(base.path().to_path_buf());
    for n in ["PK", "KEK", "OTHER"] {
        k.key(n);
    }
    let pk = k.sign("PK", &k.cert_list("PK"), "PK", false, "pk.auth");
    let kek = k.sign("KEK", &k.cert_list("KEK"), "PK", false, "kek.auth");
    let dbx1 = k.sign("dbx", &k.hash_list(0xa1), "KEK", false, "dbx1.auth");
    next_second();
    let dbx2 = k.sign("dbx", &k.hash_list(0xb2), "KEK", true, "dbx2.auth");
    let forged = k.sign("dbx", &k.hash_list(0xc3), "OTHER", true, "forged.auth");
    let unsigned = k.hash_list(0xc3).to_str().expect("utf-8").to_owned();

    let mut daemon = start(&state);
    let set = |var: &str, guid: &str, attrs: &str, file: &str| {
        guest(&state, &["set", var, guid, "--attributes", attrs, "--data-file", file])
    };
    for (var, guid, file) in [("PK", GLOBAL, &pk), ("KEK", GLOBAL, &kek), ("dbx", DB_GUID, &dbx1)] {
        let (ok, out, err) = set(var, guid, "0x27", file);
        assert!(ok, "{var} refused: {out}{err}");
    }
    let (ok, out, err) = set("dbx", DB_GUID, "0x67", &dbx2);
    assert!(ok, "signed dbx append refused in user mode: {out}{err}");
    let (ok, merged, err) = guest(&state, &["get", "dbx", DB_GUID]);
    assert!(ok, "{err}");
    for (attrs, file, what) in
        [("0x67", &forged, "other key"), ("0x27", &unsigned, "unsigned"), ("0x27", &dbx1, "replay")]
    {
        let (ok, out, err) = set("dbx", DB_GUID, attrs, file);
        assert!(!ok && err.contains("EFI_SECURITY_VIOLATION"), "{what} not refused: {out}{err}");
    }
    let (_, after, _) = guest(&state, &["get", "dbx", DB_GUID]);
    assert_eq!(after, merged, "a refused update changed dbx");

    daemon.child.0.kill().expect("SIGKILL");
    daemon.child.0.wait().expect("reaped");
    drop(daemon);
    let _daemon = start(&state);
    let (ok, again, err) = guest(&state, &["get", "dbx", DB_GUID]);
    assert!(ok, "{err}");
    assert_eq!(again, merged, "the signed append did not survive SIGKILL + restart");
    assert!(again.contains("size 152"), "two 76-byte signature lists expected: {again}");
    let (ok, out, err) = set("dbx", DB_GUID, "0x27", &dbx1);
    assert!(!ok && err.contains("EFI_SECURITY_VIOLATION"), "replay after restart not refused: {out}{err}");
}
