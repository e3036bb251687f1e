//! Accept errors (here: the process is out of file descriptors) neither spin the accept loops nor end
//! them: `svsm-host serve` under a low RLIMIT_NOFILE with a backlog of clients it cannot accept uses almost
//! no CPU, and once descriptors are free again both the vTPM control socket and the SVSM call interface
//! (the harness's `serve`) accept and answer new clients.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::Serve;

use svsm_harness::frame::{FRAME_MAGIC, FRAME_SIZE, FRAME_VERSION, KIND_RESUME, KIND_VMGEXIT, RegisterFrame};

/// CPU time (user + system) of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn capability(ctrl: &Path) -> std::io::Result<[u8; 8]> {
    let mut s = UnixStream::connect(ctrl)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&1u32.to_be_bytes())?;
    let mut r = [0u8; 8];
    s.read_exact(&mut r)?;
    Ok(r)
}

fn svsm_call(socket: &Path) -> std::io::Result<RegisterFrame> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // SVSM_CORE_QUERY_PROTOCOL (rax = 1) for protocol 0: any well-formed call gets a RESUME frame back.
    let frame = RegisterFrame {
        magic: FRAME_MAGIC,
        version: FRAME_VERSION,
        kind: KIND_VMGEXIT,
        rax: 1,
        rcx: 0,
        rdx: 0,
        r8: 0,
        r9: 0,
    };
    s.write_all(&frame.encode())?;
    let mut b = [0u8; FRAME_SIZE];
    s.read_exact(&mut b)?;
    RegisterFrame::decode(&b, KIND_RESUME).map_err(std::io::Error::other)
}

#[test]
fn out_of_descriptors_the_accept_loops_back_off_and_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let svsm = tmp.path().join("svsm.sock");
    let limit = 64;
    let serve = Serve::new(&state)
        .wrapped_in("prlimit", &[&format!("--nofile={limit}:{limit}")])
        .args(["--svsm-socket".as_ref(), svsm.as_os_str()])
        .log_filter("warn")
        .start();
    let pid = serve.pid();
    let ctrl = state.join("swtpm.sock.ctrl");
    capability(&ctrl).unwrap();
    svsm_call(&svsm).unwrap();

    // Fill the descriptor table: every accepted connection holds one (two for the SVSM interface), and the
    // rest wait in the listen backlogs while accept fails with EMFILE.
    let mut clients = Vec::new();
    for i in 0..2 * limit {
        let path = if i % 2 == 0 { &ctrl } else { &svsm };
        if let Ok(c) = UnixStream::connect(path) {
            clients.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(fd_count(pid) >= limit as usize - 2, "the table did not fill ({} fds)", fd_count(pid));

    // In the failing state the loops must sleep, not spin: at most 0.1 s of CPU in 1 s. (The accept loop of
    // main before this test spun: 0.25 s per second measured on a loaded 2-core machine, up to a core.)
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - t0;
    assert!(used * 10 <= hz, "accept loops used {used} of {hz} ticks in one second while failing");

    // Free the descriptors: both servers are still there and answer new clients.
    drop(clients);
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(capability(&ctrl).expect("the vTPM control socket stopped accepting"), [0; 8]);
    svsm_call(&svsm).expect("the SVSM call interface stopped accepting");
}
