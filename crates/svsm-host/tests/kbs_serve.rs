//! `serve --key-source kbs` with the real binaries: `kbs provision` registers the secret at the KBS double and
//! formats the vTPM; `serve` opens it with the key released through the real `kbs-proxy`, tpm2-tools uses it,
//! and the state survives a restart. A refused release or a wrong secret ends serve with the KBS's verdict
//! or the store's MAC error, and the store is untouched.

mod common;

use common::kbs::*;
use common::{Daemon, require_tpm2_tools, tpm2_ok};

fn digest(path: &std::path::Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

fn serve_args(proxy: &Proxy) -> Vec<String> {
    vec![
        "--key-source".into(),
        "kbs".into(),
        "--kbs-proxy".into(),
        proxy.socket.display().to_string(),
        "--kbs-attempts".into(),
        "2".into(),
    ]
}

#[test]
fn serve_opens_the_provisioned_vtpm_with_the_released_key_and_state_persists() {
    require_tpm2_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (admin, key_path) = admin_key(tmp.path(), "admin.key", 7);
    let kbs = admin_double(&admin);
    let state = tmp.path().join("state");
    let (ok, out, err) = provision(&state, &kbs.url(), &key_path, &[]);
    assert!(ok, "provision failed:\n{out}\n{err}");
    assert_eq!(kbs.resource_data(RESOURCE).map(|d| d.len()), Some(32), "the secret is registered");
    assert!(!state.join("dev-store.key").exists(), "no file key is made for a KBS-keyed vTPM");
    trust_state_dir(&kbs, &state);
    let proxy = Proxy::start(&kbs.url(), tmp.path(), &[]);
    let args = serve_args(&proxy);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let daemon = Daemon::start(&state, &args);
    tpm2_ok(&daemon.unix_tcti(), tmp.path(), &["tpm2_startup", "-c"]);
    tpm2_ok(&daemon.unix_tcti(), tmp.path(), &["tpm2_createprimary", "-C", "o", "-c", "primary.ctx"]);
    tpm2_ok(
        &daemon.unix_tcti(),
        tmp.path(),
        &["tpm2_evictcontrol", "-C", "o", "-c", "primary.ctx", "0x81000005"],
    );
    assert!(daemon.log().contains("KBS released the secret"), "{}", daemon.log());
    drop(daemon);
    assert_eq!(kbs.counts().released, 1);

    let daemon = Daemon::start(&state, &args);
    tpm2_ok(&daemon.unix_tcti(), tmp.path(), &["tpm2_startup", "-c"]);
    let handles = tpm2_ok(&daemon.unix_tcti(), tmp.path(), &["tpm2_getcap", "handles-persistent"]);
    assert!(handles.contains("0x81000005"), "the persistent key survived the restart: {handles}");
    drop(daemon);
    assert_eq!(kbs.counts().released, 2, "each start asks the KBS again");
}

#[test]
fn refused_release_and_wrong_secret_end_serve_with_a_precise_error_and_touch_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (admin, key_path) = admin_key(tmp.path(), "admin.key", 8);
    let kbs = admin_double(&admin);
    let state = tmp.path().join("state");
    let (ok, out, err) = provision(&state, &kbs.url(), &key_path, &[]);
    assert!(ok, "provision failed:\n{out}\n{err}");
    trust_state_dir(&kbs, &state);
    let proxy = Proxy::start(&kbs.url(), tmp.path(), &[]);
    let image = state.join("vtpm.store");
    let before = digest(&image);
    let serve = |extra: &[String]| {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["serve".as_ref(), "--state-dir".as_ref(), state.as_os_str(), "--no-swtpm-unix".as_ref()];
        args.push("--tcp".as_ref());
        args.extend(["--mssim-port", "0", "--swtpm-port", "0"].map(std::ffi::OsStr::new));
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        svsm_host_run(&args)
    };

    // The KBS's verdict: final, named, not retried, nothing started.
    kbs.deny_resources(Some((401, "PolicyDeny")));
    let (ok, _, err) = serve(&serve_args(&proxy));
    assert!(!ok, "serve must fail when the KBS refuses");
    assert!(err.contains("401") && err.contains("PolicyDeny") && err.contains("after 1 attempt"), "{err}");
    assert_eq!(digest(&image), before, "the store is untouched");
    kbs.deny_resources(None);

    // A KBS (or a host) releasing another secret: the store's MAC check, never a reformat.
    let mut other = kbs.resource_data(RESOURCE).unwrap();
    other[0] ^= 1;
    kbs.set_resource(RESOURCE, svsm_kbs_double::Resource { data: other, policy: Default::default() });
    let (ok, _, err) = serve(&serve_args(&proxy));
    assert!(!ok, "serve must fail with a wrong secret");
    assert!(err.contains("failed verification"), "{err}");
    assert_eq!(digest(&image), before, "the store is untouched");

    // An unreachable proxy is transient: retried --kbs-attempts times with backoff, then a named error.
    let nobody = tmp.path().join("nobody-listens.sock").display().to_string();
    let (ok, _, err) =
        serve(&["--key-source", "kbs", "--kbs-proxy", &nobody, "--kbs-attempts", "2"].map(String::from));
    assert!(!ok && err.contains("after 2 attempt(s)") && err.contains("kbs-proxy"), "{err}");
    assert_eq!(digest(&image), before, "the store is untouched");

    // No file-key fallback, and no KBS start on a directory that was never provisioned.
    let (ok, _, err) = serve(&["--key-source".into(), "kbs".into()]);
    assert!(!ok && err.contains("--kbs-proxy"), "{err}");
    let fresh = tmp.path().join("never-provisioned");
    let (ok, _, err) = svsm_host_run(&[
        "serve".as_ref(),
        "--state-dir".as_ref(),
        fresh.as_os_str(),
        "--key-source".as_ref(),
        "kbs".as_ref(),
        "--kbs-proxy".as_ref(),
        proxy.socket.as_os_str(),
    ]);
    assert!(!ok && err.contains("kbs provision"), "{err}");
    assert!(!fresh.exists(), "serve --key-source kbs never creates a state directory");
}
