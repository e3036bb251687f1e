//! The guest side of the harness.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use svsm_protocol::guest::SvsmTransport;
use svsm_protocol::{GuestMemory, Registers};

use crate::frame::{FRAME_SIZE, KIND_RESUME, KIND_VMGEXIT, RegisterFrame};
use crate::memory::FileGuestMemory;

/// A guest connected to a harness: its memory file and the VMGEXIT socket.
#[derive(Debug)]
pub struct SocketTransport {
    stream: UnixStream,
    memory: FileGuestMemory,
}

impl SocketTransport {
    /// Connects to the socket at `socket` using the memory file at `memory`.
    pub fn connect(socket: &Path, memory: &Path) -> std::io::Result<Self> {
        Ok(SocketTransport { stream: UnixStream::connect(socket)?, memory: FileGuestMemory::open(memory)? })
    }

    /// Size of guest memory.
    pub fn memory_size(&self) -> u64 {
        self.memory.size()
    }

    fn exchange(&mut self, regs: &mut Registers) -> std::io::Result<()> {
        self.stream.write_all(&RegisterFrame::new(KIND_VMGEXIT, regs).encode())?;
        let mut buf = [0u8; FRAME_SIZE];
        self.stream.read_exact(&mut buf)?;
        let frame = RegisterFrame::decode(&buf, KIND_RESUME)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        *regs = frame.registers();
        Ok(())
    }
}

impl SvsmTransport for SocketTransport {
    fn memory(&mut self) -> &mut dyn GuestMemory {
        &mut self.memory
    }

    /// On a transport failure the registers are left alone; the calling area's `call_pending` then still
    /// reads 1 and the guest reports the call as not serviced, as Linux does.
    fn vmgexit(&mut self, regs: &mut Registers) {
        if let Err(err) = self.exchange(regs) {
            tracing::warn!(%err, "VMGEXIT over the harness socket failed");
        }
    }
}
