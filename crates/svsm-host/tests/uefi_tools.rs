//! `svsm-host uefi import/export/list/get` through the real binary, checked against the real virt-fw-vars
//! (PyPI virt-firmware, `make deps`): Debian's Secure Boot varstore goes in, and what comes out is what
//! virt-fw-vars reads from the same file, variable by variable, as JSON and as an .fd image.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{host, host_ok, text};

const MS_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
const EMPTY_2M: &str = "/usr/share/OVMF/OVMF_VARS.fd";

/// (name, guid) -> (attr, data, time): what virt-fw-vars' JSON says about each variable.
type Variables = BTreeMap<(String, String), (u64, String, Option<String>)>;

fn variables(json_text: &str) -> Variables {
    let doc: serde_json::Value = serde_json::from_str(json_text).expect("JSON");
    assert_eq!(doc["version"], 2);
    let mut out = Variables::new();
    for v in doc["variables"].as_array().expect("variables") {
        let key = (v["name"].as_str().unwrap().to_owned(), v["guid"].as_str().unwrap().to_owned());
        let value = (
            v["attr"].as_u64().unwrap(),
            v["data"].as_str().unwrap().to_owned(),
            v.get("time").map(|t| t.as_str().unwrap().to_owned()),
        );
        assert!(out.insert(key.clone(), value).is_none(), "{key:?} twice");
    }
    out
}

fn peer_json(input: &Path, out: &Path) -> Variables {
    let run = Command::new("virt-fw-vars")
        .args(["--input".as_ref(), input.as_os_str(), "--output-json".as_ref(), out.as_os_str()])
        .output()
        .expect("run virt-fw-vars (pip install virt-firmware; `make deps` does it)");
    assert!(run.status.success(), "virt-fw-vars: {}", text(&run));
    variables(&std::fs::read_to_string(out).unwrap())
}

fn assert_same(ours: &Variables, theirs: &Variables) {
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "variable sets");
    for (key, (attr, data, time)) in theirs {
        let (a, d, t) = &ours[key];
        assert_eq!(a, attr, "{key:?} attr");
        assert!(d == data, "{key:?} data differs ({} vs {} hex digits)", d.len(), data.len());
        assert_eq!(t, time, "{key:?} time");
    }
}

#[test]
fn debian_ms_varstore_imports_lists_and_exports_as_virt_fw_vars_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    let out = host_ok(&["uefi", "import", "--from", MS_4M, "--state-dir", s]);
    assert!(out.contains("imported 31 variables"), "{out}");
    assert!(out.contains("secure boot variables: PK, KEK, db, dbx"), "{out}");
    assert!(state.join("uefi-vars.store").exists());

    let list = host_ok(&["uefi", "list", "--state-dir", s]);
    assert!(list.starts_with("31 non-volatile variables"), "{list}");
    for (name, guid, size) in [
        ("PK", "8be4df61-93ca-11d2-aa0d-00e098032b8c", 1005),
        ("KEK", "8be4df61-93ca-11d2-aa0d-00e098032b8c", 2565),
        ("db", "d719b2cb-3d3a-4596-a3bc-dad00e67656f", 3143),
        ("dbx", "d719b2cb-3d3a-4596-a3bc-dad00e67656f", 76),
    ] {
        let line = list
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], guid, "{line}");
        assert_eq!(fields[2], "0x27", "{line}");
        assert_eq!(fields[4], size.to_string(), "{line}");
        assert!(fields[5].starts_with("20"), "{name} has its timestamp: {line}");
    }

    let theirs = peer_json(Path::new(MS_4M), &dir.path().join("peer.json"));
    let json_out = dir.path().join("ours.json");
    host_ok(&["uefi", "export", "--format", "json", "--to", json_out.to_str().unwrap(), "--state-dir", s]);
    assert_same(&variables(&std::fs::read_to_string(&json_out).unwrap()), &theirs);

    let fd_out = dir.path().join("ours.fd");
    host_ok(&["uefi", "export", "--format", "fd", "--to", fd_out.to_str().unwrap(), "--state-dir", s]);
    assert_eq!(std::fs::metadata(&fd_out).unwrap().len(), 540672, "OVMF 4M layout");
    assert_same(&peer_json(&fd_out, &dir.path().join("peer-of-ours.json")), &theirs);

    // The 2 MiB build's layout through --template: virt-fw-vars reads the same variables from it.
    let fd_2m = dir.path().join("ours-2m.fd");
    host_ok(&[
        "uefi",
        "export",
        "--format",
        "fd",
        "--template",
        EMPTY_2M,
        "--to",
        fd_2m.to_str().unwrap(),
        "--state-dir",
        s,
    ]);
    assert_eq!(std::fs::metadata(&fd_2m).unwrap().len(), 131072);
    assert_same(&peer_json(&fd_2m, &dir.path().join("peer-2m.json")), &theirs);
}

#[test]
fn get_shows_one_variable_and_writes_its_raw_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("state");
    let s = s.to_str().unwrap();
    host_ok(&["uefi", "import", "--from", MS_4M, "--state-dir", s]);
    let theirs = peer_json(Path::new(MS_4M), &dir.path().join("peer.json"));
    let (_, dbx_hex, _) = &theirs[&("dbx".to_owned(), "d719b2cb-3d3a-4596-a3bc-dad00e67656f".to_owned())];

    let raw = dir.path().join("dbx.bin");
    let out =
        host_ok(&["uefi", "get", "dbx", "security", "--output", raw.to_str().unwrap(), "--state-dir", s]);
    assert!(out.contains("attributes: 0x27 (NV,BS,RT,TIME_AUTH)"), "{out}");
    assert!(out.contains("size:       76 bytes"), "{out}");
    assert_eq!(hex::encode(std::fs::read(&raw).unwrap()), *dbx_hex);

    let dump = host_ok(&[
        "uefi",
        "get",
        "SecureBootEnable",
        "f0a30bc7-af08-4556-99c4-001009c93a44",
        "--state-dir",
        s,
    ]);
    assert!(dump.contains("00000000  01 "), "{dump}");

    let missing = host().args(["uefi", "get", "NoSuchVar", "global", "--state-dir", s]).output().unwrap();
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no variable NoSuchVar (8be4df61-93ca-11d2-aa0d-00e098032b8c)"),
        "{}",
        text(&missing)
    );
}

#[test]
fn virt_fw_vars_json_imports_to_the_same_variables() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("state");
    let s = s.to_str().unwrap();
    let peer = dir.path().join("peer.json");
    let theirs = peer_json(Path::new(MS_4M), &peer);
    let out = host_ok(&["uefi", "import", "--from", peer.to_str().unwrap(), "--state-dir", s]);
    assert!(out.contains("(virt-fw-vars JSON)"), "{out}");
    let exported = host_ok(&["uefi", "export", "--format", "json", "--to", "-", "--state-dir", s]);
    assert_same(&variables(&exported), &theirs);
}
