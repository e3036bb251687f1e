//! Malformed virt-fw-vars JSON: refused with the field that is wrong, never a panic (virtfw-varstore's own
//! `json_import` would panic on the bad hex).

use svsm_ovmf_vars::Error;
use svsm_ovmf_vars::json;

fn doc(variable: &str) -> String {
    format!(r#"{{"version": 2, "variables": [{variable}]}}"#)
}

const GOOD: &str =
    r#"{"name": "Boot0000", "guid": "8be4df61-93ca-11d2-aa0d-00e098032b8c", "attr": 7, "data": "0a0b"}"#;

#[test]
fn a_good_document_parses() {
    let vars = json::parse(doc(GOOD).as_bytes()).unwrap();
    assert_eq!(vars.len(), 1);
    assert_eq!(vars[0].data(), [0x0a, 0x0b]);
}

#[test]
fn bad_hex_data_names_the_field() {
    let bad = GOOD.replace("0a0b", "0a0");
    match json::parse(doc(&bad).as_bytes()) {
        Err(Error::JsonField { field: "data", name, .. }) => assert_eq!(name, "Boot0000"),
        other => panic!("{other:?}"),
    }
    let bad = GOOD.replace("0a0b", "zz");
    assert!(matches!(json::parse(doc(&bad).as_bytes()), Err(Error::JsonField { field: "data", .. })));
}

#[test]
fn bad_time_names_the_field() {
    let bad = GOOD.replace(r#""attr": 7"#, r#""attr": 39, "time": "e9073""#);
    assert!(matches!(json::parse(doc(&bad).as_bytes()), Err(Error::JsonField { field: "time", .. })));
    let short = GOOD.replace(r#""attr": 7"#, r#""attr": 39, "time": "e907030a""#);
    assert!(matches!(json::parse(doc(&short).as_bytes()), Err(Error::JsonField { field: "time", .. })));
}

#[test]
fn wrong_version_syntax_guid_and_duplicates_are_refused() {
    let v1 = doc(GOOD).replace(r#""version": 2"#, r#""version": 1"#);
    assert_eq!(json::parse(v1.as_bytes()), Err(Error::JsonVersion(1)));
    assert!(matches!(json::parse(b"{\"version\": 2"), Err(Error::JsonSyntax(_))));
    let bad_guid = GOOD.replace("8be4df61", "8be4df6");
    assert!(matches!(json::parse(doc(&bad_guid).as_bytes()), Err(Error::JsonSyntax(_))));
    let twice = doc(&format!("{GOOD}, {GOOD}"));
    assert!(matches!(json::parse(twice.as_bytes()), Err(Error::JsonField { field: "name", .. })));
}

#[test]
fn volatile_and_reserved_attributes_are_refused() {
    let volatile = GOOD.replace(r#""attr": 7"#, r#""attr": 6"#);
    assert!(matches!(json::parse(doc(&volatile).as_bytes()), Err(Error::VolatileVariable { .. })));
    let reserved = GOOD.replace(r#""attr": 7"#, r#""attr": 263"#);
    assert!(matches!(json::parse(doc(&reserved).as_bytes()), Err(Error::ReservedAttributes { .. })));
}
