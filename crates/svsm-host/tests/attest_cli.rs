//! `svsm-host attest simulate` then `attest verify`: accepted as produced, rejected after tampering.

use std::process::Command;

fn host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svsm-host"))
}

#[test]
fn simulate_then_verify_accepts_and_tampering_rejects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = host().args(["attest", "simulate", "--out"]).arg(d).output().expect("run simulate");
    assert!(out.status.success(), "simulate failed: {}", String::from_utf8_lossy(&out.stderr));
    let verify = |report: &str| {
        host()
            .args(["attest", "verify", "--report"])
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
    let ok = verify("report.bin");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains("verdict: ACCEPTED"));
    assert!(stdout.contains("vTPM EK Name: 000b"), "{stdout}");
    assert!(stdout.contains("BEGIN PUBLIC KEY"));
    let mut report = std::fs::read(d.join("report.bin")).expect("report");
    report[0x55] ^= 1;
    std::fs::write(d.join("bad.bin"), &report).expect("write");
    let bad = verify("bad.bin");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("REJECTED"));
}

/// `serve --svsm-socket`: the libtpms vTPM behind the SVSM protocols; a guest starts the TPM like Linux,
/// attests it, and the verifier accepts the EK the real vTPM created.
#[test]
fn serve_with_svsm_socket_attests_the_real_vtpm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let state = d.join("state");
    let sock = d.join("svsm.sock");
    let mut child = host()
        .args(["serve", "--tcp", "--mssim-port", "0", "--swtpm-port", "0", "--no-swtpm-unix", "--state-dir"])
        .arg(&state)
        .arg("--svsm-socket")
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut ready = false;
    for line in BufReader::new(stdout).lines() {
        if line.expect("line").trim() == "ready" {
            ready = true;
            break;
        }
    }
    let result = std::panic::catch_unwind(|| {
        assert!(ready, "serve did not become ready");
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
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
