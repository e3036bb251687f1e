//! INTERIM NV persistence for the vTPM: a two-slot file, durable but **neither encrypted nor
//! rollback-protected**. It stands in until `serve` runs on the secure store (`svsm-store`); see README.
//!
//! The file holds two fixed-size slots. Each commit writes the whole NV set (a few KiB) with a higher
//! sequence number into the slot not holding the current version, then `fdatasync`s: one overwrite-sync per
//! commit, and a crash leaves either the old or the new version, never a mix. A checksum per slot catches
//! torn or damaged slots (accidents, not attackers: a host that edits the file can forge it).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use svsm_vtpm::{NvBlob, NvStorage, StorageError};

const MAGIC: &[u8; 8] = b"SVTPMNV1";
/// Size of one slot; the NV set (permall <= ~64 KiB worst case in libtpms, typically 1.3-5 KiB) must fit.
pub const SLOT_SIZE: usize = 128 * 1024;
const HEADER: usize = 8 + 8 + 4 + 8;

fn blob_code(b: NvBlob) -> u8 {
    match b {
        NvBlob::Permanent => 1,
        NvBlob::Volatile => 2,
        NvBlob::SaveState => 3,
        NvBlob::Manufacture => 4,
    }
}

fn blob_from(c: u8) -> Option<NvBlob> {
    NvBlob::ALL.into_iter().find(|b| blob_code(*b) == c)
}

/// FNV-1a 64: detects torn and damaged slots.
fn checksum(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    h
}

/// The interim two-slot NV file.
#[derive(Debug)]
pub struct SlotFile {
    file: File,
    seq: u64,
    blobs: BTreeMap<NvBlob, Vec<u8>>,
}

fn corrupt(msg: impl Into<String>) -> StorageError {
    StorageError::Corrupt(msg.into())
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl SlotFile {
    /// Creates a new, empty NV file (fails if it exists).
    pub fn create(path: &Path) -> Result<Self, StorageError> {
        let file =
            OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        file.set_len((2 * SLOT_SIZE) as u64).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(SlotFile { file, seq: 0, blobs: BTreeMap::new() })
    }

    /// Opens an existing NV file and loads the newest valid slot.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len != (2 * SLOT_SIZE) as u64 {
            return Err(corrupt(format!("{} has {len} bytes, expected {}", path.display(), 2 * SLOT_SIZE)));
        }
        let mut best: Option<(u64, BTreeMap<NvBlob, Vec<u8>>)> = None;
        let mut any_written = false;
        for slot in 0..2u64 {
            let mut buf = vec![0u8; SLOT_SIZE];
            file.read_exact_at(&mut buf, slot * SLOT_SIZE as u64).map_err(io)?;
            if buf.iter().any(|&b| b != 0) {
                any_written = true;
            }
            if let Ok((seq, blobs)) = Self::decode_slot(&buf)
                && best.as_ref().is_none_or(|(s, _)| seq > *s)
            {
                best = Some((seq, blobs));
            }
        }
        match best {
            Some((seq, blobs)) => Ok(SlotFile { file, seq, blobs }),
            None if !any_written => Ok(SlotFile { file, seq: 0, blobs: BTreeMap::new() }),
            None => Err(corrupt(format!("{}: no intact slot (damaged or tampered)", path.display()))),
        }
    }

    fn decode_slot(buf: &[u8]) -> Result<(u64, BTreeMap<NvBlob, Vec<u8>>), StorageError> {
        let mut r = svsm_vtpm::marshal::Reader::new(buf);
        let bad = |_| corrupt("truncated slot");
        if r.take(8).map_err(bad)? != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let seq_hi = r.u32().map_err(bad)?;
        let seq_lo = r.u32().map_err(bad)?;
        let seq = (u64::from(seq_hi) << 32) | u64::from(seq_lo);
        let len = r.u32().map_err(bad)? as usize;
        let sum_hi = r.u32().map_err(bad)?;
        let sum_lo = r.u32().map_err(bad)?;
        let sum = (u64::from(sum_hi) << 32) | u64::from(sum_lo);
        let payload = r.take(len).map_err(bad)?;
        if checksum(&[&seq.to_be_bytes(), &(len as u32).to_be_bytes(), payload]) != sum {
            return Err(corrupt("checksum mismatch"));
        }
        let mut p = svsm_vtpm::marshal::Reader::new(payload);
        let n = p.u8().map_err(bad)?;
        let mut blobs = BTreeMap::new();
        for _ in 0..n {
            let blob = blob_from(p.u8().map_err(bad)?).ok_or_else(|| corrupt("unknown blob"))?;
            let l = p.u32().map_err(bad)? as usize;
            blobs.insert(blob, p.take(l).map_err(bad)?.to_vec());
        }
        Ok((seq, blobs))
    }

    fn write_slot(&mut self, blobs: &BTreeMap<NvBlob, Vec<u8>>) -> Result<(), StorageError> {
        let mut payload = vec![u8::try_from(blobs.len()).map_err(|_| corrupt("too many blobs"))?];
        for (b, d) in blobs {
            payload.push(blob_code(*b));
            payload.extend_from_slice(
                &u32::try_from(d.len()).map_err(|_| corrupt("blob too large"))?.to_be_bytes(),
            );
            payload.extend_from_slice(d);
        }
        if HEADER + payload.len() > SLOT_SIZE {
            return Err(StorageError::Backend(format!(
                "NV set of {} bytes exceeds the slot size",
                payload.len()
            )));
        }
        let seq = self.seq.checked_add(1).ok_or_else(|| corrupt("sequence exhausted"))?;
        let len = payload.len() as u32;
        let sum = checksum(&[&seq.to_be_bytes(), &len.to_be_bytes(), &payload]);
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&sum.to_be_bytes());
        buf.extend_from_slice(&payload);
        self.file.write_all_at(&buf, (seq % 2) * SLOT_SIZE as u64).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.seq = seq;
        Ok(())
    }
}

impl NvStorage for SlotFile {
    fn load(&mut self, blob: NvBlob) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.blobs.get(&blob).cloned())
    }

    fn commit(&mut self, changes: &[(NvBlob, Option<&[u8]>)]) -> Result<(), StorageError> {
        let mut next = self.blobs.clone();
        for (b, d) in changes {
            match d {
                Some(d) => next.insert(*b, d.to_vec()),
                None => next.remove(b),
            };
        }
        self.write_slot(&next)?;
        self.blobs = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nv");
        let mut s = SlotFile::create(&path).unwrap();
        assert_eq!(s.load(NvBlob::Permanent).unwrap(), None);
        for i in 0..5u8 {
            s.store(NvBlob::Permanent, &[i; 100]).unwrap();
        }
        s.store(NvBlob::Manufacture, b"rec").unwrap();
        drop(s);
        let mut s = SlotFile::open(&path).unwrap();
        assert_eq!(s.load(NvBlob::Permanent).unwrap(), Some(vec![4; 100]));
        assert_eq!(s.load(NvBlob::Manufacture).unwrap(), Some(b"rec".to_vec()));
        drop(s);
        // Damage the newest slot: the previous version is used (a torn write).
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        // Six commits: the newest (seq 6) is in slot 0, the previous (seq 5) in slot 1.
        let (newest, previous) = (0u64, SLOT_SIZE as u64);
        f.write_all_at(&[0xFF], newest + 40).unwrap();
        let mut s = SlotFile::open(&path).unwrap();
        assert_eq!(s.load(NvBlob::Manufacture).unwrap(), None);
        assert_eq!(s.load(NvBlob::Permanent).unwrap(), Some(vec![4; 100]));
        drop(s);
        // Damage both: refused.
        f.write_all_at(&[0xFF], previous + 40).unwrap();
        assert!(matches!(SlotFile::open(&path), Err(StorageError::Corrupt(_))));
    }
}
