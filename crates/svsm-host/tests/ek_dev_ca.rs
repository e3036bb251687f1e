//! EK certificates out of the box: without `--ek-ca`, the first start creates a development EK CA in the state
//! directory and certifies both EKs, as `swtpm_setup --create-ek-cert` does with its local CA. Checked with
//! tpm2-tools and the openssl CLI (independent implementations).

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{Daemon, require_tpm2_tools, run_ok, svsm_host, tpm2_ok};

#[test]
fn first_start_without_an_ek_ca_certifies_both_eks_with_a_development_ca() {
    require_tpm2_tools();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let state = work.join("state");
    let d = Daemon::start(&state, &[]);
    let t = d.unix_tcti();
    tpm2_ok(&t, work, &["tpm2_startup", "-c"]);
    tpm2_ok(&t, work, &["tpm2_getekcertificate", "-o", "rsa.der", "-o", "ecc.der"]);

    let ca = state.join("dev-ek-ca.pem");
    let key = state.join("dev-ek-ca.key");
    assert!(ca.exists() && key.exists(), "no development EK CA in {}", state.display());
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let subject = run_ok(work, "openssl", &["x509", "-in", ca.to_str().unwrap(), "-noout", "-subject"]);
    assert!(subject.contains("DEVELOPMENT"), "the CA is not labelled development-only: {subject}");

    for (kind, alg, usage) in [("rsa", "rsa", "Key Encipherment"), ("ecc", "ecc", "Key Agreement")] {
        let pem = format!("{kind}.pem");
        run_ok(work, "openssl", &["x509", "-inform", "DER", "-in", &format!("{kind}.der"), "-out", &pem]);
        let v = run_ok(work, "openssl", &["verify", "-CAfile", ca.to_str().unwrap(), &pem]);
        assert!(v.contains(": OK"), "{v}");
        // The profile's shape: EK certificate EKU (2.23.133.8.1), key usage per algorithm, a TPM SAN.
        let text = run_ok(work, "openssl", &["x509", "-in", &pem, "-noout", "-text"]);
        assert!(text.contains("2.23.133.8.1"), "{text}");
        assert!(text.contains(usage), "{kind}: {text}");
        assert!(text.contains("Subject Alternative Name: critical"), "{text}");
        // Subject Directory Attributes with tcg-at-tpmSpecification (2.23.133.2.16) = { "2.0", level 0, rev },
        // as the profile recommends and swtpm's local CA writes.
        assert!(text.contains("Subject Directory Attributes"), "{text}");
        let der = std::fs::read(work.join(format!("{kind}.der"))).unwrap();
        let spec = [0x06, 0x05, 0x67, 0x81, 0x05, 0x02, 0x10, 0x31];
        let at =
            der.windows(spec.len()).position(|w| w == spec).expect("no tcg-at-tpmSpecification attribute");
        // SET len, SEQUENCE len, UTF8String "2.0", INTEGER level 0, INTEGER revision 164.
        let value = &der[at + spec.len() + 1..at + spec.len() + 15];
        assert_eq!(value, &[0x30, 12, 0x0c, 3, b'2', b'.', b'0', 2, 1, 0, 2, 2, 0, 164], "TPMSpecification");
        // The certified key is the EK the TPM derives.
        tpm2_ok(
            &t,
            work,
            &["tpm2_createek", "-c", "ek.ctx", "-G", alg, "-u", &format!("ek-{kind}.pem"), "-f", "pem"],
        );
        tpm2_ok(&t, work, &["tpm2_flushcontext", "-t"]);
        let cert_key = run_ok(work, "openssl", &["x509", "-in", &pem, "-noout", "-pubkey"]);
        let ek_key = std::fs::read_to_string(work.join(format!("ek-{kind}.pem"))).unwrap();
        assert_eq!(cert_key.trim(), ek_key.trim(), "{kind} certificate does not certify the EK");
    }
    drop(d);

    // `tpm info` names the CA, and says it is the development one.
    let info = svsm_host(work, &["tpm", "info", "--state-dir", state.to_str().unwrap()]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.contains("development EK CA"), "{info}");
    assert!(info.contains("dev-ek-ca.pem"), "{info}");

    // A restart keeps the same CA (it is not re-created) and the certificates still verify against it.
    let ca_before = std::fs::read(&ca).unwrap();
    let d = Daemon::start(&state, &[]);
    tpm2_ok(&d.unix_tcti(), work, &["tpm2_startup", "-c"]);
    tpm2_ok(&d.unix_tcti(), work, &["tpm2_getekcertificate", "-o", "rsa2.der", "-o", "ecc2.der"]);
    assert_eq!(std::fs::read(&ca).unwrap(), ca_before);
    assert_eq!(std::fs::read(work.join("rsa2.der")).unwrap(), std::fs::read(work.join("rsa.der")).unwrap());
}

#[test]
fn tpm_manufacture_without_an_ek_ca_uses_the_development_ca_and_info_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let out = svsm_host(work, &["tpm", "manufacture", "--state-dir", "s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("DEVELOPMENT"), "manufacture does not warn about the development CA: {said}");
    let info = svsm_host(work, &["tpm", "info", "--state-dir", "s"]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.contains("at NV index 0x01c00002") && info.contains("at NV index 0x01c0000a"), "{info}");
    assert!(info.contains("development EK CA"), "{info}");
}
