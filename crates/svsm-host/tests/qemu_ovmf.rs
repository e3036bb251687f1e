//! Measured boot: real QEMU (Debian `qemu-system-x86`, `-accel tcg`) with Debian's OVMF drives the daemon
//! through `-tpmdev emulator` over the Unix control socket, for `tpm-tis` and `tpm-crb`, until the UEFI shell.
//!
//! The daemon records every command and response on its side (tracing target `tpm_io`). The test asserts that
//! OVMF's TPM 1.2 probe was answered as a TPM 2.0 does, TPM2_Startup succeeded, PCR extends happened, and every
//! PCR value the TPM reported (OVMF's reads and ours at the shell) equals the replay of the extends it received.
//! Needs `qemu-system-x86` and `ovmf` (APT_PACKAGES in the Makefile); missing packages fail the test.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, pcr_read, qemu, wait_for};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

const SHA1: u16 = 0x0004;
const SHA256: u16 = 0x000B;
const SHA384: u16 = 0x000C;
const SHA512: u16 = 0x000D;

fn digest_len(alg: u16) -> usize {
    match alg {
        SHA1 => 20,
        SHA256 => 32,
        SHA384 => 48,
        SHA512 => 64,
        other => panic!("replay does not know hash algorithm {other:#06x}"),
    }
}

fn extend(alg: u16, old: &[u8], new: &[u8]) -> Vec<u8> {
    fn h<D: sha2::Digest>(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        d.update(a);
        d.update(b);
        d.finalize().to_vec()
    }
    match alg {
        SHA1 => h::<sha1::Sha1>(old, new),
        SHA256 => h::<sha2::Sha256>(old, new),
        SHA384 => h::<sha2::Sha384>(old, new),
        SHA512 => h::<sha2::Sha512>(old, new),
        other => panic!("replay does not know hash algorithm {other:#06x}"),
    }
}

/// PC Client reset values: PCRs 17-22 (dynamic root of trust) start as all ones, the others as zeros.
fn initial(alg: u16, pcr: u32) -> Vec<u8> {
    vec![if (17..=22).contains(&pcr) { 0xFF } else { 0 }; digest_len(alg)]
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// The (command, response) pairs the daemon recorded, in order.
fn recorded(log: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    log.lines()
        .filter(|l| l.contains("tpm_io"))
        .map(|l| {
            let field = |name: &str| {
                let v = l.split(&format!("{name}=")).nth(1).unwrap();
                hex_decode(v.split_whitespace().next().unwrap())
            };
            (field("command"), field("response"))
        })
        .collect()
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[derive(Debug, Default)]
struct Replay {
    startups: usize,
    extends: usize,
    reads_checked: usize,
    probe_answer: Option<Vec<u8>>,
    pcrs: BTreeMap<(u16, u32), Vec<u8>>,
    extended: BTreeMap<(u16, u32), usize>,
}

impl Replay {
    fn value(&self, alg: u16, pcr: u32) -> Vec<u8> {
        self.pcrs.get(&(alg, pcr)).cloned().unwrap_or_else(|| initial(alg, pcr))
    }

    /// Replays the recorded traffic; panics at the first PCR value that disagrees.
    fn run(records: &[(Vec<u8>, Vec<u8>)]) -> Replay {
        let mut r = Replay::default();
        for (i, (cmd, rsp)) in records.iter().enumerate() {
            let tag = be16(cmd, 0);
            let cc = be32(cmd, 6);
            let rc = be32(rsp, 6);
            if tag == 0x00C1 {
                r.probe_answer.get_or_insert_with(|| rsp.clone());
                continue;
            }
            if rc != 0 {
                continue;
            }
            match cc {
                // TPM2_Startup: CLEAR resets every PCR.
                0x144 => {
                    r.startups += 1;
                    if be16(cmd, 10) == 0 {
                        r.pcrs.clear();
                    }
                }
                // TPM2_PCR_Extend: handle, authorization area, TPML_DIGEST_VALUES.
                0x182 => {
                    assert!(r.startups > 0, "PCR_Extend before TPM2_Startup (record {i})");
                    let pcr = be32(cmd, 10);
                    let auth = be32(cmd, 14) as usize;
                    let mut at = 18 + auth;
                    let count = be32(cmd, at);
                    at += 4;
                    for _ in 0..count {
                        let alg = be16(cmd, at);
                        let n = digest_len(alg);
                        let d = &cmd[at + 2..at + 2 + n];
                        let new = extend(alg, &r.value(alg, pcr), d);
                        r.pcrs.insert((alg, pcr), new);
                        *r.extended.entry((alg, pcr)).or_default() += 1;
                        at += 2 + n;
                    }
                    r.extends += 1;
                }
                0x13C | 0x13D | 0x185 => {
                    panic!("record {i}: command {cc:#x} changes PCRs in a way this replay does not model")
                }
                // TPM2_PCR_Read: updateCounter, TPML_PCR_SELECTION out, TPML_DIGEST.
                0x17E => {
                    let mut wanted = Vec::new();
                    let banks = be32(rsp, 14);
                    let mut at = 18;
                    for _ in 0..banks {
                        let alg = be16(rsp, at);
                        let size = rsp[at + 2] as usize;
                        for (byte, bits) in rsp[at + 3..at + 3 + size].iter().enumerate() {
                            for bit in 0..8 {
                                if bits & (1 << bit) != 0 {
                                    wanted.push((alg, (byte * 8 + bit) as u32));
                                }
                            }
                        }
                        at += 3 + size;
                    }
                    let n = be32(rsp, at) as usize;
                    at += 4;
                    assert_eq!(n, wanted.len(), "record {i}: PCR_Read digest count");
                    for (alg, pcr) in wanted {
                        let len = be16(rsp, at) as usize;
                        let got = &rsp[at + 2..at + 2 + len];
                        assert_eq!(
                            got,
                            &r.value(alg, pcr)[..],
                            "record {i}: PCR {pcr} (alg {alg:#06x}) reported by the TPM differs from the replay"
                        );
                        r.reads_checked += 1;
                        at += 2 + len;
                    }
                }
                _ => {}
            }
        }
        r
    }
}

fn boot_ovmf_to_shell(device: &str) {
    for f in [OVMF_CODE, OVMF_VARS] {
        assert!(Path::new(f).exists(), "{f} is missing: run `make deps` (apt-get install ovmf)");
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("state"), &[]);
    let vars = tmp.path().join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let serial = tmp.path().join("serial.log");
    let qemu_err = tmp.path().join("qemu.err");
    let _vm = qemu(
        &d.ctrl_path(),
        device,
        &[
            "-monitor",
            "none",
            "-serial",
            &format!("file:{}", serial.display()),
            "-drive",
            &format!("if=pflash,format=raw,unit=0,file={OVMF_CODE},readonly=on"),
            "-drive",
            &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        ],
        &qemu_err,
    );
    let at_shell = wait_for(Duration::from_secs(120), || {
        let s = std::fs::read(&serial).unwrap_or_default();
        String::from_utf8_lossy(&s).contains("UEFI Interactive Shell").then_some(())
    });
    assert!(
        at_shell.is_some(),
        "{device}: OVMF did not reach the UEFI shell in 120 s\nqemu: {}\ndaemon:\n{}",
        std::fs::read_to_string(&qemu_err).unwrap_or_default(),
        d.log()
    );
    let boot = t0.elapsed();
    // At the shell, read PCRs 0-7 of every bank OVMF extended, through the daemon's data socket.
    let mut data = d.data();
    let before = Replay::run(&recorded(&d.log()));
    let banks: Vec<u16> = before
        .extended
        .keys()
        .map(|(alg, _)| *alg)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for &alg in &banks {
        for pcr in 0..8 {
            pcr_read(&mut data, alg, pcr).expect("PCR_Read at the shell failed");
        }
    }
    drop(data);
    let records = recorded(&d.log());
    let replay = Replay::run(&records);
    eprintln!(
        "{device}: shell after {:.1} s; {} commands, {} startups, {} PCR extends, {} PCR values checked, banks {banks:x?}",
        boot.as_secs_f64(),
        records.len(),
        replay.startups,
        replay.extends,
        replay.reads_checked
    );
    // OVMF probes for a TPM 1.2 only on TIS (CRB is TPM 2.0 only); the answer must be libtpms' own.
    if device == "tpm-tis" || replay.probe_answer.is_some() {
        assert_eq!(
            replay.probe_answer.as_deref(),
            Some(&[0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0x84][..]),
            "{device}: OVMF's TPM 1.2 GetTicks probe must get libtpms' TPM 2.0-tagged answer"
        );
    }
    assert!(replay.startups >= 1, "{device}: TPM2_Startup never succeeded ({} commands seen)", records.len());
    assert!(replay.extends >= 8, "{device}: only {} PCR extends", replay.extends);
    assert!(banks.contains(&SHA256), "{device}: OVMF did not extend the SHA-256 bank");
    for pcr in 0..8 {
        assert!(replay.extended.contains_key(&(SHA256, pcr)), "{device}: PCR {pcr} was never extended");
    }
    assert!(replay.reads_checked >= 8 * banks.len(), "{device}: too few PCR values compared");
}

#[test]
fn ovmf_measures_into_the_vtpm_over_tpm_tis() {
    boot_ovmf_to_shell("tpm-tis");
}

#[test]
fn ovmf_measures_into_the_vtpm_over_tpm_crb() {
    boot_ovmf_to_shell("tpm-crb");
}
