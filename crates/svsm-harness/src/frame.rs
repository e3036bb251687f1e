//! One VMGEXIT on the socket: a 48-byte little-endian register frame.

use core::mem::{offset_of, size_of};

use svsm_protocol::Registers;

/// "SVSM" little-endian.
pub const FRAME_MAGIC: u32 = 0x4D53_5653;
/// Wire version.
pub const FRAME_VERSION: u16 = 1;
/// Frame kind: guest -> SVSM (request VMPL0).
pub const KIND_VMGEXIT: u16 = 1;
/// Frame kind: SVSM -> guest (resume the guest).
pub const KIND_RESUME: u16 = 2;
/// Size of a frame.
pub const FRAME_SIZE: usize = 48;

/// The frame layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegisterFrame {
    /// [`FRAME_MAGIC`].
    pub magic: u32,
    /// [`FRAME_VERSION`].
    pub version: u16,
    /// [`KIND_VMGEXIT`] or [`KIND_RESUME`].
    pub kind: u16,
    /// RAX.
    pub rax: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
}
const _: () = assert!(size_of::<RegisterFrame>() == FRAME_SIZE);
const _: () = assert!(offset_of!(RegisterFrame, magic) == 0);
const _: () = assert!(offset_of!(RegisterFrame, version) == 4);
const _: () = assert!(offset_of!(RegisterFrame, kind) == 6);
const _: () = assert!(offset_of!(RegisterFrame, rax) == 8);
const _: () = assert!(offset_of!(RegisterFrame, rcx) == 16);
const _: () = assert!(offset_of!(RegisterFrame, rdx) == 24);
const _: () = assert!(offset_of!(RegisterFrame, r8) == 32);
const _: () = assert!(offset_of!(RegisterFrame, r9) == 40);

/// Why a frame was rejected (the connection is then closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Wrong magic.
    #[error("bad frame magic {0:#010x}")]
    Magic(u32),
    /// Unknown version.
    #[error("unsupported frame version {0}")]
    Version(u16),
    /// Unexpected kind.
    #[error("unexpected frame kind {0}")]
    Kind(u16),
}

fn u64_at(b: &[u8; FRAME_SIZE], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

impl RegisterFrame {
    /// A frame of `kind` carrying `regs`.
    pub fn new(kind: u16, regs: &Registers) -> Self {
        RegisterFrame {
            magic: FRAME_MAGIC,
            version: FRAME_VERSION,
            kind,
            rax: regs.rax,
            rcx: regs.rcx,
            rdx: regs.rdx,
            r8: regs.r8,
            r9: regs.r9,
        }
    }

    /// The registers carried.
    pub fn registers(&self) -> Registers {
        Registers { rax: self.rax, rcx: self.rcx, rdx: self.rdx, r8: self.r8, r9: self.r9 }
    }

    /// Encodes the frame.
    pub fn encode(&self) -> [u8; FRAME_SIZE] {
        let mut b = [0u8; FRAME_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&self.kind.to_le_bytes());
        for (i, v) in [self.rax, self.rcx, self.rdx, self.r8, self.r9].iter().enumerate() {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Decodes and checks a frame of the expected kind.
    pub fn decode(b: &[u8; FRAME_SIZE], expected_kind: u16) -> Result<Self, FrameError> {
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let version = u16::from_le_bytes([b[4], b[5]]);
        let kind = u16::from_le_bytes([b[6], b[7]]);
        if magic != FRAME_MAGIC {
            return Err(FrameError::Magic(magic));
        }
        if version != FRAME_VERSION {
            return Err(FrameError::Version(version));
        }
        if kind != expected_kind {
            return Err(FrameError::Kind(kind));
        }
        Ok(RegisterFrame {
            magic,
            version,
            kind,
            rax: u64_at(b, 8),
            rcx: u64_at(b, 16),
            rdx: u64_at(b, 24),
            r8: u64_at(b, 32),
            r9: u64_at(b, 40),
        })
    }
}
