//! Updates that are unsigned, signed by the wrong key, replayed, tampered with or malformed are refused with
//! the precise status, and the store is left exactly as it was.

mod common;
use common::*;
use svsm_uefi_auth::error::status::{INVALID_PARAMETER, SECURITY_VIOLATION, UNSUPPORTED};
use svsm_uefi_auth::{AuthError, EfiTime, SecureBootVariable as V};

/// Asserts `data` is refused with `want` and nothing changes.
fn refused(s: &mut Store, v: V, attributes: u32, data: &[u8], want: AuthError) {
    let before = format!("{:?}", {
        let mut vars: Vec<_> = s.vars.iter().collect();
        vars.sort_by_key(|(k, _)| format!("{k:?}"));
        vars
    });
    let got = s.set(v, attributes, data);
    assert_eq!(got, Err(want.clone()), "{v:?}");
    let after = format!("{:?}", {
        let mut vars: Vec<_> = s.vars.iter().collect();
        vars.sort_by_key(|(k, _)| format!("{k:?}"));
        vars
    });
    assert_eq!(before, after, "a refused write changed the store");
}

#[test]
fn dbx_signed_by_another_key_is_a_security_violation() {
    let (t, mut s) = enrolled();
    let auth = t.sbvarsign(V::Dbx, &t.hash_list(&[1; 32]), "OTHER", false);
    refused(&mut s, V::Dbx, WRITE, &auth, AuthError::UntrustedSigner);
    assert_eq!(AuthError::UntrustedSigner.efi_status(), SECURITY_VIOLATION);
    let append = t.sbvarsign(V::Dbx, &t.hash_list(&[1; 32]), "OTHER", true);
    refused(&mut s, V::Dbx, APPEND, &append, AuthError::UntrustedSigner);
}

#[test]
fn kek_signed_by_kek_is_refused_in_user_mode() {
    let (t, mut s) = enrolled();
    next_second();
    let auth = t.sbvarsign(V::Kek, &t.cert_list("OTHER"), "KEK", false);
    refused(&mut s, V::Kek, WRITE, &auth, AuthError::UntrustedSigner);
    let pk = t.sbvarsign(V::Pk, &t.cert_list("OTHER"), "OTHER", false);
    refused(&mut s, V::Pk, WRITE, &pk, AuthError::UntrustedSigner);
}

#[test]
fn unsigned_values_are_security_violations() {
    let (t, mut s) = enrolled();
    let esl = t.hash_list(&[1; 32]);
    // A bare signature list where the descriptor should be.
    let got = s.set(V::Dbx, WRITE, &esl).unwrap_err();
    assert_eq!(got.efi_status(), SECURITY_VIOLATION, "{got:?}");
    // A well-formed descriptor with empty or junk PKCS#7.
    let empty = auth2_buffer(EfiTime::new(2030, 1, 1, 0, 0, 0), &[], &esl);
    refused(
        &mut s,
        V::Dbx,
        WRITE,
        &empty,
        AuthError::Pkcs7Malformed("neither DER SignedData nor ContentInfo"),
    );
    let junk = auth2_buffer(EfiTime::new(2030, 1, 1, 0, 0, 0), &[0x30, 3, 2, 1, 1], &esl);
    assert_eq!(s.set(V::Dbx, WRITE, &junk).unwrap_err().efi_status(), SECURITY_VIOLATION);
}

#[test]
fn replayed_or_older_timestamps_are_refused() {
    let (t, mut s) = enrolled();
    let old = t.sbvarsign(V::Dbx, &t.hash_list(&[1; 32]), "KEK", false);
    next_second();
    let new = t.sbvarsign(V::Dbx, &t.hash_list(&[2; 32]), "KEK", false);
    assert!(timestamp_of(&new).is_later_than(&timestamp_of(&old)));
    s.set(V::Dbx, WRITE, &new).unwrap();
    refused(&mut s, V::Dbx, WRITE, &old, AuthError::Replay);
    refused(&mut s, V::Dbx, WRITE, &new, AuthError::Replay);
    assert_eq!(AuthError::Replay.efi_status(), SECURITY_VIOLATION);
    // The same holds for KEK (signed by PK) and PK itself.
    next_second();
    let kek_again = t.sbvarsign(V::Kek, &t.cert_list("KEK"), "PK", false);
    s.set(V::Kek, WRITE, &kek_again).unwrap();
    refused(&mut s, V::Kek, WRITE, &kek_again, AuthError::Replay);
}

#[test]
fn any_flipped_byte_is_refused() {
    let (t, mut s) = enrolled();
    next_second();
    let auth = t.sbvarsign(V::Dbx, &t.hash_list(&[1; 32]), "KEK", false);
    let cert_len = u32::from_le_bytes(auth[16..20].try_into().unwrap()) as usize;
    let payload_at = 16 + cert_len;
    // The timestamp's second, the last byte of the RSA signature (end of the PKCS#7), the payload's last byte.
    for at in [6, payload_at - 1, auth.len() - 1] {
        let mut bad = auth.clone();
        bad[at] ^= 0x01;
        let got = s.set(V::Dbx, WRITE, &bad).unwrap_err();
        assert_eq!(got.efi_status(), SECURITY_VIOLATION, "flip at {at}: {got:?}");
        assert!(s.value(V::Dbx).is_none());
    }
    // Signed with APPEND_WRITE but submitted as a plain write: the attributes are part of the signed data.
    let append = t.sbvarsign(V::Dbx, &t.hash_list(&[1; 32]), "KEK", true);
    refused(&mut s, V::Dbx, WRITE, &append, AuthError::BadSignature);
    // A db update replayed as dbx: the name is part of the signed data.
    let db = t.sbvarsign(V::Db, &t.hash_list(&[1; 32]), "KEK", false);
    refused(&mut s, V::Dbx, WRITE, &db, AuthError::BadSignature);
    s.set(V::Dbx, WRITE, &auth).expect("the untouched update still applies");
}

#[test]
fn bad_attributes_and_payloads_are_invalid_parameters() {
    let (t, mut s) = enrolled();
    let auth = t.sbvarsign(V::Dbx, &t.hash_list(&[1; 32]), "KEK", false);
    refused(&mut s, V::Dbx, 0x07, &auth, AuthError::Attributes { attributes: 0x07 });
    refused(&mut s, V::Dbx, 0x37, &auth, AuthError::CountBasedAuthentication);
    assert_eq!(AuthError::CountBasedAuthentication.efi_status(), UNSUPPORTED);
    let pk_append = t.sbvarsign(V::Pk, &t.cert_list("PK"), "PK", true);
    refused(&mut s, V::Pk, APPEND, &pk_append, AuthError::Attributes { attributes: APPEND });
    // Correctly signed, but the value is not a signature list: INVALID_PARAMETER, nothing stored.
    next_second();
    let junk = t.sbvarsign(V::Dbx, b"not a signature list at all, just some bytes", "KEK", false);
    let got = s.set(V::Dbx, WRITE, &junk).unwrap_err();
    assert_eq!(got.efi_status(), INVALID_PARAMETER, "{got:?}");
    assert!(s.value(V::Dbx).is_none());
    // KEK may only hold certificates or RSA-2048 keys.
    let kek_hash = t.sbvarsign(V::Kek, &t.hash_list(&[1; 32]), "PK", false);
    assert_eq!(s.set(V::Kek, WRITE, &kek_hash).unwrap_err().efi_status(), INVALID_PARAMETER);
}

#[test]
fn setup_mode_pk_must_be_signed_by_its_own_key() {
    let t = Tools::new();
    t.self_signed("PK");
    t.self_signed("OTHER");
    let mut s = Store::default();
    let forged = t.sbvarsign(V::Pk, &t.cert_list("PK"), "OTHER", false);
    refused(&mut s, V::Pk, WRITE, &forged, AuthError::UntrustedSigner);
    let nothing = t.sbvarsign(V::Pk, &[], "PK", false);
    refused(&mut s, V::Pk, WRITE, &nothing, AuthError::NoTrustAnchor);
    let mut tz = t.sbvarsign(V::Pk, &t.cert_list("PK"), "PK", false);
    tz[12] = 1; // TimeZone
    refused(&mut s, V::Pk, WRITE, &tz, AuthError::TimestampForm);
    assert!(s.setup_mode());
}
