//! `svsm-host store ...`: operator commands for secure-store volumes (see `docs/store-format.md`).
//!
//! Keys come from a key file (32 raw bytes, or 64 hex digits); production key release by the KBS is a later
//! issue. The ledger is a `FileLedger` directory: it must be the same directory for every command on a volume,
//! or rollback detection has nothing to compare against.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use svsm_block::{BlockDevice, FileDisk};
use svsm_store::{
    Detached, FileLedger, FormatParams, Ledger, LedgerMode, OpenOptions, OsRandom, PooledOsRandom,
    RandomSource, Store, StoreKey, ids, read_headers,
};

const BLOCK: u32 = 4096;

/// Ledger mode names on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Every commit is acknowledged by the ledger (detects any rollback).
    Strict,
    /// The ledger advances at open and clean close only: refuses images older than the ledger and forks of an
    /// earlier run, but the host can choose among states committed since the ledger last moved (within a run,
    /// or after a crash, by any run that opened from the same record).
    BootEpoch,
}

#[derive(Debug, clap::Args)]
pub struct Volume {
    /// Volume image file.
    image: PathBuf,
    /// Key file: 32 raw bytes or 64 hex digits.
    #[arg(long, short = 'k')]
    key_file: PathBuf,
    /// Ledger directory (one record file per volume).
    #[arg(long, default_value = "state/ledger", env = "SVSM_LEDGER_DIR")]
    ledger_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create a new image file, format it as an empty volume and enrol it in the ledger.
    Create {
        #[command(flatten)]
        vol: Volume,
        /// Volume size in MiB.
        #[arg(long, default_value_t = 8)]
        size_mib: u64,
        /// Ledger mode (fixed for the volume's life).
        #[arg(long, value_enum, default_value_t = Mode::Strict)]
        mode: Mode,
        /// Generate a new random key into --key-file (refuses to overwrite an existing file).
        #[arg(long)]
        generate_key: bool,
    },
    /// Show the plaintext header; with a valid key and ledger also the generation, objects and sizes.
    Inspect {
        #[command(flatten)]
        vol: Volume,
        /// Skip the ledger (freshness NOT checked): for backups and images that are not the live volume.
        #[arg(long)]
        detached: bool,
    },
    /// Walk and authenticate every block. Exit code 0: healthy; 1: damaged, rolled back or unreadable.
    Fsck {
        #[command(flatten)]
        vol: Volume,
        /// Skip the ledger (freshness NOT checked).
        #[arg(long)]
        detached: bool,
    },
    /// Print an object's content to stdout or a file.
    Get {
        #[command(flatten)]
        vol: Volume,
        /// Object id: a number (0x.. hex) or a name (vtpm-permanent, vtpm-volatile, vtpm-manufacture, uefi-varstore).
        id: String,
        /// Write here instead of stdout (refuses to overwrite).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Store a file's content as an object (one durable transaction).
    Put {
        #[command(flatten)]
        vol: Volume,
        /// Object id (see `get`).
        id: String,
        /// File to store.
        file: PathBuf,
    },
    /// Delete an object (one durable transaction).
    Delete {
        #[command(flatten)]
        vol: Volume,
        /// Object id (see `get`).
        id: String,
    },
    /// Back up a volume into a new image file (same key, new volume id, not enrolled in any ledger).
    Export {
        #[command(flatten)]
        vol: Volume,
        /// Backup image to create (refuses to overwrite).
        backup: PathBuf,
    },
    /// Restore a backup into a volume as a NEW generation (the ledger moves forward, never back).
    Import {
        #[command(flatten)]
        vol: Volume,
        /// Backup image made by `export`.
        backup: PathBuf,
        /// Create and enrol the target volume first (when the old one is lost or unreadable).
        #[arg(long)]
        create: bool,
        /// Size for --create, in MiB.
        #[arg(long, default_value_t = 8)]
        size_mib: u64,
        /// Ledger mode for --create.
        #[arg(long, value_enum, default_value_t = Mode::Strict)]
        mode: Mode,
    },
}

pub fn run(cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::Create { vol, size_mib, mode, generate_key } => {
            if generate_key {
                write_new_key(&vol.key_file)?;
            }
            let key = read_key(&vol.key_file)?;
            create(&vol, &key, size_mib, mode)?;
        }
        StoreCommand::Inspect { vol, detached } => return inspect(&vol, detached),
        StoreCommand::Fsck { vol, detached } => return fsck(&vol, detached),
        StoreCommand::Get { vol, id, out } => {
            let id = parse_id(&id)?;
            let mut store = open(&vol, true)?;
            let data = store.get(id)?.with_context(|| format!("object {id:#x} does not exist"))?;
            match out {
                Some(path) => {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .with_context(|| format!("{}: choose a new file name", path.display()))?;
                    f.write_all(&data)?;
                }
                None => std::io::stdout().write_all(&data)?,
            }
        }
        StoreCommand::Put { vol, id, file } => {
            let id = parse_id(&id)?;
            let data = zeroize::Zeroizing::new(fs::read(&file).with_context(|| file.display().to_string())?);
            let mut store = open(&vol, false)?;
            let mut tx = store.begin();
            tx.put(id, &data)?;
            let g = tx.commit()?;
            store.close()?;
            println!("stored object {id:#x} ({} bytes) at generation {g}", data.len());
        }
        StoreCommand::Delete { vol, id } => {
            let id = parse_id(&id)?;
            let mut store = open(&vol, false)?;
            if store.size_of(id).is_none() {
                bail!("object {id:#x} does not exist");
            }
            let mut tx = store.begin();
            tx.delete(id)?;
            let g = tx.commit()?;
            store.close()?;
            println!("deleted object {id:#x} at generation {g}");
        }
        StoreCommand::Export { vol, backup } => export(&vol, &backup)?,
        StoreCommand::Import { vol, backup, create: do_create, size_mib, mode } => {
            let key = read_key(&vol.key_file)?;
            if do_create {
                create(&vol, &key, size_mib, mode)?;
            }
            import(&vol, &key, &backup)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rng() -> Box<dyn RandomSource> {
    Box::new(PooledOsRandom::new())
}

fn mode_of(m: Mode) -> LedgerMode {
    match m {
        Mode::Strict => LedgerMode::Strict,
        Mode::BootEpoch => LedgerMode::BootEpoch,
    }
}

/// Parses a key file: exactly 32 bytes, or 64 hex digits with optional surrounding whitespace.
fn read_key(path: &Path) -> anyhow::Result<StoreKey> {
    let raw = zeroize::Zeroizing::new(
        fs::read(path).with_context(|| format!("reading key file {}", path.display()))?,
    );
    if raw.len() == 32 {
        return Ok(StoreKey::from_slice(&raw)?);
    }
    let text = std::str::from_utf8(&raw).ok().map(str::trim).unwrap_or_default();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
        }
        return Ok(StoreKey::from_bytes(*key));
    }
    bail!(
        "{}: a key file holds 32 raw bytes or 64 hex digits (create one with `store create --generate-key`)",
        path.display()
    )
}

fn write_new_key(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    OsRandom.fill(&mut key[..]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hex = zeroize::Zeroizing::new(key.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: refusing to overwrite an existing key file", path.display()))?;
    f.write_all(hex.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    println!("wrote a new key to {} (keep it secret; without it the volume is unreadable)", path.display());
    Ok(())
}

/// Object ids by name or number.
fn parse_id(s: &str) -> anyhow::Result<u64> {
    let named = match s {
        "vtpm-permanent" => Some(ids::VTPM_PERMANENT),
        "vtpm-volatile" => Some(ids::VTPM_VOLATILE),
        "vtpm-manufacture" => Some(ids::VTPM_MANUFACTURE_INFO),
        "uefi-varstore" => Some(ids::UEFI_VARSTORE),
        _ => None,
    };
    if let Some(id) = named {
        return Ok(id);
    }
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.with_context(|| {
        format!("`{s}` is not an object id (a number, 0x-hex, or a name like vtpm-permanent)")
    })
}

fn id_name(id: u64) -> &'static str {
    match id {
        ids::VTPM_PERMANENT => "vtpm-permanent",
        ids::VTPM_VOLATILE => "vtpm-volatile",
        ids::VTPM_MANUFACTURE_INFO => "vtpm-manufacture",
        ids::UEFI_VARSTORE => "uefi-varstore",
        _ if ids::VTPM.contains(&id) => "vtpm",
        _ if ids::UEFI.contains(&id) => "uefi",
        _ if ids::KEY_PROTECTORS.contains(&id) => "key protector",
        _ => "",
    }
}

fn create(vol: &Volume, key: &StoreKey, size_mib: u64, mode: Mode) -> anyhow::Result<()> {
    let bytes = size_mib.checked_mul(1 << 20).context("size too large")?;
    let mut disk = FileDisk::create(&vol.image, BLOCK, bytes / u64::from(BLOCK))
        .context("choose a new file name; existing images are never overwritten")?;
    // Allocate every block now (a sparse file would make each first write allocate and journal metadata).
    let zeros = vec![0u8; 1 << 20];
    let blocks_per_chunk = zeros.len() as u64 / u64::from(BLOCK);
    let mut lba = 0;
    while lba < disk.num_blocks() {
        let n = blocks_per_chunk.min(disk.num_blocks() - lba);
        disk.write_blocks(lba, &zeros[..(n * u64::from(BLOCK)) as usize], svsm_block::WriteMode::Cached)?;
        lba += n;
    }
    disk.flush()?;
    let f = Store::<_, FileLedger>::format(disk, key, FormatParams::new(mode_of(mode), rng()))?;
    let mut ledger = FileLedger::new(&vol.ledger_dir)?;
    ledger
        .compare_and_set(&f.volume_id, None, &f.record)
        .context("enrolling the new volume in the ledger")?;
    println!(
        "created {} : volume {} ({} MiB, {:?} ledger in {})",
        vol.image.display(),
        f.volume_id,
        size_mib,
        mode_of(mode),
        vol.ledger_dir.display()
    );
    Ok(())
}

fn open(vol: &Volume, read_only: bool) -> anyhow::Result<Store<FileDisk, FileLedger>> {
    let key = read_key(&vol.key_file)?;
    let disk = FileDisk::open(&vol.image, BLOCK, read_only)?;
    let ledger = FileLedger::new(&vol.ledger_dir)?;
    let mut options = OpenOptions::new(rng());
    options.read_only = read_only;
    Store::open(disk, &key, ledger, options).with_context(|| format!("opening {}", vol.image.display()))
}

fn open_detached(vol: &Volume) -> anyhow::Result<Store<FileDisk, Detached>> {
    let key = read_key(&vol.key_file)?;
    let disk = FileDisk::open(&vol.image, BLOCK, true)?;
    Store::open_detached(disk, &key, OpenOptions::new(rng()))
        .with_context(|| format!("opening {}", vol.image.display()))
}

fn inspect(vol: &Volume, detached: bool) -> anyhow::Result<ExitCode> {
    let mut disk = FileDisk::open(&vol.image, BLOCK, true)?;
    println!(
        "image      {} ({} blocks of {} bytes)",
        vol.image.display(),
        disk.num_blocks(),
        disk.block_size()
    );
    let headers = read_headers(&mut disk)?;
    if headers.is_empty() {
        println!("no secure-store header in either slot (unformatted)");
        return Ok(ExitCode::from(1));
    }
    for h in &headers {
        println!(
            "slot {}     format {}.{}, volume {}, {} blocks, claimed generation {}, ledger mode {}, features {:#x}/{:#x}/{:#x} (unauthenticated)",
            h.slot,
            h.format.0,
            h.format.1,
            h.volume_id,
            h.num_blocks,
            h.generation,
            h.ledger_mode,
            h.features.0,
            h.features.1,
            h.features.2
        );
    }
    drop(disk);
    let report = |stats: svsm_store::StoreStats, objects: Vec<(u64, u64)>| {
        println!("volume     {}", stats.volume_id);
        println!("generation {} (authenticated)", stats.generation);
        println!("ledger     {:?}", stats.ledger_mode);
        println!(
            "usage      {} of {} blocks, {} objects, {} bytes, {} seals",
            stats.used_blocks, stats.total_blocks, stats.objects, stats.object_bytes, stats.seal_count
        );
        println!("{:<20} {:>12}  name", "object", "bytes");
        for (id, size) in objects {
            println!("{id:<#20x} {size:>12}  {}", id_name(id));
        }
    };
    if detached {
        let s = open_detached(vol)?;
        println!("freshness  NOT checked (detached)");
        report(s.stats(), s.objects().collect());
    } else {
        let s = open(vol, true)?;
        println!("freshness  ledger record matches (generation {})", s.ledger_record().generation);
        report(s.stats(), s.objects().collect());
    }
    Ok(ExitCode::SUCCESS)
}

fn fsck(vol: &Volume, detached: bool) -> anyhow::Result<ExitCode> {
    let result = if detached {
        open_detached(vol).and_then(|mut s| check_all(&mut s))
    } else {
        open(vol, true).and_then(|mut s| check_all(&mut s))
    };
    match result {
        Ok(blocks) => {
            println!("{}: healthy ({blocks} data blocks authenticated)", vol.image.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}: NOT healthy: {e:#}", vol.image.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn check_all<D: BlockDevice, L: Ledger>(s: &mut Store<D, L>) -> anyhow::Result<u64> {
    let total: u64 = s.objects().map(|(_, size)| size.div_ceil(u64::from(BLOCK))).sum();
    // A bar only where it helps: large volumes on an interactive terminal.
    let bar =
        if total > 1024 { indicatif::ProgressBar::new(total) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} blocks {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let n = s.verify_all(&mut |done, _| bar.set_position(done));
    bar.finish_and_clear();
    Ok(n?)
}

fn export(vol: &Volume, backup: &Path) -> anyhow::Result<()> {
    let key = read_key(&vol.key_file)?;
    let mut src = open(vol, true)?;
    let stats = src.stats();
    let disk = FileDisk::create(backup, BLOCK, stats.total_blocks)
        .context("choose a new backup file name; existing files are never overwritten")?;
    let f = Store::<_, Detached>::format(disk, &key, FormatParams::new(LedgerMode::BootEpoch, rng()))?;
    // The backup is enrolled only in a throw-away ledger: it must never be mistaken for a live volume.
    let scratch = tempdir_ledger()?;
    let mut ledger = FileLedger::new(scratch.path())?;
    ledger.compare_and_set(&f.volume_id, None, &f.record)?;
    let mut dst = Store::open(FileDisk::open(backup, BLOCK, false)?, &key, ledger, OpenOptions::new(rng()))?;
    let ids: Vec<u64> = src.objects().map(|(id, _)| id).collect();
    let mut tx = dst.begin();
    for id in &ids {
        let data = src.get(*id)?.context("object vanished during export")?;
        tx.put(*id, &data)?;
    }
    tx.commit()?;
    println!(
        "exported {} objects of volume {} at generation {} to {} (backup volume {})",
        ids.len(),
        stats.volume_id,
        stats.generation,
        backup.display(),
        f.volume_id
    );
    Ok(())
}

fn tempdir_ledger() -> anyhow::Result<TempDir> {
    let mut name = [0u8; 8];
    OsRandom.fill(&mut name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = std::env::temp_dir().join(format!("svsm-export-{}", u64::from_le_bytes(name)));
    fs::create_dir(&path)?;
    Ok(TempDir(path))
}

/// A directory removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn import(vol: &Volume, key: &StoreKey, backup: &Path) -> anyhow::Result<()> {
    let mut src = Store::open_detached(FileDisk::open(backup, BLOCK, true)?, key, OpenOptions::new(rng()))
        .with_context(|| format!("opening backup {}", backup.display()))?;
    let mut dst = open(vol, false)?;
    let keep: Vec<u64> = src.objects().map(|(id, _)| id).collect();
    let drop_ids: Vec<u64> = dst.objects().map(|(id, _)| id).filter(|id| !keep.contains(id)).collect();
    let mut tx = dst.begin();
    for id in &drop_ids {
        tx.delete(*id)?;
    }
    for id in &keep {
        let data = src.get(*id)?.context("object vanished during import")?;
        tx.put(*id, &data)?;
    }
    let g = tx.commit()?;
    dst.close()?;
    println!(
        "imported {} objects from {} into {} as generation {g} (the ledger moved forward; nothing was rolled back)",
        keep.len(),
        backup.display(),
        vol.image.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(dir: &Path, name: &str) -> Volume {
        Volume { image: dir.join(name), key_file: dir.join("key"), ledger_dir: dir.join("ledger") }
    }

    #[test]
    fn ids_parse_by_name_and_number() {
        assert_eq!(parse_id("vtpm-permanent").unwrap(), 1);
        assert_eq!(parse_id("0x10").unwrap(), 0x10);
        assert_eq!(parse_id("65536").unwrap(), 0x1_0000);
        assert!(parse_id("nope").is_err());
    }

    #[test]
    fn create_put_get_export_import_round_trip_and_fsck_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let v = vol(dir.path(), "vol.img");
        run(StoreCommand::Create {
            vol: vol(dir.path(), "vol.img"),
            size_mib: 1,
            mode: Mode::Strict,
            generate_key: true,
        })
        .unwrap();
        let payload = dir.path().join("payload");
        fs::write(&payload, b"hello store").unwrap();
        run(StoreCommand::Put {
            vol: vol(dir.path(), "vol.img"),
            id: "vtpm-permanent".into(),
            file: payload.clone(),
        })
        .unwrap();
        let out = dir.path().join("out");
        run(StoreCommand::Get { vol: vol(dir.path(), "vol.img"), id: "1".into(), out: Some(out.clone()) })
            .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello store");
        assert_eq!(fsck(&v, false).unwrap(), ExitCode::SUCCESS);

        // Backup, then change the live volume, then restore: the content goes back, the generation forward.
        let backup = dir.path().join("backup.img");
        run(StoreCommand::Export { vol: vol(dir.path(), "vol.img"), backup: backup.clone() }).unwrap();
        fs::write(&payload, b"changed").unwrap();
        run(StoreCommand::Put { vol: vol(dir.path(), "vol.img"), id: "uefi-varstore".into(), file: payload })
            .unwrap();
        let before = open(&v, true).unwrap().generation();
        run(StoreCommand::Import {
            vol: vol(dir.path(), "vol.img"),
            backup: backup.clone(),
            create: false,
            size_mib: 1,
            mode: Mode::Strict,
        })
        .unwrap();
        let mut s = open(&v, true).unwrap();
        assert!(s.generation() > before);
        assert_eq!(s.get(1).unwrap().unwrap().as_slice(), b"hello store");
        assert!(s.get(ids::UEFI_VARSTORE).unwrap().is_none());
        drop(s);

        // Damage a data block: fsck must say so with exit code 1.
        let mut img = fs::read(&v.image).unwrap();
        let used_tail = img.len() / 2;
        for b in &mut img[2 * 4096..used_tail] {
            *b ^= 0x01;
        }
        fs::write(&v.image, &img).unwrap();
        assert_eq!(fsck(&v, false).unwrap(), ExitCode::from(1));
        assert_eq!(fsck(&vol(dir.path(), "backup.img"), true).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn key_files_must_be_32_bytes_or_64_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, [1u8; 32]).unwrap();
        assert!(read_key(&p).is_ok());
        fs::write(&p, format!("{}\n", "ab".repeat(32))).unwrap();
        assert!(read_key(&p).is_ok());
        fs::write(&p, "short").unwrap();
        assert!(read_key(&p).is_err());
        assert!(write_new_key(&p).is_err(), "must not overwrite");
    }
}
