//! The KBS (double) refuses: each refusal reaches the SVSM as a precise error naming what the KBS said.

mod common;

use std::time::Duration;

use common::kbs::*;
use svsm_attest::SimulatedSnpConfig;
use svsm_attest::chain::Tcb;
use svsm_kbs::{KbsError, Stage};

const T: Duration = Duration::from_secs(10);

fn refused(e: &KbsError, stage: Stage, status: u16, kind: &str) -> bool {
    matches!(e, KbsError::Kbs { stage: s, status: st, kind: k, .. } if *s == stage && *st == status && k == kind)
}

#[test]
fn resource_policy_denials_are_401_policy_deny() {
    let dir = tempfile::tempdir().unwrap();
    let kbs = double(&secret32(1));
    let proxy = Proxy::start(&kbs.url(), dir.path(), &[]);
    let cases = [
        ("measurement", SimulatedSnpConfig { measurement: [0x99; 48], ..Default::default() }),
        (
            "debug",
            SimulatedSnpConfig { measurement: MEASUREMENT, policy: 0x3_0000 | 1 << 19, ..Default::default() },
        ),
        (
            "tcb",
            SimulatedSnpConfig {
                measurement: MEASUREMENT,
                tcb: Tcb { bootloader: 3, tee: 0, snp: 13, microcode: 209 },
                ..Default::default()
            },
        ),
    ];
    for (what, cfg) in cases {
        let e = release_via(&proxy.socket, &mut platform(cfg), T).unwrap_err();
        assert!(refused(&e, Stage::Resource, 401, "PolicyDeny"), "{what}: {e:?}");
        assert!(!e.is_transient(), "{what}: a policy verdict is final");
    }
    assert_eq!(kbs.counts().released, 0);
    assert_eq!(kbs.counts().attest_ok, 3, "attestation passed; the resource policy denied");
}

#[test]
fn vmpl_other_than_zero_fails_attestation() {
    let dir = tempfile::tempdir().unwrap();
    let kbs = double(&secret32(1));
    let proxy = Proxy::start(&kbs.url(), dir.path(), &[]);
    let mut p = platform(SimulatedSnpConfig { measurement: MEASUREMENT, vmpl: 1, ..Default::default() });
    let e = release_via(&proxy.socket, &mut p, T).unwrap_err();
    assert!(refused(&e, Stage::Attest, 401, "AttestationError"), "{e:?}");
}

#[test]
fn evidence_under_another_root_fails_attestation() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(99);
    let other = std::sync::Arc::new(svsm_attest::chain::SimulatedRoots::generate("Milan", &mut rng).unwrap());
    let kbs = double(&secret32(1));
    let proxy = Proxy::start(&kbs.url(), dir.path(), &[]);
    let snp = svsm_attest::SimulatedSnp::new(
        other,
        SimulatedSnpConfig { measurement: MEASUREMENT, ..Default::default() },
        &mut rng,
    )
    .unwrap();
    let e = release_via(&proxy.socket, &mut svsm_kbs::snp::SimulatedSnpEvidence { snp }, T).unwrap_err();
    assert!(refused(&e, Stage::Attest, 401, "AttestationError"), "{e:?}");
}

#[test]
fn missing_resource_is_trustees_401_plugin_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    let kbs = double(&secret32(1));
    let proxy = Proxy::start(&kbs.url(), dir.path(), &[]);
    let mut channel =
        svsm_kbs::stream::AnyChannel::connect(&svsm_kbs::stream::ProxyAddress::Unix(proxy.socket.clone()), T)
            .unwrap();
    let e = svsm_kbs::release(
        &mut channel,
        &mut good_platform(),
        &svsm_kbs::ClientConfig::new("default/svsm/absent"),
        &mut rand::rngs::OsRng,
    )
    .unwrap_err();
    assert!(refused(&e, Stage::Resource, 401, "PluginInternalError"), "{e:?}");
}

#[test]
fn documented_403_and_404_statuses_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let kbs = double(&secret32(1));
    let proxy = Proxy::start(&kbs.url(), dir.path(), &[]);
    for (status, kind) in [(403, "PolicyDeny"), (404, "ResourceNotFound"), (401, "TokenNotFound")] {
        kbs.deny_resources(Some((status, kind)));
        let e = release_via(&proxy.socket, &mut good_platform(), T).unwrap_err();
        assert!(refused(&e, Stage::Resource, status, kind), "{status}: {e:?}");
        assert!(e.to_string().contains(kind) && e.to_string().contains(&status.to_string()), "{e}");
    }
}

#[test]
fn unreachable_kbs_is_a_proxy_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy = Proxy::start(&format!("http://127.0.0.1:{port}"), dir.path(), &["--kbs-timeout-secs", "2"]);
    let e = release_via(&proxy.socket, &mut good_platform(), T).unwrap_err();
    assert!(matches!(&e, KbsError::Proxy { stage: Stage::Auth, .. }), "{e:?}");
    assert!(e.is_transient());
}
