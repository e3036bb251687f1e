//! What a new user does first, with the real binary: `svsm-host serve --state-dir D` (what `make run` runs),
//! talk to it with tpm2-tools over the `swtpm:path=` TCTI it prints, then `store inspect` / `store fsck` on
//! the state it made, with the key file it wrote, while it runs and after. Writing commands are refused with
//! the lock message while it runs. By default nothing listens on TCP and the sockets are the owner's alone.
//!
//! Needs tpm2-tools (`make deps`); fails loudly without it.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Serve, host, text};

fn run(args: &[&str]) -> Output {
    host().args(args).env("SVSM_LOG", "warn").output().unwrap()
}

fn tpm2_ok(tcti: &str, args: &[&str]) -> String {
    common::tpm2_ok(tcti, Path::new("."), args)
}

/// The inodes of the TCP sockets in LISTEN state on this machine (IPv4 and IPv6).
fn listening_tcp_inodes() -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(t) = std::fs::read_to_string(table) else { continue };
        for line in t.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // st == 0A is LISTEN; the inode is field 9.
            if f.len() > 9 && f[3] == "0A" {
                inodes.push(f[9].parse().unwrap());
            }
        }
    }
    inodes
}

/// The TCP ports process `pid` listens on.
fn tcp_listeners_of(pid: u32) -> usize {
    let listening = listening_tcp_inodes();
    let mut n = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().map_while(Result::ok) {
        let Ok(target) = std::fs::read_link(fd.path()) else { continue };
        let t = target.to_string_lossy();
        if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
            && listening.contains(&inode.parse().unwrap())
        {
            n += 1;
        }
    }
    n
}

#[test]
fn new_user_serves_then_inspects_and_checks_the_state_it_made() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let image = state.join("vtpm.store");
    let key = state.join("dev-store.key");
    let (image_s, key_s, state_s) = (image.to_str().unwrap(), key.to_str().unwrap(), state.to_str().unwrap());

    let serve = Serve::new(&state).start();
    let tcti = serve.tcti("swtpm:path=").expect("serve prints the swtpm:path= TCTI");
    assert!(serve.tcti("mssim:").is_none() && serve.tcti("swtpm:host=").is_none(), "{:?}", serve.lines);
    assert_eq!(tcp_listeners_of(serve.pid()), 0, "serve listens on TCP by default");
    for sock in ["swtpm.sock", "swtpm.sock.ctrl"] {
        let mode = std::fs::metadata(state.join(sock)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{sock}");
    }
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    // The TPM works over the printed TCTI, and what it writes lands in the store.
    tpm2_ok(&tcti, &["tpm2_startup", "-c"]);
    assert_eq!(tpm2_ok(&tcti, &["tpm2_getrandom", "--hex", "8"]).trim().len(), 16);
    tpm2_ok(&tcti, &["tpm2_nvdefine", "0x01500020", "-C", "o", "-s", "8", "-a", "ownerread|ownerwrite"]);

    // Reading commands work while serve holds the directory: detached, and they say freshness was not checked.
    let o = run(&["store", "inspect", image_s, "-k", key_s]);
    assert!(o.status.success(), "store inspect during serve: {}", text(&o));
    let out = text(&o);
    assert!(out.contains("vtpm-permanent") && out.contains("NOT checked"), "{out}");
    assert!(out.contains(&format!("serve (pid {})", serve.pid())), "{out}");
    let o = run(&["store", "fsck", image_s, "-k", key_s]);
    assert!(o.status.success(), "store fsck during serve: {}", text(&o));
    let o = run(&["tpm", "info", "--state-dir", state_s]);
    assert!(o.status.success(), "tpm info during serve: {}", text(&o));

    // Writing commands are refused with who holds the directory and what to do.
    let payload = tmp.path().join("payload");
    std::fs::write(&payload, b"x").unwrap();
    let o = run(&["store", "put", image_s, "-k", key_s, "0x20000", payload.to_str().unwrap()]);
    assert!(!o.status.success());
    let want = format!("svsm-host serve (pid {}) holds {}; stop it", serve.pid(), state.display());
    assert!(text(&o).contains(&want), "{}", text(&o));
    let o = run(&["serve", "--state-dir", state_s]);
    assert!(!o.status.success() && text(&o).contains(&want), "{}", text(&o));
    let log = serve.log();
    drop(serve);

    // After serve: the same commands check freshness against the ledger, and writing works.
    let o = run(&["store", "inspect", image_s, "-k", key_s]);
    assert!(o.status.success(), "{}\nserve log:\n{log}", text(&o));
    assert!(text(&o).contains("ledger record matches"), "{}", text(&o));
    // The key file is found by default (the image's state directory's development key).
    let o = run(&["store", "fsck", image_s]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["store", "put", image_s, "0x20000", payload.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let serve = Serve::new(&state).start();
    let tcti = serve.tcti("swtpm:path=").unwrap();
    tpm2_ok(&tcti, &["tpm2_startup", "-c"]);
    tpm2_ok(&tcti, &["tpm2_nvreadpublic", "0x01500020"]);
}

#[test]
fn tcp_and_its_platform_reset_only_with_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let serve = Serve::new(&state).args(["--tcp", "--mssim-port", "0", "--swtpm-port", "0"]).start();
    assert!(serve.log().contains("anyone on this machine"), "no warning for --tcp:\n{}", serve.log());
    assert_eq!(tcp_listeners_of(serve.pid()), 4, "mssim command+platform, swtpm data+control");
    let mssim = serve.tcti("mssim:").expect("mssim TCTI with --tcp");
    let swtpm = serve.tcti("swtpm:path=").unwrap();
    // QEMU's channel (Unix) extends PCR 0; a platform reset over TCP (mssim signal 17) clears it.
    tpm2_ok(&swtpm, &["tpm2_startup", "-c"]);
    tpm2_ok(&swtpm, &["tpm2_pcrextend", &format!("0:sha256={}", "11".repeat(32))]);
    let pcr0 = |t: &str| tpm2_ok(t, &["tpm2_pcrread", "sha256:0"]);
    assert!(!pcr0(&swtpm).contains(&"0".repeat(64)));
    let (host, port) = {
        let t = mssim.trim_start_matches("mssim:host=");
        let (h, p) = t.split_once(",port=").unwrap();
        (h.to_string(), p.parse::<u16>().unwrap())
    };
    let mut plat = std::net::TcpStream::connect((host.as_str(), port + 1)).unwrap();
    use std::io::{Read as _, Write as _};
    plat.write_all(&17u32.to_be_bytes()).unwrap();
    let mut ack = [0u8; 4];
    plat.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0; 4]);
    tpm2_ok(&swtpm, &["tpm2_startup", "-c"]);
    assert!(pcr0(&swtpm).contains(&"0".repeat(64)), "PCR 0 not reset by the platform port");
}

/// Runs `tpm2_startup -c` over the swtpm Unix sockets at `socket` as user `nobody` with primary group
/// `gid` and supplementary groups `groups`: whether the real client got through.
fn startup_as_nobody(socket: &Path, gid: u32, groups: Option<u32>) -> bool {
    let groups = groups.map_or_else(|| "--clear-groups".to_string(), |g| format!("--groups={g}"));
    Command::new("setpriv")
        .args(["--reuid=65534", &format!("--regid={gid}"), &groups, "tpm2_startup", "-c"])
        .env("TPM2TOOLS_TCTI", format!("swtpm:path={}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn clients_without_permission_are_refused_and_socket_group_lets_its_members_in() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: only the socket modes are checked (switching users needs root)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let socks = tmp.path().join("socks");
    std::fs::create_dir(&socks).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socks, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = socks.join("tpm.sock");
    let ctrl = socks.join("tpm.sock.ctrl");

    // Owner only: 0600, and nobody is refused.
    let serve = Serve::new(&state).args(["--swtpm-unix", sock.to_str().unwrap()]).start();
    assert_eq!(std::fs::metadata(&ctrl).unwrap().permissions().mode() & 0o777, 0o600);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        assert!(!startup_as_nobody(&sock, 65534, None), "nobody used an owner-only socket");
    }
    drop(serve);

    // --socket-group: 0660 and that group; a member gets in, a non-member does not.
    let gid = 65534u32; // nogroup
    let serve =
        Serve::new(&state).args(["--swtpm-unix", sock.to_str().unwrap(), "--socket-group", "65534"]).start();
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(&ctrl).unwrap();
    assert_eq!((meta.permissions().mode() & 0o777, meta.gid()), (0o660, gid));
    if root {
        assert!(!startup_as_nobody(&sock, 1, None), "a non-member of --socket-group got in");
        assert!(startup_as_nobody(&sock, 1, Some(gid)), "a member of --socket-group was refused");
    }
    drop(serve);
}
