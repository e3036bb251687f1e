//! A QEMU process under qtest, and the qtest connection to it.
//!
//! The qtest protocol is QEMU's own device-test interface: one text command per line on a socket
//! (`readl 0xADDR`, `writeb 0xADDR 0xVAL`, `inw 0xPORT`, `read 0xADDR 0xLEN`, ...), each answered by a line
//! starting `OK` (or `FAIL`/`ERR`). Accesses go through QEMU's address spaces exactly as a guest CPU's
//! would, so MMIO and port I/O reach the real device models. No guest code runs: the CPU is stopped (`-S`),
//! and the test process plays the guest.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::QtestError;
use crate::ram::{GuestRam, RAM_BYTES};

/// How long QEMU may take to start and connect, and to answer one command. Generous: the machine running
/// the tests may be heavily loaded, and a bound is there to turn a hang into an error, not to measure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variable naming the QEMU binary (default `qemu-system-x86_64` on `PATH`).
pub const QEMU_ENV: &str = "SVSM_QEMU";

/// What to start.
#[derive(Debug, Clone)]
pub struct MachineBuilder {
    machine: String,
    shared_ram: bool,
    args: Vec<String>,
    timeout: Duration,
    binary: PathBuf,
}

impl MachineBuilder {
    /// A machine of QEMU type `machine` (`microvm`, `q35`) with the shared guest RAM.
    pub fn new(machine: &str) -> Self {
        let binary =
            std::env::var_os(QEMU_ENV).map_or_else(|| PathBuf::from("qemu-system-x86_64"), PathBuf::from);
        MachineBuilder {
            machine: machine.into(),
            shared_ram: true,
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            binary,
        }
    }

    /// microvm with modern (virtio 1.x) virtio-mmio transports, as COCONUT-SVSM's QEMU uses them.
    pub fn microvm() -> Self {
        Self::new("microvm").args(["-global", "virtio-mmio.force-legacy=false"])
    }

    /// q35 (for its pflash at the top of 4 GiB).
    pub fn q35() -> Self {
        Self::new("q35")
    }

    /// Appends QEMU arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Attaches a raw image as a virtio-blk-device on the next free virtio-mmio slot (microvm fills the
    /// highest slot first). `drive_opts` is appended to the `-drive` option (e.g. `cache.direct=on`).
    pub fn virtio_blk(self, id: &str, image: &Path, drive_opts: &str, device_opts: &str) -> Self {
        let mut drive = format!("id={id},file={},format=raw,if=none", image.display());
        if !drive_opts.is_empty() {
            drive = format!("{drive},{drive_opts}");
        }
        let mut device = format!("virtio-blk-device,drive={id}");
        if !device_opts.is_empty() {
            device = format!("{device},{device_opts}");
        }
        self.args(["-drive".to_string(), drive, "-device".to_string(), device])
    }

    /// The QEMU binary to run (default: `SVSM_QEMU`, else `qemu-system-x86_64` on `PATH`).
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    /// Whether the machine's RAM is the shared RAM (default) or QEMU's own.
    pub fn shared_ram(mut self, on: bool) -> Self {
        self.shared_ram = on;
        self
    }

    /// The bound on starting and on each command.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts QEMU and waits (bounded) for its qtest connection.
    pub fn start(self) -> Result<QtestMachine, QtestError> {
        let dir = tempfile::Builder::new()
            .prefix("svsm-qtest-")
            .tempdir()
            .map_err(|e| QtestError::io("creating the machine's directory", e))?;
        let sock = dir.path().join("qtest.sock");
        let listener = UnixListener::bind(&sock)
            .map_err(|e| QtestError::io(format!("binding {}", sock.display()), e))?;
        listener.set_nonblocking(true).map_err(|e| QtestError::io("configuring the qtest socket", e))?;
        let stderr_path = dir.path().join("qemu.stderr");
        let stderr =
            File::create(&stderr_path).map_err(|e| QtestError::io("creating QEMU's stderr file", e))?;

        let mut machine = self.machine.clone();
        let mut cmd = Command::new(&self.binary);
        if self.shared_ram {
            let ram = GuestRam::global()?;
            machine.push_str(",memory-backend=svsm-ram");
            cmd.arg("-object").arg(format!(
                "memory-backend-file,id=svsm-ram,size={RAM_BYTES},mem-path={},share=on",
                ram.qemu_path()
            ));
        }
        cmd.args(["-machine", &machine, "-accel", "tcg", "-S", "-nodefaults", "-no-user-config"])
            .args(["-display", "none", "-m", &format!("{}M", RAM_BYTES >> 20)])
            .arg("-qtest")
            .arg(format!("unix:{}", sock.display()))
            .args(["-qtest-log", "/dev/null"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        tracing::debug!(?cmd, "starting QEMU");
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => QtestError::QemuMissing { binary: self.binary.clone() },
            _ => QtestError::io(format!("starting {}", self.binary.display()), e),
        })?;

        let deadline = Instant::now() + self.timeout;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    kill_and_reap(&mut child);
                    return Err(QtestError::io("accepting QEMU's qtest connection", e));
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(QtestError::QemuExited {
                    status: status.to_string(),
                    context: "while starting".into(),
                    stderr: tail(&stderr_path),
                });
            }
            if Instant::now() > deadline {
                kill_and_reap(&mut child);
                return Err(QtestError::Timeout {
                    what: "connect its qtest socket".into(),
                    timeout: self.timeout,
                    stderr: tail(&stderr_path),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let qtest = Qtest::new(stream, child.id(), stderr_path.clone(), self.timeout)?;
        // QEMU opens the qtest socket before it creates the devices; it answers the first command only once
        // the machine is built, so a bad option surfaces here as an exit with QEMU's reason.
        if let Err(e) = qtest.command("endianness") {
            let status = match e {
                QtestError::Timeout { .. } => None,
                _ => child.wait().ok().map(|s| s.to_string()),
            };
            kill_and_reap(&mut child);
            return Err(match status {
                Some(status) => QtestError::QemuExited {
                    status,
                    context: "while starting".into(),
                    stderr: tail(&stderr_path),
                },
                None => e,
            });
        }
        Ok(QtestMachine { child, qtest: Arc::new(qtest), dir, stderr_path })
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The last 2 KiB of a file, for error messages.
fn tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let start = s.len().saturating_sub(2048);
    let start = (start..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    s[start..].trim().to_string()
}

/// A running QEMU. Dropping it kills QEMU (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct QtestMachine {
    child: Child,
    qtest: Arc<Qtest>,
    dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

impl QtestMachine {
    /// The qtest connection (shared with transports and flash windows built on this machine).
    pub fn qtest(&self) -> &Arc<Qtest> {
        &self.qtest
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs QEMU now and waits for it to be gone: the host side of a crash.
    pub fn kill(&mut self) {
        self.qtest.kill_qemu();
        let _ = self.child.wait();
    }

    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What QEMU wrote to stderr so far (the end of it).
    pub fn stderr(&self) -> String {
        tail(&self.stderr_path)
    }

    /// The machine's private directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for QtestMachine {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

#[derive(Debug)]
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    lost: Option<String>,
}

/// Round trips and the time spent in them, for benchmarks that must say where their time goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundTrips {
    /// Commands sent and answered.
    pub count: u64,
    /// Wall time from sending a command to reading its answer, summed.
    pub nanos: u64,
}

/// The qtest connection. Commands are serialised by a lock, so it can be shared (`Arc`) by every
/// transport of a machine.
#[derive(Debug)]
pub struct Qtest {
    conn: Mutex<Conn>,
    pid: u32,
    stderr_path: PathBuf,
    timeout: Duration,
    trips: AtomicU64,
    trip_nanos: AtomicU64,
}

impl Qtest {
    fn new(
        stream: UnixStream,
        pid: u32,
        stderr_path: PathBuf,
        timeout: Duration,
    ) -> Result<Self, QtestError> {
        let cfg = |e| QtestError::io("configuring the qtest connection", e);
        stream.set_nonblocking(false).map_err(cfg)?;
        stream.set_read_timeout(Some(timeout)).map_err(cfg)?;
        stream.set_write_timeout(Some(timeout)).map_err(cfg)?;
        let writer = stream.try_clone().map_err(cfg)?;
        Ok(Qtest {
            conn: Mutex::new(Conn { reader: BufReader::new(stream), writer, lost: None }),
            pid,
            stderr_path,
            timeout,
            trips: AtomicU64::new(0),
            trip_nanos: AtomicU64::new(0),
        })
    }

    /// SIGKILLs the QEMU behind this connection (the machine reaps it). Later commands fail.
    pub fn kill_qemu(&self) {
        let Ok(pid) = libc::pid_t::try_from(self.pid) else { return };
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child, not yet reaped while the
        // machine exists (the machine reaps it only in `kill` or on drop, after which this pid is not used:
        // the connection is then closed and commands fail before reaching here).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    /// Whether the connection was lost (QEMU exited, was killed, or stopped answering).
    pub fn is_lost(&self) -> bool {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).lost.is_some()
    }

    /// Round trips so far.
    pub fn round_trips(&self) -> RoundTrips {
        RoundTrips {
            count: self.trips.load(Ordering::Relaxed),
            nanos: self.trip_nanos.load(Ordering::Relaxed),
        }
    }

    /// Sends one command and returns the text after `OK` (trimmed).
    pub fn command(&self, line: &str) -> Result<String, QtestError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &conn.lost {
            return Err(QtestError::Disconnected(why.clone()));
        }
        let start = Instant::now();
        let result = self.exchange(&mut conn, line);
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.trip_nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match result {
            Ok(reply) => Ok(reply),
            Err(e) => {
                if !matches!(e, QtestError::Protocol { .. }) {
                    conn.lost = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    fn exchange(&self, conn: &mut Conn, line: &str) -> Result<String, QtestError> {
        let gone = |context: String| QtestError::QemuExited {
            status: "connection closed".into(),
            context,
            stderr: tail(&self.stderr_path),
        };
        if let Err(e) = conn.writer.write_all(format!("{line}\n").as_bytes()) {
            return Err(match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => self.timed_out(line),
                _ => gone(format!("while sending `{line}`")),
            });
        }
        loop {
            let mut reply = String::new();
            match conn.reader.read_line(&mut reply) {
                Ok(0) => return Err(gone(format!("before answering `{line}`"))),
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return Err(self.timed_out(line));
                }
                Err(_) => return Err(gone(format!("while answering `{line}`"))),
            }
            let reply = reply.trim_end();
            // Asynchronous events (interrupt interception) are not answers.
            if reply.starts_with("IRQ") {
                continue;
            }
            return match reply.strip_prefix("OK") {
                Some(rest) => Ok(rest.trim().to_string()),
                None => Err(QtestError::Protocol { command: line.into(), reply: reply.into() }),
            };
        }
    }

    fn timed_out(&self, line: &str) -> QtestError {
        QtestError::Timeout {
            what: format!("answer `{line}`"),
            timeout: self.timeout,
            stderr: tail(&self.stderr_path),
        }
    }

    fn value(&self, line: &str) -> Result<u64, QtestError> {
        let reply = self.command(line)?;
        let hex = reply.strip_prefix("0x").unwrap_or(&reply);
        u64::from_str_radix(hex, 16)
            .map_err(|_| QtestError::Protocol { command: line.into(), reply: format!("OK {reply}") })
    }

    /// One byte of guest-physical memory or MMIO.
    pub fn readb(&self, addr: u64) -> Result<u8, QtestError> {
        Ok(self.value(&format!("readb {addr:#x}"))? as u8)
    }
    /// Two bytes (little-endian, one access).
    pub fn readw(&self, addr: u64) -> Result<u16, QtestError> {
        Ok(self.value(&format!("readw {addr:#x}"))? as u16)
    }
    /// Four bytes (one access).
    pub fn readl(&self, addr: u64) -> Result<u32, QtestError> {
        Ok(self.value(&format!("readl {addr:#x}"))? as u32)
    }
    /// Eight bytes (one access).
    pub fn readq(&self, addr: u64) -> Result<u64, QtestError> {
        self.value(&format!("readq {addr:#x}"))
    }
    /// Writes one byte.
    pub fn writeb(&self, addr: u64, v: u8) -> Result<(), QtestError> {
        self.command(&format!("writeb {addr:#x} {v:#x}")).map(drop)
    }
    /// Writes two bytes (one access).
    pub fn writew(&self, addr: u64, v: u16) -> Result<(), QtestError> {
        self.command(&format!("writew {addr:#x} {v:#x}")).map(drop)
    }
    /// Writes four bytes (one access).
    pub fn writel(&self, addr: u64, v: u32) -> Result<(), QtestError> {
        self.command(&format!("writel {addr:#x} {v:#x}")).map(drop)
    }
    /// Writes eight bytes (one access).
    pub fn writeq(&self, addr: u64, v: u64) -> Result<(), QtestError> {
        self.command(&format!("writeq {addr:#x} {v:#x}")).map(drop)
    }
    /// One byte from an I/O port.
    pub fn inb(&self, port: u16) -> Result<u8, QtestError> {
        Ok(self.value(&format!("inb {port:#x}"))? as u8)
    }
    /// Two bytes from an I/O port.
    pub fn inw(&self, port: u16) -> Result<u16, QtestError> {
        Ok(self.value(&format!("inw {port:#x}"))? as u16)
    }
    /// Four bytes from an I/O port.
    pub fn inl(&self, port: u16) -> Result<u32, QtestError> {
        Ok(self.value(&format!("inl {port:#x}"))? as u32)
    }
    /// One byte to an I/O port.
    pub fn outb(&self, port: u16, v: u8) -> Result<(), QtestError> {
        self.command(&format!("outb {port:#x} {v:#x}")).map(drop)
    }
    /// Two bytes to an I/O port.
    pub fn outw(&self, port: u16, v: u16) -> Result<(), QtestError> {
        self.command(&format!("outw {port:#x} {v:#x}")).map(drop)
    }
    /// Four bytes to an I/O port.
    pub fn outl(&self, port: u16, v: u32) -> Result<(), QtestError> {
        self.command(&format!("outl {port:#x} {v:#x}")).map(drop)
    }

    /// Reads `out.len()` bytes of guest-physical memory in one round trip (`read ADDR LEN`).
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), QtestError> {
        if out.is_empty() {
            return Ok(());
        }
        let line = format!("read {addr:#x} {:#x}", out.len());
        let reply = self.command(&line)?;
        let hex = reply.strip_prefix("0x").unwrap_or(&reply);
        let bad = || QtestError::Protocol { command: line.clone(), reply: format!("OK {reply}") };
        if hex.len() != out.len() * 2 {
            return Err(bad());
        }
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(())
    }

    /// Writes `data` to guest-physical memory in one round trip (`write ADDR LEN 0xDATA`).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), QtestError> {
        if data.is_empty() {
            return Ok(());
        }
        let mut line = format!("write {addr:#x} {:#x} 0x", data.len());
        for b in data {
            line.push_str(&format!("{b:02x}"));
        }
        self.command(&line).map(drop)
    }
}
