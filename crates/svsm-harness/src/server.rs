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

/// How long `serve` waits after a failed `accept` (e.g. out of descriptors) before trying again.
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Accepts guest connections on `listener`, each served on its own thread with its own handle on the memory
/// file at `memory_path`; stops after `max_connections` if given.
///
/// An accept error never ends the loop (nor spins it): it is logged once per streak and retried after
/// [`ACCEPT_BACKOFF`]. A connection whose memory handle cannot be opened is closed with a logged reason.
pub fn serve(
    listener: UnixListener,
    svsm: Arc<Mutex<Svsm>>,
    memory_path: PathBuf,
    max_connections: Option<usize>,
) -> std::io::Result<()> {
    let mut handles = Vec::new();
    let mut served = 0usize;
    let mut failing = false;
    while max_connections.is_none_or(|max| served < max) {
        let stream = match listener.accept() {
            Ok((stream, _)) => {
                failing = false;
                stream
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "accept failed; retrying every {:?}", ACCEPT_BACKOFF);
                }
                failing = true;
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        served += 1;
        let mut memory = match FileGuestMemory::open(&memory_path) {
            Ok(m) => m,
            Err(err) => {
                tracing::error!(%err, path = %memory_path.display(), "cannot open guest memory; closing connection");
                continue;
            }
        };
        let svsm = svsm.clone();
        handles.push(std::thread::spawn(move || {
            if let Err(err) = serve_connection(&svsm, &mut memory, stream) {
                tracing::warn!(%err, "guest connection ended with an error");
            }
        }));
        // Finished connections' threads are reaped as we go, so a long-running server does not accumulate them.
        handles.retain(|h| !h.is_finished());
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}
