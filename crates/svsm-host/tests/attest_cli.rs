//! `svsm-host attest simulate` then `attest verify`: accepted as produced, rejected after tampering or when
//! presented as evidence of another request.

mod common;

use common::{Serve, host};

#[test]
fn simulate_then_verify_accepts_and_tampering_rejects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = host().args(["attest", "simulate", "--out"]).arg(d).output().expect("run simulate");
    assert!(out.status.success(), "simulate failed: {}", String::from_utf8_lossy(&out.stderr));
    let verify = |report: &str, extra: &[&str]| {
        host()
            .args(["attest", "verify"])
            .args(extra)
            .arg("--report")
            .arg(d.join(report))
            .arg("--manifest")
            .arg(d.join("manifest.bin"))
            .arg("--nonce-file")
            .arg(d.join("nonce.bin"))
            .arg("--ark")
            .arg(d.join("ark.pem"))
            .arg("--chain")
            .arg(d.join("chain.pem"))
            .output()
            .expect("run verify")
    };
    let ok = verify("report.bin", &[]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains("verdict: ACCEPTED"));
    assert!(stdout.contains("vTPM EK Name: 000b"), "{stdout}");
    assert!(stdout.contains("BEGIN PUBLIC KEY"));
    let mut report = std::fs::read(d.join("report.bin")).expect("report");
    report[0x55] ^= 1;
    std::fs::write(d.join("bad.bin"), &report).expect("write");
    let bad = verify("bad.bin", &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("REJECTED"));
    // ATTEST_SERVICES evidence presented as the vTPM's single-service evidence is refused.
    let single = verify("report.bin", &["--single-service"]);
    let text = String::from_utf8_lossy(&single.stdout);
    assert_eq!(single.status.code(), Some(1), "{text}");
    assert!(text.contains("REJECTED"), "{text}");
}

/// ATTEST_SINGLE_SERVICE evidence: REPORT_DATA binds the vTPM GUID and manifest version 0, so `verify` accepts
/// it when told it is the vTPM's (`--single-service`), and rejects it presented as another service's, as another
/// manifest version, or as ATTEST_SERVICES evidence.
#[test]
fn single_service_evidence_verifies_only_as_what_was_requested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = host()
        .args(["attest", "simulate", "--single-service", "--out"])
        .arg(d)
        .output()
        .expect("run simulate");
    assert!(out.status.success(), "simulate failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--single-service"), "hint names the flag");
    let verify = |extra: &[&str]| {
        let out = host()
            .args(["attest", "verify", "--report"])
            .arg(d.join("report.bin"))
            .arg("--manifest")
            .arg(d.join("manifest.bin"))
            .arg("--nonce-file")
            .arg(d.join("nonce.bin"))
            .arg("--ark")
            .arg(d.join("ark.pem"))
            .arg("--certs")
            .arg(d.join("certs.bin"))
            .args(extra)
            .output()
            .expect("run verify");
        (
            out.status.code(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (code, text) = verify(&["--single-service"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verdict: ACCEPTED") && text.contains("vTPM EK Name: 000b"), "{text}");
    assert!(text.contains("BEGIN PUBLIC KEY"), "{text}");
    // The vTPM GUID spelled out is the same request.
    let (code, text) = verify(&["--service-guid", "c476f1eb-0123-45a5-9641-b4e7dde5bfe3"]);
    assert_eq!(code, Some(0), "{text}");
    // Not the vTPM's: another service GUID.
    let (code, text) = verify(&["--service-guid", "00000000-0000-0000-0000-000000000001"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("REJECTED") && text.contains("REPORT_DATA"), "{text}");
    // Another manifest version.
    let (code, text) = verify(&["--single-service", "--manifest-version", "1"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("REJECTED") && text.contains("REPORT_DATA"), "{text}");
    // Not said what was requested: refused with what to do next.
    let (code, text) = verify(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("REJECTED") && text.contains("--single-service"), "{text}");
}

/// `serve --svsm-socket`: the libtpms vTPM behind the SVSM protocols; a guest starts the TPM like Linux,
/// attests it, and the verifier accepts the EK the real vTPM created.
#[test]
fn serve_with_svsm_socket_attests_the_real_vtpm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let state = d.join("state");
    let sock = d.join("svsm.sock");
    let _serve = Serve::new(&state)
        .tcp()
        .args(["--no-swtpm-unix".as_ref(), "--svsm-socket".as_ref(), sock.as_os_str()])
        .start();
    {
        let mem = state.join("guest.mem");
        let guest = |extra: &[&str]| {
            host()
                .arg("guest")
                .args(extra)
                .arg("--svsm-socket")
                .arg(&sock)
                .arg("--memory")
                .arg(&mem)
                .output()
                .expect("guest")
        };
        // TPM2_Startup(CLEAR), as the Linux driver does (TPM_OPS_AUTO_STARTUP).
        let out = guest(&["tpm", "--command-hex", "80010000000c000001440000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "80010000000a00000000");
        let out = guest(&["attest", "--out", d.join("ev").to_str().expect("utf8")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ok = host()
            .args(["attest", "verify", "--report"])
            .arg(d.join("ev/report.bin"))
            .arg("--manifest")
            .arg(d.join("ev/manifest.bin"))
            .arg("--nonce-file")
            .arg(d.join("ev/nonce.bin"))
            .arg("--ark")
            .arg(state.join("simulated-ark.pem"))
            .arg("--certs")
            .arg(d.join("ev/certs.bin"))
            .output()
            .expect("verify");
        let text = String::from_utf8_lossy(&ok.stdout);
        assert_eq!(ok.status.code(), Some(0), "{text}");
        assert!(text.contains("verdict: ACCEPTED") && text.contains("vTPM EK Name: 000b"), "{text}");
    }
}
