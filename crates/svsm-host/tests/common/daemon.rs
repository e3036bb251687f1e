//! `svsm-host serve` as a child process: one way to start it (any flags, optionally under a wrapper such as
//! `prlimit`), wait for its `ready` line, keep what it printed (the TCTI lines) and its log.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{Ctrl, Data, Killed, strip_ansi};

/// How to start `svsm-host serve --state-dir STATE`; [`Serve::try_start`] waits for `ready`.
pub struct Serve {
    state: PathBuf,
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    log_filter: String,
    timeout: Duration,
}

impl Serve {
    /// `serve --state-dir STATE` with serve's own socket defaults, `SVSM_LOG=info`.
    pub fn new(state: &Path) -> Serve {
        Serve {
            state: state.to_path_buf(),
            wrapper: Vec::new(),
            args: Vec::new(),
            log_filter: "info".into(),
            timeout: Duration::from_secs(90),
        }
    }

    /// Unix sockets only: no mssim, no swtpm TCP (`--no-mssim --no-swtpm`).
    pub fn unix_only(self) -> Serve {
        self.args(["--no-mssim", "--no-swtpm"])
    }

    /// mssim and swtpm on loopback TCP, ports chosen by the kernel (read them with [`Daemon::mssim_addr`]).
    pub fn tcp(self) -> Serve {
        self.args(["--tcp", "--mssim-port", "0", "--swtpm-port", "0"])
    }

    /// `serve --uefi` with the SVSM call interface at `STATE/svsm.sock` (the guest memory beside it) and no
    /// swtpm Unix sockets: what `svsm-host guest uefi` ([`super::guest_uefi`]) talks to.
    pub fn uefi(self) -> Serve {
        let sock = self.state.join("svsm.sock");
        self.args(["--no-swtpm-unix", "--uefi", "--svsm-socket"]).args([sock])
    }

    /// More arguments for `serve`.
    pub fn args<I, S>(mut self, args: I) -> Serve
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The `SVSM_LOG` filter (default `info`).
    pub fn log_filter(mut self, filter: &str) -> Serve {
        self.log_filter = filter.into();
        self
    }

    /// Runs serve under `program ARGS... --` (e.g. `prlimit --nofile=64:64`).
    pub fn wrapped_in(mut self, program: &str, args: &[&str]) -> Serve {
        self.wrapper =
            std::iter::once(program).chain(args.iter().copied()).chain(["--"]).map(Into::into).collect();
        self
    }

    /// Starts it and waits for `ready`; the error carries what it printed and its log.
    pub fn try_start(self) -> Result<Daemon, String> {
        let log = self.state.with_extension("log");
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let stderr = std::fs::File::create(&log).unwrap();
        let bin = env!("CARGO_BIN_EXE_svsm-host");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .arg("serve")
            .arg("--state-dir")
            .arg(&self.state)
            .args(&self.args)
            .env("SVSM_LOG", &self.log_filter)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run `make deps`)"));
        // Owned at once, so it is killed on every path, panics included.
        let mut child = Killed(child);
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            match rx.recv_timeout(self.timeout) {
                Ok(line) if line == "ready" => break,
                Ok(line) => lines.push(line),
                Err(_) => {
                    let _ = child.0.kill();
                    let status = child.0.wait().unwrap();
                    return Err(format!(
                        "serve exited ({status}) without getting ready:\n{}\n{}",
                        lines.join("\n"),
                        strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default())
                    ));
                }
            }
        }
        Ok(Daemon { child, state: self.state, log, lines })
    }

    /// [`Serve::try_start`], panicking with its error.
    pub fn start(self) -> Daemon {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A running `svsm-host serve`, killed on drop.
pub struct Daemon {
    pub child: Killed,
    pub state: PathBuf,
    /// Its stderr (`STATE.log`).
    pub log: PathBuf,
    /// What it printed on stdout before `ready`.
    pub lines: Vec<String>,
}

impl Daemon {
    /// Unix sockets only, with the TPM command recorder (`tpm_io=trace`) on.
    pub fn try_start(state: &Path, extra: &[&str]) -> Result<Daemon, String> {
        Serve::new(state).unix_only().log_filter("info,tpm_io=trace").args(extra).try_start()
    }

    /// [`Daemon::try_start`], panicking with its error.
    pub fn start(state: &Path, extra: &[&str]) -> Daemon {
        Self::try_start(state, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Kills it and waits for it.
    pub fn kill(mut self) {
        self.child.0.kill().unwrap();
        self.child.0.wait().unwrap();
    }

    /// The `TPM2TOOLS_TCTI` value serve printed that starts with `prefix` (`swtpm:path=`, `mssim:`,
    /// `swtpm:host=`).
    pub fn tcti(&self, prefix: &str) -> Option<String> {
        self.lines.iter().find_map(|l| {
            let t = l.split("TPM2TOOLS_TCTI=").nth(1)?.split_whitespace().next()?;
            t.starts_with(prefix).then(|| t.to_owned())
        })
    }

    /// The swtpm Unix-socket TCTI (`swtpm:path=...`).
    pub fn unix_tcti(&self) -> String {
        self.tcti("swtpm:path=").expect("serve printed no swtpm Unix socket")
    }

    /// The mssim TCP TCTI (needs [`Serve::tcp`]).
    pub fn mssim_tcti(&self) -> String {
        self.tcti("mssim:").expect("serve printed no mssim address (start it with Serve::tcp)")
    }

    /// The swtpm TCP TCTI (needs [`Serve::tcp`]).
    pub fn swtpm_tcti(&self) -> String {
        self.tcti("swtpm:host=").expect("serve printed no swtpm TCP address (start it with Serve::tcp)")
    }

    /// The mssim command port.
    pub fn mssim_addr(&self) -> SocketAddr {
        addr_of(&self.mssim_tcti())
    }

    /// The swtpm TCP data port.
    pub fn swtpm_addr(&self) -> SocketAddr {
        addr_of(&self.swtpm_tcti())
    }

    pub fn ctrl_path(&self) -> PathBuf {
        self.state.join("swtpm.sock.ctrl")
    }

    /// Its log so far, without colour codes.
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// A client on the swtpm data socket (the same TPM QEMU uses).
    pub fn data(&self) -> Data {
        let s = UnixStream::connect(self.state.join("swtpm.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Data(s)
    }

    /// A client on the control socket.
    pub fn ctrl(&self) -> Ctrl {
        let s = UnixStream::connect(self.ctrl_path()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Ctrl(s)
    }
}

/// `mssim:host=H,port=P` / `swtpm:host=H,port=P` as an address.
fn addr_of(tcti: &str) -> SocketAddr {
    let t = tcti.split("host=").nth(1).unwrap();
    let (h, p) = t.split_once(",port=").unwrap();
    format!("{h}:{p}").parse().unwrap()
}
