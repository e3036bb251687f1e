//! The `svsm-host serve` daemon driven by real TPM clients: tpm2-tools over the mssim and swtpm TCTIs, a raw
//! client for the SIGKILL durability campaign, malformed frames, and QEMU's control-channel sequence.
//!
//! These tests need tpm2-tools (Debian `tpm2-tools`, installed by `make deps`). They fail, loudly, if it is
//! missing: CI installs it, so a skip would hide a broken set-up. `SVSM_LONG_TESTS=1` runs the long SIGKILL
//! campaign (100 repetitions instead of 5).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, Serve, require_tpm2_tools, run_ok, tpm2, tpm2_ok};
use svsm_vtpm::marshal::{self, cmd, rh, su};

/// `serve` with mssim and swtpm on loopback TCP (kernel-chosen ports) besides its Unix sockets.
fn tcp_daemon(state: &Path, extra: &[&str]) -> Result<Daemon, String> {
    Serve::new(state).tcp().args(extra).try_start()
}

fn lockout_counter(tcti: &str, dir: &Path) -> u32 {
    let caps = tpm2_ok(tcti, dir, &["tpm2_getcap", "properties-variable"]);
    let line =
        caps.lines().find(|l| l.contains("TPM2_PT_LOCKOUT_COUNTER")).expect("no lockout counter in getcap");
    let v = line.split(':').nth(1).unwrap().trim();
    u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn tpm2_tools_over_mssim_and_swtpm_and_state_survives_restart() {
    require_tpm2_tools();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let state = work.join("state");
    let d = tcp_daemon(&state, &[]).unwrap();
    let (m, s) = (d.mssim_tcti(), d.swtpm_tcti());

    tpm2_ok(&m, work, &["tpm2_startup", "-c"]);
    let r1 = tpm2_ok(&m, work, &["tpm2_getrandom", "16", "--hex"]);
    let r2 = tpm2_ok(&s, work, &["tpm2_getrandom", "16", "--hex"]);
    assert_eq!(r1.trim().len(), 32);
    assert_ne!(r1, r2);

    // PCR extend / read: the value is SHA256(zeros || digest), the same over both TCTIs.
    tpm2_ok(
        &m,
        work,
        &["tpm2_pcrextend", "16:sha256=0000000000000000000000000000000000000000000000000000000000000001"],
    );
    let pcr_m = tpm2_ok(&m, work, &["tpm2_pcrread", "sha256:16"]);
    let pcr_s = tpm2_ok(&s, work, &["tpm2_pcrread", "sha256:16"]);
    assert!(pcr_m.contains("0x90F4B39548DF55AD6187A1D20D731ECEE78C545B94AFD16F42EF7592D99CD365"), "{pcr_m}");
    assert_eq!(pcr_m, pcr_s);

    // Primary keys and EKs; the EK is the one recorded at manufacture (deterministic from the seeds).
    tpm2_ok(&s, work, &["tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", "prim.ctx"]);
    tpm2_ok(&s, work, &["tpm2_flushcontext", "-t"]);
    tpm2_ok(&m, work, &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek-rsa.pub"]);
    let rp = tpm2_ok(&m, work, &["tpm2_readpublic", "-c", "ek.ctx"]);
    tpm2_ok(&m, work, &["tpm2_flushcontext", "-t"]);
    tpm2_ok(&s, work, &["tpm2_createek", "-c", "ek-ecc.ctx", "-G", "ecc", "-u", "ek-ecc.pub"]);
    tpm2_ok(&s, work, &["tpm2_flushcontext", "-t"]);
    let info = common::host().args(["tpm", "info", "--state-dir"]).arg(&state).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let rsa_name = common::name_of(&rp);
    assert!(info.contains(&rsa_name), "EK name {rsa_name} not in `tpm info`:\n{info}");

    // NV define / write (mssim) / read (swtpm).
    let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7)).collect();
    std::fs::write(work.join("nv.bin"), &data).unwrap();
    tpm2_ok(
        &m,
        work,
        &[
            "tpm2_nvdefine",
            "0x1500016",
            "-C",
            "o",
            "-s",
            "64",
            "-a",
            "ownerread|ownerwrite|authread|authwrite",
        ],
    );
    tpm2_ok(&m, work, &["tpm2_nvwrite", "0x1500016", "-C", "o", "-i", "nv.bin"]);
    tpm2_ok(&s, work, &["tpm2_nvread", "0x1500016", "-C", "o", "-s", "64", "-o", "nv.out"]);
    assert_eq!(std::fs::read(work.join("nv.out")).unwrap(), data);

    // Dictionary-attack lockout: 3 wrong passwords on a DA-protected index lock the TPM out.
    tpm2_ok(&m, work, &["tpm2_dictionarylockout", "-s", "-n", "3", "-t", "3600", "-l", "3600"]);
    tpm2_ok(
        &m,
        work,
        &[
            "tpm2_nvdefine",
            "0x1500017",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|authread|authwrite",
            "-p",
            "secret",
        ],
    );
    std::fs::write(work.join("eight.bin"), b"12345678").unwrap();
    tpm2_ok(&m, work, &["tpm2_nvwrite", "0x1500017", "-C", "o", "-i", "eight.bin"]);
    tpm2_ok(&m, work, &["tpm2_nvread", "0x1500017", "-C", "0x1500017", "-P", "secret", "-s", "8"]);
    for _ in 0..3 {
        let out = tpm2(&m, work, &["tpm2_nvread", "0x1500017", "-C", "0x1500017", "-P", "wrong", "-s", "8"]);
        assert!(!out.status.success(), "a wrong password was accepted");
    }
    assert_eq!(lockout_counter(&s, work), 3);
    let locked = tpm2(&m, work, &["tpm2_nvread", "0x1500017", "-C", "0x1500017", "-P", "secret", "-s", "8"]);
    assert!(!locked.status.success(), "the right password must be refused while locked out");
    d.kill();

    // Restart: NV content, DA parameters and the lockout counter survive.
    let d = tcp_daemon(&state, &[]).unwrap();
    let (m, s) = (d.mssim_tcti(), d.swtpm_tcti());
    tpm2_ok(&s, work, &["tpm2_startup", "-c"]);
    tpm2_ok(&m, work, &["tpm2_nvread", "0x1500016", "-C", "o", "-s", "64", "-o", "nv2.out"]);
    assert_eq!(std::fs::read(work.join("nv2.out")).unwrap(), data);
    assert!(lockout_counter(&m, work) >= 3, "lockout counter lost across restart");
    let locked = tpm2(&m, work, &["tpm2_nvread", "0x1500017", "-C", "0x1500017", "-P", "secret", "-s", "8"]);
    assert!(!locked.status.success(), "lockout lost across restart");
    // The swtpm protocol over the Unix sockets (data `swtpm.sock`, control `swtpm.sock.ctrl`).
    let unix = format!("swtpm:path={}", state.join("swtpm.sock").display());
    let r = tpm2_ok(&unix, work, &["tpm2_getrandom", "8", "--hex"]);
    assert_eq!(r.trim().len(), 16);
    tpm2_ok(&unix, work, &["tpm2_nvread", "0x1500016", "-C", "o", "-s", "64", "-o", "nv3.out"]);
    assert_eq!(std::fs::read(work.join("nv3.out")).unwrap(), data);
    // Lockout authority clears it.
    tpm2_ok(&m, work, &["tpm2_dictionarylockout", "-c"]);
    assert_eq!(lockout_counter(&m, work), 0);
    tpm2_ok(&m, work, &["tpm2_nvread", "0x1500017", "-C", "0x1500017", "-P", "secret", "-s", "8"]);
}

/// A raw mssim client: one persistent connection, no platform handshake needed (the daemon powers on).
struct Raw(TcpStream);

impl Raw {
    fn connect(a: SocketAddr) -> Raw {
        let s = TcpStream::connect(a).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw(s)
    }

    fn send(&mut self, command: &[u8]) -> Vec<u8> {
        let mut f = 8u32.to_be_bytes().to_vec();
        f.push(0);
        f.extend_from_slice(&(command.len() as u32).to_be_bytes());
        f.extend_from_slice(command);
        self.0.write_all(&f).unwrap();
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).unwrap();
        let mut resp = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut resp).unwrap();
        let mut ack = [0u8; 4];
        self.0.read_exact(&mut ack).unwrap();
        assert_eq!(ack, [0; 4]);
        resp
    }

    fn ok(&mut self, command: &[u8]) -> Vec<u8> {
        let r = self.send(command);
        assert_eq!(marshal::response_code(&r).unwrap(), 0, "TPM error {r:02x?}");
        r
    }
}

const IDX: u32 = 0x0150_0020;

fn define_index(c: &mut Raw) {
    let public = marshal::NvPublic {
        index: IDX,
        name_alg: marshal::alg::SHA256,
        attributes: marshal::nv_attr::OWNERWRITE | marshal::nv_attr::OWNERREAD,
        auth_policy: vec![],
        data_size: 64,
    };
    c.ok(&cmd::nv_define_space(rh::OWNER, &public).unwrap());
}

fn read_index(c: &mut Raw) -> Vec<u8> {
    let r = c.ok(&cmd::nv_read(rh::OWNER, IDX, 64, 0).unwrap());
    let resp = marshal::Response::parse(&r, 0).unwrap();
    marshal::Reader::new(resp.params).tpm2b().unwrap().to_vec()
}

#[test]
fn sigkill_right_after_an_nv_write_response_loses_nothing() {
    let reps = if std::env::var_os("SVSM_LONG_TESTS").is_some() { 100 } else { 5 };
    eprintln!("SIGKILL campaign: {reps} repetitions");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let d = tcp_daemon(&state, &[]).unwrap();
    let mut c = Raw::connect(d.mssim_addr());
    c.ok(&cmd::startup(su::CLEAR).unwrap());
    define_index(&mut c);
    let mut d = d;
    for i in 0..reps {
        let value = [(i as u8).wrapping_add(1); 64];
        c.ok(&cmd::nv_write(rh::OWNER, IDX, &value, 0).unwrap());
        // SIGKILL the moment the response is in: no shutdown, no chance to flush anything later.
        d.kill();
        d = tcp_daemon(&state, &[]).unwrap();
        c = Raw::connect(d.mssim_addr());
        c.ok(&cmd::startup(su::CLEAR).unwrap());
        assert_eq!(read_index(&mut c), value.to_vec(), "acknowledged NV_Write lost at repetition {i}");
    }
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let d = tcp_daemon(&state, &[]).unwrap();
    let mut good = Raw::connect(d.mssim_addr());
    good.ok(&cmd::startup(su::CLEAR).unwrap());

    let expect_closed = |mut s: TcpStream, what: &str| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 64];
        let n = s.read(&mut b).unwrap_or(0);
        // Whatever was answered, the server must then close (read returns 0).
        let n2 = if n > 0 { s.read(&mut b).unwrap_or(0) } else { 0 };
        assert_eq!(n2, 0, "{what}: connection stayed open");
    };
    // mssim: oversize length.
    let mut s = TcpStream::connect(d.mssim_addr()).unwrap();
    s.write_all(&[0, 0, 0, 8, 0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
    expect_closed(s, "mssim oversize");
    // mssim: unknown command.
    let mut s = TcpStream::connect(d.mssim_addr()).unwrap();
    s.write_all(&0x77u32.to_be_bytes()).unwrap();
    expect_closed(s, "mssim unknown");
    // mssim platform: unknown signal.
    let plat = SocketAddr::new(d.mssim_addr().ip(), d.mssim_addr().port() + 1);
    let mut s = TcpStream::connect(plat).unwrap();
    s.write_all(&0x99u32.to_be_bytes()).unwrap();
    expect_closed(s, "platform unknown");
    // swtpm data: TPM header claiming 1 MiB; and a header shorter than itself.
    let mut s = TcpStream::connect(d.swtpm_addr()).unwrap();
    s.write_all(&[0x80, 0x01, 0x00, 0x10, 0x00, 0x00, 0, 0, 1, 0x7b]).unwrap();
    expect_closed(s, "swtpm oversize");
    let mut s = TcpStream::connect(d.swtpm_addr()).unwrap();
    s.write_all(&[0x80, 0x01, 0, 0, 0, 4, 0, 0, 1, 0x7b]).unwrap();
    expect_closed(s, "swtpm undersize");
    // swtpm ctrl: unknown command gets an error result, then the connection closes.
    let ctrl = SocketAddr::new(d.swtpm_addr().ip(), d.swtpm_addr().port() + 1);
    let mut s = TcpStream::connect(ctrl).unwrap();
    s.write_all(&0x55u32.to_be_bytes()).unwrap();
    expect_closed(s, "swtpm ctrl unknown");
    // Truncated frames: half a command, then the client goes away.
    let mut s = TcpStream::connect(d.mssim_addr()).unwrap();
    let get_random = cmd::get_random(8).unwrap();
    s.write_all(&[0, 0, 0, 8, 0, 0, 0, 0, 12]).unwrap();
    s.write_all(&get_random[..5]).unwrap();
    drop(s);
    let mut s = TcpStream::connect(d.swtpm_addr()).unwrap();
    s.write_all(&get_random[..7]).unwrap();
    drop(s);

    // The daemon still serves, and the earlier connection is unaffected.
    good.ok(&cmd::get_random(8).unwrap());
    let mut again = Raw::connect(d.mssim_addr());
    again.ok(&cmd::get_random(8).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let log = d.log();
    for reason in [
        "exceeds the maximum",
        "unknown command code 0x77",
        "unknown command code 0x99",
        "below the minimum",
        "in the middle of a frame",
    ] {
        assert!(log.contains(reason), "log lacks the reason '{reason}':\n{log}");
    }
}

#[test]
fn tampered_rolled_back_or_missing_state_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let d = tcp_daemon(&state, &[]).unwrap();
    let mut c = Raw::connect(d.mssim_addr());
    c.ok(&cmd::startup(su::CLEAR).unwrap());
    define_index(&mut c);
    d.kill();
    let image = state.join("vtpm.store");
    let pristine = std::fs::read(&image).unwrap();

    // Rolled back: an older image of the store (before the NV index existed) is refused.
    let d = tcp_daemon(&state, &[]).unwrap();
    let mut c = Raw::connect(d.mssim_addr());
    c.ok(&cmd::startup(su::CLEAR).unwrap());
    c.ok(&cmd::nv_write(rh::OWNER, IDX, &[9; 64], 0).unwrap());
    d.kill();
    let newest = std::fs::read(&image).unwrap();
    std::fs::write(&image, &pristine).unwrap();
    let err = tcp_daemon(&state, &[]).err().expect("started on a rolled-back store");
    assert!(err.contains("refusing to start") && err.contains("rolled back"), "{err}");

    // Tampered: flip one byte in every 4 KiB block of the image.
    let mut bad = newest.clone();
    for b in bad.chunks_mut(4096) {
        b[100] ^= 0x40;
    }
    std::fs::write(&image, &bad).unwrap();
    let err = tcp_daemon(&state, &[]).err().expect("started on a tampered store");
    assert!(err.contains("refusing to start") && err.contains("tampered"), "{err}");

    // Missing: the state directory exists but its TPM state is gone. Never silently re-manufactured.
    std::fs::remove_file(&image).unwrap();
    let err = tcp_daemon(&state, &[]).err().expect("started without TPM state");
    assert!(err.contains("has no vTPM state"), "{err}");
    assert!(!image.exists(), "a missing TPM must not be re-created");

    // Restored (the current copy): starts again with the same TPM and the acknowledged write.
    std::fs::write(&image, &newest).unwrap();
    let d = tcp_daemon(&state, &[]).unwrap();
    let mut c = Raw::connect(d.mssim_addr());
    c.ok(&cmd::startup(su::CLEAR).unwrap());
    assert_eq!(read_index(&mut c), vec![9u8; 64]);
}

/// Sends `bytes` on a Unix socket with `fd` attached (SCM_RIGHTS), as QEMU does for CMD_SET_DATAFD.
fn send_with_fd(sock: &std::os::unix::net::UnixStream, bytes: &[u8], fd: std::os::fd::RawFd) {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    let mut cbuf = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: msg has a control buffer large enough for one header.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: cmsg points into cbuf.
    unsafe {
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
    }
    // SAFETY: as above.
    unsafe {
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    }
    // SAFETY: CMSG_LEN is a pure size computation.
    let cmsg_len = unsafe { libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: cmsg points into cbuf.
    unsafe {
        (*cmsg).cmsg_len = cmsg_len;
    }
    // SAFETY: the data area of this header lies inside cbuf.
    let data = unsafe { libc::CMSG_DATA(cmsg) };
    // SAFETY: the data area holds one int.
    unsafe { std::ptr::write_unaligned(data.cast::<libc::c_int>(), fd) };
    // SAFETY: msg references live buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    assert_eq!(n, bytes.len() as isize, "sendmsg failed: {}", std::io::Error::last_os_error());
}

#[test]
fn qemu_tpmdev_emulator_control_sequence_over_unix_sockets() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let d = tcp_daemon(&state, &[]).unwrap();
    let mut ctrl = UnixStream::connect(state.join("swtpm.sock.ctrl")).unwrap();
    ctrl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let read_n = |s: &mut UnixStream, n: usize| {
        let mut b = vec![0u8; n];
        s.read_exact(&mut b).unwrap();
        b
    };
    let be = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap());
    let ctl = |ctrl: &mut UnixStream, code: u32, body: &[u8], reply: usize| {
        let mut m = code.to_be_bytes().to_vec();
        m.extend_from_slice(body);
        ctrl.write_all(&m).unwrap();
        let mut b = vec![0u8; reply];
        ctrl.read_exact(&mut b).unwrap();
        b
    };
    let tpm = |s: &mut UnixStream, c: &[u8]| -> Vec<u8> {
        s.write_all(c).unwrap();
        let mut h = [0u8; 10];
        s.read_exact(&mut h).unwrap();
        let mut r = h.to_vec();
        let len = u32::from_be_bytes(h[2..6].try_into().unwrap()) as usize;
        let mut rest = vec![0u8; len - 10];
        s.read_exact(&mut rest).unwrap();
        r.extend_from_slice(&rest);
        r
    };

    // 1. CMD_SET_DATAFD with one end of a socketpair.
    send_with_fd(&ctrl, &0x10u32.to_be_bytes(), theirs.as_raw_fd());
    drop(theirs);
    assert_eq!(be(&read_n(&mut ctrl, 4)), 0);
    // 2. ReadClock probe on the data channel before init.
    let read_clock = marshal::CommandBuilder::new(marshal::cc::READ_CLOCK).build().unwrap();
    let r = tpm(&mut ours, &read_clock);
    assert_eq!(marshal::response_code(&r).unwrap(), marshal::rc::INITIALIZE);
    // 3. Capabilities QEMU requires for a TPM 2.0.
    let caps = u64::from_be_bytes(ctl(&mut ctrl, 0x01, &[], 8).try_into().unwrap());
    let needed = 1 | 2 | 4 | 8 | 0x80 | 0x400 | 0x1000 | 0x2000;
    assert_eq!(caps & needed, needed, "capabilities {caps:#x}");
    // 4-7. STOP, query buffer size, STOP, set buffer size.
    assert_eq!(be(&ctl(&mut ctrl, 0x0E, &[], 4)), 0);
    let q = ctl(&mut ctrl, 0x11, &0u32.to_be_bytes(), 16);
    assert_eq!(be(&q), 0);
    let (size, min, max) = (be(&q[4..]), be(&q[8..]), be(&q[12..]));
    assert!(min <= size && size <= max && max >= 3968, "{size} {min} {max}");
    assert_eq!(be(&ctl(&mut ctrl, 0x0E, &[], 4)), 0);
    let s = ctl(&mut ctrl, 0x11, &3968u32.to_be_bytes(), 16);
    assert_eq!((be(&s), be(&s[4..])), (0, 3968));
    // 8-10. INIT, GET_TPMESTABLISHED, SET_LOCALITY 0.
    assert_eq!(be(&ctl(&mut ctrl, 0x02, &0u32.to_be_bytes(), 4)), 0);
    let est = ctl(&mut ctrl, 0x04, &[], 8);
    assert_eq!(be(&est), 0);
    // QEMU sends SET_LOCALITY as the C struct: the locality byte and three bytes of padding.
    assert_eq!(be(&ctl(&mut ctrl, 0x05, &[0, 0, 0, 0], 4)), 0);
    // 11. Firmware: OVMF's TPM 1.2 GetTicks probe gets libtpms' TPM 2.0-tagged answer (host-stack.md 7),
    // then TPM 2.0 commands work.
    let r = tpm(&mut ours, &[0x00, 0xC1, 0, 0, 0, 0x0A, 0, 0, 0, 0xF1]);
    assert_eq!(r, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0x84]);
    assert_eq!(marshal::response_code(&tpm(&mut ours, &cmd::startup(su::CLEAR).unwrap())).unwrap(), 0);
    assert_eq!(marshal::response_code(&tpm(&mut ours, &cmd::get_random(16).unwrap())).unwrap(), 0);
    // 12. CMD_SHUTDOWN when QEMU exits.
    assert_eq!(be(&ctl(&mut ctrl, 0x03, &[], 4)), 0);
    drop(d);
}

#[test]
fn ek_certificates_from_the_operators_ca_verify_and_match_the_eks() {
    require_tpm2_tools();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    // A throwaway provisioning CA, made with the openssl CLI (an independent implementation).
    run_ok(
        work,
        "openssl",
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"],
    );
    run_ok(
        work,
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Test EK CA",
            "-days",
            "2",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    let state = work.join("state");
    let ca = work.join("ca.pem");
    let key = work.join("ca.key");
    let d = tcp_daemon(
        &state,
        &["--ek-ca", ca.to_str().unwrap(), "--ek-ca-key", key.to_str().unwrap(), "--persist-ek"],
    )
    .unwrap();
    let m = d.mssim_tcti();
    tpm2_ok(&m, work, &["tpm2_startup", "-c"]);
    tpm2_ok(&m, work, &["tpm2_getekcertificate", "-o", "rsa.der", "-o", "ecc.der"]);
    for (kind, alg) in [("rsa", "rsa"), ("ecc", "ecc")] {
        run_ok(
            work,
            "openssl",
            &["x509", "-inform", "DER", "-in", &format!("{kind}.der"), "-out", &format!("{kind}.pem")],
        );
        let v = run_ok(work, "openssl", &["verify", "-CAfile", "ca.pem", &format!("{kind}.pem")]);
        assert!(v.contains(": OK"), "{v}");
        // The certified key is the EK the TPM derives.
        tpm2_ok(
            &m,
            work,
            &["tpm2_createek", "-c", "ek.ctx", "-G", alg, "-u", &format!("ek-{kind}.pem"), "-f", "pem"],
        );
        tpm2_ok(&m, work, &["tpm2_flushcontext", "-t"]);
        let cert_key = run_ok(work, "openssl", &["x509", "-in", &format!("{kind}.pem"), "-noout", "-pubkey"]);
        let ek_key = std::fs::read_to_string(work.join(format!("ek-{kind}.pem"))).unwrap();
        assert_eq!(cert_key.trim(), ek_key.trim(), "{kind} certificate does not certify the EK");
    }
    // Persistent EK handles exist.
    let handles = tpm2_ok(&m, work, &["tpm2_getcap", "handles-persistent"]);
    assert!(handles.contains("0x81010001") && handles.contains("0x81010002"), "{handles}");
    // `tpm info` reports the certificates.
    let info = run_ok(
        work,
        env!("CARGO_BIN_EXE_svsm-host"),
        &["tpm", "info", "--state-dir", state.to_str().unwrap()],
    );
    assert!(info.contains("at NV index 0x01c00002") && info.contains("at NV index 0x01c0000a"), "{info}");
    // ... and names the CA that signed them (the operator's, not the development one).
    assert!(info.contains("operator EK CA") && info.contains("CN=Test EK CA"), "{info}");
    assert!(!info.contains("DEVELOPMENT ONLY"), "{info}");
    assert!(!state.join("dev-ek-ca.key").exists(), "a development CA was created although --ek-ca was given");
}

#[test]
fn a_ca_key_that_does_not_match_its_certificate_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    run_ok(
        work,
        "openssl",
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "a.key"],
    );
    run_ok(
        work,
        "openssl",
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "b.key"],
    );
    run_ok(
        work,
        "openssl",
        &["req", "-x509", "-new", "-key", "a.key", "-subj", "/CN=A", "-days", "2", "-out", "a.pem"],
    );
    let state = work.join("state");
    let out = common::host()
        .args(["tpm", "manufacture", "--ek-ca", "a.pem", "--ek-ca-key", "b.key", "--state-dir"])
        .arg(&state)
        .current_dir(work)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not hold the key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!state.exists(), "nothing may be created when the CA is unusable");
    // Manufacturing twice into one directory is refused.
    run_ok(work, env!("CARGO_BIN_EXE_svsm-host"), &["tpm", "manufacture", "--state-dir", "s2"]);
    let again =
        common::host().args(["tpm", "manufacture", "--state-dir", "s2"]).current_dir(work).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never re-manufactured"));
}

/// Real QEMU (Debian `qemu-system-x86`, with SeaBIOS) drives the daemon through `-tpmdev emulator`: the
/// control sequence over the Unix control socket, the data channel passed with CMD_SET_DATAFD, and the
/// firmware's TPM2_Startup and PCR measurements. Opt-in with `SVSM_QEMU_TESTS=1` (QEMU is a large package
/// and the boot runs under TCG); with the variable set, a missing QEMU is a failure, not a skip.
#[test]
fn real_qemu_firmware_measures_into_the_vtpm() {
    if std::env::var_os("SVSM_QEMU_TESTS").is_none() {
        eprintln!(
            "real_qemu_firmware_measures_into_the_vtpm: set SVSM_QEMU_TESTS=1 to run (needs qemu-system-x86)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let d = tcp_daemon(&state, &[]).unwrap();
    // Before QEMU runs, the TPM is powered but not started: nothing has been measured.
    let mut c = Raw::connect(d.mssim_addr());
    let probe = marshal::CommandBuilder::new(0x17E).u32(0).build().unwrap();
    assert_eq!(marshal::response_code(&c.send(&probe)).unwrap(), marshal::rc::INITIALIZE);
    drop(c);
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-M", "q35", "-accel", "tcg", "-m", "128", "-nographic", "-no-reboot", "-display", "none"])
        .args(["-monitor", "none", "-serial", "null"])
        .arg("-chardev")
        .arg(format!("socket,id=chrtpm,path={}", state.join("swtpm.sock.ctrl").display()))
        .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
    // TPM2_PCR_Read(sha256: PCR 0).
    let pcr_read = marshal::CommandBuilder::new(0x17E)
        .u32(1)
        .u16(marshal::alg::SHA256)
        .u8(3)
        .bytes(&[1, 0, 0])
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut measured = None;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let mut c = Raw::connect(d.mssim_addr());
        let r = c.send(&pcr_read);
        if marshal::response_code(&r).unwrap() != 0 {
            continue; // firmware has not sent TPM2_Startup yet
        }
        let resp = marshal::Response::parse(&r, 0).unwrap();
        let mut rd = marshal::Reader::new(resp.params);
        rd.u32().unwrap();
        for _ in 0..rd.u32().unwrap() {
            rd.u16().unwrap();
            let n = rd.u8().unwrap();
            rd.take(usize::from(n)).unwrap();
        }
        assert_eq!(rd.u32().unwrap(), 1);
        let digest = rd.tpm2b().unwrap().to_vec();
        if digest.iter().any(|&b| b != 0) {
            measured = Some(digest);
            break;
        }
    }
    let _ = qemu.kill();
    let _ = qemu.wait();
    let measured = measured
        .unwrap_or_else(|| panic!("the firmware never measured into PCR 0 through the vTPM:\n{}", d.log()));
    eprintln!("PCR0 after firmware: {measured:02x?}");
}

#[test]
fn remote_stop_only_when_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    // Not allowed: the daemon logs and keeps serving.
    let d = tcp_daemon(&state, &[]).unwrap();
    let plat = SocketAddr::new(d.mssim_addr().ip(), d.mssim_addr().port() + 1);
    let mut s = TcpStream::connect(plat).unwrap();
    s.write_all(&21u32.to_be_bytes()).unwrap();
    let mut b = [0u8; 4];
    assert_eq!(s.read(&mut b).unwrap_or(0), 0, "the stop request's connection is closed");
    let mut c = Raw::connect(d.mssim_addr());
    c.ok(&cmd::startup(su::CLEAR).unwrap());
    d.kill();
    // Allowed: TPM_STOP on the command port ends the daemon cleanly.
    let mut d = tcp_daemon(&state, &["--allow-remote-stop"]).unwrap();
    let mut s = TcpStream::connect(d.mssim_addr()).unwrap();
    s.write_all(&21u32.to_be_bytes()).unwrap();
    let status = d.child.0.wait().unwrap();
    assert!(status.success(), "daemon exited with {status}");
}
