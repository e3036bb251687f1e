//! Attested key release end to end: simulated-SNP SVSM side -> real `svsm-host kbs-proxy` over a Unix
//! socket / TCP loopback -> KBS double over HTTP -> JWE -> secret.

mod common;

use std::time::Duration;

use common::kbs::*;
use svsm_kbs::stream::{AnyChannel, ProxyAddress};

#[test]
fn secret_released_through_the_real_proxy_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret32(0xA5);
    let kbs = double(&secret);
    let proxy = Proxy::start(&kbs.url(), dir.path(), &[]);
    let mut platform = good_platform();
    let released = release_via(&proxy.socket, &mut platform, Duration::from_secs(10)).unwrap();
    assert_eq!(released.as_bytes(), secret.as_slice());
    // A second attempt is a new session with a new key, and yields the same secret.
    let again = release_via(&proxy.socket, &mut platform, Duration::from_secs(10)).unwrap();
    assert_eq!(again.as_bytes(), secret.as_slice());
    let c = kbs.counts();
    assert_eq!((c.auth, c.attest_ok, c.released), (2, 2, 2));
}

#[test]
fn secret_released_over_tcp_loopback() {
    let secret = secret32(0x3C);
    let kbs = double(&secret);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("tcp:127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .args(["kbs-proxy", "--kbs", &kbs.url(), "--listen", &listen, "--max-connections", "1"])
        .spawn()
        .unwrap();
    let addr: ProxyAddress = listen.parse().unwrap();
    let t0 = std::time::Instant::now();
    let mut channel = loop {
        match AnyChannel::connect(&addr, Duration::from_secs(10)) {
            Ok(c) => break c,
            Err(_) if t0.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("proxy did not start: {e}"),
        }
    };
    let released =
        svsm_kbs::release(&mut channel, &mut good_platform(), &config(), &mut rand::rngs::OsRng).unwrap();
    assert_eq!(released.as_bytes(), secret.as_slice());
    drop(channel);
    // --max-connections 1: the proxy exits by itself after the connection.
    assert!(child.wait().unwrap().success());
}

#[test]
fn proxy_refuses_a_non_loopback_tcp_listener_without_allow_remote() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .args(["kbs-proxy", "--kbs", "http://127.0.0.1:1", "--listen", "tcp:0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"), "{out:?}");
}
