//! A virtio-mmio `Transport` whose registers are reached through qtest.
//!
//! Register accesses are qtest `readl`/`writel` round trips to the device's window; the rings and buffers
//! are in the shared guest RAM, where QEMU's device and the unmodified driver meet at real guest-physical
//! addresses. A notification is the `QueueNotify` write QEMU's virtio-mmio expects; QEMU handles it
//! synchronously (there is no ioeventfd without KVM) and completes the request on its own threads, so the
//! driver's polling of the used ring costs no round trips.
//!
//! The `Transport` trait is infallible. When qtest fails (QEMU died), reads return all-ones, as a device
//! that vanished from a real bus does, and writes are dropped; the driver then sees a broken device and its
//! bounded waits report it. [`QtestMmioTransport::failures`] counts these.
//!
//! Only version 2 (virtio 1.x) transports are driven; the legacy layout is refused at construction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error as VirtioError, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::TransportError;
use crate::machine::Qtest;
use crate::ram::GuestRam;

/// `"virt"`, little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Register offsets (virtio 1.2, 4.2.2 "MMIO Device Register Layout").
mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}
/// Bytes of device config space inside QEMU's 0x200-byte window.
pub const CONFIG_SPACE_BYTES: usize = 0x100;

/// virtio-blk request types (virtio 1.2, 5.2.6).
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Descriptor flag: the buffer is an indirect descriptor table.
const VIRTQ_DESC_F_INDIRECT: u16 = 4;

/// When to SIGKILL QEMU during a crash campaign: at the `n`-th virtio-blk write request (OUT) the driver
/// submits, counted from 1, either just before its notification reaches QEMU or just after QEMU accepted it.
///
/// Only writes are kill points: `VirtIOBlk::flush` waits for its completion without a bound (see
/// svsm-block-virtio's crate docs), so a QEMU killed with a flush in flight would hang the test, while a write
/// in flight ends in the driver's bounded timeout. For the same reason a killed device must not be sent a
/// flush afterwards: [`crate::QemuDisk`] refuses all I/O once its plan fired, and `WriteMode::Durable`
/// (write + flush inside the driver) must not be used on a device with a plan.
#[derive(Debug, Default)]
pub struct KillPlan {
    at_write: AtomicU64,
    after_notify: AtomicBool,
    writes_seen: AtomicU64,
    fired: AtomicBool,
}

impl KillPlan {
    /// Kill at write `n` (1-based); `after_notify` picks the side of the notification.
    pub fn new(n: u64, after_notify: bool) -> Arc<Self> {
        let p = KillPlan::default();
        p.at_write.store(n, Ordering::SeqCst);
        p.after_notify.store(after_notify, Ordering::SeqCst);
        Arc::new(p)
    }

    /// A plan that never kills, only counts writes (to size a campaign).
    pub fn count_only() -> Arc<Self> {
        Arc::new(KillPlan::default())
    }

    /// Write requests seen so far.
    pub fn writes_seen(&self) -> u64 {
        self.writes_seen.load(Ordering::SeqCst)
    }

    /// Whether QEMU was killed.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct QueueInfo {
    size: u32,
    desc: u64,
    avail: u64,
    seen_idx: u16,
}

/// virtio-mmio over qtest. See the module documentation.
#[derive(Debug)]
pub struct QtestMmioTransport {
    qtest: Arc<Qtest>,
    base: u64,
    device_type: DeviceType,
    failures: Arc<AtomicU64>,
    queues: Vec<QueueInfo>,
    selected: u16,
    kill: Option<Arc<KillPlan>>,
}

impl QtestMmioTransport {
    /// Checks magic, version and device id of the window at `base`.
    pub fn new(qtest: Arc<Qtest>, base: u64) -> Result<Self, TransportError> {
        let magic = qtest.readl(base + reg::MAGIC)?;
        if magic != MAGIC {
            return Err(TransportError::NotVirtio { address: base, magic });
        }
        let version = qtest.readl(base + reg::VERSION)?;
        if version != 2 {
            return Err(TransportError::Version { address: base, version });
        }
        let id = qtest.readl(base + reg::DEVICE_ID)?;
        let device_type = match DeviceType::try_from(id) {
            Ok(t) if id != 0 => t,
            _ => return Err(TransportError::NoDevice { address: base, id }),
        };
        Ok(QtestMmioTransport {
            qtest,
            base,
            device_type,
            failures: Arc::default(),
            queues: Vec::new(),
            selected: 0,
            kill: None,
        })
    }

    /// Arms a crash plan (see [`KillPlan`]).
    pub fn with_kill_plan(mut self, plan: Arc<KillPlan>) -> Self {
        self.kill = Some(plan);
        self
    }

    /// The window base.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// A shared count of register accesses that failed because qtest did (QEMU gone).
    pub fn failures(&self) -> Arc<AtomicU64> {
        self.failures.clone()
    }

    fn read32(&self, off: u64) -> u32 {
        self.qtest.readl(self.base + off).unwrap_or_else(|_| {
            self.failures.fetch_add(1, Ordering::Relaxed);
            u32::MAX
        })
    }

    fn write32(&self, off: u64, v: u32) {
        if self.qtest.writel(self.base + off, v).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn queue_mut(&mut self, queue: u16) -> &mut QueueInfo {
        let i = usize::from(queue);
        if self.queues.len() <= i {
            self.queues.resize(i + 1, QueueInfo::default());
        }
        &mut self.queues[i]
    }

    /// The request types of the avail-ring entries added since the last notification of `queue`, read
    /// from shared RAM the way the device will read them. Unreadable entries are skipped.
    fn new_requests(&mut self, queue: u16) -> Vec<u32> {
        let Ok(ram) = GuestRam::global() else { return Vec::new() };
        let q = *self.queue_mut(queue);
        if q.size == 0 {
            return Vec::new();
        }
        let u16_at = |gpa: u64| {
            let mut b = [0u8; 2];
            ram.read(gpa, &mut b).ok().map(|_| u16::from_le_bytes(b))
        };
        let u64_at = |gpa: u64| {
            let mut b = [0u8; 8];
            ram.read(gpa, &mut b).ok().map(|_| u64::from_le_bytes(b))
        };
        let Some(idx) = u16_at(q.avail + 2) else { return Vec::new() };
        let mut types = Vec::new();
        let mut i = q.seen_idx;
        while i != idx {
            let slot = u64::from(i) % u64::from(q.size);
            let ty = (|| {
                let head = u16_at(q.avail + 4 + 2 * slot)?;
                let desc = q.desc + 16 * u64::from(head);
                let mut addr = u64_at(desc)?;
                if u16_at(desc + 12)? & VIRTQ_DESC_F_INDIRECT != 0 {
                    addr = u64_at(addr)?;
                }
                let mut t = [0u8; 4];
                ram.read(addr, &mut t).ok()?;
                Some(u32::from_le_bytes(t))
            })();
            types.extend(ty);
            i = i.wrapping_add(1);
        }
        self.queue_mut(queue).seen_idx = idx;
        types
    }
}

impl Transport for QtestMmioTransport {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        self.write32(reg::DEVICE_FEATURES_SEL, 0);
        let low = u64::from(self.read32(reg::DEVICE_FEATURES));
        self.write32(reg::DEVICE_FEATURES_SEL, 1);
        let high = u64::from(self.read32(reg::DEVICE_FEATURES));
        low | (high << 32)
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.write32(reg::DRIVER_FEATURES_SEL, 0);
        self.write32(reg::DRIVER_FEATURES, driver_features as u32);
        self.write32(reg::DRIVER_FEATURES_SEL, 1);
        self.write32(reg::DRIVER_FEATURES, (driver_features >> 32) as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.selected = queue;
        self.write32(reg::QUEUE_SEL, queue.into());
        self.read32(reg::QUEUE_NUM_MAX)
    }

    fn notify(&mut self, queue: u16) {
        let Some(plan) = self.kill.clone() else {
            self.write32(reg::QUEUE_NOTIFY, queue.into());
            return;
        };
        let writes = self.new_requests(queue).into_iter().filter(|&t| t == VIRTIO_BLK_T_OUT).count() as u64;
        let before = plan.writes_seen.fetch_add(writes, Ordering::SeqCst);
        let target = plan.at_write.load(Ordering::SeqCst);
        let hit = target != 0 && before < target && target <= before + writes && !plan.fired();
        let after = plan.after_notify.load(Ordering::SeqCst);
        if hit && !after {
            plan.fired.store(true, Ordering::SeqCst);
            self.qtest.kill_qemu();
        }
        self.write32(reg::QUEUE_NOTIFY, queue.into());
        if hit && after {
            plan.fired.store(true, Ordering::SeqCst);
            self.qtest.kill_qemu();
        }
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.read32(reg::STATUS))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.write32(reg::STATUS, status.bits());
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Modern transports have no guest page size.
    }

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.selected = queue;
        *self.queue_mut(queue) = QueueInfo { size, desc: descriptors, avail: driver_area, seen_idx: 0 };
        self.write32(reg::QUEUE_SEL, queue.into());
        self.write32(reg::QUEUE_NUM, size);
        self.write32(reg::QUEUE_DESC_LOW, descriptors as u32);
        self.write32(reg::QUEUE_DESC_HIGH, (descriptors >> 32) as u32);
        self.write32(reg::QUEUE_DRIVER_LOW, driver_area as u32);
        self.write32(reg::QUEUE_DRIVER_HIGH, (driver_area >> 32) as u32);
        self.write32(reg::QUEUE_DEVICE_LOW, device_area as u32);
        self.write32(reg::QUEUE_DEVICE_HIGH, (device_area >> 32) as u32);
        self.write32(reg::QUEUE_READY, 1);
    }

    fn queue_unset(&mut self, queue: u16) {
        *self.queue_mut(queue) = QueueInfo::default();
        self.write32(reg::QUEUE_SEL, queue.into());
        self.write32(reg::QUEUE_READY, 0);
        // Bounded (virtio 4.2.2.2 asks to wait for QueueReady to read back 0); a dead QEMU reads all-ones.
        for _ in 0..1000 {
            if self.read32(reg::QUEUE_READY) != 1 {
                break;
            }
        }
        for r in [
            reg::QUEUE_NUM,
            reg::QUEUE_DESC_LOW,
            reg::QUEUE_DESC_HIGH,
            reg::QUEUE_DRIVER_LOW,
            reg::QUEUE_DRIVER_HIGH,
            reg::QUEUE_DEVICE_LOW,
            reg::QUEUE_DEVICE_HIGH,
        ] {
            self.write32(r, 0);
        }
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.write32(reg::QUEUE_SEL, queue.into());
        self.read32(reg::QUEUE_READY) == 1
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let status = self.read32(reg::INTERRUPT_STATUS);
        if status != 0 && status != u32::MAX {
            self.write32(reg::INTERRUPT_ACK, status);
            InterruptStatus::from_bits_truncate(status)
        } else {
            InterruptStatus::empty()
        }
    }

    fn read_config_generation(&self) -> u32 {
        self.read32(reg::CONFIG_GENERATION)
    }

    fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V, VirtioError> {
        let size = size_of::<V>();
        if offset.checked_add(size).is_none_or(|end| end > CONFIG_SPACE_BYTES) {
            return Err(VirtioError::ConfigSpaceTooSmall);
        }
        let at = self.base + reg::CONFIG + offset as u64;
        let mut bytes = vec![0u8; size];
        let fail = |_| {
            self.failures.fetch_add(1, Ordering::Relaxed);
            VirtioError::IoError
        };
        match size {
            1 => bytes[0] = self.qtest.readb(at).map_err(fail)?,
            2 => bytes.copy_from_slice(&self.qtest.readw(at).map_err(fail)?.to_le_bytes()),
            4 => bytes.copy_from_slice(&self.qtest.readl(at).map_err(fail)?.to_le_bytes()),
            _ => {
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = self.qtest.readb(at + i as u64).map_err(fail)?;
                }
            }
        }
        V::read_from_bytes(&bytes).map_err(|_| VirtioError::ConfigSpaceTooSmall)
    }

    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> Result<(), VirtioError> {
        let bytes = value.as_bytes();
        if offset.checked_add(bytes.len()).is_none_or(|end| end > CONFIG_SPACE_BYTES) {
            return Err(VirtioError::ConfigSpaceTooSmall);
        }
        let at = self.base + reg::CONFIG + offset as u64;
        for (i, b) in bytes.iter().enumerate() {
            if self.qtest.writeb(at + i as u64, *b).is_err() {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(VirtioError::IoError);
            }
        }
        Ok(())
    }
}
