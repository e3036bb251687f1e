//! Ledger key files: 64 hex digits and a newline, mode 0600 (what `ledger enrol` writes for provisioning).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use svsm_ledger::LedgerKey;
use zeroize::Zeroizing;

/// Writes `key` to a new file (never overwriting one).
pub fn write_new(path: &Path, key: &LedgerKey) -> anyhow::Result<()> {
    let hex = Zeroizing::new(key.as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>());
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: refusing to overwrite an existing key file", path.display()))?;
    f.write_all(hex.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

/// Reads a key file written by [`write_new`] (or 32 raw bytes).
pub fn read(path: &Path) -> anyhow::Result<LedgerKey> {
    let raw = Zeroizing::new(
        fs::read(path).with_context(|| format!("reading ledger key file {}", path.display()))?,
    );
    if let Ok(bytes) = <[u8; 32]>::try_from(&raw[..]) {
        return Ok(LedgerKey::from_bytes(bytes));
    }
    let text = std::str::from_utf8(&raw).ok().map(str::trim).unwrap_or_default();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = Zeroizing::new([0u8; 32]);
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
        }
        return Ok(LedgerKey::from_bytes(*key));
    }
    bail!("{}: a ledger key file holds 64 hex digits (create one with `ledger enrol`)", path.display())
}

/// Parses a 16-byte id written as 32 hex digits, dashes allowed (the form `ledger enrol` prints).
pub fn parse_id(s: &str) -> anyhow::Result<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{s:?} is not an id (32 hex digits, dashes allowed, e.g. 0011aabb-...)");
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(id)
}
