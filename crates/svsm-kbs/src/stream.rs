//! The channel over a byte stream (Unix socket, TCP loopback; vsock and serial carry the same bytes), with
//! a time bound on every read and write. Shared by the SVSM side and the host proxy.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::api::Channel;
use crate::error::{ChannelError, KbsError};
use crate::frame::{Frame, Kind, MAX_PAYLOAD};

fn io_error(e: std::io::Error) -> ChannelError {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => ChannelError::Timeout,
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => ChannelError::Closed,
        _ => ChannelError::Io(e.to_string()),
    }
}

/// Reads one frame: the header is checked before the payload is allocated. End of stream before any byte
/// is [`ChannelError::Closed`]; inside a frame it is [`crate::error::FrameError::Truncated`].
pub fn read_frame(r: &mut impl Read) -> Result<Frame, KbsError> {
    use svsm_channel::io::ReadError;
    match svsm_channel::io::read_frame(r, MAX_PAYLOAD, Kind::from_byte) {
        Ok((kind, payload)) => Ok(Frame { kind, payload }),
        Err(ReadError::Closed) => Err(ChannelError::Closed.into()),
        Err(ReadError::Io(e)) => Err(io_error(e).into()),
        Err(ReadError::Frame(e)) => Err(e.into()),
    }
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> Result<(), KbsError> {
    w.write_all(&frame.encode()).and_then(|()| w.flush()).map_err(|e| io_error(e).into())
}

/// A stream that can bound its reads and writes.
pub trait TimedStream: Read + Write {
    /// Sets both time bounds.
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()>;
}

impl TimedStream for UnixStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl TimedStream for TcpStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// [`Channel`] over a stream.
#[derive(Debug)]
pub struct StreamChannel<S> {
    stream: S,
}

impl<S: TimedStream> StreamChannel<S> {
    /// Wraps `stream`; every read and write is bounded by `timeout`.
    pub fn new(stream: S, timeout: Duration) -> Result<Self, KbsError> {
        stream.set_timeouts(timeout).map_err(io_error)?;
        Ok(StreamChannel { stream })
    }
}

impl<S: TimedStream> Channel for StreamChannel<S> {
    fn send(&mut self, frame: &Frame) -> Result<(), KbsError> {
        write_frame(&mut self.stream, frame)
    }
    fn recv(&mut self) -> Result<Frame, KbsError> {
        read_frame(&mut self.stream)
    }
}

/// Where the proxy listens: `unix:PATH` / a bare path, or `tcp:127.0.0.1:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAddress {
    /// A Unix socket path.
    Unix(std::path::PathBuf),
    /// A TCP address (loopback unless the operator says otherwise).
    Tcp(std::net::SocketAddr),
}

impl std::str::FromStr for ProxyAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(addr) = s.strip_prefix("tcp:") {
            addr.parse().map(ProxyAddress::Tcp).map_err(|e| format!("{addr}: {e}"))
        } else {
            Ok(ProxyAddress::Unix(s.strip_prefix("unix:").unwrap_or(s).into()))
        }
    }
}

impl std::fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyAddress::Unix(p) => write!(f, "unix:{}", p.display()),
            ProxyAddress::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// A connected channel of either form.
#[derive(Debug)]
pub enum AnyChannel {
    /// Over a Unix socket.
    Unix(StreamChannel<UnixStream>),
    /// Over TCP.
    Tcp(StreamChannel<TcpStream>),
}

impl AnyChannel {
    /// Connects to the proxy.
    pub fn connect(addr: &ProxyAddress, timeout: Duration) -> Result<Self, KbsError> {
        Ok(match addr {
            ProxyAddress::Unix(p) => {
                AnyChannel::Unix(StreamChannel::new(UnixStream::connect(p).map_err(io_error)?, timeout)?)
            }
            ProxyAddress::Tcp(a) => AnyChannel::Tcp(StreamChannel::new(
                TcpStream::connect_timeout(a, timeout).map_err(io_error)?,
                timeout,
            )?),
        })
    }
}

impl Channel for AnyChannel {
    fn send(&mut self, frame: &Frame) -> Result<(), KbsError> {
        match self {
            AnyChannel::Unix(c) => c.send(frame),
            AnyChannel::Tcp(c) => c.send(frame),
        }
    }
    fn recv(&mut self) -> Result<Frame, KbsError> {
        match self {
            AnyChannel::Unix(c) => c.recv(),
            AnyChannel::Tcp(c) => c.recv(),
        }
    }
}
