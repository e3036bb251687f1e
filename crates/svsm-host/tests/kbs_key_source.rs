//! `KbsKeySource` on the state model: keys derived from the released secret open the volume they formatted;
//! a wrong secret or a refused release is a precise error and the image is untouched (never reformatted).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kbs::*;
use svsm_host::kbs::{KbsKeySource, RetryPolicy};
use svsm_host::state::{KeyRequest, KeySource, StateDir, StateError, VolumeName};
use svsm_kbs::stream::ProxyAddress;
use svsm_store::LedgerMode;

fn source(socket: &std::path::Path, retry: RetryPolicy) -> KbsKeySource {
    KbsKeySource::new(
        ProxyAddress::Unix(socket.to_path_buf()),
        RESOURCE,
        Box::new(good_platform()),
        true,
        retry,
    )
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(80),
        timeout: Duration::from_secs(10),
    }
}

fn digest(path: &std::path::Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn released_key_formats_and_reopens_and_a_wrong_secret_never_reformats() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = StateDir::open_or_create(tmp.path().join("state")).unwrap();
    let lock = dir.lock_for_write("test").unwrap();

    // Provisioning: the KBS holds secret A; the volume is formatted with the key derived from it.
    let kbs_a = double(&secret32(0xA0));
    let proxy_a = Proxy::start(&kbs_a.url(), tmp.path(), &[]);
    let keys_a: Arc<dyn KeySource> = Arc::new(source(&proxy_a.socket, quick()));
    let key = keys_a.volume_key(&VolumeName::VTPM, KeyRequest::Existing).unwrap();
    assert!(key.origin.is_development(), "simulated evidence must be labelled development-only");
    let vol = dir.volume(VolumeName::VTPM, keys_a.clone(), dir.default_ledgers());
    drop(vol.create(&lock, 256, LedgerMode::Strict).unwrap());
    drop(vol.open(&lock).unwrap());
    drop(proxy_a);

    // A KBS (or a host forging a JWE) that releases another secret: the store's MAC check refuses it.
    let before = digest(vol.image());
    let tmp_b = tempfile::tempdir().unwrap();
    let kbs_b = double(&secret32(0xB0));
    let proxy_b = Proxy::start(&kbs_b.url(), tmp_b.path(), &[]);
    let vol_b =
        dir.volume(VolumeName::VTPM, Arc::new(source(&proxy_b.socket, quick())), dir.default_ledgers());
    let e = vol_b.open(&lock).expect_err("a wrong secret must not open the volume");
    assert!(matches!(e, StateError::Store { .. }), "{e}");
    assert_eq!(digest(vol.image()), before, "the image is untouched");
    let e = vol_b.create(&lock, 256, LedgerMode::Strict).expect_err("an existing image is never reformatted");
    assert!(!matches!(e, StateError::KeyUnavailable { .. }), "{e}");
    assert_eq!(digest(vol.image()), before);
    let _ = kbs_b;
}

#[test]
fn refusal_is_final_names_the_kbs_verdict_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let kbs = double(&secret32(1));
    kbs.deny_resources(Some((401, "PolicyDeny")));
    let proxy = Proxy::start(&kbs.url(), tmp.path(), &[]);
    let (dir, _) = StateDir::open_or_create(tmp.path().join("state")).unwrap();
    let lock = dir.lock_for_write("test").unwrap();
    let vol = dir.volume(VolumeName::VTPM, Arc::new(source(&proxy.socket, quick())), dir.default_ledgers());
    let e = vol.create(&lock, 256, LedgerMode::Strict).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StateError::KeyUnavailable { .. }), "{msg}");
    assert!(msg.contains("401") && msg.contains("PolicyDeny") && msg.contains("after 1 attempt"), "{msg}");
    assert!(!vol.image().exists(), "nothing is created without a key");
    assert_eq!(kbs.counts().auth, 1, "a policy verdict is not retried");
}

#[test]
fn unreachable_proxy_is_retried_a_bounded_number_of_times() {
    let tmp = tempfile::tempdir().unwrap();
    let source = source(&tmp.path().join("nobody-listens.sock"), quick());
    let t0 = Instant::now();
    let e = source.volume_key(&VolumeName::VTPM, KeyRequest::Existing).unwrap_err().to_string();
    assert!(e.contains("after 3 attempt(s)") && e.contains("kbs-proxy"), "{e}");
    // 20 ms + 40 ms of backoff, not an endless loop.
    assert!(t0.elapsed() >= Duration::from_millis(60) && t0.elapsed() < Duration::from_secs(5));
}
