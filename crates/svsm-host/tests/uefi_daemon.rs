//! `serve --uefi` end to end, with the real daemon binary and `svsm-host guest uefi` as the guest: a
//! non-volatile variable set by the guest survives SIGKILL and a restart; a rolled-back UEFI volume (an older
//! dbx) makes `serve` refuse to start, naming the volume.

mod common;

use std::path::Path;

use common::{Daemon, Serve, guest_uefi as guest};

/// The daemons' first start generates RSA-4096 roots and manufactures a vTPM; two at once on a loaded
/// machine can exceed the start timeout, so these tests run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const VENDOR: &str = "5b3a2e1c-8d4f-4a6b-9c0d-1e2f3a4b5c6d";
const DB_GUID: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

fn start(state: &Path) -> Result<Daemon, String> {
    Serve::new(state).unix_only().uefi().try_start()
}

/// EFI_VARIABLE_AUTHENTICATION_2 (EFI_TIME, WIN_CERTIFICATE_UEFI_GUID with the PKCS7 GUID, no certificate)
/// followed by an EFI_SIGNATURE_LIST of one SHA-256 hash: a setup-mode dbx write.
fn dbx_write(year: u16, hash_byte: u8) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&year.to_le_bytes());
    v.extend_from_slice(&[12, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&24u32.to_le_bytes());
    v.extend_from_slice(&0x0200u16.to_le_bytes());
    v.extend_from_slice(&0x0ef1u16.to_le_bytes());
    v.extend_from_slice(&[
        0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49, 0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7,
    ]);
    // EFI_SIGNATURE_LIST: EFI_CERT_SHA256_GUID, ListSize 76, HeaderSize 0, SignatureSize 48, one entry.
    v.extend_from_slice(&[
        0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28,
    ]);
    v.extend_from_slice(&76u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&48u32.to_le_bytes());
    v.extend_from_slice(&[0x11; 16]);
    v.extend_from_slice(&[hash_byte; 32]);
    v
}

#[test]
fn a_variable_set_by_the_guest_survives_sigkill_and_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let base = tempfile::tempdir().expect("tmp");
    let state = base.path().join("state");
    let mut daemon = start(&state).expect("first start");
    let value = "00112233445566778899aabbccddeeff".repeat(64); // 1 KiB
    let (ok, out, err) = guest(&state, &["set", "SvsmPersist", VENDOR, "--data-hex", &value]);
    assert!(ok, "set failed: {out}{err}");
    let (ok, out, _) = guest(&state, &["list"]);
    assert!(ok && out.contains(&format!("{VENDOR} SvsmPersist")), "{out}");
    let (ok, out, err) = guest(&state, &["query"]);
    assert!(ok && out.contains("maximum variable 65536"), "{out}{err}");
    daemon.child.0.kill().expect("SIGKILL"); // std's kill() is SIGKILL
    daemon.child.0.wait().expect("reaped");
    drop(daemon);

    let _daemon = start(&state).expect("restart after SIGKILL");
    let (ok, out, err) = guest(&state, &["get", "SvsmPersist", VENDOR]);
    assert!(ok, "get after restart failed: {err}");
    assert!(out.contains("attributes 0x7 size 1024") && out.contains(&value), "{out}");
    let (ok, _, err) = guest(&state, &["get", "NeverSet", VENDOR]);
    assert!(!ok && err.contains("EFI_NOT_FOUND"), "{err}");
}

#[test]
fn a_rolled_back_uefi_volume_is_refused_at_start_naming_the_volume() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let base = tempfile::tempdir().expect("tmp");
    let state = base.path().join("state");
    let daemon = start(&state).expect("first start");
    let first = base.path().join("dbx1.bin");
    std::fs::write(&first, dbx_write(2024, 0xaa)).expect("write");
    let (ok, out, err) = guest(
        &state,
        &["set", "dbx", DB_GUID, "--attributes", "0x27", "--data-file", first.to_str().expect("p")],
    );
    assert!(ok, "setup-mode dbx write failed: {out}{err}");
    drop(daemon); // SIGKILL
    let image = state.join("uefi-vars.store");
    let copy = base.path().join("uefi-vars.copy");
    std::fs::copy(&image, &copy).expect("keep a copy of the UEFI volume");

    let daemon = start(&state).expect("restart");
    let second = base.path().join("dbx2.bin");
    std::fs::write(&second, dbx_write(2025, 0xbb)).expect("write");
    let (ok, out, err) = guest(
        &state,
        &["set", "dbx", DB_GUID, "--attributes", "0x27", "--data-file", second.to_str().expect("p")],
    );
    assert!(ok, "dbx update failed: {out}{err}");
    let (ok, out, _) = guest(&state, &["get", "dbx", DB_GUID]);
    assert!(ok && out.contains(&"bb".repeat(32)), "{out}");
    drop(daemon);

    std::fs::copy(&copy, &image).expect("restore the old UEFI volume");
    let err = start(&state).err().expect("serve started on a rolled-back UEFI volume");
    assert!(err.contains("UEFI variable volume `uefi-vars`"), "message does not name the volume: {err}");
    assert!(err.contains("rolled back"), "{err}");
}
