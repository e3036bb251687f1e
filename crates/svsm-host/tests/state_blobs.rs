//! CMD_GET/SET_STATEBLOB over the control socket, as QEMU uses them for migration and snapshots, with the
//! blobs in the hands of the (untrusted) host: tampered, foreign, mixed or plain blobs are refused with a
//! precise log line and the TPM keeps its own state; authentic blobs restore the TPM in another daemon.

mod common;

use common::{Daemon, key_file, pcr_extend_sha256, pcr_read, startup};

const PERMANENT: u32 = 1;
const VOLATILE: u32 = 2;
const SAVESTATE: u32 = 3;
const ENCRYPTED: u32 = 2;
const DECRYPT_ERROR: u32 = 0x21;
const INVALID_POSTINIT: u32 = 0x26;
const SHA256: u16 = 0x000B;

/// A started TPM with PCR 16 extended; returns its PCR 16 and its three blobs.
fn source(d: &Daemon, seed: u8) -> (Vec<u8>, [Vec<u8>; 3]) {
    let mut data = d.data();
    startup(&mut data);
    pcr_extend_sha256(&mut data, 16, [seed; 32]);
    let pcr = pcr_read(&mut data, SHA256, 16).unwrap();
    let mut ctrl = d.ctrl();
    let mut blobs = [PERMANENT, VOLATILE, SAVESTATE].map(|kind| {
        let (res, flags, blob) = ctrl.get_blob(kind);
        assert_eq!(res, 0, "GET_STATEBLOB {kind}");
        if !blob.is_empty() {
            assert_eq!(flags, ENCRYPTED, "GET_STATEBLOB {kind} flags");
        }
        blob
    });
    assert!(!blobs[0].is_empty() && !blobs[1].is_empty(), "permanent and volatile blobs must not be empty");
    assert!(blobs[2].is_empty(), "a TPM 2.0 has no savestate blob");
    // The plain libtpms blobs start with their magic; ours must not show them.
    for b in &blobs[..2] {
        assert!(!b.windows(4).any(|w| w == [0xab, 0x36, 0x47, 0x23] || w == [0x45, 0x63, 0x78, 0x89]));
    }
    (pcr, std::mem::take(&mut blobs))
}

fn stop(c: &mut common::Ctrl) {
    assert_eq!(common::be32(&c.call(0x0E, &[], 4)), 0);
}

#[test]
fn authentic_blobs_restore_the_tpm_in_an_incoming_daemon_and_persist() {
    let tmp = tempfile::tempdir().unwrap();
    let key = key_file(tmp.path(), "k", 0x11);
    let k = key.to_str().unwrap();
    let a = Daemon::start(&tmp.path().join("a"), &["--store-key", k]);
    let (pcr, blobs) = source(&a, 7);
    let dst = tmp.path().join("b");
    let b = Daemon::start(&dst, &["--incoming", "--store-key", k]);
    let mut c = b.ctrl();
    stop(&mut c);
    for (kind, blob) in [PERMANENT, VOLATILE].into_iter().zip(&blobs) {
        assert_eq!(c.set_blob(kind, ENCRYPTED, blob), 0, "SET_STATEBLOB {kind}: {}", b.log());
    }
    assert_eq!(common::be32(&c.call(0x02, &1u32.to_be_bytes(), 4)), 0, "CMD_INIT: {}", b.log());
    // The volatile state came along: no TPM2_Startup, PCR 16 as on the source.
    assert_eq!(pcr_read(&mut b.data(), SHA256, 16).as_ref(), Some(&pcr));
    drop(b);
    drop(a);
    // Durable: the destination's store now holds the source's TPM (same EKs, same manufacture record).
    let info = |dir: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_svsm-host"))
            .args(["tpm", "info", "--store-key", k, "--state-dir"])
            .arg(tmp.path().join(dir))
            .output()
            .unwrap();
        assert!(out.status.success(), "tpm info {dir}: {}", String::from_utf8_lossy(&out.stderr));
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.lines().filter(|l| l.contains("name:")).map(str::to_owned).collect::<Vec<_>>()
    };
    let names = info("a");
    assert_eq!(names.len(), 2);
    assert_eq!(info("b"), names);
}

#[test]
fn tampered_foreign_mixed_and_plain_blobs_are_refused_and_the_tpm_keeps_its_state() {
    let tmp = tempfile::tempdir().unwrap();
    let key = key_file(tmp.path(), "k", 0x22);
    let k = key.to_str().unwrap();
    let a = Daemon::start(&tmp.path().join("a"), &["--store-key", k]);
    // Another vTPM under the same store key (an operator reusing a key file).
    let other = Daemon::start(&tmp.path().join("other"), &["--store-key", k]);
    let (pcr_a, blobs_a) = source(&a, 1);
    let (_, blobs_o) = source(&other, 2);

    // A running TPM does not take state.
    let mut ca = a.ctrl();
    assert_eq!(ca.set_blob(PERMANENT, ENCRYPTED, &blobs_a[0]), INVALID_POSTINIT);

    // Another vTPM's blob, fed to A: refused by volume id.
    stop(&mut ca);
    assert_eq!(ca.set_blob(PERMANENT, ENCRYPTED, &blobs_o[0]), DECRYPT_ERROR);
    assert!(a.log().contains("refusing a blob from another vTPM"), "{}", a.log());
    // A plain blob (flag not set) and a blob sent as the wrong type.
    assert_eq!(ca.set_blob(PERMANENT, 0, &blobs_a[0]), DECRYPT_ERROR);
    assert!(a.log().contains("unencrypted state blobs are not accepted"));
    assert_eq!(ca.set_blob(VOLATILE, ENCRYPTED, &blobs_a[0]), DECRYPT_ERROR);
    assert!(a.log().contains("but was sent as type 2"));
    // A still boots from its own durable state: a fresh TPM2_Startup, PCR 16 back to zero, NV intact.
    assert_eq!(common::be32(&ca.call(0x02, &0u32.to_be_bytes(), 4)), 0);
    let mut d = a.data();
    startup(&mut d);
    assert_eq!(pcr_read(&mut d, SHA256, 16), Some(vec![0; 32]));
    drop(d);
    // A snapshot restore on the same daemon (QEMU loadvm): A's own blobs bring PCR 16 back.
    stop(&mut ca);
    assert_eq!(ca.set_blob(PERMANENT, ENCRYPTED, &blobs_a[0]), 0);
    assert_eq!(ca.set_blob(VOLATILE, ENCRYPTED, &blobs_a[1]), 0);
    assert_eq!(common::be32(&ca.call(0x02, &1u32.to_be_bytes(), 4)), 0, "{}", a.log());
    assert_eq!(pcr_read(&mut a.data(), SHA256, 16).as_ref(), Some(&pcr_a));

    // A fresh incoming daemon: one flipped bit anywhere, and the blob is refused.
    let i = Daemon::start(&tmp.path().join("i"), &["--incoming", "--store-key", k]);
    let mut ci = i.ctrl();
    stop(&mut ci);
    for at in [0, 10, 30, blobs_a[0].len() / 2, blobs_a[0].len() - 1] {
        let mut t = blobs_a[0].clone();
        t[at] ^= 0x04;
        assert_eq!(ci.set_blob(PERMANENT, ENCRYPTED, &t), DECRYPT_ERROR, "flip at {at} accepted");
    }
    assert!(i.log().contains("altered in transit"), "{}", i.log());
    // Mixed: A's permanent state with the other vTPM's volatile state.
    assert_eq!(ci.set_blob(PERMANENT, ENCRYPTED, &blobs_a[0]), 0);
    assert_eq!(ci.set_blob(VOLATILE, ENCRYPTED, &blobs_o[1]), DECRYPT_ERROR);
    // Completing with A's own volatile blob works, and gives A's PCR 16.
    assert_eq!(ci.set_blob(VOLATILE, ENCRYPTED, &blobs_a[1]), 0);
    assert_eq!(common::be32(&ci.call(0x02, &1u32.to_be_bytes(), 4)), 0, "{}", i.log());
    assert_eq!(pcr_read(&mut i.data(), SHA256, 16), Some(pcr_a));
}

#[test]
fn another_store_key_refuses_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let k1 = key_file(tmp.path(), "k1", 0x33);
    let k2 = key_file(tmp.path(), "k2", 0x44);
    let a = Daemon::start(&tmp.path().join("a"), &["--store-key", k1.to_str().unwrap()]);
    let (_, blobs) = source(&a, 3);
    let b = Daemon::start(&tmp.path().join("b"), &["--incoming", "--store-key", k2.to_str().unwrap()]);
    let mut c = b.ctrl();
    stop(&mut c);
    assert_eq!(c.set_blob(PERMANENT, ENCRYPTED, &blobs[0]), DECRYPT_ERROR);
    assert!(b.log().contains("does not authenticate under this daemon's vTPM key"), "{}", b.log());
    // Nothing arrived, so INIT has no TPM to start.
    assert_ne!(common::be32(&c.call(0x02, &0u32.to_be_bytes(), 4)), 0);
}
