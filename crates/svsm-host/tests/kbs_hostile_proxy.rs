//! A hostile host between the SVSM and the proxy: every manipulation ends in a precise error and no secret.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::kbs::*;
use serde_json::Value;
use svsm_kbs::frame::{Frame, Kind, MAX_PAYLOAD};
use svsm_kbs::{ChannelError, FrameError, JweError, KbsError, Stage};

const T: Duration = Duration::from_secs(10);

struct World {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    kbs: svsm_kbs_double::KbsDouble,
    proxy: Proxy,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let kbs = double(&secret32(0x11));
    let proxy = Proxy::start(&kbs.url(), dir.path(), &[]);
    World { dir: dir.path().to_path_buf(), _dir: dir, kbs, proxy }
}

impl World {
    fn attempt(&self, tamper: impl FnMut(Dir, usize, Frame) -> Act + Send + 'static) -> KbsError {
        let path = mitm(&self.proxy.socket, &self.dir, tamper);
        release_via(&path, &mut good_platform(), T).expect_err("a manipulated release must fail")
    }
}

/// Edits the JSON body of a reply frame.
fn edit_reply(f: &Frame, edit: impl FnOnce(&mut Value)) -> Frame {
    let (status, body) = f.status_and_body().unwrap();
    let mut v: Value = serde_json::from_slice(body).unwrap();
    edit(&mut v);
    Frame::reply(f.kind, status, &serde_json::to_vec(&v).unwrap()).unwrap()
}

fn flip_b64(v: &mut Value, member: &str, at: usize) {
    let mut raw = URL_SAFE_NO_PAD.decode(v[member].as_str().unwrap()).unwrap();
    let i = at.min(raw.len() - 1);
    raw[i] ^= 0x80;
    v[member] = Value::String(URL_SAFE_NO_PAD.encode(raw));
}

fn on_jwe(
    edit: impl Fn(&mut Value) + Send + 'static,
) -> impl FnMut(Dir, usize, Frame) -> Act + Send + 'static {
    move |dir, _, f| match (dir, f.kind) {
        (Dir::Reply, Kind::ResourceReply) => Act::Pass(edit_reply(&f, &edit)),
        _ => Act::Pass(f),
    }
}

#[test]
fn flipped_ciphertext_tag_iv_fail_authentication() {
    let w = world();
    for member in ["ciphertext", "tag", "iv"] {
        let e = w.attempt(on_jwe(move |v| flip_b64(v, member, 3)));
        assert_eq!(e, KbsError::Jwe(JweError::Decrypt), "{member}");
    }
    assert_eq!(w.kbs.counts().released, 3, "the KBS released; the SVSM refused the altered JWE");
}

#[test]
fn flipped_wrapped_key_fails_unwrap() {
    let w = world();
    assert_eq!(w.attempt(on_jwe(|v| flip_b64(v, "encrypted_key", 5))), KbsError::Jwe(JweError::Unwrap));
}

#[test]
fn altered_epk_and_protected_header_are_refused() {
    let w = world();
    let e = w.attempt(on_jwe(|v| {
        let mut h: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(v["protected"].as_str().unwrap()).unwrap())
                .unwrap();
        let mut y = URL_SAFE_NO_PAD.decode(h["epk"]["y"].as_str().unwrap()).unwrap();
        y[10] ^= 1;
        h["epk"]["y"] = Value::String(URL_SAFE_NO_PAD.encode(y));
        v["protected"] = Value::String(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()));
    }));
    assert!(matches!(e, KbsError::Jwe(JweError::Epk(_) | JweError::Unwrap)), "{e:?}");
    // Same members, other bytes: the AAD is the header as sent, so authentication fails.
    let e = w.attempt(on_jwe(|v| {
        let h: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(v["protected"].as_str().unwrap()).unwrap())
                .unwrap();
        v["protected"] = Value::String(URL_SAFE_NO_PAD.encode(serde_json::to_vec_pretty(&h).unwrap()));
    }));
    assert_eq!(e, KbsError::Jwe(JweError::Decrypt));
    let e = w.attempt(on_jwe(|v| {
        let p = v["protected"].as_str().unwrap().to_string();
        v["protected"] = Value::String(format!("x{}", &p[1..]));
    }));
    assert!(matches!(e, KbsError::Jwe(JweError::Format(_))), "{e:?}");
}

#[test]
fn replayed_jwe_from_an_earlier_attempt_fails_unwrap() {
    let w = world();
    let recorded: Arc<Mutex<Option<Frame>>> = Arc::default();
    let rec = recorded.clone();
    let path = mitm(&w.proxy.socket, &w.dir, move |dir, _, f| {
        if dir == Dir::Reply && f.kind == Kind::ResourceReply {
            *rec.lock().unwrap() = Some(f.clone());
        }
        Act::Pass(f)
    });
    release_via(&path, &mut good_platform(), T).unwrap();
    let old = recorded.lock().unwrap().clone().unwrap();
    let e = w.attempt(move |dir, _, f| match (dir, f.kind) {
        (Dir::Reply, Kind::ResourceReply) => Act::Pass(old.clone()),
        _ => Act::Pass(f),
    });
    assert_eq!(e, KbsError::Jwe(JweError::Unwrap));
}

#[test]
fn another_vms_resource_fails_unwrap() {
    // Another VM (its own platform, its own key) obtains its JWE; the host hands it to this SVSM.
    let w = world();
    let other: Arc<Mutex<Option<Frame>>> = Arc::default();
    let rec = other.clone();
    let path = mitm(&w.proxy.socket, &w.dir, move |dir, _, f| {
        if dir == Dir::Reply && f.kind == Kind::ResourceReply {
            *rec.lock().unwrap() = Some(f.clone());
        }
        Act::Pass(f)
    });
    let mut other_vm = platform(svsm_attest::SimulatedSnpConfig {
        measurement: MEASUREMENT,
        chip_id: [0x77; 64],
        ..Default::default()
    });
    release_via(&path, &mut other_vm, T).unwrap();
    let swapped = other.lock().unwrap().clone().unwrap();
    let e = w.attempt(move |dir, _, f| match (dir, f.kind) {
        (Dir::Reply, Kind::ResourceReply) => Act::Pass(swapped.clone()),
        _ => Act::Pass(f),
    });
    assert_eq!(e, KbsError::Jwe(JweError::Unwrap));
}

#[test]
fn replayed_challenge_is_refused_by_the_kbs() {
    let w = world();
    let recorded: Arc<Mutex<Option<Frame>>> = Arc::default();
    let rec = recorded.clone();
    let path = mitm(&w.proxy.socket, &w.dir, move |dir, _, f| {
        if dir == Dir::Reply && f.kind == Kind::AuthReply {
            *rec.lock().unwrap() = Some(f.clone());
        }
        Act::Pass(f)
    });
    release_via(&path, &mut good_platform(), T).unwrap();
    let old = recorded.lock().unwrap().clone().unwrap();
    let e = w.attempt(move |dir, _, f| match (dir, f.kind) {
        (Dir::Reply, Kind::AuthReply) => Act::Pass(old.clone()),
        _ => Act::Pass(f),
    });
    assert!(
        matches!(&e, KbsError::Kbs { stage: Stage::Attest, status: 401, kind, .. } if kind == "AttestationError"),
        "{e:?}"
    );
}

#[test]
fn substituted_nonce_or_key_breaks_the_binding() {
    let w = world();
    // The host answers with a nonce of its own: the KBS sees a nonce that is not its session's.
    let e = w.attempt(|dir, _, f| match (dir, f.kind) {
        (Dir::Reply, Kind::AuthReply) => {
            Act::Pass(edit_reply(&f, |v| v["nonce"] = STANDARD.encode([9u8; 32]).into()))
        }
        _ => Act::Pass(f),
    });
    assert!(
        matches!(&e, KbsError::Kbs { stage: Stage::Attest, status: 401, kind, .. } if kind == "AttestationError"),
        "{e:?}"
    );
    // The host swaps in its own public key to get the secret for itself: REPORT_DATA no longer binds it.
    let e = w.attempt(|dir, _, f| match (dir, f.kind) {
        (Dir::Request, Kind::AttestRequest) => {
            let mut v: Value = serde_json::from_slice(&f.payload).unwrap();
            let attacker =
                svsm_kbs::jwe::TeeKey::generate(svsm_kbs::jwe::Curve::P384, &mut rand::rngs::OsRng);
            v["runtime-data"]["tee-pubkey"] = serde_json::to_value(attacker.public_jwk()).unwrap();
            Act::Pass(Frame::new(f.kind, serde_json::to_vec(&v).unwrap()).unwrap())
        }
        _ => Act::Pass(f),
    });
    assert!(
        matches!(&e, KbsError::Kbs { stage: Stage::Attest, status: 401, kind, .. } if kind == "AttestationError"),
        "{e:?}"
    );
    // A malformed nonce is refused before any evidence is produced.
    let e = w.attempt(|dir, _, f| match (dir, f.kind) {
        (Dir::Reply, Kind::AuthReply) => Act::Pass(edit_reply(&f, |v| v["nonce"] = "not base64!".into())),
        _ => Act::Pass(f),
    });
    assert!(matches!(e, KbsError::Nonce(_)), "{e:?}");
    assert_eq!(w.kbs.counts().released, 0);
}

#[test]
fn altered_report_fails_signature() {
    let w = world();
    let e = w.attempt(|dir, _, f| match (dir, f.kind) {
        (Dir::Request, Kind::AttestRequest) => {
            let mut v: Value = serde_json::from_slice(&f.payload).unwrap();
            v["tee-evidence"]["primary_evidence"]["attestation_report"]["guest_svn"] = 7.into();
            Act::Pass(Frame::new(f.kind, serde_json::to_vec(&v).unwrap()).unwrap())
        }
        _ => Act::Pass(f),
    });
    assert!(
        matches!(&e, KbsError::Kbs { stage: Stage::Attest, status: 401, kind, .. } if kind == "AttestationError"),
        "{e:?}"
    );
}

#[test]
fn dropped_and_delayed_messages_end_in_channel_errors() {
    let w = world();
    assert_eq!(w.attempt(|_, _, _| Act::Close), KbsError::Channel(ChannelError::Closed));
    let path = mitm(&w.proxy.socket, &w.dir, |dir, _, f| match dir {
        Dir::Reply => Act::Delay(Duration::from_millis(1500), f),
        Dir::Request => Act::Pass(f),
    });
    let e = release_via(&path, &mut good_platform(), Duration::from_millis(300)).unwrap_err();
    assert_eq!(e, KbsError::Channel(ChannelError::Timeout));
}

#[test]
fn oversize_truncated_and_unexpected_frames_are_refused() {
    let w = world();
    let mut oversize = vec![1u8, Kind::AuthReply as u8, 0, 0];
    oversize.extend_from_slice(&((MAX_PAYLOAD as u32) + 1).to_le_bytes());
    let e =
        w.attempt(move |dir, _, f| if dir == Dir::Reply { Act::Raw(oversize.clone()) } else { Act::Pass(f) });
    assert!(matches!(e, KbsError::Frame(FrameError::Oversize { .. })), "{e:?}");
    let e = w.attempt(|dir, _, f| {
        if dir == Dir::Reply {
            let mut b = f.encode();
            b.truncate(b.len() - 3);
            Act::Raw(b)
        } else {
            Act::Pass(f)
        }
    });
    // The MITM closes after the short write, so the SVSM sees a truncated frame.
    assert!(matches!(e, KbsError::Frame(FrameError::Truncated { .. })), "{e:?}");
    let e = w.attempt(|dir, i, f| match (dir, i) {
        (Dir::Reply, 1) => Act::Pass(Frame::reply(Kind::ResourceReply, 200, b"{}").unwrap()),
        _ => Act::Pass(f),
    });
    assert!(matches!(e, KbsError::UnexpectedReply { stage: Stage::Attest, got: 0x83 }), "{e:?}");
    let e = w.attempt(|dir, _, f| {
        if dir == Dir::Reply {
            let mut b = f.encode();
            b[0] = 9;
            Act::Raw(b)
        } else {
            Act::Pass(f)
        }
    });
    assert_eq!(e, KbsError::Frame(FrameError::Version(9)));
}
