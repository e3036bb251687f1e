//! Reference-value JSON: the documented shape, round trip, and the comparison with report claims.

use svsm_igvm::testing::{TEST_POLICY, TestImage, pattern, sample_image};
use svsm_igvm::{IgvmCrateRules, ReferenceValues, ReportClaims, measure};

#[test]
fn json_has_the_documented_fields_and_round_trips() {
    let file = sample_image(TEST_POLICY).build().unwrap();
    let v = measure(&file, &IgvmCrateRules).unwrap();
    let rv = ReferenceValues::from_launch(&v);
    let json: serde_json::Value = serde_json::from_str(&rv.to_json()).unwrap();
    assert_eq!(json["schema"], "svsm-igvm-reference-values/1");
    assert_eq!(json["platform"], "sev-snp");
    assert_eq!(json["digest_rules"], "igvm-0.5");
    assert_eq!(json["measurement"], hex::encode(v.measurement));
    assert_eq!(json["policy"], "0x0000000000030000");
    assert!(json["id_key_digest"].is_null() && json["author_key_digest"].is_null());
    assert!(json["family_id"].is_null() && json["image_id"].is_null() && json["guest_svn"].is_null());
    assert_eq!(ReferenceValues::from_json(&rv.to_json()).unwrap(), rv);
}

#[test]
fn id_block_values_are_in_the_json() {
    let file = TestImage::new(TEST_POLICY).page(0, pattern(1, 64)).kvm_vmsa().id_block([0; 48], 3, Some(4));
    let v = measure(&file.build().unwrap(), &IgvmCrateRules).unwrap();
    let rv = ReferenceValues::from_launch(&v);
    assert_eq!(rv.id_key_digest.as_deref(), Some(hex::encode(v.id_key_digest()).as_str()));
    assert_eq!(rv.author_key_digest.as_deref(), Some(hex::encode(v.author_key_digest()).as_str()));
    assert_eq!(rv.family_id.as_deref(), Some("fa".repeat(16).as_str()));
    assert_eq!(rv.guest_svn, Some(7));
}

#[test]
fn check_accepts_the_file_claims_and_refuses_any_other() {
    let v = measure(&sample_image(TEST_POLICY).build().unwrap(), &IgvmCrateRules).unwrap();
    let rv = ReferenceValues::from_launch(&v);
    let zero = [0u8; 48];
    let ok = ReportClaims {
        measurement: &v.measurement,
        policy: v.policy,
        id_key_digest: &zero,
        author_key_digest: &zero,
    };
    rv.check(&ok).unwrap();
    let mut other = v.measurement;
    other[47] ^= 1;
    let e = rv.check(&ReportClaims { measurement: &other, ..ok }).unwrap_err().to_string();
    assert!(e.contains("MEASUREMENT"), "{e}");
    let e = rv.check(&ReportClaims { policy: 0xB_0000, ..ok }).unwrap_err().to_string();
    assert!(e.contains("POLICY"), "{e}");
    let e = rv.check(&ReportClaims { id_key_digest: &[1; 48], ..ok }).unwrap_err().to_string();
    assert!(e.contains("ID_KEY_DIGEST"), "{e}");
}

#[test]
fn malformed_json_is_refused_precisely() {
    let v = measure(&sample_image(TEST_POLICY).build().unwrap(), &IgvmCrateRules).unwrap();
    let good = ReferenceValues::from_launch(&v);
    for (bad, needle) in [
        (ReferenceValues { schema: "other/2".into(), ..good.clone() }, "schema"),
        (ReferenceValues { platform: "tdx".into(), ..good.clone() }, "platform"),
        (ReferenceValues { measurement: "abcd".into(), ..good.clone() }, "measurement is 2 bytes"),
        (ReferenceValues { measurement: "zz".repeat(48), ..good.clone() }, "not hex"),
        (ReferenceValues { policy: "0xnope".into(), ..good.clone() }, "policy"),
        (ReferenceValues { id_key_digest: Some("00".into()), ..good.clone() }, "id_key_digest"),
    ] {
        let e = ReferenceValues::from_json(&bad.to_json()).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} should mention {needle}");
    }
    assert!(ReferenceValues::from_json("{").unwrap_err().to_string().contains("not valid JSON"));
}
