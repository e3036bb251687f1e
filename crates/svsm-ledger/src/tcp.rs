//! A [`Transport`] over TCP with framing and timeouts (host side; in an SVSM the channel is a host relay).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use alloc::string::{String, ToString as _};
use alloc::vec::Vec;

use crate::api::Transport;
use crate::error::TransportError;
use crate::frame;

/// Connects on first use and after any failure; one request in flight at a time.
#[derive(Debug)]
pub struct TcpTransport {
    addr: String,
    timeout: Duration,
    stream: Option<TcpStream>,
}

impl TcpTransport {
    /// A transport to `addr` (`host:port`); `timeout` bounds connecting and each read and write.
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Self {
        TcpTransport { addr: addr.into(), timeout, stream: None }
    }

    fn connect(&self) -> Result<TcpStream, TransportError> {
        let io = |e: std::io::Error| TransportError::Io(alloc::format!("{}: {e}", self.addr));
        let addrs: Vec<SocketAddr> = self.addr.to_socket_addrs().map_err(io)?.collect();
        let mut last = TransportError::Io(alloc::format!("{}: no address", self.addr));
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout)).map_err(io)?;
                    s.set_write_timeout(Some(self.timeout)).map_err(io)?;
                    s.set_nodelay(true).map_err(io)?;
                    return Ok(s);
                }
                Err(e) => last = io(e),
            }
        }
        Err(last)
    }

    fn round_trip(stream: &mut TcpStream, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let io = |e: std::io::Error| TransportError::Io(e.to_string());
        stream.write_all(&frame::encode_request(request)).map_err(io)?;
        let mut header = [0u8; frame::HEADER_LEN];
        stream.read_exact(&mut header).map_err(io)?;
        let len = frame::reply_len(&header).map_err(TransportError::Frame)?;
        let mut payload = alloc::vec![0u8; len];
        stream.read_exact(&mut payload).map_err(io)?;
        Ok(payload)
    }
}

impl Transport for TcpTransport {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut stream = match self.stream.take() {
            Some(s) => s,
            None => self.connect()?,
        };
        let reply = Self::round_trip(&mut stream, request)?;
        self.stream = Some(stream);
        Ok(reply)
    }
}
