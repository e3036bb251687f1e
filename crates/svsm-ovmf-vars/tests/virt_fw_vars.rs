//! Interoperability with the real virt-fw-vars (PyPI `virt-firmware`, installed by `make deps`): the same
//! variables, field by field, whichever tool reads or writes the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use svsm_ovmf_vars::fd::{self, FdLayout};
use svsm_ovmf_vars::json;

const MS_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
const EMPTY_4M: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// (name, guid) -> (attr, data hex, time hex if any): the fields virt-fw-vars' JSON carries.
type Variables = BTreeMap<(String, String), (u64, String, Option<String>)>;

fn variables(json_text: &str) -> Variables {
    let doc: serde_json::Value = serde_json::from_str(json_text).expect("JSON");
    assert_eq!(doc["version"], 2);
    let mut out = Variables::new();
    for var in doc["variables"].as_array().expect("variables array") {
        let key = (var["name"].as_str().unwrap().to_owned(), var["guid"].as_str().unwrap().to_owned());
        let value = (
            var["attr"].as_u64().unwrap(),
            var["data"].as_str().unwrap().to_owned(),
            var.get("time").map(|t| t.as_str().unwrap().to_owned()),
        );
        assert!(out.insert(key.clone(), value).is_none(), "{key:?} twice");
    }
    out
}

/// Runs virt-fw-vars with `args`; panics with its stderr when it fails.
fn virt_fw_vars(args: &[&str]) {
    let out = Command::new("virt-fw-vars")
        .args(args)
        .output()
        .expect("run virt-fw-vars (pip install virt-firmware; `make deps` does it)");
    assert!(out.status.success(), "virt-fw-vars {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// virt-fw-vars' JSON of the image at `input`.
fn peer_json(input: &Path, dir: &Path) -> String {
    let out = dir.join("peer.json");
    virt_fw_vars(&["--input", input.to_str().unwrap(), "--output-json", out.to_str().unwrap()]);
    std::fs::read_to_string(out).unwrap()
}

fn assert_same(ours: &Variables, theirs: &Variables) {
    for (key, (attr, data, time)) in theirs {
        let (our_attr, our_data, our_time) =
            ours.get(key).unwrap_or_else(|| panic!("variable {key:?} missing"));
        assert_eq!(our_attr, attr, "{key:?} attr");
        assert!(our_data == data, "{key:?} data differs ({} vs {} hex digits)", our_data.len(), data.len());
        assert_eq!(our_time, time, "{key:?} time");
    }
    for key in ours.keys() {
        assert!(theirs.contains_key(key), "variable {key:?} only in ours");
    }
}

#[test]
fn json_export_of_debians_ms_image_matches_virt_fw_vars_variable_by_variable() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = variables(&peer_json(Path::new(MS_4M), dir.path()));
    let image = fd::parse(&std::fs::read(MS_4M).unwrap()).unwrap();
    let ours = variables(&json::to_json(&image.variables).unwrap());
    assert_eq!(ours.len(), 31);
    assert_same(&ours, &theirs);
    for name in ["PK", "KEK", "db", "dbx"] {
        assert!(ours.keys().any(|(n, _)| n == name), "{name}");
    }
}

#[test]
fn fd_we_write_reads_back_in_virt_fw_vars_with_the_same_variables() {
    let dir = tempfile::tempdir().unwrap();
    let theirs_original = variables(&peer_json(Path::new(MS_4M), dir.path()));
    let vars = fd::parse(&std::fs::read(MS_4M).unwrap()).unwrap().variables;
    let written = dir.path().join("out.fd");
    std::fs::write(&written, fd::write(&vars, &FdLayout::Ovmf4M).unwrap()).unwrap();
    let theirs_of_ours = variables(&peer_json(&written, dir.path()));
    assert_eq!(theirs_of_ours.len(), 31);
    assert_same(&theirs_of_ours, &theirs_original);
}

#[test]
fn virt_fw_vars_json_imports_as_the_variables_of_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer_json(Path::new(MS_4M), dir.path());
    let from_json = json::parse(peer.as_bytes()).unwrap();
    let mut from_fd = fd::parse(&std::fs::read(MS_4M).unwrap()).unwrap().variables;
    let mut from_json_sorted = from_json.clone();
    let key = |v: &svsm_ovmf_vars::EfiVar| (v.name().to_owned(), *v.guid());
    from_fd.sort_by_key(key);
    from_json_sorted.sort_by_key(key);
    assert_eq!(from_json_sorted, from_fd);
}

#[test]
fn fd_virt_fw_vars_writes_from_our_json_parses_to_the_same_variables() {
    let dir = tempfile::tempdir().unwrap();
    let vars = fd::parse(&std::fs::read(MS_4M).unwrap()).unwrap().variables;
    let ours = dir.path().join("ours.json");
    std::fs::write(&ours, json::to_json(&vars).unwrap()).unwrap();
    let out = dir.path().join("peer.fd");
    virt_fw_vars(&[
        "--input",
        EMPTY_4M,
        "--set-json",
        ours.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let mut theirs = fd::parse(&std::fs::read(&out).unwrap()).unwrap().variables;
    let mut expected = vars;
    let key = |v: &svsm_ovmf_vars::EfiVar| (v.name().to_owned(), *v.guid());
    theirs.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(theirs, expected);
}
