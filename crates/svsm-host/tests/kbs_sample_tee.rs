//! `serve --key-source kbs --tee sample` (DEVELOPMENT ONLY): Trustee's sample-TEE evidence through the real
//! proxy. The double, like Trustee with its default policy, refuses it unless configured to accept it; when
//! it does, the binding (48-byte SHA-384, unpadded), the JWE and the key use work end to end.

mod common;

use common::kbs::*;
use common::{Daemon, tpm2_ok};

#[test]
fn sample_evidence_is_refused_unless_the_kbs_accepts_it_then_opens_the_vtpm() {
    let tmp = tempfile::tempdir().unwrap();
    let (admin, key_path) = admin_key(tmp.path(), "admin.key", 12);
    let kbs = admin_double(&admin);
    let state = tmp.path().join("state");
    let (ok, out, err) = provision(&state, &kbs.url(), &key_path, &[]);
    assert!(ok, "provision failed:\n{out}\n{err}");
    let proxy = Proxy::start(&kbs.url(), tmp.path(), &[]);
    let sock = proxy.socket.display().to_string();
    let args = ["--key-source", "kbs", "--kbs-proxy", &sock, "--tee", "sample", "--kbs-attempts", "1"];

    let mut refused: Vec<&std::ffi::OsStr> =
        vec!["serve".as_ref(), "--state-dir".as_ref(), state.as_os_str(), "--no-swtpm-unix".as_ref()];
    refused.extend(["--tcp", "--mssim-port", "0", "--swtpm-port", "0"].map(std::ffi::OsStr::new));
    refused.extend(args.iter().map(std::ffi::OsStr::new));
    let (ok, _, err) = svsm_host_run(&refused);
    assert!(!ok && err.contains("UnsupportedTee"), "{err}");
    assert!(err.contains("DEVELOPMENT ONLY"), "the sample TEE is labelled: {err}");

    kbs.set_accept_sample(true);
    let daemon = Daemon::start(&state, &args);
    tpm2_ok(&daemon.unix_tcti(), tmp.path(), &["tpm2_startup", "-c"]);
    tpm2_ok(&daemon.unix_tcti(), tmp.path(), &["tpm2_getrandom", "--hex", "8"]);
    assert!(daemon.log().contains("KBS released the secret"), "{}", daemon.log());
    drop(daemon);
    assert_eq!(kbs.counts().released, 1);
}
