//! `svsm-host disk ...`: raw image handling that needs no key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use svsm_block::{BlockDevice, FileDisk};

#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Create a zero-filled image file of a given size (refuses to overwrite an existing file).
    Create {
        /// Image file to create.
        path: PathBuf,
        /// Size in MiB.
        #[arg(long, default_value_t = 8)]
        size_mib: u64,
        /// Block size in bytes (power of two, at least 512).
        #[arg(long, default_value_t = 4096)]
        block_size: u32,
    },
    /// Show an image's geometry.
    Info {
        /// Image file.
        path: PathBuf,
        /// Block size in bytes to interpret the image with.
        #[arg(long, default_value_t = 4096)]
        block_size: u32,
    },
}

pub fn run(cmd: DiskCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DiskCommand::Create { path, size_mib, block_size } => {
            let bytes = size_mib.checked_mul(1 << 20).context("size too large")?;
            let disk = FileDisk::create(&path, block_size, bytes / u64::from(block_size))
                .with_context(|| "choose a new file name; existing images are never overwritten")?;
            println!("created {} ({} blocks of {block_size} bytes)", path.display(), disk.num_blocks());
        }
        DiskCommand::Info { path, block_size } => {
            let disk = FileDisk::open(&path, block_size, true)?;
            let info = disk.info();
            println!(
                "{}: {} blocks of {} bytes ({} bytes)",
                path.display(),
                info.num_blocks,
                info.block_size,
                info.capacity_bytes()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
