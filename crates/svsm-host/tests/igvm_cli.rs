//! `svsm-host igvm measure`, and the simulated launch from an IGVM file (`attest simulate --igvm`,
//! `svsm-serve --igvm`): the reports carry the file's launch values, and `attest verify` checks them.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Killed, host, text, wait_for};

use svsm_igvm::testing::{TEST_POLICY, TestImage, pattern, sample_image};
use svsm_igvm::{IgvmCrateRules, SnpLaunchValues, measure};

/// Writes the test file and returns its launch values as the library computes them (pinned against an
/// independent PAGE_INFO chain in svsm-igvm's tests).
fn write(dir: &Path, name: &str, image: &TestImage) -> (std::path::PathBuf, SnpLaunchValues) {
    let bytes = image.build().expect("build IGVM");
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write IGVM");
    (path, measure(&bytes, &IgvmCrateRules).expect("measure"))
}

fn id_block_image() -> TestImage {
    let base = sample_image(0x3_0001);
    let ld = measure(&base.build().unwrap(), &IgvmCrateRules).unwrap().measurement;
    base.id_block(ld, 0x11, Some(0x22))
}

#[test]
fn measure_prints_digest_policy_id_block_and_reference_json() {
    let dir = tempfile::tempdir().unwrap();
    let (file, v) = write(dir.path(), "id.igvm", &id_block_image());
    let out = host().args(["igvm", "measure", "--json"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON only");
    assert_eq!(json["schema"], "svsm-igvm-reference-values/1");
    assert_eq!(json["measurement"], hex::encode(v.measurement));
    assert_eq!(json["policy"], "0x0000000000030001");
    assert_eq!(json["id_key_digest"], hex::encode(v.id_key_digest()));
    assert_eq!(json["author_key_digest"], hex::encode(v.author_key_digest()));

    let out = host().args(["igvm", "measure"]).arg(&file).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("measurement:   {}", hex::encode(v.measurement))), "{t}");
    assert!(t.contains("guest policy:  0x0000000000030001 (ABI >= 0.1, SMT yes"), "{t}");
    assert!(t.contains(&format!("id key digest:     {}", hex::encode(v.id_key_digest()))), "{t}");
    assert!(t.contains("signed digest:     matches"), "{t}");
    assert!(t.contains("kvm layout:    ok"), "{t}");

    let out = host().args(["igvm", "measure", "--rules", "coconut", "--json"]).arg(&file).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["digest_rules"], "coconut-igvmmeasure");
    assert_ne!(json["measurement"], hex::encode(v.measurement), "sample differs under igvmmeasure rules");
}

#[test]
fn measure_refuses_bad_files_with_exit_2_and_check_kvm_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (early, _) =
        write(dir.path(), "early.igvm", &TestImage::new(TEST_POLICY).vmsa(0x5000, 0).page(0, pattern(1, 9)));
    let out = host().args(["igvm", "measure", "--check-kvm"]).arg(&early).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not the last measured page"), "{}", text(&out));

    let truncated = dir.path().join("short.igvm");
    std::fs::write(&truncated, &sample_image(TEST_POLICY).build().unwrap()[..100]).unwrap();
    let out = host().args(["igvm", "measure"]).arg(&truncated).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("cannot measure") && text(&out).contains("short.igvm"), "{}", text(&out));

    let no_vmsa = dir.path().join("novmsa.igvm");
    std::fs::write(&no_vmsa, TestImage::new(TEST_POLICY).page(0, vec![1]).build().unwrap()).unwrap();
    let out = host().args(["igvm", "measure"]).arg(&no_vmsa).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no SNP VP context"), "{}", text(&out));

    let out = host().args(["igvm", "measure", "--platform", "tdx"]).arg(&early).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses unsupported platforms");
}

/// Report fields at their offsets in the SEV-SNP ATTESTATION_REPORT.
fn field(report: &[u8], offset: usize, len: usize) -> &[u8] {
    &report[offset..offset + len]
}

#[test]
fn attest_simulate_with_igvm_reports_the_files_launch_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, v) = write(d, "id.igvm", &id_block_image());
    let ev = d.join("ev");
    let out =
        host().args(["attest", "simulate", "--igvm"]).arg(&file).arg("--out").arg(&ev).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = std::fs::read(ev.join("report.bin")).unwrap();
    assert_eq!(field(&report, 0x08, 8), &v.policy.to_le_bytes());
    assert_eq!(field(&report, 0x10, 16), &v.family_id());
    assert_eq!(field(&report, 0x20, 16), &v.image_id());
    assert_eq!(field(&report, 0x04, 4), &v.guest_svn().to_le_bytes());
    assert_eq!(field(&report, 0x48, 4), &1u32.to_le_bytes(), "KEY_INFO.AUTHOR_KEY_EN");
    assert_eq!(field(&report, 0x90, 48), &v.measurement);
    assert_eq!(field(&report, 0xE0, 48), &v.id_key_digest());
    assert_eq!(field(&report, 0x110, 48), &v.author_key_digest());

    let verify = |extra: &[&std::ffi::OsStr]| {
        host()
            .args(["attest", "verify", "--report"])
            .arg(ev.join("report.bin"))
            .arg("--manifest")
            .arg(ev.join("manifest.bin"))
            .arg("--nonce-file")
            .arg(ev.join("nonce.bin"))
            .arg("--ark")
            .arg(ev.join("ark.pem"))
            .arg("--certs")
            .arg(ev.join("certs.bin"))
            .args(extra)
            .output()
            .unwrap()
    };
    // Without reference values the verifier accepts and prints the MEASUREMENT.
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!("measurement: {}", hex::encode(v.measurement))), "{}", text(&out));

    // --igvm: the same file is accepted, a file one page different is refused.
    let out = verify(&["--igvm".as_ref(), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("match the reference values"), "{}", text(&out));
    let (other, ov) = write(d, "other.igvm", &id_block_image().page(0x40_0000, vec![1]));
    let out = verify(&["--igvm".as_ref(), other.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("verdict: REJECTED") && text(&out).contains("MEASUREMENT"), "{}", text(&out));

    // --measurement HEX.
    let hex_ok = hex::encode(v.measurement);
    assert_eq!(verify(&["--measurement".as_ref(), hex_ok.as_ref()]).status.code(), Some(0));
    let hex_other = hex::encode(ov.measurement);
    assert_eq!(verify(&["--measurement".as_ref(), hex_other.as_ref()]).status.code(), Some(1));

    // --reference JSON from `igvm measure --json`: the measurement matches but the policy is another file's.
    let json = host().args(["igvm", "measure", "--json"]).arg(&file).output().unwrap().stdout;
    let reference = d.join("reference.json");
    std::fs::write(&reference, &json).unwrap();
    assert_eq!(verify(&["--reference".as_ref(), reference.as_os_str()]).status.code(), Some(0));
    let mut rv: serde_json::Value = serde_json::from_slice(&json).unwrap();
    rv["policy"] = "0x0000000000030000".into();
    std::fs::write(&reference, rv.to_string()).unwrap();
    let out = verify(&["--reference".as_ref(), reference.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("POLICY"), "{}", text(&out));
    // Only one source of reference values at a time.
    let out = verify(&["--igvm".as_ref(), file.as_os_str(), "--measurement".as_ref(), hex_ok.as_ref()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn igvm_whose_id_block_was_signed_for_another_digest_is_not_launched() {
    let dir = tempfile::tempdir().unwrap();
    let stale = sample_image(TEST_POLICY).id_block([0x55; 48], 1, None);
    let (file, _) = write(dir.path(), "stale.igvm", &stale);
    let out = host()
        .args(["attest", "simulate", "--igvm"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("ev"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("signed for another launch digest"), "{}", text(&out));
    // serve measures the file before it creates anything.
    let state = dir.path().join("state");
    let out = host()
        .args(["serve", "--state-dir"])
        .arg(&state)
        .arg("--svsm-socket")
        .arg(dir.path().join("s.sock"))
        .arg("--igvm")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!state.exists(), "a refused IGVM file must not create the state directory");
}

#[test]
fn svsm_serve_with_igvm_attests_the_files_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, v) = write(d, "sample.igvm", &sample_image(TEST_POLICY));
    let (sock, mem, ark) = (d.join("svsm.sock"), d.join("guest.mem"), d.join("ark.pem"));
    let _serve = Killed(
        host()
            .arg("svsm-serve")
            .arg("--svsm-socket")
            .arg(&sock)
            .arg("--memory")
            .arg(&mem)
            .arg("--ark-out")
            .arg(&ark)
            .arg("--igvm")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    {
        assert!(
            wait_for(Duration::from_secs(120), || sock.exists().then_some(())).is_some(),
            "svsm-serve did not start"
        );
        let ev = d.join("ev");
        let out = host()
            .args(["guest", "attest", "--svsm-socket"])
            .arg(&sock)
            .arg("--memory")
            .arg(&mem)
            .arg("--out")
            .arg(&ev)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let report = std::fs::read(ev.join("report.bin")).unwrap();
        assert_eq!(field(&report, 0x90, 48), &v.measurement);
        assert_eq!(field(&report, 0x08, 8), &TEST_POLICY.to_le_bytes());
        assert_eq!(field(&report, 0xE0, 48), &[0; 48], "no ID block: ID_KEY_DIGEST zero");
    }
}
