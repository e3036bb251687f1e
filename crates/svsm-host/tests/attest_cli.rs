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
