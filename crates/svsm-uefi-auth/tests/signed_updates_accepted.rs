//! Correctly signed updates made by the real tools (`sbvarsign`, `sbsiglist`, `openssl`) are accepted, and the
//! decision stores what the spec says: the value, the merged value for an append, the timestamp.

mod common;
use common::*;
use svsm_uefi_auth::{Decision, EfiTime, SecureBootVariable as V, siglist};

#[test]
fn pk_enrolment_then_kek_signed_by_pk() {
    let (t, s) = enrolled();
    assert_eq!(s.value(V::Pk), Some(&t.cert_list("PK")[..]));
    assert_eq!(s.value(V::Kek), Some(&t.cert_list("KEK")[..]));
    assert_ne!(s.vars[&V::Kek].1, EfiTime::default(), "the signed timestamp is kept");
}

#[test]
fn dbx_append_signed_by_kek_in_user_mode_merges_without_duplicates() {
    let (t, mut s) = enrolled();
    let first = t.hash_list(&[0xa1; 32]);
    let auth = t.sbvarsign(V::Dbx, &first, "KEK", false);
    s.set(V::Dbx, WRITE, &auth).expect("dbx write signed by KEK");
    let stamp1 = s.vars[&V::Dbx].1;

    next_second();
    let second = t.hash_list(&[0xb2; 32]);
    let auth = t.sbvarsign(V::Dbx, &second, "KEK", true);
    let decision = s.set(V::Dbx, APPEND, &auth).expect("dbx append signed by KEK");
    assert!(matches!(decision, Decision::Store { .. }));
    let lists = siglist::parse(s.value(V::Dbx).unwrap()).unwrap();
    let hashes: Vec<&[u8]> = lists.iter().flat_map(|l| l.entries.iter().map(|e| e.data)).collect();
    assert_eq!(hashes, vec![&[0xa1; 32][..], &[0xb2; 32][..]]);
    assert!(s.vars[&V::Dbx].1.is_later_than(&stamp1), "append with a later stamp moves the timestamp on");

    // Appending an entry already present changes nothing but is accepted (spec: no duplicate append).
    next_second();
    let before = s.value(V::Dbx).unwrap().to_vec();
    let auth = t.sbvarsign(V::Dbx, &second, "KEK", true);
    s.set(V::Dbx, APPEND, &auth).expect("duplicate append");
    assert_eq!(s.value(V::Dbx).unwrap(), &before[..]);
}

#[test]
fn append_with_an_older_timestamp_keeps_the_newer_one() {
    let (t, mut s) = enrolled();
    let later = EfiTime::new(2030, 1, 1, 0, 0, 0);
    let earlier = EfiTime::new(2029, 1, 1, 0, 0, 0);
    let a = t.smime_signed(V::Dbx, WRITE, later, &t.hash_list(&[1; 32]), "KEK", false, None);
    s.set(V::Dbx, WRITE, &a).unwrap();
    let b = t.smime_signed(V::Dbx, APPEND, earlier, &t.hash_list(&[2; 32]), "KEK", false, None);
    s.set(V::Dbx, APPEND, &b).expect("appends are not bound to increasing timestamps");
    assert_eq!(s.vars[&V::Dbx].1, later);
    assert_eq!(siglist::parse(s.value(V::Dbx).unwrap()).unwrap().len(), 2);
}

#[test]
fn db_signed_by_pk_is_accepted() {
    let (t, mut s) = enrolled();
    let auth = t.sbvarsign(V::Db, &t.cert_list("DB"), "PK", false);
    s.set(V::Db, WRITE, &auth).expect("PK may sign db");
}

#[test]
fn contentinfo_form_and_signed_attributes_from_openssl_are_accepted() {
    let (t, mut s) = enrolled();
    let value = t.hash_list(&[3; 32]);
    let a = t.smime_signed(V::Dbx, WRITE, EfiTime::new(2030, 1, 1, 0, 0, 0), &value, "KEK", false, None);
    // openssl smime emits a ContentInfo; sbvarsign (used above) emits bare SignedData: both forms pass.
    assert_eq!(&a[40..42], &[0x30, 0x82]);
    s.set(V::Dbx, WRITE, &a).expect("ContentInfo-wrapped SignedData");
    let b = t.smime_signed(V::Dbx, WRITE, EfiTime::new(2030, 1, 2, 0, 0, 0), &value, "KEK", true, None);
    s.set(V::Dbx, WRITE, &b).expect("SignedData with signed attributes");
}

#[test]
fn signer_issued_by_a_kek_certificate_is_accepted() {
    let (t, mut s) = enrolled();
    t.issued("LEAF", "KEK");
    let auth = t.sbvarsign(V::Db, &t.cert_list("DB"), "LEAF", false);
    s.set(V::Db, WRITE, &auth).expect("a signer whose certificate KEK issued chains to KEK");
}

#[test]
fn signed_empty_value_deletes_and_deleting_pk_returns_to_setup_mode() {
    let (t, mut s) = enrolled();
    let auth = t.sbvarsign(V::Db, &t.cert_list("DB"), "KEK", false);
    s.set(V::Db, WRITE, &auth).unwrap();
    next_second();
    let del = t.sbvarsign(V::Db, &[], "KEK", false);
    assert_eq!(s.set(V::Db, WRITE, &del), Ok(Decision::Delete));
    assert!(s.value(V::Db).is_none());

    let del_pk = t.sbvarsign(V::Pk, &[], "PK", false);
    assert_eq!(s.set(V::Pk, WRITE, &del_pk), Ok(Decision::Delete));
    assert!(s.setup_mode());
    // Setup mode: db may be written without a trusted signature (descriptor and timestamp still checked).
    let any = t.sbvarsign(V::Db, &t.cert_list("DB"), "OTHER", false);
    s.set(V::Db, WRITE, &any).expect("setup mode write");
}

#[test]
fn signer_two_links_below_kek_with_the_intermediate_in_the_signed_data_is_accepted() {
    let (t, mut s) = enrolled();
    t.issued("INTER", "KEK");
    t.issued("LEAF", "INTER");
    let value = t.cert_list("DB");
    let with_chain =
        t.smime_signed(V::Db, WRITE, EfiTime::new(2030, 1, 1, 0, 0, 0), &value, "LEAF", false, Some("INTER"));
    s.set(V::Db, WRITE, &with_chain).expect("LEAF -> INTER (in SignedData) -> KEK");
    // Without the intermediate the chain cannot be built.
    let without =
        t.smime_signed(V::Db, WRITE, EfiTime::new(2030, 1, 2, 0, 0, 0), &value, "LEAF", false, None);
    assert_eq!(s.set(V::Db, WRITE, &without), Err(svsm_uefi_auth::AuthError::UntrustedSigner));
}
