//! What discovery produces, independent of which blob described it.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::DiscoveryError;

/// Size of a virtio-mmio register window (virtio 1.x, "MMIO Device Register Layout": registers end at 0x100,
/// device config follows; QEMU maps 0x200 bytes per device). Used when the source gives no size.
pub const VIRTIO_MMIO_WINDOW: u64 = 0x200;

/// One virtio-mmio device the host announced. Nothing here is trusted: the address is where the host *says*
/// a device is, and the virtio transport must still validate the magic, version and device id it finds there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Guest-physical base address of the register window.
    pub address: u64,
    /// Window size if the source states one (device trees do, `etc/hardware-info` does not; then assume
    /// [`VIRTIO_MMIO_WINDOW`]). `address + size` never overflows.
    pub size: Option<u64>,
    /// The VMPL plane the device is meant for (device-tree `plane` property), if given.
    pub plane: Option<u32>,
    /// The node name (`virtio_mmio@...`) when the source is a device tree, for logs.
    pub name: Option<String>,
}

impl VirtioMmioDevice {
    /// The window size to map: the stated size, or the standard window when none was stated.
    pub fn window_size(&self) -> u64 {
        self.size.unwrap_or(VIRTIO_MMIO_WINDOW)
    }
}

/// A platform description an SVSM can ask for its virtio-mmio devices.
///
/// One trait so boot code can try the device tree first and fall back to fw_cfg without caring which parser
/// answered.
pub trait DeviceSource {
    /// Every virtio-mmio device described, in blob order.
    fn virtio_mmio_devices(&self) -> Result<Vec<VirtioMmioDevice>, DiscoveryError>;
}
