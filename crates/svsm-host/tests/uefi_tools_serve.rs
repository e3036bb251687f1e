//! The imported store is the one `serve --uefi` serves: Debian's Secure Boot varstore imported with
//! `svsm-host uefi import`, then a guest (`svsm-host guest uefi`, driving protocol 4 as edk2 does) reads PK
//! and dbx with the bytes virt-fw-vars reads from the file; `uefi list` works while the daemon runs (detached).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Serve, guest_uefi, host};

const MS_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

fn guest_get(state: &Path, name: &str, guid: &str) -> String {
    let (ok, out, err) = guest_uefi(state, &["get", name, guid]);
    assert!(ok, "guest get {name}: {err}");
    out
}

/// The data virt-fw-vars reads for `name` from `file`, as hex.
fn peer_data(file: &str, name: &str, dir: &Path) -> String {
    let json = dir.join(format!("peer-{name}.json"));
    let out = Command::new("virt-fw-vars")
        .args(["--input", file, "--output-json"])
        .arg(&json)
        .output()
        .expect("run virt-fw-vars (pip install virt-firmware; `make deps` does it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    doc["variables"].as_array().unwrap().iter().find(|v| v["name"] == name).expect(name)["data"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn imported_secure_boot_variables_are_served_to_the_guest() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    // serve needs its vTPM; the UEFI volume comes from the import, not from `--uefi-create`.
    let out =
        host().args(["tpm", "manufacture", "--no-ek-certs", "--state-dir"]).arg(&state).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = host().args(["uefi", "import", "--from", MS_4M, "--state-dir"]).arg(&state).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let daemon = Serve::new(&state).unix_only().uefi().start();
    for (name, guid) in
        [("PK", "8be4df61-93ca-11d2-aa0d-00e098032b8c"), ("dbx", "d719b2cb-3d3a-4596-a3bc-dad00e67656f")]
    {
        let got = guest_get(&state, name, guid);
        assert!(got.starts_with("attributes 0x27 "), "{name}: {got}");
        assert_eq!(got.lines().nth(1).unwrap(), peer_data(MS_4M, name, base.path()), "{name} data");
    }

    // Readers do not need the daemon stopped: they open detached and say so.
    let list = host().args(["uefi", "list", "--state-dir"]).arg(&state).output().unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(String::from_utf8_lossy(&list.stderr).contains("reading detached"));
    assert!(String::from_utf8_lossy(&list.stdout).lines().any(|l| l.starts_with("PK ")));
    // Import does: the daemon holds the write lock.
    let import = host()
        .args(["uefi", "import", "--from", MS_4M, "--force", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!import.status.success());
    assert!(
        String::from_utf8_lossy(&import.stderr).contains("stop the daemon"),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    drop(daemon);
}
