//! Serving VMGEXIT frames against one SVSM.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use svsm_protocol::Svsm;

use crate::frame::{FRAME_SIZE, KIND_RESUME, KIND_VMGEXIT, RegisterFrame};
use crate::memory::FileGuestMemory;

/// Serves one guest connection until it closes; a malformed frame closes this connection only.
pub fn serve_connection(
    svsm: &Mutex<Svsm>,
    memory: &mut FileGuestMemory,
    mut stream: UnixStream,
) -> std::io::Result<()> {
    let mut buf = [0u8; FRAME_SIZE];
    loop {
        match stream.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let frame = match RegisterFrame::decode(&buf, KIND_VMGEXIT) {
            Ok(f) => f,
            Err(err) => {
                tracing::warn!(%err, "closing guest connection after a malformed frame");
                return Err(std::io::Error::new(ErrorKind::InvalidData, err));
            }
        };
        let mut regs = frame.registers();
        {
            let mut svsm = svsm.lock().map_err(|_| std::io::Error::other("SVSM state poisoned"))?;
            svsm.service_vmgexit(memory, &mut regs);
        }
        stream.write_all(&RegisterFrame::new(KIND_RESUME, &regs).encode())?;
    }
}

/// Accepts guest connections on `listener`, each served on its own thread with its own handle on the memory
/// file at `memory_path`; stops after `max_connections` if given.
pub fn serve(
    listener: UnixListener,
    svsm: Arc<Mutex<Svsm>>,
    memory_path: PathBuf,
    max_connections: Option<usize>,
) -> std::io::Result<()> {
    let mut handles = Vec::new();
    for (n, stream) in listener.incoming().enumerate() {
        let stream = stream?;
        let svsm = svsm.clone();
        let mut memory = FileGuestMemory::open(&memory_path)?;
        handles.push(std::thread::spawn(move || {
            if let Err(err) = serve_connection(&svsm, &mut memory, stream) {
                tracing::warn!(%err, "guest connection ended with an error");
            }
        }));
        if max_connections.is_some_and(|max| n + 1 >= max) {
            break;
        }
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}
