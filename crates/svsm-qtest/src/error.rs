//! What can go wrong driving QEMU through qtest, each with what to do about it.

use std::path::PathBuf;
use std::time::Duration;

/// An error starting or talking to a QEMU under qtest.
#[derive(Debug, thiserror::Error)]
pub enum QtestError {
    /// The QEMU binary is not installed (or not where `SVSM_QEMU` points).
    #[error(
        "QEMU not found at {}: install Debian's qemu-system-x86 (`make deps` does) or set SVSM_QEMU to \
         a qemu-system-x86_64 binary", binary.display()
    )]
    QemuMissing {
        /// The binary that was tried.
        binary: PathBuf,
    },
    /// QEMU exited (or was killed) before or while we talked to it.
    #[error("QEMU exited ({status}) {context}; its stderr said: {stderr}")]
    QemuExited {
        /// How it exited.
        status: String,
        /// What we were doing.
        context: String,
        /// The last lines QEMU wrote to stderr (usually the reason, e.g. a bad option).
        stderr: String,
    },
    /// QEMU did not answer within the bound.
    #[error("QEMU did not {what} within {timeout:?} (machine overloaded or QEMU hung); stderr: {stderr}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// The bound.
        timeout: Duration,
        /// QEMU's stderr so far.
        stderr: String,
    },
    /// QEMU answered a qtest command with something other than `OK`.
    #[error("qtest command `{command}` was answered with `{reply}`")]
    Protocol {
        /// The command sent.
        command: String,
        /// QEMU's reply line.
        reply: String,
    },
    /// The connection was already lost earlier; later commands fail with this.
    #[error("the qtest connection is gone: {0}")]
    Disconnected(String),
    /// A local I/O error (temporary files, the socket, the shared RAM mapping).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The guest-RAM window asked for is outside the shared RAM.
    #[error("guest-physical range {gpa:#x}+{len:#x} is outside the shared guest RAM ({ram_bytes:#x} bytes)")]
    OutsideRam {
        /// Start.
        gpa: u64,
        /// Length.
        len: usize,
        /// RAM size.
        ram_bytes: u64,
    },
}

impl QtestError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        QtestError::Io { context: context.into(), source }
    }
}

/// Why no virtio-mmio device could be used at an address.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// qtest failed.
    #[error(transparent)]
    Qtest(#[from] QtestError),
    /// The window does not start with the virtio-mmio magic.
    #[error("no virtio-mmio device at {address:#x}: magic {magic:#x}, expected 0x74726976 (\"virt\")")]
    NotVirtio {
        /// Window base.
        address: u64,
        /// What was read.
        magic: u32,
    },
    /// A legacy (version 1) transport; start QEMU with `-global virtio-mmio.force-legacy=false`.
    #[error(
        "virtio-mmio device at {address:#x} is version {version}; only version 2 (virtio 1.x) is supported"
    )]
    Version {
        /// Window base.
        address: u64,
        /// Version register.
        version: u32,
    },
    /// No device behind the transport (id 0), or one virtio-drivers does not know.
    #[error("virtio-mmio slot at {address:#x} has device id {id} (0 = empty slot)")]
    NoDevice {
        /// Window base.
        address: u64,
        /// Device id register.
        id: u32,
    },
}
