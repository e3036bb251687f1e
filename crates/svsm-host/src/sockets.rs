//! The socket policy of `svsm-host serve`, in one place: Unix sockets the owner alone may use (or one named
//! group, `--socket-group`), accept loops that survive any accept error without spinning, and receiving
//! `SCM_RIGHTS` descriptors so that every one the kernel installs is owned and closed.
//!
//! Why: whoever can connect to the vTPM's control channel can reset its PCRs, change the locality of
//! QEMU's data channel or send commands at locality 4. A TCP port on loopback is open to every user of the
//! machine, so TCP is served only when the operator asks for it (`serve --tcp`).

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// Who may connect to a Unix socket besides its owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketAccess {
    /// Members of this group may connect too (mode 0660 and this group); `None`: the owner only (0600).
    pub group: Option<u32>,
}

impl SocketAccess {
    /// Resolves `--socket-group`: a group name or a numeric gid.
    pub fn with_group(group: Option<&str>) -> io::Result<Self> {
        let Some(name) = group else { return Ok(SocketAccess::default()) };
        if let Ok(gid) = name.parse::<u32>() {
            return Ok(SocketAccess { group: Some(gid) });
        }
        let cname = std::ffi::CString::new(name).map_err(|_| io::Error::other("group name contains NUL"))?;
        let mut grp: libc::group = unsafe_zeroed_group();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live local buffer of the size given; getgrnam_r writes only there.
        let rc =
            unsafe { libc::getgrnam_r(cname.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() {
            return Err(io::Error::other(format!(
                "--socket-group {name}: no such group (give a name from /etc/group or a gid)"
            )));
        }
        Ok(SocketAccess { group: Some(grp.gr_gid) })
    }

    /// The mode bits of sockets bound under this policy.
    pub fn mode(&self) -> u32 {
        if self.group.is_some() { 0o660 } else { 0o600 }
    }
}

fn unsafe_zeroed_group() -> libc::group {
    // SAFETY: `struct group` is plain data (pointers and integers); all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Binds a Unix socket at `path` that only the owner (or `access.group`) may connect to.
///
/// The socket is created with umask 0177 in effect, so it is never connectable by others, not even for the
/// instant between `bind` and `chmod`; then it gets its group and mode. A socket file left by an earlier run
/// is replaced; anything else at `path` (a file, a link) is an error, never removed.
pub fn bind_unix(path: &Path, access: SocketAccess) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; remove it or choose another path", path.display()),
            ));
        }
    }
    // SAFETY: umask only changes this process's file-creation mask; it cannot fail.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if let Some(gid) = access.group {
        std::os::unix::fs::lchown(path, None, Some(gid)).map_err(|e| {
            io::Error::new(e.kind(), format!("giving {} to group {gid}: {e}", path.display()))
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode()))?;
    Ok(listener)
}

/// How long an accept loop waits after a failed `accept` (e.g. out of descriptors) before trying again:
/// long enough not to spin on a persistent error, short enough that service resumes promptly.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections forever, handing each to `handle`. An accept error is logged and retried after
/// [`ACCEPT_BACKOFF`] (never a busy loop, never the end of the loop: one bad moment must not take the
/// service down). Errors are logged once per streak, not once per retry.
pub fn accept_forever<S>(
    kind: &str,
    mut accept: impl FnMut() -> io::Result<S>,
    mut handle: impl FnMut(S),
) -> ! {
    let mut failing = false;
    loop {
        match accept() {
            Ok(stream) => {
                failing = false;
                handle(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(kind, error = %e, "accept failed; retrying every {:?}", ACCEPT_BACKOFF);
                }
                failing = true;
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Why a `recv_with_fds` failed beyond an OS error.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    /// The kernel truncated the control data (more descriptors than we make room for): some descriptors
    /// were dropped by the kernel, so the message cannot be trusted.
    #[error("the peer sent more file descriptors than one message may carry (MSG_CTRUNC)")]
    Truncated,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Most descriptors accepted in one message (swtpm's control channel uses one, for `CMD_SET_DATAFD`).
pub const MAX_FDS: usize = 16;

/// `recvmsg` on a Unix stream, returning the bytes read and every descriptor that came with them, each
/// owned (so closed when dropped), received close-on-exec.
pub fn recv_with_fds(sock: &UnixStream, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), FdError> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for MAX_FDS descriptors in one SCM_RIGHTS header, u64-aligned as cmsghdr needs.
    let mut cbuf = [0u64; 2 + MAX_FDS / 2 + 2];
    // SAFETY: an all-zero msghdr is a valid "no name, no iov, no control" value; fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    let n = loop {
        // SAFETY: msg points to live buffers (iov -> buf, control -> cbuf) for the duration of the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    };
    // Take ownership of every descriptor first, so none leaks whatever is decided below.
    let mut fds = Vec::new();
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR only reads its control fields.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is non-null and points into cbuf, as returned by CMSG_FIRSTHDR/NXTHDR.
        let hdr = unsafe { std::ptr::read_unaligned(cmsg) };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN is a pure size computation.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = hdr.cmsg_len.saturating_sub(header) / std::mem::size_of::<libc::c_int>();
            // SAFETY: the payload of this header lies inside cbuf (the kernel wrote cmsg_len within it).
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
            for i in 0..count {
                // SAFETY: i < count, so the offset stays inside the payload recvmsg wrote.
                let at = unsafe { data.add(i) };
                // SAFETY: `at` points at one descriptor of the payload; it need not be int-aligned.
                let raw = unsafe { std::ptr::read_unaligned(at) };
                if raw >= 0 {
                    // SAFETY: the kernel just installed this descriptor in our table; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        // SAFETY: advancing within the control buffer recvmsg filled.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(FdError::Truncated); // `fds` is dropped: everything received is closed.
    }
    Ok((usize::try_from(n).unwrap_or(0), fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_owner_only_by_default_and_group_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let _l = bind_unix(&p, SocketAccess::default()).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        drop(_l);
        let _l = bind_unix(&p, SocketAccess { group: Some(0) }).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o660);
        let f = dir.path().join("f");
        std::fs::write(&f, b"keep").unwrap();
        assert!(bind_unix(&f, SocketAccess::default()).is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"keep", "a non-socket was removed");
        assert!(SocketAccess::with_group(Some("no-such-group-xyz")).is_err());
        assert_eq!(SocketAccess::with_group(Some("root")).unwrap().group, Some(0));
    }
}
