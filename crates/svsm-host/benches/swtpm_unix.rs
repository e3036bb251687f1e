//! The daemon against Debian's swtpm 0.7.1 over the swtpm **Unix** sockets QEMU uses: a GetRandom round trip
//! on the data socket, and migration's CMD_GET_STATEBLOB of the permanent, volatile and savestate blobs on
//! the control socket (ours sealed with AES-256-GCM, swtpm's plain). Same raw client for both, same run,
//! interleaved rounds.
//!
//! The GetRandom rounds also time two transport floors that answer every command on a Unix socket with a
//! canned GetRandom(8) response (one read, one write, no TPM): a thread of this process, and this bench
//! binary re-executed as a separate process (what swtpm and ours also are, so the client's wake-ups switch
//! address spaces). What a floor costs is what any server pays on this machine for two socket hops and two
//! wake-ups; the rest of a server's time is its own.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use svsm_benchkit::{Plan, Report, Target, compare, interleave, row};
use svsm_vtpm::marshal::{self, cmd, su};

fn connect(path: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("connect {}: {e}", path.display()),
        }
    }
}

fn tpm(s: &mut UnixStream, c: &[u8]) -> Vec<u8> {
    s.write_all(c).unwrap();
    let mut h = [0u8; 10];
    s.read_exact(&mut h).unwrap();
    let len = u32::from_be_bytes(h[2..6].try_into().unwrap()) as usize;
    let mut r = h.to_vec();
    r.resize(len, 0);
    s.read_exact(&mut r[10..]).unwrap();
    assert_eq!(marshal::response_code(&r).unwrap(), 0, "TPM error {r:02x?}");
    r
}

/// GET_STATEBLOB of all three blobs; returns their total size.
fn get_blobs(c: &mut UnixStream) -> usize {
    let mut total = 0;
    for kind in [1u32, 2, 3] {
        let mut m = 0x0Cu32.to_be_bytes().to_vec();
        for x in [1u32, kind, 0] {
            m.extend_from_slice(&x.to_be_bytes());
        }
        c.write_all(&m).unwrap();
        let mut h = [0u8; 16];
        c.read_exact(&mut h).unwrap();
        // As QEMU: results with bit 0x800 set are warnings (swtpm answers the absent savestate so).
        let res = u32::from_be_bytes(h[..4].try_into().unwrap());
        assert!(res == 0 || res & 0x800 != 0, "GET_STATEBLOB {kind} failed with {res:#x}");
        let len = u32::from_be_bytes(h[12..16].try_into().unwrap()) as usize;
        let mut data = vec![0u8; len];
        c.read_exact(&mut data).unwrap();
        total += len;
    }
    total
}

/// Set to a socket path, this bench binary is the out-of-process transport floor serving there.
const FLOOR_ENV: &str = "SWTPM_UNIX_BENCH_FLOOR";

/// The transport floor: answers each command on one connection (one read; the client sends a command in
/// one write) with a GetRandom(8)-sized success response in one write.
fn serve_floor(listener: UnixListener) {
    let (mut s, _) = listener.accept().unwrap();
    let mut resp = vec![0x80, 0x01, 0, 0, 0, 20, 0, 0, 0, 0, 0, 8];
    resp.extend_from_slice(&[0x5a; 8]);
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        assert!(n >= 10, "the client sent a command in pieces ({n} bytes)");
        s.write_all(&resp).unwrap();
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    if let Some(path) = std::env::var_os(FLOOR_ENV) {
        return serve_floor(UnixListener::bind(path).unwrap());
    }
    let tmp = tempfile::tempdir().unwrap();
    let sw_dir = tmp.path().join("swtpm");
    std::fs::create_dir(&sw_dir).unwrap();
    let (sw_data, sw_ctrl) = (tmp.path().join("sw.sock"), tmp.path().join("sw.ctrl"));
    let _swtpm = Killed(
        Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=unixio,path={}", sw_data.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sw_ctrl.display()))
            .args([
                "--tpmstate",
                &format!("dir={}", sw_dir.display()),
                "--flags",
                "not-need-init,startup-clear",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is not installed: run `make deps`"),
    );
    let state = tmp.path().join("state");
    let _ours = Killed(
        Command::new(env!("CARGO_BIN_EXE_svsm-host"))
            .args(["serve", "--no-mssim", "--no-swtpm", "--state-dir"])
            .arg(&state)
            .env("SVSM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut s = connect(&sw_data);
    let mut sc = connect(&sw_ctrl);
    let mut o = connect(&state.join("swtpm.sock"));
    let mut oc = connect(&state.join("swtpm.sock.ctrl"));
    tpm(&mut o, &cmd::startup(su::CLEAR).unwrap());

    let thread_floor = tmp.path().join("floor-thread.sock");
    let listener = UnixListener::bind(&thread_floor).unwrap();
    std::thread::spawn(move || serve_floor(listener));
    let mut ft = connect(&thread_floor);
    let process_floor = tmp.path().join("floor-process.sock");
    let _floor = Killed(
        Command::new(std::env::current_exe().unwrap()).env(FLOOR_ENV, &process_floor).spawn().unwrap(),
    );
    let mut fp = connect(&process_floor);

    let mut report = Report::new("vTPM daemon vs swtpm 0.7.1 over the swtpm Unix sockets (QEMU's transport)");
    let get_random = cmd::get_random(8).unwrap();
    let name = "GetRandom(8) round trip, Unix data socket";
    let [thread, process, sw, ours] = interleave(
        name,
        Plan::new(20, 200),
        [
            &mut || drop(tpm(&mut ft, &get_random)),
            &mut || drop(tpm(&mut fp, &get_random)),
            &mut || drop(tpm(&mut s, &get_random)),
            &mut || drop(tpm(&mut o, &get_random)),
        ],
    );
    let mut main = row(name, "swtpm", sw, "svsm-host serve", ours);
    main.target = Some(Target::AtMost(0.5));
    report.push(main);
    for (floor, label) in [(thread, "floor: echo thread"), (process, "floor: echo process")] {
        report.push(row(&format!("{name}: swtpm over the {label}"), label, floor, "swtpm", sw));
        report.push(row(&format!("{name}: ours over the {label}"), label, floor, "svsm-host serve", ours));
    }
    let share = |floor: svsm_benchkit::Stats| floor.median.as_secs_f64() / sw.median.as_secs_f64();
    report.note(format!(
        "a server with no cost of its own would be {:.2}x swtpm over the thread floor, {:.2}x over the \
         process floor (the 0.5 target needs the floor below half of swtpm's round trip)",
        share(thread),
        share(process),
    ));

    let (sw_size, our_size) = (get_blobs(&mut sc), get_blobs(&mut oc));
    let mut row = compare(
        "GET_STATEBLOB permanent + volatile + savestate (ours sealed, swtpm plain)",
        Plan::new(20, 20).quick_if_requested(),
        "swtpm",
        || {
            get_blobs(&mut sc);
        },
        "svsm-host serve",
        || {
            get_blobs(&mut oc);
        },
    );
    row.target = Some(Target::AtMost(1.5));
    report.push(row);
    report.note(format!(
        "blob bytes per GET of all three: swtpm {sw_size}, ours {our_size} (ours: AES-256-GCM, 52 bytes of \
         header and tag per blob, plus the manufacture record inside the permanent blob)"
    ));
    report.emit();
}
