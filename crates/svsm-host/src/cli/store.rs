//! `svsm-host store ...`: operator commands for secure-store volumes (see `docs/store-format.md`).
//!
//! Every command reaches its volume through the state model (`crate::state`): the image's directory is its
//! state directory (0700; its lock, and by default its development key file and file ledger, live there).
//! Writing commands take the directory's lock and are refused while `serve` holds it; reading commands
//! (`inspect`, `fsck`, `get`, `export`) work meanwhile on a detached open and say that freshness was not
//! checked.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use svsm_block::{BlockDevice, FileDisk};
use svsm_store::{
    Detached, FormatParams, Ledger, LedgerMode, MemLedger, OpenOptions, PooledOsRandom, RandomSource, Store,
    ids, read_headers,
};

use crate::state::key_file::write_new_key_file;
use crate::state::{
    BLOCK_SIZE, DetachedStore, FileLedgerSource, KeyFile, KeySource, ReadLock, StateDir, Volume, VolumeName,
    VolumeStore,
};

const BLOCK: u32 = BLOCK_SIZE;

/// Ledger mode names on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Every commit is acknowledged by the ledger (detects any rollback).
    Strict,
    /// The ledger advances at open and clean close (detects images older than the last boot).
    BootEpoch,
}

/// Which volume a command works on.
#[derive(Debug, Clone, clap::Args)]
pub struct VolumeArgs {
    /// Volume image file. Its directory is the volume's state directory (mode 0700): the lock, and by
    /// default the key file and the ledger, live there.
    image: PathBuf,
    /// Key file (64 hex digits on one line, `#` comment lines allowed; mode 0600). Default: the state
    /// directory's development key, `dev-store.key` beside the image.
    #[arg(long, short = 'k')]
    key_file: Option<PathBuf>,
    /// Ledger directory. Default: `ledger/` beside the image.
    #[arg(long, env = "SVSM_LEDGER_DIR")]
    ledger_dir: Option<PathBuf>,
    /// Volume name, what a key source is asked for (e.g. vtpm, uefi-vars). Default: the image's file stem.
    #[arg(long)]
    volume: Option<VolumeName>,
}

impl VolumeArgs {
    fn dir_path(&self) -> PathBuf {
        match self.image.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn key_path(&self, dir: &StateDir) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| dir.dev_key_path())
    }

    /// The volume, in its state directory (created if `create`).
    fn open(&self, create: bool) -> anyhow::Result<Volume> {
        let dir = if create {
            StateDir::open_or_create(self.dir_path())?.0
        } else {
            StateDir::open(self.dir_path())?
        };
        let name = match &self.volume {
            Some(n) => n.clone(),
            None => {
                let stem = self.image.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                VolumeName::new(stem).with_context(|| {
                    format!("{}: name the volume with --volume (e.g. --volume vtpm)", self.image.display())
                })?
            }
        };
        let keys: Arc<dyn KeySource> = Arc::new(KeyFile::existing(self.key_path(&dir)));
        let ledgers: Arc<dyn crate::state::LedgerSource> = match &self.ledger_dir {
            Some(d) => Arc::new(FileLedgerSource::new(d)),
            None => dir.default_ledgers(),
        };
        Ok(Volume::new(dir, name, self.image.clone(), keys, ledgers))
    }
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create a new image file, format it as an empty volume and enrol it in the ledger.
    Create {
        #[command(flatten)]
        vol: VolumeArgs,
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
        vol: VolumeArgs,
        /// Skip the ledger (freshness NOT checked): for backups and images that are not the live volume.
        #[arg(long)]
        detached: bool,
    },
    /// Walk and authenticate every block. Exit code 0: healthy; 1: damaged, rolled back or unreadable.
    Fsck {
        #[command(flatten)]
        vol: VolumeArgs,
        /// Skip the ledger (freshness NOT checked).
        #[arg(long)]
        detached: bool,
    },
    /// Print an object's content to stdout or a file.
    Get {
        #[command(flatten)]
        vol: VolumeArgs,
        /// Object id: a number (0x.. hex) or a name (vtpm-permanent, vtpm-volatile, vtpm-manufacture, uefi-varstore).
        id: String,
        /// Write here instead of stdout (refuses to overwrite).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Store a file's content as an object (one durable transaction).
    Put {
        #[command(flatten)]
        vol: VolumeArgs,
        /// Object id (see `get`).
        id: String,
        /// File to store.
        file: PathBuf,
    },
    /// Delete an object (one durable transaction).
    Delete {
        #[command(flatten)]
        vol: VolumeArgs,
        /// Object id (see `get`).
        id: String,
    },
    /// Back up a volume into a new image file (same key, new volume id, not enrolled in any ledger).
    Export {
        #[command(flatten)]
        vol: VolumeArgs,
        /// Backup image to create (refuses to overwrite).
        backup: PathBuf,
    },
    /// Restore a backup into a volume as a NEW generation (the ledger moves forward, never back).
    Import {
        #[command(flatten)]
        vol: VolumeArgs,
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
            let v = vol.open(true)?;
            let key_path = vol.key_path(v.state_dir());
            let lock = v.state_dir().lock_for_write("store create")?;
            if generate_key {
                write_new_key_file(&key_path)?;
                println!(
                    "wrote a new DEVELOPMENT key to {} (keep it secret; without it the volume is unreadable)",
                    key_path.display()
                );
            }
            create(&v, &lock, size_mib, mode)?;
        }
        StoreCommand::Inspect { vol, detached } => return inspect(&vol.open(false)?, detached),
        StoreCommand::Fsck { vol, detached } => return fsck(&vol.open(false)?, detached),
        StoreCommand::Get { vol, id, out } => {
            let id = parse_id(&id)?;
            let mut store = Reader::open(&vol.open(false)?, false)?;
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
            let v = vol.open(false)?;
            let lock = v.state_dir().lock_for_write("store put")?;
            let mut store = v.open(&lock)?;
            let mut tx = store.begin();
            tx.put(id, &data)?;
            let g = tx.commit()?;
            store.close()?;
            println!("stored object {id:#x} ({} bytes) at generation {g}", data.len());
        }
        StoreCommand::Delete { vol, id } => {
            let id = parse_id(&id)?;
            let v = vol.open(false)?;
            let lock = v.state_dir().lock_for_write("store delete")?;
            let mut store = v.open(&lock)?;
            if store.size_of(id).is_none() {
                bail!("object {id:#x} does not exist");
            }
            let mut tx = store.begin();
            tx.delete(id)?;
            let g = tx.commit()?;
            store.close()?;
            println!("deleted object {id:#x} at generation {g}");
        }
        StoreCommand::Export { vol, backup } => export(&vol.open(false)?, &backup)?,
        StoreCommand::Import { vol, backup, create: do_create, size_mib, mode } => {
            let v = vol.open(do_create)?;
            let lock = v.state_dir().lock_for_write("store import")?;
            if do_create {
                create(&v, &lock, size_mib, mode)?;
            }
            import(&v, &lock, &backup)?;
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

fn create(vol: &Volume, lock: &crate::state::WriteLock, size_mib: u64, mode: Mode) -> anyhow::Result<()> {
    let bytes = size_mib.checked_mul(1 << 20).context("size too large")?;
    let store = vol
        .create(lock, bytes / u64::from(BLOCK), mode_of(mode))
        .context("choose a new file name; existing images are never overwritten")?;
    println!(
        "created {} : volume {} ({} MiB, {:?} ledger: {})",
        vol.image().display(),
        store.volume_id(),
        size_mib,
        mode_of(mode),
        vol.ledger_source().describe()
    );
    Ok(())
}

/// A volume opened by a reading command: with its ledger under a shared lock, or detached (asked for, or
/// because a writer such as `serve` holds the state directory).
enum Reader {
    Checked(VolumeStore, #[allow(dead_code)] ReadLock),
    Detached(DetachedStore, Option<String>),
}

impl Reader {
    fn open(vol: &Volume, detached: bool) -> anyhow::Result<Reader> {
        if detached {
            return Ok(Reader::Detached(vol.open_detached()?, None));
        }
        let dir = vol.state_dir();
        match dir.lock_for_read()? {
            Some(lock) => Ok(Reader::Checked(vol.open_read_only()?, lock)),
            None => {
                let holder = dir.current_writer().unwrap_or_else(|| "another process".into());
                let why = format!("svsm-host {holder} holds {}", dir.path().display());
                eprintln!("note: {why}; reading the volume detached (freshness NOT checked)");
                Ok(Reader::Detached(vol.open_detached()?, Some(why)))
            }
        }
    }

    fn stats(&self) -> svsm_store::StoreStats {
        match self {
            Reader::Checked(s, _) => s.stats(),
            Reader::Detached(s, _) => s.stats(),
        }
    }

    fn objects(&self) -> Vec<(u64, u64)> {
        match self {
            Reader::Checked(s, _) => s.objects().collect(),
            Reader::Detached(s, _) => s.objects().collect(),
        }
    }

    fn get(&mut self, id: u64) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, svsm_store::StoreError> {
        match self {
            Reader::Checked(s, _) => s.get(id),
            Reader::Detached(s, _) => s.get(id),
        }
    }

    fn check_all(&mut self) -> anyhow::Result<u64> {
        match self {
            Reader::Checked(s, _) => check_all(s),
            Reader::Detached(s, _) => check_all(s),
        }
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reader::Checked(..) => "Reader::Checked",
            Reader::Detached(..) => "Reader::Detached",
        })
    }
}

fn inspect(vol: &Volume, detached: bool) -> anyhow::Result<ExitCode> {
    let mut disk = FileDisk::open(vol.image(), BLOCK, true)?;
    println!(
        "image      {} ({} blocks of {} bytes)",
        vol.image().display(),
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
    let reader = Reader::open(vol, detached)?;
    println!("key        {}", vol.key_source().describe());
    match &reader {
        Reader::Checked(s, _) => {
            println!("freshness  ledger record matches (generation {})", s.ledger_record().generation);
        }
        Reader::Detached(_, None) => println!("freshness  NOT checked (detached)"),
        Reader::Detached(_, Some(why)) => println!("freshness  NOT checked (detached: {why})"),
    }
    let stats = reader.stats();
    println!("volume     {}", stats.volume_id);
    println!("generation {} (authenticated)", stats.generation);
    println!("ledger     {:?}", stats.ledger_mode);
    println!(
        "usage      {} of {} blocks, {} objects, {} bytes, {} seals",
        stats.used_blocks, stats.total_blocks, stats.objects, stats.object_bytes, stats.seal_count
    );
    println!("{:<20} {:>12}  name", "object", "bytes");
    for (id, size) in reader.objects() {
        println!("{id:<#20x} {size:>12}  {}", id_name(id));
    }
    Ok(ExitCode::SUCCESS)
}

fn fsck(vol: &Volume, detached: bool) -> anyhow::Result<ExitCode> {
    let result = Reader::open(vol, detached).and_then(|mut r| r.check_all().map(|n| (n, r)));
    match result {
        Ok((blocks, reader)) => {
            let fresh = match reader {
                Reader::Checked(..) => "freshness checked against the ledger",
                Reader::Detached(..) => "freshness NOT checked",
            };
            println!("{}: healthy ({blocks} data blocks authenticated; {fresh})", vol.image().display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}: NOT healthy: {e:#}", vol.image().display());
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
    let key = vol.key()?;
    let mut src = Reader::open(vol, false)?;
    let stats = src.stats();
    let disk = FileDisk::create(backup, BLOCK, stats.total_blocks)
        .context("choose a new backup file name; existing files are never overwritten")?;
    let f = Store::<_, Detached>::format(disk, &key.key, FormatParams::new(LedgerMode::BootEpoch, rng()))?;
    // The backup is enrolled only in a throw-away ledger: it must never be mistaken for a live volume.
    let mut scratch = MemLedger::new();
    scratch.compare_and_set(&f.volume_id, None, &f.record)?;
    let mut dst =
        Store::open(FileDisk::open(backup, BLOCK, false)?, &key.key, scratch, OpenOptions::new(rng()))?;
    let ids: Vec<u64> = src.objects().into_iter().map(|(id, _)| id).collect();
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

fn import(vol: &Volume, lock: &crate::state::WriteLock, backup: &Path) -> anyhow::Result<()> {
    let key = vol.key()?;
    let mut src =
        Store::open_detached(FileDisk::open(backup, BLOCK, true)?, &key.key, OpenOptions::new(rng()))
            .with_context(|| format!("opening backup {}", backup.display()))?;
    let mut dst = vol.open(lock)?;
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
        vol.image().display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(dir: &Path, name: &str) -> VolumeArgs {
        VolumeArgs { image: dir.join(name), key_file: Some(dir.join("key")), ledger_dir: None, volume: None }
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
        let base = tempfile::tempdir().unwrap();
        let dir = &base.path().join("state");
        let v = vol(dir, "vol.img");
        run(StoreCommand::Create {
            vol: vol(dir, "vol.img"),
            size_mib: 1,
            mode: Mode::Strict,
            generate_key: true,
        })
        .unwrap();
        let payload = base.path().join("payload");
        fs::write(&payload, b"hello store").unwrap();
        run(StoreCommand::Put {
            vol: vol(dir, "vol.img"),
            id: "vtpm-permanent".into(),
            file: payload.clone(),
        })
        .unwrap();
        let out = base.path().join("out");
        run(StoreCommand::Get { vol: vol(dir, "vol.img"), id: "1".into(), out: Some(out.clone()) }).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello store");
        assert_eq!(fsck(&v.open(false).unwrap(), false).unwrap(), ExitCode::SUCCESS);

        // Backup, then change the live volume, then restore: the content goes back, the generation forward.
        let backup = dir.join("backup.img");
        run(StoreCommand::Export { vol: vol(dir, "vol.img"), backup: backup.clone() }).unwrap();
        fs::write(&payload, b"changed").unwrap();
        run(StoreCommand::Put { vol: vol(dir, "vol.img"), id: "uefi-varstore".into(), file: payload })
            .unwrap();
        let before = v.open(false).unwrap().open_read_only().unwrap().generation();
        run(StoreCommand::Import {
            vol: vol(dir, "vol.img"),
            backup: backup.clone(),
            create: false,
            size_mib: 1,
            mode: Mode::Strict,
        })
        .unwrap();
        let mut s = v.open(false).unwrap().open_read_only().unwrap();
        assert!(s.generation() > before);
        assert_eq!(s.get(1).unwrap().unwrap().as_slice(), b"hello store");
        assert!(s.get(ids::UEFI_VARSTORE).unwrap().is_none());
        drop(s);

        // Damage a data block: fsck must say so with exit code 1.
        let image = dir.join("vol.img");
        let mut img = fs::read(&image).unwrap();
        let used_tail = img.len() / 2;
        for b in &mut img[2 * 4096..used_tail] {
            *b ^= 0x01;
        }
        fs::write(&image, &img).unwrap();
        assert_eq!(fsck(&v.open(false).unwrap(), false).unwrap(), ExitCode::from(1));
        assert_eq!(fsck(&vol(dir, "backup.img").open(false).unwrap(), true).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn writing_commands_are_refused_while_another_process_holds_the_directory() {
        let base = tempfile::tempdir().unwrap();
        let dir = &base.path().join("state");
        run(StoreCommand::Create {
            vol: vol(dir, "vol.img"),
            size_mib: 1,
            mode: Mode::Strict,
            generate_key: true,
        })
        .unwrap();
        let state = StateDir::open(dir).unwrap();
        let _serve = state.lock_for_write("serve").unwrap();
        let payload = base.path().join("payload");
        fs::write(&payload, b"x").unwrap();
        let err =
            run(StoreCommand::Put { vol: vol(dir, "vol.img"), id: "1".into(), file: payload }).unwrap_err();
        assert!(err.to_string().contains("svsm-host serve (pid"), "{err}");
        // Reading still works, detached.
        assert!(matches!(
            Reader::open(&vol(dir, "vol.img").open(false).unwrap(), false).unwrap(),
            Reader::Detached(_, Some(_))
        ));
        assert_eq!(fsck(&vol(dir, "vol.img").open(false).unwrap(), false).unwrap(), ExitCode::SUCCESS);
    }
}
