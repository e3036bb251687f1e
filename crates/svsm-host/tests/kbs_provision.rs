//! `svsm-host kbs provision` against the KBS double's admin API (Trustee's endpoints, bodies and EdDSA bearer
//! tokens): the secret and the resource policy are registered; a wrong admin key is refused with the KBS's
//! verdict and nothing is created locally.

mod common;

use common::kbs::*;

#[test]
fn provision_registers_secret_and_policy_and_formats_only_a_new_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (admin, key_path) = admin_key(tmp.path(), "admin.key", 9);
    let kbs = admin_double(&admin);
    let rego = tmp.path().join("policy.rego");
    std::fs::write(&rego, "package policy\ndefault allow = false\n").unwrap();
    let state = tmp.path().join("state");
    let (ok, out, err) =
        provision(&state, &kbs.url(), &key_path, &["--resource-policy", rego.to_str().unwrap()]);
    assert!(ok, "provision failed:\n{out}\n{err}");
    assert_eq!(kbs.resource_data(RESOURCE).map(|d| d.len()), Some(32));
    assert_eq!(kbs.resource_policy_rego().as_deref(), Some("package policy\ndefault allow = false\n"));
    assert!(state.join("vtpm.store").exists() && state.join("simulated-snp-platform.pem").exists());
    assert!(out.contains("DEVELOPMENT ONLY"), "{out}");
    let secret = kbs.resource_data(RESOURCE).unwrap();

    // Never over an existing directory: nothing is sent, the registered secret stays.
    let (ok, _, err) = provision(&state, &kbs.url(), &key_path, &[]);
    assert!(!ok && err.contains("never reformats"), "{err}");
    assert_eq!(kbs.resource_data(RESOURCE).unwrap(), secret);
}

#[test]
fn a_wrong_admin_key_is_refused_with_the_kbs_verdict_and_nothing_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let (admin, _) = admin_key(tmp.path(), "admin.key", 10);
    let (_, wrong_path) = admin_key(tmp.path(), "intruder.key", 11);
    let kbs = admin_double(&admin);
    let state = tmp.path().join("state");
    let (ok, _, err) = provision(&state, &kbs.url(), &wrong_path, &[]);
    assert!(!ok, "a token signed by another key must be refused");
    assert!(err.contains("HTTP 401 AdminAuthInitialization") && err.contains("Cannot verify token"), "{err}");
    assert!(kbs.resource_data(RESOURCE).is_none(), "nothing registered");
    assert!(!state.exists(), "nothing created locally");

    // The right key but a role the ACL does not grant: refused too.
    let (_, key_path) = admin_key(tmp.path(), "admin2.key", 10);
    let (ok, _, err) = provision(&state, &kbs.url(), &key_path, &["--admin-role", "reader"]);
    assert!(!ok && err.contains("Role reader not allowed"), "{err}");
    assert!(!state.exists());
}
