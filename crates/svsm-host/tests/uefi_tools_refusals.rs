//! What `svsm-host uefi import/export` refuse, and that a refusal changes nothing: a damaged .fd creates no
//! volume, an existing volume is replaced only with --force, an existing output file is kept.

mod common;

use std::process::Output;

use common::{host, text};

const MS_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
const EMPTY_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

fn run(args: &[&str]) -> Output {
    host().args(args).output().unwrap()
}

#[test]
fn damaged_fd_files_are_refused_precisely_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let good = std::fs::read(MS_4M).unwrap();
    let mut bad_checksum = good.clone();
    bad_checksum[44] ^= 1;
    let mut bad_guid = good.clone();
    bad_guid[0x48] ^= 0xff;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("truncated.fd", good[..0x30000].to_vec(), "truncated: the firmware volume (FvLength) at offset 0x0"),
        ("checksum.fd", bad_checksum, "header checksum fails"),
        ("guid.fd", bad_guid, "is not the authenticated variable store GUID"),
    ];
    for (name, bytes, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = run(&[
            "uefi",
            "import",
            "--from",
            file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{name} accepted");
        let msg = text(&out);
        assert!(msg.contains(expected), "{name}: {msg}");
        assert!(msg.contains("nothing was imported"), "{name}: {msg}");
        assert!(!state.join("uefi-vars.store").exists(), "{name} created a volume");
    }
}

#[test]
fn an_existing_volume_is_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("state");
    let s = s.to_str().unwrap();
    assert!(run(&["uefi", "import", "--from", MS_4M, "--state-dir", s]).status.success());
    let again = run(&["uefi", "import", "--from", EMPTY_4M, "--state-dir", s]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists; nothing was imported. Add --force"), "{}", text(&again));
    let list = text(&run(&["uefi", "list", "--state-dir", s]));
    assert!(list.starts_with("31 non-volatile variables"), "unchanged after the refusal: {list}");

    let forced = run(&["uefi", "import", "--from", EMPTY_4M, "--force", "--state-dir", s]);
    assert!(forced.status.success(), "{}", text(&forced));
    let list = text(&run(&["uefi", "list", "--state-dir", s]));
    assert!(list.starts_with("0 non-volatile variables"), "replaced: {list}");
}

#[test]
fn export_keeps_an_existing_file_and_reports_a_missing_volume() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("state");
    let s = s.to_str().unwrap();
    let missing = run(&["uefi", "list", "--state-dir", s]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("no state directory"), "{}", text(&missing));
    assert!(text(&missing).contains("uefi import --from"), "{}", text(&missing));

    assert!(run(&["uefi", "import", "--from", MS_4M, "--state-dir", s]).status.success());
    let target = dir.path().join("keep.fd");
    std::fs::write(&target, b"precious").unwrap();
    let out = run(&["uefi", "export", "--format", "fd", "--to", target.to_str().unwrap(), "--state-dir", s]);
    assert!(!out.status.success());
    assert!(text(&out).contains("exists; add --force"), "{}", text(&out));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}
