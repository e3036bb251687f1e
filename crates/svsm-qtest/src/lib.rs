//! Test support: QEMU's real devices, driven through QEMU's qtest protocol with no guest code.
//!
//! Our drivers (virtio-blk through the real `virtio-drivers`, the CFI flash driver, the fw_cfg reader) had
//! only ever met device models we wrote ourselves, so a misunderstanding shared by a driver and its model
//! would pass every test. This crate puts them in front of QEMU's own device models instead:
//!
//! * [`MachineBuilder`] / [`QtestMachine`]: starts `qemu-system-x86_64` stopped (`-S`), with a qtest socket
//!   and guest RAM from a shared memory backend; bounded waits everywhere, QEMU SIGKILLed on drop, and
//!   errors that say what to do when QEMU is missing or exits.
//! * [`GuestRam`] / [`QtestPlatform`]: that RAM mapped into the test process, and the bounce pool of
//!   svsm-block-virtio's `SevBounceHal` carved from it at real guest-physical addresses.
//! * [`QtestMmioTransport`]: a virtio-mmio `Transport` whose registers are qtest round trips, for the
//!   unchanged [`svsm_block_virtio::VirtioBlk`]; with a [`KillPlan`] it SIGKILLs QEMU at a chosen write.
//! * [`fw_cfg`]: QEMU's fw_cfg device over port I/O and over DMA, for svsm-discovery's reader.
//! * [`pflash`]: QEMU's `pflash_cfi01` window on q35 as a [`svsm_pflash::FlashMmio`].
//!
//! Everything here is std and test-only; none of it is compiled into a product path.
//!
//! The QEMU binary is `qemu-system-x86_64` from `PATH` (Debian package `qemu-system-x86`), or `SVSM_QEMU`.

pub mod error;
pub mod fw_cfg;
pub mod machine;
pub mod pflash;
pub mod ram;
pub mod virtio_mmio;

use std::sync::Arc;

use svsm_block::{BlockError, IoOp};
use svsm_block_virtio::{SevBounceHal, VirtioBlk, VirtioBlkConfig};

pub use error::{QtestError, TransportError};
pub use machine::{MachineBuilder, Qtest, QtestMachine, RoundTrips};
pub use ram::{GuestRam, QtestPlatform};
pub use virtio_mmio::{KillPlan, QtestMmioTransport};

/// The HAL of virtio devices behind QEMU.
pub type QtestHal = SevBounceHal<QtestPlatform>;
/// Our virtio-blk driver on QEMU's virtio-blk-device.
pub type QemuVirtioBlk = VirtioBlk<QtestHal, QtestMmioTransport>;

/// microvm's first virtio-mmio window (`VIRTIO_MMIO_BASE` in QEMU's hw/i386/microvm.c).
pub const MICROVM_VIRTIO_MMIO_BASE: u64 = 0xfeb0_0000;
/// Bytes per microvm virtio-mmio window.
pub const MICROVM_VIRTIO_MMIO_SIZE: u64 = 0x200;
/// Number of microvm virtio-mmio transports.
pub const MICROVM_VIRTIO_MMIO_SLOTS: u64 = 24;

/// The window of microvm virtio-mmio slot `slot`. QEMU plugs devices into the highest free slot first, so
/// the first `-device virtio-blk-device` lands in slot 23 (0xfeb02e00).
pub const fn microvm_slot(slot: u64) -> u64 {
    MICROVM_VIRTIO_MMIO_BASE + slot * MICROVM_VIRTIO_MMIO_SIZE
}

/// Why a virtio-blk device could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The transport could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The driver's probe failed.
    #[error("virtio-blk probe failed: {0}")]
    Probe(#[from] BlockError),
}

/// Probes the virtio-blk device at `address` of `qtest`'s machine with `config`, optionally armed with a
/// [`KillPlan`].
pub fn open_virtio_blk(
    qtest: &Arc<Qtest>,
    address: u64,
    config: VirtioBlkConfig,
    kill: Option<Arc<KillPlan>>,
) -> Result<QemuVirtioBlk, OpenError> {
    QtestPlatform::init().map_err(TransportError::from)?;
    let mut transport = QtestMmioTransport::new(qtest.clone(), address)?;
    if let Some(plan) = kill {
        transport = transport.with_kill_plan(plan);
    }
    Ok(VirtioBlk::with_config(transport, config)?)
}

/// A virtio-blk disk on its own QEMU: our driver, the transport and the machine, dropped in that order
/// (the driver releases its queue while QEMU still runs, then QEMU is killed).
#[derive(Debug)]
pub struct QemuDisk {
    /// The driver.
    pub blk: QemuVirtioBlk,
    /// The QEMU it talks to.
    pub machine: QtestMachine,
    kill: Option<Arc<KillPlan>>,
}

impl QemuDisk {
    /// Starts a microvm with `image` as its only virtio-blk-device (slot 23) and probes it.
    ///
    /// `drive_opts` and `device_opts` are appended to `-drive` and `-device` (e.g. `cache.direct=on`,
    /// `readonly=on`; `logical_block_size=4096,physical_block_size=4096`, `serial=...`).
    pub fn start(
        image: &std::path::Path,
        drive_opts: &str,
        device_opts: &str,
        config: VirtioBlkConfig,
        kill: Option<Arc<KillPlan>>,
    ) -> Result<Self, OpenError> {
        let machine = MachineBuilder::microvm()
            .virtio_blk("d0", image, drive_opts, device_opts)
            .start()
            .map_err(TransportError::from)?;
        let blk = open_virtio_blk(
            machine.qtest(),
            microvm_slot(MICROVM_VIRTIO_MMIO_SLOTS - 1),
            config,
            kill.clone(),
        )?;
        Ok(QemuDisk { blk, machine, kill })
    }

    /// Refuses I/O once QEMU is gone (killed by the plan, or the connection lost).
    ///
    /// A guest whose host process died does not run on; the campaign's store, though, does, and its next
    /// request would go to a device that can never answer. Reads and writes would end in the driver's
    /// bounded timeout, but `VirtIOBlk::flush` waits without a bound, so the harness fails every request
    /// after the death here, as an unplugged device would, instead of letting a flush hang the test.
    fn alive(&self, op: IoOp) -> Result<(), BlockError> {
        let killed = self.kill.as_ref().is_some_and(|k| k.fired());
        if killed || self.machine.qtest().is_lost() {
            return Err(BlockError::DeviceMisbehaved {
                op,
                detail: "QEMU is gone (killed); the device cannot answer",
            });
        }
        Ok(())
    }
}

impl svsm_block::BlockDevice for QemuDisk {
    fn info(&self) -> svsm_block::DeviceInfo {
        self.blk.info()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.alive(IoOp::Read)?;
        self.blk.read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8], mode: svsm_block::WriteMode) -> Result<(), BlockError> {
        self.alive(IoOp::Write)?;
        self.blk.write_blocks(lba, buf, mode)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.alive(IoOp::Flush)?;
        self.blk.flush()
    }
}
