//! The SVSM call interface exposed on a Linux host, for guests without SEV-SNP hardware.
//!
//! Guest memory is a file both sides open (the "guest" maps or reads it, the SVSM side reaches it with
//! positioned reads and writes, so it only ever copies in and out, as inside an SVSM). A VMGEXIT is one
//! fixed-size [`RegisterFrame`] on a Unix stream socket: the guest sends its registers, the SVSM services the
//! call found in the calling area and sends the registers back.
//!
//! * [`FileGuestMemory`]: [`svsm_protocol::GuestMemory`] over the shared file.
//! * [`frame`]: the register frame wire format (layout-asserted) and its decoder.
//! * [`server`]: serving connections against one [`svsm_protocol::Svsm`].
//! * [`simulated`]: an SVSM on the simulated SNP platform with the vTPM double (until the real vTPM lands).
//! * [`SocketTransport`]: the guest side, an [`svsm_protocol::guest::SvsmTransport`].

pub mod frame;
pub mod fuzzing;
pub mod memory;
pub mod server;
pub mod simulated;
pub mod transport;

pub use frame::{FrameError, RegisterFrame};
pub use memory::FileGuestMemory;
pub use server::{serve, serve_connection};
pub use transport::SocketTransport;
