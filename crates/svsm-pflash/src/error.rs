//! Why a flash could not be set up. I/O errors after setup are [`svsm_block::BlockError`]s, built in
//! [`crate::status`].

use svsm_block::BlockError;

/// The flash's CFI description or the caller's configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The CFI query did not answer "QRY": this is not a CFI flash, or the window is not mapped to one.
    #[error(
        "no CFI flash answers at this window (query returned {found:02x?} instead of \"QRY\"); check the bus \
         width and that the window maps the pflash device"
    )]
    NoCfi {
        /// The three bytes read at the "QRY" position.
        found: [u8; 3],
    },
    /// A CFI flash that does not use the Intel/Sharp command set (e.g. AMD/Fujitsu, QEMU's pflash_cfi02).
    #[error(
        "flash uses CFI command set {id:#06x}; only the Intel/Sharp sets 0x0001 and 0x0003 are supported"
    )]
    UnsupportedCommandSet {
        /// The primary command set id.
        id: u16,
    },
    /// More than one erase-block region: blocks of different sizes cannot be one block device.
    #[error("flash has {regions} erase-block regions; only uniform flash (1 region) is supported")]
    NonUniform {
        /// Number of regions reported.
        regions: u8,
    },
    /// The erase-block size cannot be a block-device block (not a power of two of at least 512 bytes).
    #[error("erase block of {erase_block} bytes cannot be a block (needs a power of two >= 512)")]
    EraseBlockSize {
        /// Reported erase-block size.
        erase_block: u64,
    },
    /// The flash claims to be larger than the window mapped for it.
    #[error(
        "flash of {num_blocks} x {erase_block}-byte blocks does not fit the {window_len}-byte window; map the \
         whole device or pass the geometry explicitly"
    )]
    ExceedsWindow {
        /// Erase-block size.
        erase_block: u64,
        /// Number of erase blocks.
        num_blocks: u64,
        /// Mapped window.
        window_len: u64,
    },
    /// Zero blocks.
    #[error("flash reports no erase blocks")]
    Empty,
    /// The block layer refused the geometry, or memory for the block buffer was unavailable.
    #[error(transparent)]
    Block(#[from] BlockError),
}
