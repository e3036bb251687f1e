//! Shared by the EK-certificate and swtpm-state tests (`tpm_tools`; the QEMU tests use `common`): the `svsm-host serve` daemon reached over its swtpm
//! Unix socket (the TCTI tpm2-tools uses with `swtpm:path=`), and running external tools with assertions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Fails loudly if tpm2-tools is missing: CI installs it, so a skip would hide a broken set-up.
pub fn require_tpm2_tools() {
    let ok =
        Command::new("tpm2_startup").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "tpm2-tools is not installed: run `make deps` (apt-get install tpm2-tools)");
}

/// The daemon, killed on drop.
pub struct Daemon {
    child: Child,
    /// `TPM2TOOLS_TCTI` value for its swtpm Unix data socket.
    pub tcti: String,
    stderr_path: PathBuf,
}

impl Daemon {
    /// Starts `svsm-host serve --state-dir state EXTRA...` and waits for "ready".
    pub fn start(state: &Path, extra: &[&str]) -> Result<Daemon, String> {
        let stderr_path = state.with_extension("stderr");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&stderr_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_svsm-host"))
            .args(["serve", "--no-mssim", "--no-swtpm", "--state-dir"])
            .arg(state)
            .args(extra)
            .env("SVSM_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut tcti = None;
        loop {
            match rx.recv_timeout(Duration::from_secs(90)) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    if let Some(rest) = line.split("TPM2TOOLS_TCTI=").nth(1)
                        && rest.starts_with("swtpm:path=")
                    {
                        tcti = Some(rest.split_whitespace().next().unwrap().to_owned());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().unwrap();
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    return Err(format!("daemon exited ({status}) without getting ready:\n{log}"));
                }
            }
        }
        let tcti = tcti.ok_or("the daemon printed no swtpm Unix socket")?;
        Ok(Daemon { child, tcti, stderr_path })
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a tpm2-tools command against `tcti` in `dir`.
pub fn tpm2(tcti: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).env("TPM2TOOLS_TCTI", tcti).current_dir(dir).output().unwrap()
}

/// Runs a tpm2-tools command and asserts it succeeded; returns its stdout.
pub fn tpm2_ok(tcti: &str, dir: &Path, args: &[&str]) -> String {
    let out = tpm2(tcti, dir, args);
    assert!(
        out.status.success(),
        "{args:?} over {tcti} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a program in `dir` and asserts it succeeded; returns its stdout.
pub fn run_ok(dir: &Path, prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e} (run `make deps`)"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `svsm-host ARGS` in `dir`.
pub fn svsm_host(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svsm-host")).args(args).current_dir(dir).output().unwrap()
}

/// The `name:` line of `tpm2_readpublic` output.
pub fn name_of(readpublic: &str) -> String {
    readpublic
        .lines()
        .find(|l| l.starts_with("name:"))
        .expect("no name in tpm2_readpublic output")
        .trim_start_matches("name:")
        .trim()
        .to_owned()
}
