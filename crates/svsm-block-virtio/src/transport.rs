//! `BoundedTransport`: a pass-through `Transport` that bounds the one unbounded loop of the driver's probe.
//!
//! virtio-drivers' default `Transport::read_consistent` re-reads config space until the config generation
//! is the same before and after, with no limit, so a host that changes the generation on every read hangs
//! the probe forever. We wrap whatever transport the platform provides and override that method with a
//! bounded retry; when the bound is hit, the wrapper records it so [`crate::VirtioBlk`] can report the exact
//! reason instead of the generic error the driver propagates.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error as VirtioError, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Re-reads of a changing config space before the device is declared misbehaving.
pub const CONFIG_RETRIES: usize = 64;

/// A transport wrapper with a bounded `read_consistent`.
#[derive(Debug)]
pub struct BoundedTransport<T: Transport> {
    inner: T,
    unstable: Arc<AtomicBool>,
}

impl<T: Transport> BoundedTransport<T> {
    /// Wraps `inner`; `unstable` is set if the config generation never settles.
    pub(crate) fn new(inner: T, unstable: Arc<AtomicBool>) -> Self {
        BoundedTransport { inner, unstable }
    }
}

impl<T: Transport> Transport for BoundedTransport<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.inner.write_driver_features(driver_features)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue)
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner.queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V, VirtioError> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> Result<(), VirtioError> {
        self.inner.write_config_space(offset, value)
    }

    fn read_consistent<R>(&self, f: impl Fn() -> Result<R, VirtioError>) -> Result<R, VirtioError> {
        read_consistent_bounded(&self.inner, f).unwrap_or_else(|| {
            self.unstable.store(true, Ordering::SeqCst);
            // There is no dedicated upstream variant; the flag carries the real reason to VirtioBlk.
            Err(VirtioError::NotReady)
        })
    }
}

/// Reads config through `f` until the generation is stable, at most [`CONFIG_RETRIES`] times; `None` if it
/// never settled.
pub(crate) fn read_consistent_bounded<T: Transport, R>(
    t: &T,
    f: impl Fn() -> Result<R, VirtioError>,
) -> Option<Result<R, VirtioError>> {
    for _ in 0..CONFIG_RETRIES {
        let before = t.read_config_generation();
        let result = f();
        if t.read_config_generation() == before {
            return Some(result);
        }
    }
    None
}
