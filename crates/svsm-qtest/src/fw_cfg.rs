//! QEMU's fw_cfg device through qtest: the x86 ports for svsm-discovery's [`PortFwCfg`], and the DMA
//! interface with its request and buffer in the shared guest RAM.

use std::sync::Arc;

use svsm_block_virtio::BouncePlatform;
use svsm_discovery::DiscoveryError;
use svsm_discovery::fw_cfg::{DMA_CTL_ERROR, DmaAccess, FwCfgTransport, PORT_DMA, PortFwCfg, PortIo};
use virtio_drivers::PAGE_SIZE;

use crate::machine::Qtest;
use crate::ram::{GuestRam, QtestPlatform};

/// Port I/O through qtest. A failed command (QEMU gone) reads as all-ones, like an empty bus.
#[derive(Debug, Clone)]
pub struct QtestPorts(pub Arc<Qtest>);

impl PortIo for QtestPorts {
    fn outw(&mut self, port: u16, value: u16) {
        let _ = self.0.outw(port, value);
    }
    fn inb(&mut self, port: u16) -> u8 {
        self.0.inb(port).unwrap_or(0xFF)
    }
}

/// The selector/data interface over qtest ports.
pub fn port_fw_cfg(qtest: &Arc<Qtest>) -> PortFwCfg<QtestPorts> {
    PortFwCfg(QtestPorts(qtest.clone()))
}

/// Bytes moved per DMA request (the buffer is this many pool pages).
pub const DMA_CHUNK: usize = 16 * PAGE_SIZE;
/// Reads of the control word before a DMA request is declared stuck (QEMU completes it synchronously, so
/// the first read already sees the result).
const DMA_POLLS: usize = 1000;

/// The DMA interface: a [`DmaAccess`] and its buffer in pool pages, the address written big-endian to ports
/// 0x514 (high half) and 0x518 (low half, which starts the transfer).
#[derive(Debug, Clone)]
pub struct DmaFwCfg {
    qtest: Arc<Qtest>,
}

impl DmaFwCfg {
    /// DMA through `qtest`'s machine.
    pub fn new(qtest: &Arc<Qtest>) -> Self {
        DmaFwCfg { qtest: qtest.clone() }
    }

    fn transfer(&self, ram: &GuestRam, req: &DmaAccess, at: u64, key: u16) -> Result<(), DiscoveryError> {
        let fail = |detail| DiscoveryError::FwCfgDma { key, detail };
        ram.write(at, &req.to_bytes()).map_err(|_| fail("request outside guest RAM"))?;
        self.qtest.outl(PORT_DMA, ((at >> 32) as u32).swap_bytes()).map_err(|_| fail("qtest failed"))?;
        self.qtest.outl(PORT_DMA + 4, (at as u32).swap_bytes()).map_err(|_| fail("qtest failed"))?;
        for _ in 0..DMA_POLLS {
            let mut c = [0u8; 4];
            ram.read(at, &mut c).map_err(|_| fail("request outside guest RAM"))?;
            match u32::from_be_bytes(c) {
                0 => return Ok(()),
                c if c & DMA_CTL_ERROR != 0 => return Err(fail("the device reported an error")),
                _ => std::thread::yield_now(),
            }
        }
        Err(fail("the device never completed the request"))
    }
}

impl FwCfgTransport for DmaFwCfg {
    fn read_item(&mut self, key: u16, out: &mut [u8]) -> Result<(), DiscoveryError> {
        let fail = |detail| DiscoveryError::FwCfgDma { key, detail };
        let ram = GuestRam::global().map_err(|_| fail("no shared guest RAM"))?;
        // One page for the request, then the buffer.
        let pages = 1 + DMA_CHUNK / PAGE_SIZE;
        let (gpa, _) = QtestPlatform::pool().alloc(pages).ok_or(fail("no DMA memory"))?;
        let buf = gpa + PAGE_SIZE as u64;
        let result = (|| {
            for (i, chunk) in out.chunks_mut(DMA_CHUNK).enumerate() {
                let len = chunk.len() as u32;
                let mut req = DmaAccess::select_read(key, len, buf);
                if i > 0 {
                    // Continue where the previous chunk stopped: no re-select.
                    req.control = svsm_discovery::fw_cfg::DMA_CTL_READ.to_be_bytes();
                }
                self.transfer(ram, &req, gpa, key)?;
                ram.read(buf, chunk).map_err(|_| fail("buffer outside guest RAM"))?;
            }
            Ok(())
        })();
        if QtestPlatform::pool().free(gpa, pages).is_err() {
            return Err(fail("DMA pages were not allocated"));
        }
        result
    }
}
