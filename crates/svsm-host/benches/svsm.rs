//! VTPM_CMD GetRandom through the SVSM harness (`serve --svsm-socket`) vs the same TPM command over the mssim
//! port of the same daemon and the same libtpms vTPM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use svsm_benchkit::{Plan, Report, compare};
use svsm_harness::SocketTransport;
use svsm_harness::simulated::{CALLING_AREA, GUEST_FREE_START, guest_free_end};
use svsm_protocol::guest::Guest;
use svsm_vtpm::marshal::cmd;

fn mssim_command(stream: &mut TcpStream, cmd: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(9 + cmd.len());
    frame.extend_from_slice(&8u32.to_be_bytes());
    frame.push(0);
    frame.extend_from_slice(&(cmd.len() as u32).to_be_bytes());
    frame.extend_from_slice(cmd);
    stream.write_all(&frame).expect("send");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("len");
    let mut resp = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut resp).expect("resp");
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).expect("ack");
    resp
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let sock = dir.path().join("svsm.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_svsm-host"))
        .args(["serve", "--tcp", "--mssim-port", "0", "--swtpm-port", "0", "--no-swtpm-unix", "--state-dir"])
        .arg(&state)
        .arg("--svsm-socket")
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut port = None;
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("line");
        if let Some(p) = line.split("mssim:host=127.0.0.1,port=").nth(1) {
            port = p.trim().parse::<u16>().ok();
        }
        if line.trim() == "ready" {
            break;
        }
    }
    let port = port.expect("mssim port");
    let mut mssim = TcpStream::connect(("127.0.0.1", port)).expect("mssim connect");
    mssim.set_nodelay(true).expect("nodelay");
    let startup = [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0];
    let rc = mssim_command(&mut mssim, &startup);
    assert_eq!(&rc[6..10], &[0, 0, 0, 0], "TPM2_Startup");
    let t = SocketTransport::connect(&sock, &state.join("guest.mem")).expect("harness connect");
    let end = guest_free_end(t.memory_size());
    let mut guest = Guest::new(t, CALLING_AREA, GUEST_FREE_START, end);
    let cmd = cmd::get_random(32).expect("GetRandom frames");
    let mut report =
        Report::new("SVSM protocols: VTPM_CMD through the harness vs the mssim port (same libtpms vTPM)");
    report.push(compare(
        "TPM2_GetRandom(32) round trip",
        Plan::new(20, 200),
        "mssim TCP port",
        || {
            let r = mssim_command(&mut mssim, &cmd);
            assert_eq!(r.len(), 44);
        },
        "SVSM VTPM_CMD via harness socket + shared guest memory",
        || {
            let r = guest.tpm_command(GUEST_FREE_START, &cmd).expect("VTPM_CMD");
            assert_eq!(r.len(), 44);
        },
    ));
    report.note("Both paths run the command on the same libtpms engine in one `svsm-host serve` process.");
    report.emit();
    let _ = child.kill();
    let _ = child.wait();
}
