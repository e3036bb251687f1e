//! Secure Boot key databases end to end through the MM request path (edk2-behaving guest → SVSM protocol 4 →
//! UefiVariables with the verifying policy → store volume): updates signed by the real `sbvarsign` with keys
//! from `openssl` are stored durably with their timestamps in user mode; forged, unsigned and replayed ones
//! get EFI_SECURITY_VIOLATION and change nothing, also after a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use svsm_store::MemLedger;
use svsm_uefi::guest::UefiGuestError;
use svsm_uefi::mm::{self, EFI_GLOBAL_VARIABLE_GUID, IMAGE_SECURITY_DATABASE_GUID, status};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (Makefile APT_PACKAGES)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Keys(PathBuf);

impl Keys {
    fn p(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }

    fn generate(dir: &Path, names: &[&str]) -> Keys {
        let k = Keys(dir.to_path_buf());
        for n in names {
            run(Command::new("openssl")
                .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30"])
                .arg("-keyout")
                .arg(k.p(&format!("{n}.key")))
                .arg("-out")
                .arg(k.p(&format!("{n}.crt")))
                .args(["-subj", &format!("/CN=svsm-uefi e2e {n}/")]));
            run(Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(k.p(&format!("{n}.crt")))
                .arg("-out")
                .arg(k.p(&format!("{n}.der"))));
        }
        k
    }

    fn esl(&self, kind: &str, input: &Path) -> Vec<u8> {
        let out = self.p("out.esl");
        run(Command::new("sbsiglist")
            .args(["--owner", "11111111-2222-3333-4444-555555555555", "--type", kind, "--output"])
            .arg(&out)
            .arg(input));
        std::fs::read(out).expect("esl")
    }

    fn cert_list(&self, n: &str) -> Vec<u8> {
        self.esl("x509", &self.p(&format!("{n}.der")))
    }

    fn hash_list(&self, digest: u8) -> Vec<u8> {
        let f = self.p("digest.bin");
        std::fs::write(&f, [digest; 32]).expect("digest");
        self.esl("sha256", &f)
    }

    fn sign(&self, var: &str, value: &[u8], signer: &str, append: bool) -> Vec<u8> {
        let input = self.p("value.bin");
        std::fs::write(&input, value).expect("value");
        let out = self.p("value.auth");
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
            .arg(&input));
        std::fs::read(out).expect("auth")
    }
}

fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

#[test]
fn signed_dbx_append_in_user_mode_is_durable_and_forgeries_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = Keys::generate(dir.path(), &["PK", "KEK", "OTHER"]);
    let path = dir.path().join("uefi-vars.store");
    common::format(&path);
    let ledger = MemLedger::new();
    let mut g = common::guest(common::svsm_with(common::service(&path, &ledger)));
    let dbx = |g: &mut svsm_uefi::guest::UefiGuest<_>| g.get_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID);
    let violation = Err(UefiGuestError::Efi(status::SECURITY_VIOLATION));

    // Setup mode: PK must be signed by its own key; a PK signed by another key is refused.
    let forged_pk = keys.sign("PK", &keys.cert_list("PK"), "OTHER", false);
    assert_eq!(g.set_variable("PK", &EFI_GLOBAL_VARIABLE_GUID, 0x27, &forged_pk), violation);
    let pk = keys.sign("PK", &keys.cert_list("PK"), "PK", false);
    g.set_variable("PK", &EFI_GLOBAL_VARIABLE_GUID, 0x27, &pk).expect("PK enrolment");
    // User mode from here: KEK signed by PK.
    let kek = keys.sign("KEK", &keys.cert_list("KEK"), "PK", false);
    g.set_variable("KEK", &EFI_GLOBAL_VARIABLE_GUID, 0x27, &kek).expect("KEK signed by PK");

    let first = keys.sign("dbx", &keys.hash_list(0xa1), "KEK", false);
    g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x27, &first).expect("dbx signed by KEK");
    next_second();
    let append = keys.sign("dbx", &keys.hash_list(0xb2), "KEK", true);
    g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x67, &append).expect("dbx append signed by KEK");
    let (attributes, merged) = dbx(&mut g).expect("dbx");
    assert_eq!(attributes, 0x27, "APPEND_WRITE is not stored");
    let mut want = keys.hash_list(0xa1);
    want.extend(keys.hash_list(0xb2));
    assert_eq!(merged, want, "append merges the new list after the stored one");

    // Refused, nothing stored: another key, unsigned, a replay of the older update, a flipped byte.
    next_second();
    let other = keys.sign("dbx", &keys.hash_list(0xc3), "OTHER", true);
    assert_eq!(g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x67, &other), violation);
    assert_eq!(g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x27, &keys.hash_list(0xc3)), violation);
    assert_eq!(g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x27, &first), violation);
    let mut flipped = keys.sign("dbx", &keys.hash_list(0xc3), "KEK", true);
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x67, &flipped), violation);
    assert_eq!(dbx(&mut g).expect("dbx").1, merged, "a refused write changed dbx");

    // Kill the SVSM (no clean close) and start again from the volume.
    drop(std::mem::replace(&mut g.guest().transport.svsm, common::bare_svsm()));
    drop(g);
    let service = common::service(&path, &ledger);
    let stored = service.get("dbx", &IMAGE_SECURITY_DATABASE_GUID).expect("dbx durable");
    assert_eq!(stored.data, merged);
    assert_eq!(
        stored.timestamp.map(|t| t[..16].to_vec()),
        Some(append[..16].to_vec()),
        "timestamp persisted"
    );
    assert!(service.get("PK", &EFI_GLOBAL_VARIABLE_GUID).is_some_and(|v| v.timestamp.is_some()));
    let mut g = common::guest(common::svsm_with(service));
    // The persisted timestamp still stops the replay, and user mode (PK) still holds.
    assert_eq!(g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x27, &first), violation);
    assert_eq!(g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x67, &other), violation);
    let later = keys.sign("dbx", &keys.hash_list(0xd4), "KEK", true);
    g.set_variable("dbx", &IMAGE_SECURITY_DATABASE_GUID, 0x67, &later).expect("signed append after restart");
    assert_eq!(dbx(&mut g).expect("dbx").1.len(), merged.len() + 76);
    let _ = mm::SMM_VARIABLE_GUID;
}
