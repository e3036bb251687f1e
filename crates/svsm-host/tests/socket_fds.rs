//! File descriptors passed over the swtpm Unix sockets (SCM_RIGHTS): every one the server receives is
//! owned and closed, an overflowing control message (MSG_CTRUNC) ends only that connection, and the data
//! channel takes none. Counted in the real `svsm-host serve` process via /proc.

mod common;

use std::io::Read as _;
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Serve};

fn serve(state: &Path) -> Daemon {
    Serve::new(state).log_filter("warn").start()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Sends `bytes` with `fds` attached in one SCM_RIGHTS message.
fn send_with_fds(sock: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    let payload = std::mem::size_of_val(fds) as u32;
    let mut cbuf = vec![0u64; 64];
    // SAFETY: an all-zero msghdr is valid; fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(payload) } as usize;
    assert!(msg.msg_controllen <= cbuf.len() * 8);
    // SAFETY: msg has a control buffer large enough for one header.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: CMSG_LEN is a pure size computation.
    let cmsg_len = unsafe { libc::CMSG_LEN(payload) } as usize;
    let hdr = libc::cmsghdr { cmsg_len, cmsg_level: libc::SOL_SOCKET, cmsg_type: libc::SCM_RIGHTS };
    // SAFETY: cmsg points to a cmsghdr-sized, aligned area inside cbuf.
    unsafe { std::ptr::write(cmsg, hdr) };
    // SAFETY: the data area of this header lies inside cbuf and has room for `fds`.
    let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: i < fds.len(): the offset stays inside the data area.
        let at = unsafe { data.add(i) };
        // SAFETY: `at` has room for one int; it need not be aligned.
        unsafe { std::ptr::write_unaligned(at, *fd) };
    }
    // SAFETY: msg references live buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

const GET_CAPABILITY: [u8; 4] = 1u32.to_be_bytes();

fn settle(pid: u32, want: usize) -> usize {
    // Connection threads close their sockets right after the peer does; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = fd_count(pid);
        if n <= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_thousand_control_messages_with_ten_descriptors_each_leak_none() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let s = serve(&state);
    let pid = s.pid();
    let ctrl = UnixStream::connect(state.join("swtpm.sock.ctrl")).unwrap();
    ctrl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = [0u8; 8];
    // Warm up: one plain request so the connection's thread exists before counting.
    send_with_fds(&ctrl, &GET_CAPABILITY, &[]).unwrap();
    (&ctrl).read_exact(&mut reply).unwrap();
    let before = fd_count(pid);
    let files: Vec<std::fs::File> = (0..10).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
    let raw: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
    for i in 0..1000 {
        send_with_fds(&ctrl, &GET_CAPABILITY, &raw).unwrap();
        (&ctrl).read_exact(&mut reply).unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_ne!(reply, [0; 8], "message {i}: no capabilities");
    }
    let after = fd_count(pid);
    assert_eq!(after, before, "descriptors leaked by 1,000 messages of 10");
}

#[test]
fn overflowing_control_messages_and_descriptors_on_the_data_channel_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let s = serve(&state);
    let pid = s.pid();
    let base = fd_count(pid);
    let files: Vec<std::fs::File> = (0..40).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
    let raw: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();

    // More descriptors than the server makes room for: the kernel truncates (MSG_CTRUNC), the server closes
    // the connection instead of acting on a message it did not fully receive, and keeps nothing.
    let ctrl = UnixStream::connect(state.join("swtpm.sock.ctrl")).unwrap();
    ctrl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    send_with_fds(&ctrl, &GET_CAPABILITY, &raw).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!((&ctrl).read(&mut buf).unwrap(), 0, "the server answered a truncated message");
    drop(ctrl);
    assert_eq!(settle(pid, base), base);

    // The data channel takes no descriptors at all.
    let data = UnixStream::connect(state.join("swtpm.sock")).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let startup = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0];
    send_with_fds(&data, &startup, &raw[..1]).unwrap();
    assert_eq!((&data).read(&mut buf).unwrap(), 0, "the data channel accepted a descriptor");
    drop(data);
    assert_eq!(settle(pid, base), base);

    // The server still serves.
    let ctrl = UnixStream::connect(state.join("swtpm.sock.ctrl")).unwrap();
    send_with_fds(&ctrl, &GET_CAPABILITY, &[]).unwrap();
    (&ctrl).read_exact(&mut buf).unwrap();
}
